"""Save a training run and resume it exactly: model, optimizer, step, random-number state, notes.

One checkpoint is one ``.npz`` file, written atomically (a temporary file in the same folder, then
``os.replace``), so a crash or Ctrl-C while saving leaves the previous checkpoint intact. Its entries:

=====================  ==========================================================================
``model/NAME``         the model's :meth:`~lnedu.nn.Module.state_dict` (parameters and ``buffer:`` s)
``optim/KEY``          the optimizer's ``state_dict()`` (step count ``t``, Adam's ``m:``/``v:`` moments)
``step``               the training step (int64)
``meta``               a JSON string: format version, optimizer class, the ``numpy.random.Generator``
                       state (``bit_generator.state``) and the caller's ``extra`` (any JSON value)
=====================  ==========================================================================

Everything is stored as plain arrays and JSON text: the file loads with ``allow_pickle=False``.
Resuming means: build the same model and optimizer (same constructor arguments), then
``step, extra = load_checkpoint(path, model, optimizer, rng=rng)``; on NumPy the continued run is bit for
bit the run that was never interrupted (``tests/test_checkpoint.py`` checks exactly that).
"""

from __future__ import annotations

import json
import os

import numpy as np

from .nn.module import Module, save_npz_atomic

__all__ = ["save_checkpoint", "load_checkpoint", "read_meta", "FORMAT"]

FORMAT = "lnedu-checkpoint/1"


def _json_default(obj):
    """JSON for the NumPy values a ``bit_generator.state`` may hold (MT19937 keeps its key as an array)."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    raise TypeError(f"extra: expected JSON-serializable values, got {type(obj).__name__}")


def _json_restore(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__", "dtype"}:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _json_restore(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_restore(v) for v in obj]
    return obj


def _rng_state(rng):
    if rng is None:
        return None
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator.state
    if isinstance(rng, dict) and "bit_generator" in rng:
        return rng
    raise TypeError(
        f"rng_state: expected None, a numpy.random.Generator or its bit_generator.state dict, got {type(rng).__name__}"
    )


def _check_model(model):
    if not isinstance(model, Module):
        raise TypeError(f"model: expected an lnedu.nn.Module, got {type(model).__name__}")


def save_checkpoint(path, model, optimizer=None, step: int = 0, rng_state=None, extra=None) -> None:
    """Write ``model``, ``optimizer`` (or ``None``), ``step``, a random-number state and ``extra`` to ``path``.

    ``rng_state``: a ``numpy.random.Generator`` (its ``bit_generator.state`` is saved) or that state dict,
    or ``None``. ``extra``: any JSON-serializable value (a config, a data-loader position, a loss history).
    The write is atomic: until it completes, ``path`` still holds the previous checkpoint.
    """
    _check_model(model)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step: expected a non-negative integer, got {step!r}")
    meta = {
        "format": FORMAT,
        "optimizer": None if optimizer is None else type(optimizer).__name__,
        "rng_state": _rng_state(rng_state),
        "extra": extra,
    }
    arrays = {"model/" + k: v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({"optim/" + k: v for k, v in optimizer.state_dict().items()})
    arrays["step"] = np.asarray(int(step), dtype=np.int64)
    arrays["meta"] = np.asarray(json.dumps(meta, default=_json_default))
    save_npz_atomic(path, arrays)


def load_checkpoint(path, model, optimizer=None, *, rng=None):
    """Restore ``model`` and ``optimizer`` in place from ``path``; return ``(step, extra)``.

    ``model`` and ``optimizer`` must be built as the saved ones were (same names and shapes; the same
    optimizer class). When ``rng`` (a ``numpy.random.Generator``) is given, the saved random-number state
    is written into it, so the resumed run draws the same numbers. If anything does not match, an error
    is raised and the model and optimizer are left as they were.
    """
    _check_model(model)
    step, meta, model_state, optim_state = _read(path)
    if optimizer is not None:
        saved = meta.get("optimizer")
        if saved is None:
            raise ValueError("optimizer: given, but the checkpoint holds no optimizer state (pass optimizer=None)")
        if saved != type(optimizer).__name__:
            raise TypeError(
                f"optimizer: expected the saved optimizer class {saved}, got {type(optimizer).__name__}"
            )
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected None or a numpy.random.Generator, got {type(rng).__name__}")
    if rng is not None and meta.get("rng_state") is None:
        raise ValueError("rng: a Generator was given to restore, but the checkpoint holds no rng_state")
    # load everything or nothing: on a mismatch, put the previous state back before raising
    backup = (model.state_dict(), None if optimizer is None else optimizer.state_dict())
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(optim_state)
        if rng is not None:
            rng.bit_generator.state = _json_restore(meta["rng_state"])
    except Exception:
        model.load_state_dict(backup[0])
        if optimizer is not None:
            optimizer.load_state_dict(backup[1])
        raise
    return step, meta.get("extra")


def read_meta(path) -> dict:
    """The checkpoint's step and JSON metadata (format, optimizer class, rng state, extra), without a model."""
    step, meta, _, _ = _read(path)
    return {"step": step, **meta}


def _read(path):
    with np.load(os.fspath(path), allow_pickle=False) as z:
        files = set(z.files)
        if "meta" not in files or "step" not in files:
            raise ValueError(f"path: expected an lnedu checkpoint (entries 'meta' and 'step'), got {sorted(files)}")
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"path: expected checkpoint format {FORMAT!r}, got {meta.get('format')!r}")
        model_state = {k[len("model/"):]: z[k] for k in files if k.startswith("model/")}
        optim_state = {k[len("optim/"):]: z[k] for k in files if k.startswith("optim/")}
        step = int(z["step"])
    return step, meta, model_state, optim_state
