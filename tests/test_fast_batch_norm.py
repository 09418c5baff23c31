"""The Numba batch norm (lnedu.functional._numba.batch_norm, the ``[fast]`` extra) against the reference.

* registered with layer norm's kernels, exactly when Numba is installed; asked for 2-d batches of at least
  ``_numba.MIN_SIZE`` values with the biased variance, the reference otherwise (unbiased, 3-d, small, strided);
* float64: the reference's numbers bit for bit (the kernels add the rows in NumPy's order, without fastmath);
  float32: the float64 reference's within float32 rounding (sums in float64); float64 finite differences;
* constant columns are exactly 0 (the bias), offset float32 columns keep their precision, a column whose squares
  overflow or that holds NaN goes to the reference;
* caches are the reference's type: a forward on one path and a backward on the other agree.
"""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.functional import _numba, dispatch
from lnedu.functional.norms import BatchNormCache
from lnedu.gradcheck import check_function

pytestmark = pytest.mark.skipif(not _numba.available(),
                                reason="Numba (the [fast] extra) is not installed: pip install -e '.[fast]'")


@pytest.fixture
def anywhere(monkeypatch):
    """The fast path at any size (the tests' batches are small)."""
    monkeypatch.setattr(_numba, "MIN_SIZE", 0)


def _case(rng, shape, dtype, offset=1.5):
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 3) + offset).astype(dtype)
    g = (1 + 0.3 * rng.standard_normal(shape[1])).astype(dtype)
    b = (0.3 * rng.standard_normal(shape[1])).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, g, b, dy


def _reference(x, g, b, dy, eps=1e-5):
    with dispatch.use_reference():
        y, cache = F.batch_norm(x, g, b, eps)
        return (y, cache) + F.batch_norm_backward(dy, cache)


def test_registered_and_asked_only_where_it_applies(rng):
    labels = dispatch.implementations("batch_norm")
    assert any(label.endswith("_numba.batch_norm") for label in labels)
    backward = dispatch.implementations("batch_norm_backward")
    assert any(label.endswith("_numba.batch_norm_backward") for label in backward)
    x, g, b, _ = _case(rng, (16, 64), np.float32)  # 1,024 values
    assert dispatch.lookup(F.batch_norm, x, g, b, unbiased=False) is _numba.batch_norm
    assert dispatch.lookup(F.batch_norm, x, g, b, unbiased=True) is None  # the unbiased variance: the reference
    assert dispatch.lookup(F.batch_norm, x[:, ::2], g[::2], b[::2], unbiased=False) is None  # strided
    assert dispatch.lookup(F.batch_norm, x.reshape(16, 8, 8), None, None, unbiased=False) is None  # 3-d
    assert dispatch.lookup(F.batch_norm, x[:4, :8], g[:8], b[:8], unbiased=False) is None  # a teaching size
    with dispatch.use_reference():
        assert dispatch.lookup(F.batch_norm, x, g, b, unbiased=False) is None


@pytest.mark.parametrize("shape", [(2, 300), (7, 37), (64, 128), (300, 3)])
@pytest.mark.parametrize("params", ["both", "none"])
def test_float64_is_the_reference_bit_for_bit(anywhere, rng, shape, params):
    x, g, b, dy = _case(rng, shape, np.float64)
    if params == "none":
        g = b = None
    y, cache = F.batch_norm(x, g, b, 1e-5)
    assert type(cache) is BatchNormCache and dispatch.lookup(F.batch_norm, x, g, b, unbiased=False) is not None
    got = (y, cache) + F.batch_norm_backward(dy, cache)
    want = _reference(x, g, b, dy)
    for a, w in [(got[0], want[0]), *zip(got[1][:5], want[1][:5]), *zip(got[2:], want[2:])]:
        assert (a is None and w is None) or np.array_equal(a, w)
    assert got[1].m == want[1].m == shape[0]


@pytest.mark.parametrize("shape", [(2, 300), (9, 37), (64, 128)])
def test_float32_equals_the_float64_reference(anywhere, rng, shape):
    x, g, b, dy = _case(rng, shape, np.float32, offset=20.0)
    y, cache = F.batch_norm(x, g, b, 1e-5)
    dx, dg, db = F.batch_norm_backward(dy, cache)
    assert y.dtype == dx.dtype == dg.dtype == db.dtype == cache.xhat.dtype == cache.mean.dtype == np.float32
    y64, c64, dx64, dg64, db64 = _reference(*(a.astype(np.float64) for a in (x, g, b, dy)))
    for a, w in ((y, y64), (cache.xhat, c64.xhat), (cache.mean, c64.mean), (cache.var, c64.var), (dx, dx64),
                 (dg, dg64), (db, db64)):
        np.testing.assert_allclose(a, w, rtol=2e-6, atol=2e-6 * np.abs(w).max())


