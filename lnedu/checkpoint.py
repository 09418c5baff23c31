"""Save a training run and resume it exactly: model, optimizer, step, random-number state, notes.

One checkpoint is one ``.npz`` file, written atomically (:func:`lnedu._io.save_npz_atomic`: a temporary file
in the same folder, then ``os.replace``), so a crash or Ctrl-C while saving leaves the previous checkpoint
intact. Its entries:

=====================  ==========================================================================
``model/NAME``         the model's :meth:`~lnedu.nn.Module.state_dict` (parameters and ``buffer:`` s)
``optim/KEY``          the optimizer's ``state_dict()`` (step count ``t``, Adam's ``m:``/``v:`` moments)
``state/KEY``          or, from :func:`save_state`, any state dict of arrays (an experiment's task)
``step``               the training step (int64, never negative)
``meta``               a JSON string: format version, optimizer class, the ``numpy.random.Generator``
                       state (``bit_generator.state``) and the caller's ``extra`` (any JSON value)
=====================  ==========================================================================

Everything is stored as plain arrays and JSON text: the file loads with ``allow_pickle=False``.
Resuming means: build the same model and optimizer (same constructor arguments), then
``step, extra = load_checkpoint(path, model, optimizer, rng=rng)``; on NumPy the continued run is bit for
bit the run that was never interrupted (``tests/test_checkpoint.py`` checks exactly that). The experiment
runner saves its tasks with :func:`save_state` in the same format.

A file that is not such a checkpoint (empty, cut off, garbled, an entry missing, a negative step) or that holds
NaN or infinite numbers is refused with :class:`DamagedCheckpoint`, one line naming the file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ._io import DamagedFile, save_npz_atomic
from .nn.module import Module

__all__ = ["save_checkpoint", "load_checkpoint", "read_meta", "save_state", "load_state", "DamagedCheckpoint",
           "FORMAT"]

FORMAT = "lnedu-checkpoint/1"
_LEGACY = "lnedu-runner/0"  # the runner's own format before it used this module: read for one release


class DamagedCheckpoint(DamagedFile):
    """A checkpoint that cannot be trusted: not a readable ``.npz``, an entry missing or wrong, NaN inside."""


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


def _check_step(step):
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step: expected a non-negative integer, got {step!r}")


def _write(path, arrays: dict, step: int, meta: dict) -> None:
    arrays["step"] = np.asarray(int(step), dtype=np.int64)
    arrays["meta"] = np.asarray(json.dumps({"format": FORMAT, **meta}, default=_json_default))
    save_npz_atomic(path, arrays)


def save_checkpoint(path, model, optimizer=None, step: int = 0, rng_state=None, extra=None) -> None:
    """Write ``model``, ``optimizer`` (or ``None``), ``step``, a random-number state and ``extra`` to ``path``.

    ``rng_state``: a ``numpy.random.Generator`` (its ``bit_generator.state`` is saved) or that state dict,
    or ``None``. ``extra``: any JSON-serializable value (a config, a data-loader position, a loss history).
    The write is atomic: until it completes, ``path`` still holds the previous checkpoint.
    """
    _check_model(model)
    _check_step(step)
    meta = {
        "optimizer": None if optimizer is None else type(optimizer).__name__,
        "rng_state": _rng_state(rng_state),
        "extra": extra,
    }
    arrays = {"model/" + k: v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({"optim/" + k: v for k, v in optimizer.state_dict().items()})
    _write(path, arrays, step, meta)


def save_state(path, state: dict, step: int = 0, extra=None) -> None:
    """Write a whole state dict (name -> array; an experiment task's ``state_dict()``), ``step`` and ``extra``
    to ``path`` in the checkpoint format, atomically. :func:`load_state` reads it back."""
    if not isinstance(state, dict):
        raise TypeError(f"state: expected a dict of arrays, got {type(state).__name__}")
    _check_step(step)
    _write(path, {"state/" + k: v for k, v in state.items()}, step, {"optimizer": None, "rng_state": None,
                                                                     "extra": extra})


def load_state(path):
    """``(step, state, extra)`` of a checkpoint written by :func:`save_state`; refused with
    :class:`DamagedCheckpoint` if the file is damaged or holds NaN or infinite numbers."""
    step, meta, arrays = _read(path)
    state = {k[len("state/"):]: v for k, v in arrays.items() if k.startswith("state/")}
    if meta["format"] == _LEGACY:
        state = arrays
    return step, state, meta.get("extra")


def load_checkpoint(path, model, optimizer=None, *, rng=None):
    """Restore ``model`` and ``optimizer`` in place from ``path``; return ``(step, extra)``.

    ``model`` and ``optimizer`` must be built as the saved ones were (same names and shapes; the same
    optimizer class). When ``rng`` (a ``numpy.random.Generator``) is given, the saved random-number state
    is written into it, so the resumed run draws the same numbers. If anything does not match, an error
    is raised and the model and optimizer are left as they were.
    """
    _check_model(model)
    step, meta, arrays = _read(path)
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
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
    step, meta, _ = _read(path)
    return {"step": step, **meta}


def _read(path):
    """``(step, meta, arrays)`` of the checkpoint at ``path``, every entry checked; :class:`DamagedCheckpoint`
    (one line naming the file) when it is not a whole, finite lnedu checkpoint. Never unpickles anything."""
    path = Path(path)
    with open(path, "rb") as f:  # a missing file raises FileNotFoundError, which names it
        head = f.read(4)
    if not head:
        raise DamagedCheckpoint(path, "not a readable checkpoint (an empty file)")
    if head != b"PK\x03\x04":
        raise DamagedCheckpoint(path, "not a readable checkpoint (not an .npz archive: garbled or overwritten)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        what = "an entry holds pickled objects" if "pickle" in str(exc) else "an entry is garbled"
        raise DamagedCheckpoint(path, f"not a readable checkpoint ({what})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise DamagedCheckpoint(path, f"not a readable checkpoint (cut off or corrupt: {type(exc).__name__})") \
            from None
    if "__step__" in arrays and "step" not in arrays:  # the runner's old format: read for one release
        if "__config__" not in arrays:
            raise DamagedCheckpoint(path, "not a readable checkpoint (no '__config__' entry)")
        arrays["step"] = arrays.pop("__step__")
        meta = {"format": _LEGACY, "optimizer": None, "rng_state": None,
                "extra": {"config": _text(path, arrays.pop("__config__"), "__config__")}}
    else:
        for key in ("step", "meta"):
            if key not in arrays:
                raise DamagedCheckpoint(path, f"not an lnedu checkpoint (no {key!r} entry)")
        try:
            meta = json.loads(_text(path, arrays.pop("meta"), "meta"))
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise DamagedCheckpoint(path, "not a readable checkpoint (its 'meta' entry is not a JSON object)")
        if meta.get("format") != FORMAT:
            raise DamagedCheckpoint(path, f"expected checkpoint format {FORMAT!r}, got {meta.get('format')!r}")
    step = arrays.pop("step")
    if step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
        raise DamagedCheckpoint(path, f"expected a non-negative integer 'step', got {step.tolist()!r}")
    for k, v in arrays.items():
        if v.dtype.kind in "fc" and not np.isfinite(v).all():
            raise DamagedCheckpoint(path, f"refused: entry {k!r} holds NaN or infinite numbers (the run had "
                                          "diverged when it was saved)")
    return int(step), meta, arrays


def _text(path, a, name: str) -> str:
    if a.shape != () or a.dtype.kind != "U":
        raise DamagedCheckpoint(path, f"not a readable checkpoint (its {name!r} entry is not a string)")
    return str(a)
