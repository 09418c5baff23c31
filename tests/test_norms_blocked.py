"""The cache-blocked CPU fast path of layer norm and RMSNorm (lnedu.functional._blocked).

It registers with the dispatch for NumPy arrays of at least ``_blocked.MIN_SIZE`` elements, which the
usual small test shapes never reach. Here the threshold is lowered to 0 and the block shrunk to a few
rows, so that every array spans several blocks and the last one is ragged; the results are held to the
same standards as the reference (finite differences, a float64 formula) and compared with it.
"""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.functional import _blocked, _numba, dispatch
from lnedu.gradcheck import check_function

SHAPES = [(7, 5), (3, 4, 6), (2, 3, 1, 9)]


@pytest.fixture(params=[1, 3], ids=["1-row blocks", "3-row blocks"])
def small_blocks(request, monkeypatch):
    """Every array takes the blocked path, in blocks of ``request.param`` rows of up to 9 float64 features."""
    monkeypatch.setattr(_blocked, "MIN_SIZE", 0)
    monkeypatch.setattr(_blocked, "_BLOCK_BYTES", request.param * 9 * 8)
    return request.param


def _affine(rng, H, which):
    gain = rng.normal(1.0, 0.5, H) if which in ("both", "gain") else None
    bias = rng.normal(0.0, 1.0, H) if which in ("both", "bias") else None
    return gain, bias


def test_the_blocked_functions_are_what_the_dispatch_picks(small_blocks, rng):
    x = rng.normal(size=(4, 5))
    assert dispatch.lookup(F.layer_norm, x, None, None) is _blocked.layer_norm
    assert dispatch.lookup(F.rms_norm, x, None) is _blocked.rms_norm
    _, cache = F.layer_norm(x, None, None)
    assert dispatch.lookup(F.layer_norm_backward, x, cache) is _blocked.layer_norm_backward
    assert dispatch.lookup(F.layer_norm, x.astype(np.float16), None, None) is not _blocked.layer_norm
    with dispatch.use_reference():
        assert dispatch.lookup(F.layer_norm, x, None, None) is None


def test_small_arrays_take_the_reference(rng, monkeypatch):
    monkeypatch.setattr(_numba, "MIN_SIZE", 1 << 62)  # as without the [fast] extra (tests/test_fast.py has it)
    x = rng.normal(size=(64, 256))  # the teaching size: below the threshold
    assert x.size < _blocked.MIN_SIZE
    assert dispatch.lookup(F.layer_norm, x, None, None) is None
    big = rng.normal(size=(_blocked.MIN_SIZE // 256, 256))
    assert dispatch.lookup(F.layer_norm, big, None, None) is _blocked.layer_norm


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("which", ["both", "gain", "bias", "none"])
def test_layer_norm_gradcheck_across_blocks(shape, which, small_blocks, rng):
    x = rng.normal(rng.uniform(-3, 3), rng.uniform(0.5, 3), size=shape)
    gain, bias = _affine(rng, shape[-1], which)
    report = check_function(F.layer_norm, F.layer_norm_backward, dict(x=x, gain=gain, bias=bias), seed=len(shape))
    assert report.max_rel_error < 1e-7, str(report)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("which", ["gain", "none"])
def test_rms_norm_gradcheck_across_blocks(shape, which, small_blocks, rng):
    x = rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 3), size=shape)
    gain, _ = _affine(rng, shape[-1], which)
    report = check_function(F.rms_norm, F.rms_norm_backward, dict(x=x, gain=gain), seed=len(shape))
    assert report.max_rel_error < 1e-7, str(report)


def _run_all(x, g, b, dy):
    y, cache = F.layer_norm(x, g, b)
    r, rcache = F.rms_norm(x, g)
    return (y, cache.xhat, cache.rstd, *F.layer_norm_backward(dy, cache), r, rcache.xhat, rcache.rstd,
            *F.rms_norm_backward(dy, rcache))


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-13), (np.float32, 4e-6)])
def test_blocked_agrees_with_the_reference(dtype, rtol, small_blocks, rng):
    n, H = int(rng.integers(20, 40)), int(rng.integers(5, 12))
    x = rng.normal(2.0, 3.0, size=(n, H)).astype(dtype)
    g, b = rng.normal(1.0, 0.2, H).astype(dtype), rng.normal(size=H).astype(dtype)
    dy = rng.normal(size=(n, H)).astype(dtype)
    blocked = _run_all(x, g, b, dy)
    with dispatch.use_reference():
        reference = _run_all(x, g, b, dy)
    for got, want in zip(blocked, reference):
        assert got.dtype == want.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))


@pytest.mark.parametrize("dtype,tol", [(np.float64, 2e-15), (np.float32, 1e-6)])  # measured 3e-16, 1.5e-7
def test_blocked_statistics_match_the_float64_formula(dtype, tol, small_blocks, rng):
    """The cache's ``rstd`` and ``xhat`` (and RMSNorm's) against Eq. 3 in float64 on the same inputs."""
    x = rng.normal(rng.uniform(-5, 5), rng.uniform(0.5, 3), size=(17, 9)).astype(dtype)
    _, cache = F.layer_norm(x, None, None, eps=1e-5)
    x64 = x.astype(np.float64)
    mu = x64.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((x64 - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    assert np.abs(cache.rstd / rstd - 1).max() < tol
    assert np.abs(cache.xhat - (x64 - mu) * rstd).max() < 3 * tol
    _, rcache = F.rms_norm(x, None, eps=1e-5)
    rrstd = 1 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + 1e-5)
    assert np.abs(rcache.rstd / rrstd - 1).max() < tol
    assert np.abs(rcache.xhat - x64 * rrstd).max() < 3 * tol


@pytest.mark.parametrize("mean,std", [(1e4, 1.0), (1e3, 0.1)])
def test_float32_offset_rows_across_blocks(mean, std, monkeypatch, rng):
    H = 64
    x = rng.normal(mean, std, size=(50, H)).astype(np.float32)
    monkeypatch.setattr(_blocked, "MIN_SIZE", 0)
    monkeypatch.setattr(_blocked, "_BLOCK_BYTES", 8 * H * 4)
    x64 = x.astype(np.float64)
    want = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    y, _ = F.layer_norm(x, None, None)
    assert y.dtype == np.float32
    assert np.abs(y - want).max() < 2e-6  # measured 5.5e-7 (20 seeds): a few float32 roundings of O(1) values


def test_huge_and_constant_rows_across_blocks(small_blocks, rng):
    """Rows past float32's squares (the blocked code hands them to the reference) and constant rows."""
    x = (1e19 * rng.standard_normal((6, 9))).astype(np.float32)
    x[2] = np.float32(1e30)
    y, cache = F.layer_norm(x, None, None)
    x64 = x.astype(np.float64)
    want = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    assert np.abs(y - want).max() < 2e-6 and np.array_equal(y[2], np.zeros(9, np.float32))
    r, _ = F.rms_norm(x, None)
    assert np.abs(r - x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True))).max() < 2e-6