def test_gradients_match_finite_differences(anywhere, rng):
    x, g, b, _ = _case(rng, (5, 7), np.float64)
    rep = check_function(lambda x, gain, bias: F.batch_norm(x, gain, bias, 1e-5), F.batch_norm_backward,
                         dict(x=x, gain=g, bias=b), seed=2)
    assert rep.passed(1e-7), str(rep)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_columns_and_offset_columns(anywhere, rng, dtype):
    x, g, b, _ = _case(rng, (6, 40), dtype)
    x[:, 3] = 7.25  # a constant column: exactly 0 after the shift, its output exactly the bias
    x[:, 5] = 1e4 + rng.standard_normal(6).astype(dtype)  # far from 0: the shift keeps float32's digits
    y, cache = F.batch_norm(x, g, b, 1e-5)
    assert np.all(cache.xhat[:, 3] == 0) and np.all(y[:, 3] == b[3]) and cache.mean[3] == dtype(7.25)
    x64 = x.astype(np.float64)
    xhat64 = (x64[:, 5] - x64[:, 5].mean()) / np.sqrt(x64[:, 5].var() + 1e-5)
    np.testing.assert_allclose(cache.xhat[:, 5], xhat64, atol=5e-6 if dtype == np.float32 else 1e-12)


def test_overflowing_and_nan_columns_go_to_the_reference(anywhere, rng):
    x, g, b, _ = _case(rng, (8, 20), np.float64)
    x[:, 2] *= 1e160  # its squares overflow in float64: the reference rescales the column
    y, cache = F.batch_norm(x, g, b, 1e-5)
    want, wcache = _reference(x, g, b, np.zeros_like(x))[:2]
    assert np.all(np.isfinite(y)) and np.array_equal(y, want) and np.array_equal(cache.xhat, wcache.xhat)
    x32, g32, b32, _ = _case(rng, (8, 20), np.float32)
    x32[4, 6] = np.nan
    y32, _ = F.batch_norm(x32, g32, b32, 1e-5)
    ref32 = _reference(x32, g32, b32, np.zeros_like(x32))[0]
    assert np.array_equal(np.isnan(y32), np.isnan(ref32)) and np.isnan(y32[:, 6]).all()
    np.testing.assert_allclose(y32[:, :6], ref32[:, :6], rtol=1e-5, atol=1e-5)


def test_caches_cross_paths(anywhere, rng):
    x, g, b, dy = _case(rng, (12, 50), np.float64)
    y, fast_cache = F.batch_norm(x, g, b, 1e-5)
    with dispatch.use_reference():
        _, ref_cache = F.batch_norm(x, g, b, 1e-5)
        across = F.batch_norm_backward(dy, fast_cache)  # the reference's backward of the kernel's cache
    back = F.batch_norm_backward(dy, ref_cache)  # the kernel's backward of the reference's cache
    for a, w in zip(across, back):
        assert np.array_equal(a, w)


def test_the_unbiased_variance_and_float16_take_their_usual_ways(anywhere, rng):
    x, g, b, dy = _case(rng, (4, 100), np.float32)
    y, cache = F.batch_norm(x, g, b, 1e-5, unbiased=True)  # the reference (the LN paper's batch of 4)
    with dispatch.use_reference():
        y_ref, c_ref = F.batch_norm(x, g, b, 1e-5, unbiased=True)
    assert np.array_equal(y, y_ref) and cache.m == c_ref.m == 3
    x64, g64, b64, dy64 = (a.astype(np.float64) for a in (x, g, b, dy))
    _, c64 = F.batch_norm(x64, g64, b64, 1e-5, unbiased=True)
    fast = F.batch_norm_backward(dy64, c64)  # the kernel's backward divides by the cache's m = N - 1
    with dispatch.use_reference():
        ref = F.batch_norm_backward(dy64, c64)
    assert dispatch.lookup(F.batch_norm_backward, dy64, c64) is _numba.batch_norm_backward
    assert all(np.array_equal(a, w) for a, w in zip(fast, ref))
    h = x.astype(np.float16)
    y16, c16 = F.batch_norm(h, g.astype(np.float16), b.astype(np.float16), 1e-5)  # computed in float32, stored 16
    assert y16.dtype == np.float16
    want = F.batch_norm(h.astype(np.float32), g.astype(np.float16).astype(np.float32),
                        b.astype(np.float16).astype(np.float32), 1e-5)[0].astype(np.float16)
    assert np.array_equal(y16, want)
