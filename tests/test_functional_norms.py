"""lnedu.functional.norms: forwards against the plain formulas, backwards against finite differences,
and the numerics that the corrected two-pass statistics promise (large offsets in float32, constant rows)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.backend import to_numpy
from lnedu.gradcheck import check_function

TOL = 1e-7  # the project's bar for a float64 gradient check
SHAPES = [(3, 5), (2, 3, 7), (4, 1), (1, 6)]


def _rows(rng, shape, dtype=np.float64):
    """Data with a random offset and scale per call, so that no test sees only zero-mean unit-variance rows."""
    loc, scale = rng.uniform(-3, 3), rng.uniform(0.5, 3)
    return rng.normal(loc, scale, shape).astype(dtype)


def _affine(rng, n, dtype=np.float64):
    return rng.normal(1.0, 0.5, n).astype(dtype), rng.normal(0.0, 1.0, n).astype(dtype)


def _ln_reference(x, gain=None, bias=None, eps=1e-5):
    """Layer norm straight from the paper's Eq. 3 and Eq. 5, in float64 numpy."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    y = (x - mu) / sigma
    return y * (1.0 if gain is None else gain) + (0.0 if bias is None else bias)


def _assert_passes(report):
    assert report.max_rel_error < TOL, f"\n{report}"


# --------------------------------------------------------------------------------------------------
# layer norm


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_norm_matches_the_formula(shape, rng):
    x = _rows(rng, shape)
    g, b = _affine(rng, shape[-1])
    y, _ = F.layer_norm(x, g, b, eps=1e-5)
    np.testing.assert_allclose(y, _ln_reference(x, g, b, 1e-5), rtol=1e-12, atol=1e-12)
    y0, _ = F.layer_norm(x, None, None, eps=1e-3)
    np.testing.assert_allclose(y0, _ln_reference(x, eps=1e-3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_gradcheck(shape, affine, xp, rng):
    x = xp.asarray(_rows(rng, shape))
    g, b = (xp.asarray(a) for a in _affine(rng, shape[-1])) if affine else (None, None)
    for seed in range(2):
        rep = check_function(F.layer_norm, F.layer_norm_backward, dict(x=x, gain=g, bias=b), seed=seed)
        _assert_passes(rep)
        assert set(rep.errors) == ({"x", "gain", "bias"} if affine else {"x"})


def test_layer_norm_is_invariant_to_shifting_and_scaling_each_case(rng):
    # Table 1 of the paper: per-case re-centring and re-scaling of the summed inputs leave LN unchanged
    # (exactly so as eps -> 0; eps = 1e-12 makes the difference rounding-level for O(1) data).
    x = _rows(rng, (4, 9))
    g, b = _affine(rng, 9)
    shift = rng.normal(0, 5, (4, 1))
    scale = rng.uniform(0.2, 5, (4, 1))
    y1, _ = F.layer_norm(x, g, b, eps=1e-12)
    y2, _ = F.layer_norm(x * scale + shift, g, b, eps=1e-12)
    np.testing.assert_allclose(y2, y1, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 7), (4, 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_staged_agrees_with_compact_and_passes_gradcheck(shape, affine, rng):
    x = _rows(rng, shape)
    g, b = _affine(rng, shape[-1]) if affine else (None, None)
    y, cache = F.layer_norm(x, g, b)
    ys, cache_s = F.layer_norm_staged(x, g, b)
    np.testing.assert_allclose(ys, y, rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=shape)
    for got, want in zip(F.layer_norm_staged_backward(dy, cache_s), F.layer_norm_backward(dy, cache)):
        if want is None:
            assert got is None
            continue
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    rep = check_function(F.layer_norm_staged, F.layer_norm_staged_backward, dict(x=x, gain=g, bias=b), seed=3)
    _assert_passes(rep)


# --------------------------------------------------------------------------------------------------
# RMSNorm


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm_formula_and_gradcheck(shape, affine, rng):
    x = _rows(rng, shape)
    g = _affine(rng, shape[-1])[0] if affine else None
    y, _ = F.rms_norm(x, g, eps=1e-5)
    ref = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + 1e-5) * (1.0 if g is None else g)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    for seed in range(2):
        _assert_passes(check_function(F.rms_norm, F.rms_norm_backward, dict(x=x, gain=g), seed=seed))


# --------------------------------------------------------------------------------------------------
# batch norm


@pytest.mark.parametrize("shape", [(4, 3), (2, 5), (5, 2, 3)])
@pytest.mark.parametrize("unbiased", [False, True])
def test_batch_norm_formula_and_gradcheck(shape, unbiased, rng):
    x = _rows(rng, shape)
    g, b = (a.reshape(shape[1:]) for a in _affine(rng, int(np.prod(shape[1:]))))
    y, cache = F.batch_norm(x, g, b, eps=1e-5, unbiased=unbiased)
    n = shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).sum(axis=0) / (n - 1 if unbiased else n)
    np.testing.assert_allclose(y, g * (x - mu) / np.sqrt(var + 1e-5) + b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache.mean, mu, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(cache.var, var, rtol=1e-12)

    def fwd(x, gain, bias):
        return F.batch_norm(x, gain, bias, unbiased=unbiased)

    for seed in range(2):
        _assert_passes(check_function(fwd, F.batch_norm_backward, dict(x=x, gain=g, bias=b), seed=seed))
    _assert_passes(check_function(fwd, F.batch_norm_backward, dict(x=x, gain=None, bias=None), seed=5))


def test_batch_norm_inference_is_the_affine_map_of_the_population_statistics(rng):
    x = _rows(rng, (6, 4))
    g, b = _affine(rng, 4)
    rm, rv = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    y = F.batch_norm_inference(x, g, b, rm, rv, eps=1e-4)
    np.testing.assert_allclose(y, g * (x - rm) / np.sqrt(rv + 1e-4) + b, rtol=1e-13, atol=1e-13)
    # one row at a time gives the same answer: inference does not couple the cases
    np.testing.assert_allclose(F.batch_norm_inference(x[2:3], g, b, rm, rv, eps=1e-4), y[2:3], rtol=1e-15)


# --------------------------------------------------------------------------------------------------
# weight norm


@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (1, 2)])
def test_weight_norm_formula_and_gradcheck(shape, rng):
    v = _rows(rng, shape)
    g = rng.normal(0.0, 2.0, shape[1])
    w, cache = F.weight_norm(v, g)
    np.testing.assert_allclose(w, g * v / np.linalg.norm(v, axis=0), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), np.abs(g), rtol=1e-13)
    dw = rng.normal(size=shape)
    dv, dg = F.weight_norm_backward(dw, cache)
    # the direction's gradient is orthogonal to v (scaling v changes nothing); dv . v ~ dw . g in size
    np.testing.assert_allclose((dv * v).sum(axis=0), 0.0, atol=1e-13 * shape[0] * np.abs(dw).max() * np.abs(g).max())
    for seed in range(2):
        _assert_passes(check_function(F.weight_norm, F.weight_norm_backward, dict(v=v, g=g), seed=seed))


