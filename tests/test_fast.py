"""The Numba fast path (lnedu.functional._numba, the ``[fast]`` extra) against the float64 reference.

* it registers only when Numba is installed, and importing lnedu imports (so compiles) nothing of it;
* layer norm and RMSNorm, forward and backward, equal the reference computed in float64 (random shapes,
  float32 and float64, with and without gain/bias), and float64 finite differences;
* the reference's numerics: constant rows are exactly 0, offset float32 rows keep their precision, float32
  rows past 1e19 need no rescaling, float64 rows whose squares overflow and NaN rows go to the reference;
* dgain/dbias do not depend on the number of threads (per-chunk partial sums, then one reduction), and the
  serial and parallel kernels give the same bits;
* caches are the reference's: a forward on one path and a backward on the other agree.

Where Numba is not installed the tests that need it are skipped with the reason (CI installs it).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.functional import _numba, dispatch
from lnedu.gradcheck import check_function

NO_NUMBA = "Numba (the [fast] extra) is not installed: pip install -e '.[fast]'"
needs_numba = pytest.mark.skipif(not _numba.available(), reason=NO_NUMBA)


def test_importing_lnedu_imports_and_compiles_nothing_of_the_fast_path():
    code = ("import sys, lnedu, lnedu.functional as F; "
            "assert sys.modules.get('numba') is None and 'lnedu.functional._numba_kernels' not in sys.modules, "
            "sorted(m for m in sys.modules if 'numba' in m); "
            "labels = F.dispatch.implementations('layer_norm'); "
            "print(any('_numba' in label for label in labels))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(_numba.available())  # registered exactly when Numba is there


def test_without_numba_nothing_registers(monkeypatch):
    monkeypatch.setattr(_numba, "available", lambda: False)
    before = dispatch.implementations("layer_norm")
    assert _numba.register() is False
    assert dispatch.implementations("layer_norm") == before


@pytest.fixture(params=["serial", "parallel"])
def everywhere(monkeypatch, request):
    """The fast path for any size (the tests' arrays are small), on one thread or on all."""
    monkeypatch.setattr(_numba, "MIN_SIZE", 0)
    monkeypatch.setattr(_numba, "PARALLEL_SIZE", 0 if request.param == "parallel" else 1 << 62)
    if request.param == "parallel":  # the parallel kernels even where NUMBA_NUM_THREADS=1
        monkeypatch.setattr(_numba._compiled(), "threads", lambda: 2)
    return request.param


def _case(rng, shape, dtype, offset=1.5):
    H = shape[-1]
    x = rng.normal(offset, 2.0, shape).astype(dtype)
    return (x, rng.normal(1, 0.3, H).astype(dtype), rng.normal(0, 0.5, H).astype(dtype),
            rng.normal(size=shape).astype(dtype))


def _both(x, g, b, dy):
    y, cache = F.layer_norm(x, g, b)
    r, rcache = F.rms_norm(x, g)
    return (y, cache.xhat, cache.rstd, *F.layer_norm_backward(dy, cache), r, rcache.xhat, rcache.rstd,
            *F.rms_norm_backward(dy, rcache))


def _float64(*arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


def _assert_close(got, want, tol):
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None, k
            continue
        err = np.abs(np.asarray(g, dtype=np.float64) - w).max() / max(np.abs(w).max(), 1e-300)
        assert err <= tol, f"result {k}: relative error {err:.2e} > {tol:.0e}"


@needs_numba
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("shape", [(1, 5), (7, 37), (3, 5, 130), (40, 64)])
@pytest.mark.parametrize("params", ["both", "none"])
def test_fast_path_equals_the_float64_reference(everywhere, rng, dtype, tol, shape, params):
    x, g, b, dy = _case(rng, shape, dtype)
    if params == "none":
        g = b = None
    assert dispatch.lookup(F.layer_norm, x, g, b) is _numba.layer_norm
    fast = _both(x, g, b, dy)
    with dispatch.use_reference():
        want = _both(*_float64(x, g, b, dy))
    for got in fast:
        assert got is None or got.dtype == dtype
    _assert_close(fast, want, tol)


@needs_numba
def test_fast_path_gradients_match_finite_differences(everywhere, rng):
    x, g, b, _ = _case(rng, (4, 9), np.float64)
    assert dispatch.lookup(F.layer_norm, x, g, b) is _numba.layer_norm
    report = check_function(lambda x, g, b: F.layer_norm(x, g, b), F.layer_norm_backward,
                            {"x": x, "g": g, "b": b})
    assert report.max_rel_error < 1e-7, report
    report = check_function(lambda x, g: F.rms_norm(x, g), F.rms_norm_backward, {"x": x, "g": g})
    assert report.max_rel_error < 1e-7, report


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_and_offset_rows(everywhere, rng, dtype):
    H = 300
    x = rng.normal(0, 1, (6, H)).astype(dtype)
    x[0] = 3.25
    x[1] = -1e30 if dtype == np.float32 else 1e30  # constant and huge: still exactly 0
    x[2] = (1e4 + rng.normal(0, 1, H)).astype(dtype)  # offset: the shift keeps the precision
    x[3] *= 1e25  # float32: squares past its range, fine in float64 accumulation
    g, b = rng.normal(1, 0.3, H).astype(dtype), rng.normal(0, 0.5, H).astype(dtype)
    y, cache = F.layer_norm(x, g, b)
    assert np.array_equal(y[:2], np.broadcast_to(b, (2, H))) and not cache.xhat[:2].any()
    with dispatch.use_reference():
        y64, cache64 = F.layer_norm(x.astype(np.float64), g.astype(np.float64), b.astype(np.float64))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    _assert_close([y[2:], cache.xhat[2:]], [y64[2:], cache64.xhat[2:]], tol)


@needs_numba
def test_overflowing_float64_rows_and_nan_rows_go_to_the_reference(everywhere, rng):
    x = rng.normal(0, 1, (5, 40))
    x[1] *= 1e200  # the squares overflow float64: the reference rescales
    g, b = rng.normal(1, 0.3, 40), rng.normal(0, 0.5, 40)
    y, cache = F.layer_norm(x, g, b)
    r, rcache = F.rms_norm(x, g)
    with dispatch.use_reference():
        y_ref, cache_ref = F.layer_norm(x, g, b)
        r_ref, rcache_ref = F.rms_norm(x, g)
    assert np.isfinite(y).all() and np.array_equal(y, y_ref) and np.array_equal(cache.rstd, cache_ref.rstd)
    assert np.isfinite(r).all() and np.array_equal(r, r_ref) and np.array_equal(rcache.rstd, rcache_ref.rstd)
    x[1] = rng.normal(size=40)
    x[3, 7] = np.nan
    y, _ = F.layer_norm(x, g, b)
    assert np.isnan(y[3]).all() and np.isfinite(np.delete(y, 3, axis=0)).all()


@needs_numba
def test_gain_and_bias_gradients_do_not_depend_on_the_threads(everywhere, rng):
    import numba

    x, g, b, dy = _case(rng, (1000, 33), np.float32)
    y, cache = F.layer_norm(x, g, b)
    many = F.layer_norm_backward(dy, cache)
    rms_many = F.rms_norm_backward(dy, F.rms_norm(x, g)[1])
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = F.layer_norm_backward(dy, cache)
        rms_one = F.rms_norm_backward(dy, F.rms_norm(x, g)[1])
    finally:
        numba.set_num_threads(threads)
    for a, c in zip((*many, *rms_many), (*one, *rms_one)):
        assert np.array_equal(a, c)
    flip = 1 << 62 if _numba.PARALLEL_SIZE == 0 else 0  # the other kernel: serial <-> parallel, same sums
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_numba, "PARALLEL_SIZE", flip)
        m.setattr(_numba._compiled(), "threads", lambda: 2)
        other = F.layer_norm_backward(dy, cache)
    for a, c in zip(many, other):
        assert np.array_equal(a, c)
    with dispatch.use_reference():
        want = F.layer_norm_backward(*_float64(dy), cache._replace(xhat=cache.xhat.astype(np.float64),
                                                                   rstd=cache.rstd.astype(np.float64),
                                                                   gain=g.astype(np.float64)))
    _assert_close(many, want, 1e-6)  # 1000 rows summed in float64: no float32 drift


@needs_numba
def test_caches_cross_paths(everywhere, rng):
    x, g, b, dy = _case(rng, (6, 50), np.float64)
    with dispatch.use_reference():
        _, ref_cache = F.layer_norm(x, g, b)
        ref_grads = F.layer_norm_backward(dy, ref_cache)
    _, fast_cache = F.layer_norm(x, g, b)
    _assert_close(F.layer_norm_backward(dy, ref_cache), ref_grads, 1e-13)  # reference cache, fast backward
    with dispatch.use_reference():
        _assert_close(F.layer_norm_backward(dy, fast_cache), ref_grads, 1e-13)  # and the other way
    # a cache the fast path cannot read (Fortran-ordered) goes elsewhere, and still gives the answer
    odd = ref_cache._replace(xhat=np.asfortranarray(ref_cache.xhat))
    assert dispatch.lookup(F.layer_norm_backward, dy, odd) is not _numba.layer_norm_backward
    _assert_close(F.layer_norm_backward(dy, odd), ref_grads, 1e-13)


@needs_numba
def test_one_numba_thread_means_the_serial_kernels(rng, monkeypatch):
    kernels = _numba._compiled()
    monkeypatch.setattr(kernels, "threads", lambda: 1)
    assert _numba._kernel("layer_norm_rows", 1 << 30) is kernels.layer_norm_rows_serial
    monkeypatch.setattr(kernels, "threads", lambda: 2)
    assert _numba._kernel("layer_norm_rows", _numba.PARALLEL_SIZE) is kernels.layer_norm_rows
    assert _numba._kernel("layer_norm_rows", _numba.PARALLEL_SIZE - 1) is kernels.layer_norm_rows_serial


@needs_numba
def test_the_threshold_keeps_teaching_sizes_on_the_reference(rng):
    small = rng.normal(size=(8, 16))
    assert dispatch.lookup(F.layer_norm, small, None, None) is None
    big = rng.normal(size=(4, _numba.MIN_SIZE // 4)).astype(np.float32)
    assert dispatch.lookup(F.layer_norm, big, None, None) is _numba.layer_norm
    assert dispatch.lookup(F.layer_norm, np.asfortranarray(rng.normal(size=(_numba.MIN_SIZE, 2))), None, None) \
        is not _numba.layer_norm
    assert dispatch.implementations("layer_norm").index("lnedu.functional._numba.layer_norm") < \
        dispatch.implementations("layer_norm").index("lnedu.functional._blocked.layer_norm")
