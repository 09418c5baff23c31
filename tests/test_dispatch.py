"""lnedu.functional.dispatch: registered faster versions against the reference, on the same inputs.

* reference, cache-blocked NumPy (lnedu.functional._blocked), the Numba fast path (lnedu.functional._numba,
  where Numba is installed) and the fused CUDA kernels (run on the CPU through the emulator,
  tests/cuda_emulator) give the same layer norm, RMSNorm, LSTM and GRU steps;
* ``use_reference()`` bypasses every registered implementation; the newest registration is asked first
  and ``supported`` decides; 16-bit storage is computed in float32 whatever the switch;
* ``lnedu.functional`` imports nothing of ``lnedu.cuda`` (the GPU package registers itself from outside).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.cuda import norms as CN
from lnedu.cuda import recurrent as CR
from lnedu.functional import _blocked, _numba, dispatch
from lnedu.functional.recurrent import Norm

ROOT = Path(__file__).resolve().parents[1]
ALWAYS = lambda *args, **kwargs: True  # noqa: E731


def _close(got, want, tol):
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w, rtol=tol, atol=tol * (np.abs(w).max() + 1))


# --------------------------------------------------------------------------------------------------
# three implementations, one answer


def _norm_case(rng, shape=(6, 37)):
    x = rng.normal(1.5, 2.0, shape)
    return x, rng.normal(1, 0.3, shape[-1]), rng.normal(0, 0.5, shape[-1]), rng.normal(size=shape)


def _ln_and_rms(x, g, b, dy):
    y, cache = F.layer_norm(x, g, b)
    r, rcache = F.rms_norm(x, g)
    return (y, cache.xhat.reshape(x.shape), cache.rstd.reshape(-1), *F.layer_norm_backward(dy, cache), r,
            rcache.rstd.reshape(-1),
            *F.rms_norm_backward(dy, rcache))


@pytest.mark.parametrize("shape", [(6, 37), (2, 3, 300)])
def test_reference_blocked_and_fused_norms_agree(emulator, monkeypatch, shape, rng):
    x, g, b, dy = _norm_case(rng, shape)
    with dispatch.use_reference():
        reference = _ln_and_rms(x, g, b, dy)
    monkeypatch.setattr(_blocked, "MIN_SIZE", 0)
    monkeypatch.setattr(_blocked, "_BLOCK_BYTES", 2 * shape[-1] * 8)  # two rows a block
    monkeypatch.setattr(_numba, "MIN_SIZE", x.size + 1)  # the fast path (asked first) declines
    assert dispatch.lookup(F.layer_norm, x, g, b) is _blocked.layer_norm
    blocked = _ln_and_rms(x, g, b, dy)
    if _numba.available():  # the [fast] extra; tests/test_fast.py says more when it is absent
        monkeypatch.setattr(_numba, "MIN_SIZE", 0)
        assert dispatch.lookup(F.layer_norm, x, g, b) is _numba.layer_norm
        _close(_ln_and_rms(x, g, b, dy), reference, 1e-13)
    emulator.launches.clear()
    fused = [("layer_norm", CN.layer_norm), ("layer_norm_backward", CN.layer_norm_backward),
             ("rms_norm", CN.rms_norm), ("rms_norm_backward", CN.rms_norm_backward)]
    for name, fn in fused:  # the fused kernels for NumPy arrays, as they are registered for CuPy ones
        dispatch.register(name, ALWAYS, fn)
    try:
        on_the_emulator = _ln_and_rms(x, g, b, dy)
    finally:
        for name, fn in fused:
            dispatch.unregister(name, fn)
    assert {e.split("<")[0] for e, _, _ in emulator.launches} == {"norm_forward", "norm_backward", "sum_columns"}
    _close(blocked, reference, 1e-13)
    _close(on_the_emulator, reference, 1e-12)


def _steps(kind, args, norms, upstream):
    if kind == "lstm":
        h, c, cache = F.lstm_step(*args, **norms)
        return (h, c, *_flat(F.lstm_step_backward(*upstream, cache)))
    h, cache = F.gru_step(*args, **norms)
    return (h, *_flat(F.gru_step_backward(upstream[0], cache)))


def _flat(grads):
    out = []
    for g in grads:
        out += list(g) if isinstance(g, tuple) else [g]
    return out


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("H", [3, 37])
def test_reference_and_fused_steps_agree(emulator, kind, H, rng):
    B, k = 4, (4 if kind == "lstm" else 3)
    args = [rng.normal(0.2, 1.0, (B, k * H)), rng.normal(0, 0.8, (B, H))]
    if kind == "lstm":
        args.append(rng.normal(0, 1.5, (B, H)))
    args.append(rng.normal(0, 1 / np.sqrt(H), (H, k * H)))
    K = (k - 1) * H if kind == "gru" else 4 * H
    second = "norm_c" if kind == "lstm" else "norm_hc"
    norms = {"norm_h": Norm.layer(rng.normal(1, 0.3, K), rng.normal(0, 0.5, K)),
             second: Norm.layer(rng.normal(1, 0.3, H), rng.normal(0, 0.5, H))}
    upstream = (rng.normal(size=(B, H)), rng.normal(size=(B, H)))
    with dispatch.use_reference():
        reference = _steps(kind, args, norms, upstream)
    name = f"{kind}_step"
    fused = {"lstm": lambda a_x, h, c, W, *, norm_h, norm_c, **_: CR.lstm_step(a_x, h, c, W, norm_h=norm_h,
                                                                                 norm_c=norm_c),
             "gru": lambda a_x, h, W, *, norm_h, norm_hc, **_: CR.gru_step(a_x, h, W, norm_h=norm_h,
                                                                          norm_hc=norm_hc)}[kind]
    emulator.launches.clear()
    with dispatch.registered(name, ALWAYS, fused):
        on_the_emulator = _steps(kind, args, norms, upstream)  # the backward finds the fused cache's kernels
    assert {e.split("<")[0] for e, _, _ in emulator.launches} >= {f"{kind}_forward", f"{kind}_backward"}
    _close(on_the_emulator, reference, 1e-11)


# --------------------------------------------------------------------------------------------------
# the registry


def test_use_reference_bypasses_every_registered_implementation(rng):
    """Register a spy in front of every name the library registers: it runs, then under use_reference() not."""
    x, g, b, dy = _norm_case(rng)
    calls = []
    names = sorted(dispatch._registry)
    assert {"layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward", "lstm_step",
            "lstm_step_backward", "gru_step", "gru_step_backward", "mgu_step", "mgu_step_backward", "batch_norm",
            "batch_norm_backward"} <= set(names)
    spies = {}
    for name in names:
        def spy(*args, _name=name, **kwargs):
            calls.append(_name)
            with dispatch.use_reference():
                return getattr(F, _name)(*args, **kwargs)

        spies[name] = spy
        dispatch.register(name, ALWAYS, spy)
    try:
        def run_all():
            _ln_and_rms(x, g, b, dy)
            _, cache = F.batch_norm(x.reshape(-1, x.shape[-1]), g, b, 1e-5)
            F.batch_norm_backward(dy.reshape(-1, x.shape[-1]), cache)
            H = 5
            a = [rng.normal(size=s) for s in ((3, 4 * H), (3, H), (3, H), (H, 4 * H))]
            _, _, cache = F.lstm_step(*a, norm_h=Norm.layer())
            F.lstm_step_backward(a[1], None, cache)
            _, cache = F.gru_step(a[0][:, :3 * H], a[1], a[3][:, :3 * H])
            F.gru_step_backward(a[1], cache)
            _, cache = F.mgu_step(a[0][:, :2 * H], a[1], a[3][:, :2 * H])
            F.mgu_step_backward(a[1], cache)

        run_all()
        assert sorted(set(calls)) == names
        calls.clear()
        with dispatch.use_reference():
            assert dispatch.reference_only()
            run_all()
            assert all(dispatch.lookup(getattr(F, n), x, g, b) is None for n in names if n.startswith("layer"))
        assert calls == [] and not dispatch.reference_only()
    finally:
        for name, spy in spies.items():
            dispatch.unregister(name, spy)


def test_the_newest_registration_is_asked_first_and_supported_decides(rng):
    x = rng.normal(size=(3, 4))
    first = lambda x, gain, bias, eps: ("first", x)  # noqa: E731
    second = lambda x, gain, bias, eps: ("second", x)  # noqa: E731
    with dispatch.registered("layer_norm", ALWAYS, first):
        assert F.layer_norm(x, None, None)[0] == "first"
        with dispatch.registered("layer_norm", lambda x, gain, bias: x.shape[0] > 3, second, label="big"):
            assert dispatch.implementations("layer_norm")[0] == "big"
            assert F.layer_norm(x, None, None)[0] == "first"  # second declines 3 rows
            assert F.layer_norm(np.ones((5, 4)) * np.arange(4), None, None)[0] == "second"
        assert F.layer_norm(np.ones((5, 4)) * np.arange(4), None, None)[0] == "first"
    y, _ = F.layer_norm(x, None, None)
    assert isinstance(y, np.ndarray)  # unregistered on leaving the block: the reference again
    with pytest.raises(KeyError, match="is not registered for 'layer_norm'"):
        dispatch.unregister("layer_norm", first)
    with pytest.raises(TypeError, match="supported: expected a callable"):
        dispatch.register("layer_norm", None, first)
    with pytest.raises(TypeError, match="flag: expected True or False"):
        dispatch.use_reference("yes")


def test_arguments_are_checked_before_any_registered_implementation_runs(rng):
    with dispatch.registered("layer_norm", ALWAYS, lambda *a: pytest.fail("ran on bad arguments")):
        with pytest.raises(ValueError, match=r"gain: expected shape \(4,\)"):
            F.layer_norm(rng.normal(size=(2, 4)), np.ones(3), None)


def test_16_bit_storage_is_computed_in_float32_even_under_use_reference(rng):
    x = rng.normal(1000.0, 10.0, (4, 256)).astype(np.float16)
    with dispatch.use_reference():
        fn = dispatch.lookup(F.layer_norm, x, None, None)
        assert fn is not None and "in float32" in fn.__qualname__
        y, cache = F.layer_norm(x, None, None)
    assert y.dtype == np.float16 and np.isfinite(y).all() and cache.rstd.dtype == np.float32
    H = 3
    a = [rng.normal(size=s).astype(np.float16) for s in ((2, 4 * H), (2, H), (2, H), (H, 4 * H))]
    h, c, cache = F.lstm_step(*a, norm_h=Norm.layer(), norm_c=Norm.layer())
    out = np.zeros((2, 4 * H), np.float16)
    grads = F.lstm_step_backward(a[1], a[2], cache, out=out)
    assert h.dtype == c.dtype == cache.gates.dtype == grads.h_prev.dtype == np.float16 and grads.a_x is out
    with dispatch.use_reference():
        ref = F.lstm_step(*(v.astype(np.float32) for v in a), norm_h=Norm.layer(), norm_c=Norm.layer())
    assert np.array_equal(h, ref[0].astype(np.float16))


def test_the_functional_package_never_imports_the_gpu_package():
    """No import of lnedu.cuda (or any module named cuda) anywhere in lnedu/functional."""
    mine = {"__init__.py", "dispatch.py", "_blocked.py", "_numba.py", "_numba_kernels.py", "norms.py", "recurrent.py"}
    for path in sorted((ROOT / "lnedu" / "functional").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any("cuda" in n for n in names), f"{path.name}:{node.lineno} imports {names}"
        if path.name in mine:  # the dispatch and what it serves do not even name it
            assert "cuda" not in path.read_text(encoding="utf-8"), path.name


def test_importing_lnedu_registers_the_fused_kernels():
    labels = dispatch.implementations("layer_norm")
    assert labels[0] == "lnedu.cuda.layer_norm" and "lnedu.functional._blocked.layer_norm" in labels
    assert ("lnedu.functional._numba.layer_norm" in labels) == _numba.available()
    assert dispatch.lookup(F.layer_norm, np.ones((2, 3)), None, None) is None  # neither takes a small NumPy array


def test_importing_lnedu_does_not_import_ml_dtypes():
    """bfloat16 is recognized by its dtype's name (ml_dtypes' import took 0.7 s of every process and notebook
    kernel that imports lnedu), and still recognized, both here and by the CUDA kernels' type table."""
    import subprocess
    import sys

    code = ("import sys, lnedu, lnedu.cuda._kernels as K, lnedu.functional.dispatch as D; "
            "assert 'ml_dtypes' not in sys.modules, 'imported'; "
            "import numpy as np, ml_dtypes; b = np.dtype(ml_dtypes.bfloat16); "
            "assert b in D.STORAGE_DTYPES and K.DTYPES[b] == 'lnedu_bf16' and b in K.DTYPES; "
            "assert all(np.dtype(t) not in D.STORAGE_DTYPES for t in ('f4', 'f8', 'i2', 'u2', 'V2', 'c8')); "
            "assert np.dtype('f2') in D.STORAGE_DTYPES and np.dtype('i2') not in K.DTYPES")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