# --------------------------------------------------------------------------------------------------
# numerics


def _max_rel(y, ref):
    y, ref = to_numpy(y).astype(np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(y - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("H", [64, 1024, 4097])
@pytest.mark.parametrize("mean,std", [(1e4, 1.0), (1e3, 0.1)])
def test_float32_rows_with_a_large_offset(H, mean, std, rng):
    eps = 1e-5
    x = rng.normal(mean, std, (8, H)).astype(np.float32)
    ref = _ln_reference(x.astype(np.float64), eps=eps)  # the exact answer for these float32 inputs
    y, _ = F.layer_norm(x, None, None, eps=eps)
    assert y.dtype == np.float32
    ours = _max_rel(y, ref)
    assert ours < 1e-6  # measured 1.3e-7: about one float32 rounding of an O(1) value
    # the one-pass textbook formula var = E[x^2] - E[x]^2, in float32, loses the variance to cancellation
    m = x.mean(axis=-1, keepdims=True)
    var = np.maximum((x * x).mean(axis=-1, keepdims=True) - m * m, 0)
    one_pass = (x - m) / np.sqrt(var + np.float32(eps))
    assert one_pass.dtype == np.float32
    naive = _max_rel(one_pass, ref)
    assert naive > 100 * ours, (naive, ours)
    assert naive > 1e-2  # not merely relatively worse: visibly wrong


def test_float32_batch_norm_columns_with_a_large_offset(rng):
    x = rng.normal(1e4, 1.0, (512, 6)).astype(np.float32)
    y, _ = F.batch_norm(x, None, None, eps=1e-5)
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(axis=0)) / np.sqrt(x64.var(axis=0) + 1e-5)
    assert y.dtype == np.float32
    assert _max_rel(y, ref) < 2e-6  # measured 4.6e-7; the unbiased variance would be 1e-3 off at N = 512


@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_constant_rows_give_the_bias_and_finite_gradients(dtype, atol, rng):
    H = 7
    c = rng.normal(0, 100, (5, 1))
    x = np.repeat(c, H, axis=1).astype(dtype)
    g, b = _affine(rng, H, dtype)
    y, cache = F.layer_norm(x, g, b, eps=1e-5)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, np.broadcast_to(b, y.shape), rtol=0, atol=atol)
    dx, dg, db = F.layer_norm_backward(rng.normal(size=x.shape).astype(dtype), cache)
    assert all(np.isfinite(a).all() for a in (dx, dg, db))
    yr, cache_r = F.rms_norm(np.zeros_like(x), g, eps=1e-5)  # RMSNorm's degenerate row is the zero row
    np.testing.assert_array_equal(yr, 0)
    assert all(np.isfinite(a).all() for a in F.rms_norm_backward(np.ones_like(x), cache_r))


