"""The row-blocked path of layer norm, RMSNorm and standardize (lnedu.functional.norms).

On the CPU these functions walk the rows in blocks of about ``norms._BLOCK_BYTES``, which the usual small
test shapes never fill. Here the block is shrunk to a few rows, so that every array spans several
blocks and the last one is ragged, and the results are held to the same standards as the one-block path.
"""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.functional import norms
from lnedu.gradcheck import check_function

SHAPES = [(7, 5), (3, 4, 6), (2, 3, 1, 9)]


@pytest.fixture(params=[1, 3], ids=["1-row blocks", "3-row blocks"])
def small_blocks(request, monkeypatch):
    """Blocks of ``request.param`` rows of up to 9 float64 features (ragged where rows do not divide)."""
    monkeypatch.setattr(norms, "_BLOCK_BYTES", request.param * 9 * 8)
    return request.param


def _affine(rng, H, which):
    gain = rng.normal(1.0, 0.5, H) if which in ("both", "gain") else None
    bias = rng.normal(0.0, 1.0, H) if which in ("both", "bias") else None
    return gain, bias


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
    return (y, *F.layer_norm_backward(dy, cache), r, *F.rms_norm_backward(dy, rcache), *F.standardize(x, 1e-5))


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_blocks_agree_with_a_single_block(dtype, rtol, monkeypatch, rng):
    n, H = int(rng.integers(20, 40)), int(rng.integers(5, 12))
    x = rng.normal(2.0, 3.0, size=(n, H)).astype(dtype)
    g, b = rng.normal(1.0, 0.2, H).astype(dtype), rng.normal(size=H).astype(dtype)
    dy = rng.normal(size=(n, H)).astype(dtype)
    monkeypatch.setattr(norms, "_BLOCK_BYTES", 1 << 40)
    whole = _run_all(x, g, b, dy)
    monkeypatch.setattr(norms, "_BLOCK_BYTES", 7 * H * x.itemsize)  # 7 rows a block, the last one shorter
    blocked = _run_all(x, g, b, dy)
    for got, want in zip(blocked, whole):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))


@pytest.mark.parametrize("mean,std", [(1e4, 1.0), (1e3, 0.1)])
def test_float32_offset_rows_across_blocks(mean, std, monkeypatch, rng):
    H = 64
    x = rng.normal(mean, std, size=(50, H)).astype(np.float32)
    monkeypatch.setattr(norms, "_BLOCK_BYTES", 8 * H * 4)
    x64 = x.astype(np.float64)
    want = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    y, _ = F.layer_norm(x, None, None)
    assert y.dtype == np.float32
    assert np.abs(y - want).max() < 1e-3