def test_constant_row_gradcheck(rng):
    # At a constant row the variance path has zero derivative; the finite differences must agree. Near it
    # y bends on the scale sqrt(eps), so the O(h^2) error of the central difference needs h << sqrt(eps).
    x = np.repeat(rng.normal(0, 2, (2, 1)), 5, axis=1)
    g, b = _affine(rng, 5)
    rep = check_function(F.layer_norm, F.layer_norm_backward, dict(x=x, gain=g, bias=b), seed=7, h=1e-7)
    _assert_passes(rep)


def test_one_element_rows(rng):
    x = _rows(rng, (4, 1))
    g, b = _affine(rng, 1)
    y, cache = F.layer_norm(x, g, b)
    np.testing.assert_allclose(y, np.broadcast_to(b, y.shape), atol=1e-12)  # x - mu is exactly 0
    dx, _, _ = F.layer_norm_backward(rng.normal(size=(4, 1)), cache)
    np.testing.assert_allclose(dx, 0, atol=1e-12)
    _assert_passes(check_function(F.layer_norm, F.layer_norm_backward, dict(x=x, gain=g, bias=b)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_and_gradients_keep_the_dtype(dtype, rng):
    x = _rows(rng, (4, 6), dtype)
    g, b = _affine(rng, 6, dtype)
    dy = rng.normal(size=(4, 6)).astype(dtype)
    pairs = [
        (F.layer_norm(x, g, b), F.layer_norm_backward),
        (F.layer_norm_staged(x, g, b), F.layer_norm_staged_backward),
        (F.rms_norm(x, g), F.rms_norm_backward),
        (F.batch_norm(x, g, b), F.batch_norm_backward),
        (F.batch_norm(x, g, b, unbiased=True), F.batch_norm_backward),
    ]
    for (y, cache), backward in pairs:
        assert y.dtype == dtype
        assert all(a.dtype == dtype for a in backward(dy, cache) if a is not None)
    rm, rv = _affine(rng, 6, dtype)
    assert F.batch_norm_inference(x, g, b, rm, np.abs(rv)).dtype == dtype
    w, cache = F.weight_norm(x, g)
    assert w.dtype == dtype
    assert all(a.dtype == dtype for a in F.weight_norm_backward(dy, cache))


@pytest.mark.gpu
def test_cupy_matches_numpy(rng):
    import cupy

    x = _rows(rng, (5, 33))
    g, b = _affine(rng, 33)
    dy = rng.normal(size=x.shape)
    y, cache = F.layer_norm(x, g, b)
    yc, cache_c = F.layer_norm(cupy.asarray(x), cupy.asarray(g), cupy.asarray(b))
    assert isinstance(yc, cupy.ndarray)
    np.testing.assert_allclose(to_numpy(yc), y, rtol=1e-12, atol=1e-12)
    for got, want in zip(F.layer_norm_backward(cupy.asarray(dy), cache_c), F.layer_norm_backward(dy, cache)):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_bfloat16_is_stored_in_bfloat16_and_computed_in_float32(kind):
    """ml_dtypes' bfloat16 (what CuPy 14 takes): results and caches in bfloat16, each rounded once from float32."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    rng = np.random.default_rng(21)
    x, dy = (rng.standard_normal((5, 37)) * 2 + 1).astype(bf16), rng.standard_normal((5, 37)).astype(bf16)
    g, b = rng.standard_normal(37).astype(bf16), rng.standard_normal(37).astype(bf16)
    x32, dy32, g32, b32 = (a.astype(np.float32) for a in (x, dy, g, b))
    if kind == "layer":
        y, cache = F.layer_norm(x, g, b)
        grads = F.layer_norm_backward(dy, cache)
        y32, cache32 = F.layer_norm(x32, g32, b32)
        want = F.layer_norm_backward(dy32, cache32)
    else:
        y, cache = F.rms_norm(x, g)
        grads = F.rms_norm_backward(dy, cache)
        y32, cache32 = F.rms_norm(x32, g32)
        want = F.rms_norm_backward(dy32, cache32)
    assert y.dtype == cache.xhat.dtype == bf16 and all(d.dtype == bf16 for d in grads)
    for got, ref in zip((y, *grads), (y32, *want)):  # float32 results, rounded once to 8 significant bits
        assert np.array_equal(got.view(np.uint16), ref.astype(bf16).view(np.uint16)) or \
            np.abs(got.astype(np.float32) - ref).max() <= 2**-7 * np.abs(ref).max()


def test_integer_arrays_are_still_refused():
    with pytest.raises(TypeError, match="x: expected a floating-point array"):
        F.layer_norm(np.arange(6).reshape(2, 3), None, None)


def test_the_old_name_of_the_staged_backward_still_works():
    assert F.layer_norm_backward_staged is F.layer_norm_staged_backward
    assert "layer_norm_backward_staged" in F.__all__ and "layer_norm_staged_backward" in F.__all__


# --------------------------------------------------------------------------------------------------
# the edges of the range (issue 20, item 1): huge rows, tiny rows, constant rows


def _scaled_reference(x, kind, eps=1e-5, axis=-1):
    """LN / RMSNorm / BN of ``x`` in float64, on the row divided by its max|x| first (eps with it): exact
    for any finite float64 input, where the squares of the raw values would overflow."""
    x = np.asarray(x, dtype=np.float64)
    s = np.abs(x).max(axis=axis, keepdims=True)
    s[s == 0] = 1
    xs = x / s
    with np.errstate(over="ignore"):
        e = eps / s**2  # 0 where s**2 is past float64's range, as it should be
    if kind == "rms":
        return xs / np.sqrt((xs * xs).mean(axis=axis, keepdims=True) + e)
    c = xs - xs.mean(axis=axis, keepdims=True)
    return c / np.sqrt((c * c).mean(axis=axis, keepdims=True) + e)


SCALES = [1e-30, 1e-12, 1.0, 1e10, 1e19, 1e30, 1e37]
SCALES64 = SCALES + [1e154, 1e200, 1e300]


@pytest.mark.parametrize("dtype,scale", [(np.float32, s) for s in SCALES] + [(np.float64, s) for s in SCALES64])
def test_layer_rms_and_batch_norm_are_right_across_the_dtypes_range(dtype, scale, rng):
    """Before: float32 rows past ~2e18 gave all zeros (the sum of squares overflowed), NaN at 1e30."""
    tol = 1e-6 if dtype == np.float32 else 4e-15  # measured 2e-7 and 7e-16
    with np.errstate(over="ignore", invalid="ignore"):  # (the first pass overflows; the rescaled one does not)
        x = (scale * rng.normal(0.5, 1.0, (4, 256))).astype(dtype)
        for kind, fn in (("layer", lambda a: F.layer_norm(a, None, None)[0]),
                         ("rms", lambda a: F.rms_norm(a, None)[0])):
            y = fn(x)
            assert y.dtype == dtype and np.isfinite(y).all(), (kind, scale)
            assert np.abs(y - _scaled_reference(x, kind)).max() < tol, (kind, scale)
        yb, cache = F.batch_norm(x.T.copy(), None, None)
        bn_err = np.abs(yb - _scaled_reference(x.T, "layer", axis=0)).max()
        assert np.isfinite(yb).all() and bn_err < 5 * tol  # (sums down a column: 1.2e-6 measured in float32)
        _, lcache = F.layer_norm(x, None, None)
    s = np.abs(x.astype(np.float64)).max(axis=-1, keepdims=True)
    with np.errstate(over="ignore", under="ignore"):  # s**2 past float64 for s = 1e300: eps / s**2 is 0 then
        want_rstd = 1 / (s * np.sqrt((x / s).var(axis=-1, keepdims=True) + 1e-5 / s**2))
    assert np.abs(lcache.rstd / want_rstd - 1).max() < 20 * tol  # rstd in the input's units, for the backward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [1e-30, 3.0, 1e19, 1e30, 3e38])
def test_a_constant_row_normalizes_to_exactly_zero(dtype, value, rng):
    """Before: a constant float32 row of 1e30 gave NaN. x - mean is 0, so y is the bias, and rstd 1/sqrt(eps)."""
    H = 7
    x = np.full((3, H), value, dtype=dtype)
    x[1] = -x[1]
    g, b = _affine(rng, H, dtype)
    with np.errstate(over="ignore"):
        y, cache = F.layer_norm(x, g, b)
    assert np.array_equal(y, np.broadcast_to(b, y.shape))
    np.testing.assert_allclose(cache.rstd, 1 / np.sqrt(1e-5), rtol=1e-6)
    dy = rng.normal(size=x.shape).astype(dtype)
    dx, _, _ = F.layer_norm_backward(dy, cache)
    dxhat = dy * g
    np.testing.assert_allclose(dx, (dxhat - dxhat.mean(-1, keepdims=True)) / np.sqrt(1e-5), rtol=1e-5, atol=1e-5)


def test_tiny_rows_are_normalized_as_eps_implies(rng):
    """Values of 1e-30 in float32: the variance (1e-60) underflows, which eps = 1e-5 dwarfs anyway."""
    x = (1e-30 * rng.normal(0.5, 1.0, (3, 64))).astype(np.float32)
    y, _ = F.layer_norm(x, None, None)
    x64 = x.astype(np.float64)
    want = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    assert np.abs(y - want).max() <= 1e-6 * np.abs(want).max()


# --------------------------------------------------------------------------------------------------
# float16 (issue 20, item 2): computed in float32, stored in float16


@pytest.mark.parametrize("loc,scale", [(0.0, 20.0), (1000.0, 10.0), (0.0, 1e4)])
def test_float16_is_computed_in_float32_and_stored_in_float16(loc, scale, rng):
    """Before: float16 was computed in float16: all zeros at a spread of 20 over 256 units, NaN at mean 1000."""
    x = rng.normal(loc, scale, (4, 256)).astype(np.float16)
    g, b = rng.normal(1, 0.2, 256).astype(np.float16), rng.normal(0, 0.2, 256).astype(np.float16)
    dy = rng.normal(size=x.shape).astype(np.float16)
    y, cache = F.layer_norm(x, g, b)
    dx, dg, db = F.layer_norm_backward(dy, cache)
    assert y.dtype == cache.xhat.dtype == dx.dtype == dg.dtype == db.dtype == np.float16
    assert cache.rstd.dtype == np.float32  # the statistic stays in float32
    y32, _ = F.layer_norm(*(a.astype(np.float32) for a in (x, g, b)))
    c32 = F.LayerNormCache(cache.xhat.astype(np.float32), cache.rstd, g.astype(np.float32))  # what was stored
    want = (y32, *F.layer_norm_backward(dy.astype(np.float32), c32))
    for got, ref in zip((y, dx, dg, db), want):  # float32 results, rounded once to float16
        assert np.array_equal(got, ref.astype(np.float16)), np.abs(got - ref).max()
    r, rcache = F.rms_norm(x, g)
    r32 = F.rms_norm(x.astype(np.float32), g.astype(np.float32))[0]
    assert r.dtype == np.float16 and np.array_equal(r, r32.astype(np.float16))
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5) * g + b
    assert np.abs(y - ref).max() <= 2e-3 * np.abs(ref).max()  # float16's own rounding (2^-11), and no more


# --------------------------------------------------------------------------------------------------
# batch norm at inference checks its running statistics (issue 20, item 5)


@pytest.mark.parametrize("change, message", [
    (lambda m, v: (m, -v), r"running_var: expected finite values >= 0, got 4 negative or non-finite entries"),
    (lambda m, v: (m, np.where(np.arange(4) == 1, np.nan, v)), r"running_var: expected finite values >= 0, got 1 "),
    (lambda m, v: (m[:3], v), r"running_mean: expected shape \(4,\) \(= x.shape\[1:\]\), got \(3,\)"),
    (lambda m, v: (m, v.astype(np.float32)), r"running_var: expected dtype float64 \(the input's\), got float32"),
    (lambda m, v: (m, v.astype(int)), r"running_var: expected a floating-point array"),
    (lambda m, v: (np.full(4, np.inf), v), r"running_mean: expected finite values, got 4 NaN/inf entries"),
])
def test_batch_norm_inference_refuses_bad_running_statistics(change, message, rng):
    x = _rows(rng, (5, 4))
    rm, rv = rng.normal(size=4), rng.uniform(0.5, 2, 4) + 1
    with pytest.raises((ValueError, TypeError), match=message):
        F.batch_norm_inference(x, None, None, *change(rm, rv))
    y = F.batch_norm_inference(x, None, None, rm, np.zeros(4))  # a zero variance is allowed (eps keeps it finite)
    np.testing.assert_allclose(y, (x - rm) / np.sqrt(1e-5), rtol=1e-13)


# --------------------------------------------------------------------------------------------------
# the defaults (issue 20, item 18)


def test_the_eps_defaults_are_the_released_codes_1e_5(rng):
    """The default eps of every normalization is 1e-5; rows of scale 1e-3 make eps visible in the output."""
    x = rng.normal(0, 1e-3, (6, 5))
    for fn, args in ((F.layer_norm, (None, None)), (F.rms_norm, (None,)), (F.batch_norm, (None, None))):
        assert inspect.signature(fn).parameters["eps"].default == 1e-5, fn.__name__
        y = fn(x, *args)[0]
        np.testing.assert_array_equal(y, fn(x, *args, eps=1e-5)[0])
        assert np.abs(y - fn(x, *args, eps=1e-6)[0]).max() > 0.1  # so the default was used, and it matters
    rm, rv = np.zeros(5), np.full(5, 1e-6)
    assert inspect.signature(F.batch_norm_inference).parameters["eps"].default == 1e-5
    np.testing.assert_allclose(F.batch_norm_inference(x, None, None, rm, rv), x / np.sqrt(1e-6 + 1e-5), rtol=1e-13)


def test_unbiased_batch_norm_of_huge_columns_is_not_zero():
    """The unbiased rescaling multiplied a variance near float32's range by N/(N-1): inf, then rstd = 0."""
    rng = np.random.default_rng(3)
    x = (1e19 * rng.standard_normal((4, 6))).astype(np.float32)
    y, cache = F.batch_norm(x, None, None, unbiased=True)
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(axis=0)) / np.sqrt(x64.var(axis=0, ddof=1) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=0, atol=5e-6 * np.abs(ref).max())
    assert np.isfinite(cache.rstd).all() and (cache.rstd > 0).all()


def test_float16_batch_norm_is_computed_in_float32():
    rng = np.random.default_rng(4)
    x = (30 * rng.standard_normal((64, 5))).astype(np.float16)  # the column's sum of squares overflows float16
    y, cache = F.batch_norm(x, None, None)
    y32, _ = F.batch_norm(x.astype(np.float32), None, None)
    assert y.dtype == np.float16 and np.isfinite(y).all()
    np.testing.assert_array_equal(y, y32.astype(np.float16))
    dx, _, _ = F.batch_norm_backward(np.ones_like(y), cache)
    assert dx.dtype == np.float16 and np.isfinite(dx).all()


@pytest.mark.parametrize("fn", [lambda x: F.layer_norm(x, None, None), lambda x: F.rms_norm(x, None)])
def test_a_row_of_no_units_is_refused_naming_x(fn):
    with pytest.raises(ValueError, match=r"^x: expected at least one unit along the last axis, got shape \(3, 0\)"):
        fn(np.zeros((3, 0)))
