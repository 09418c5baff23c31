"""lnedu.functional.basic: linear, the pointwise nonlinearities and the softmax cross-entropy loss."""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.gradcheck import check_function

TOL = 1e-7


def _assert_passes(report):
    assert report.max_rel_error < TOL, f"\n{report}"


def _data(rng, shape, dtype=np.float64):
    return rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), shape).astype(dtype)


# --------------------------------------------------------------------------------------------------
# linear


@pytest.mark.parametrize("x_shape,d_out", [((3, 5), 4), ((2, 3, 7), 2), ((4, 1), 3), ((6,), 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_formula_and_gradcheck(x_shape, d_out, bias, xp, rng):
    x = _data(rng, x_shape)
    W = _data(rng, (x_shape[-1], d_out))
    b = _data(rng, d_out) if bias else None
    y, _ = F.linear(xp.asarray(x), xp.asarray(W), None if b is None else xp.asarray(b))
    ref = np.einsum("...i,ij->...j", x, W) + (0.0 if b is None else b)
    np.testing.assert_allclose(np.asarray(y.get() if hasattr(y, "get") else y), ref, rtol=1e-12, atol=1e-12)
    inputs = dict(x=xp.asarray(x), W=xp.asarray(W), b=None if b is None else xp.asarray(b))
    for seed in range(2):
        rep = check_function(F.linear, F.linear_backward, inputs, seed=seed)
        _assert_passes(rep)
        assert set(rep.errors) == ({"x", "W", "b"} if bias else {"x", "W"})


def test_linear_backward_without_bias_returns_none_for_it(rng):
    x, W = _data(rng, (3, 4)), _data(rng, (4, 2))
    _, cache = F.linear(x, W)
    dx, dW, db = F.linear_backward(np.ones((3, 2)), cache)
    assert db is None and dx.shape == x.shape and dW.shape == W.shape


# --------------------------------------------------------------------------------------------------
# pointwise nonlinearities


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4), (7,)])
def test_tanh_and_sigmoid_formula_and_gradcheck(shape, rng):
    x = _data(rng, shape) * 2
    y, _ = F.tanh(x)
    np.testing.assert_allclose(y, np.tanh(x), rtol=1e-15)
    s, _ = F.sigmoid(x)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-x)), rtol=0, atol=4e-16)  # (1 + tanh(x/2))/2: absolute
    for seed in range(2):
        _assert_passes(check_function(F.tanh, F.tanh_backward, dict(x=x), seed=seed))
        _assert_passes(check_function(F.sigmoid, F.sigmoid_backward, dict(x=x), seed=seed))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_overflow(dtype):
    x = np.array([-1000.0, -50.0, -3.0, 0.0, 3.0, 50.0, 1000.0], dtype=dtype)
    with np.errstate(over="raise", invalid="raise"):
        y, _ = F.sigmoid(x)
    ref = 1 / (1 + np.exp(-x.astype(np.float64).clip(-700, 700)))
    np.testing.assert_allclose(y, ref, rtol=0, atol=2 * np.finfo(dtype).eps)
    assert ((y >= 0) & (y <= 1)).all() and y[3] == 0.5


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4)])
def test_relu_formula_and_gradcheck(shape, rng):
    # keep every input at least 0.1 from the kink, so that x +- h never crosses it
    x = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 2.0, shape)
    y, mask = F.relu(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert mask.any() and not mask.all()
    for seed in range(2):
        _assert_passes(check_function(F.relu, F.relu_backward, dict(x=x), seed=seed))


def test_relu_keeps_nan_and_infinities_and_its_dtype():
    for dtype in (np.float32, np.float64):
        x = np.array([np.nan, -np.inf, np.inf, -0.0, -2.5, 3.25], dtype)
        y, mask = F.relu(x)
        assert y.dtype == dtype and np.isnan(y[0])  # a NaN is not silently made 0
        np.testing.assert_array_equal(y[1:], np.array([0.0, np.inf, 0.0, 0.0, 3.25], dtype))
        assert not np.signbit(y[3])
        np.testing.assert_array_equal(mask, [False, False, True, False, False, True])


def test_relu_subgradient_at_zero_is_zero():
    y, mask = F.relu(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(F.relu_backward(np.array([5.0, 5.0, 5.0]), mask), [0.0, 0.0, 5.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_are_kept(dtype, rng):
    x = _data(rng, (4, 3), dtype)
    W = _data(rng, (3, 2), dtype)
    b = _data(rng, 2, dtype)
    y, cache = F.linear(x, W, b)
    assert y.dtype == dtype
    assert all(a.dtype == dtype for a in F.linear_backward(np.ones((4, 2), dtype), cache))
    dy = _data(rng, (4, 3), dtype)
    for fwd, bwd in ((F.tanh, F.tanh_backward), (F.sigmoid, F.sigmoid_backward), (F.relu, F.relu_backward)):
        out, c = fwd(x)
        assert out.dtype == dtype and bwd(dy, c).dtype == dtype
    t = rng.integers(0, 3, 4)
    loss, cache = F.softmax_cross_entropy(x, t)
    assert isinstance(loss, float)
    assert F.softmax_cross_entropy_backward(1.0, cache).dtype == dtype


# --------------------------------------------------------------------------------------------------
# softmax cross-entropy


def _ce_reference(logits, targets, mask=None):
    z = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    nll = -np.log(p[np.arange(len(z)), targets.reshape(-1)])
    m = np.ones_like(nll) if mask is None else mask.reshape(-1).astype(np.float64)
    return float((nll * m).sum() / m.sum())


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), (1, 2)])
def test_softmax_cross_entropy_value_and_gradcheck(shape, rng):
    logits = _data(rng, shape) * 2
    targets = rng.integers(0, shape[-1], shape[:-1])
    loss, _ = F.softmax_cross_entropy(logits, targets)
    assert loss == pytest.approx(_ce_reference(logits, targets), rel=1e-13)
    for seed in range(2):
        rep = check_function(F.softmax_cross_entropy, F.softmax_cross_entropy_backward,
                             dict(logits=logits, targets=targets), seed=seed)
        _assert_passes(rep)
        assert set(rep.errors) == {"logits"}  # integer targets are skipped


@pytest.mark.parametrize("mask_dtype", [bool, np.float64])
def test_softmax_cross_entropy_with_mask(mask_dtype, rng):
    logits = _data(rng, (3, 4, 5))
    targets = rng.integers(0, 5, (3, 4))
    mask = np.ones((3, 4), dtype=mask_dtype)
    mask[0, 2:] = 0  # padding at the end of the first sequence
    mask[2, 3] = 0
    loss, cache = F.softmax_cross_entropy(logits, targets, mask)
    assert loss == pytest.approx(_ce_reference(logits, targets, mask), rel=1e-13)
    # padding does not count: changing the logits or targets of masked rows changes nothing
    other = logits.copy()
    other[0, 2:] = rng.normal(size=(2, 5)) * 10
    t2 = targets.copy()
    t2[2, 3] = (t2[2, 3] + 1) % 5
    assert F.softmax_cross_entropy(other, t2, mask)[0] == pytest.approx(loss, rel=1e-14)
    d = F.softmax_cross_entropy_backward(1.0, cache)
    np.testing.assert_array_equal(d[0, 2:], 0)
    np.testing.assert_allclose(F.softmax_cross_entropy_backward(2.5, cache), 2.5 * d, rtol=1e-15)
    for seed in range(2):
        rep = check_function(F.softmax_cross_entropy, F.softmax_cross_entropy_backward,
                             dict(logits=logits, targets=targets, mask=mask), wrt=["logits"], seed=seed)
        _assert_passes(rep)


def test_softmax_cross_entropy_is_stable_for_huge_logits(rng):
    logits = _data(rng, (3, 4)) + 1e4  # exp(1e4) overflows; the max shift must prevent it
    targets = rng.integers(0, 4, 3)
    with np.errstate(over="raise", invalid="raise"):
        loss, cache = F.softmax_cross_entropy(logits, targets)
        d = F.softmax_cross_entropy_backward(1.0, cache)
    assert loss == pytest.approx(_ce_reference(logits - 1e4, targets), rel=1e-9)
    np.testing.assert_allclose(d.sum(axis=-1), 0, atol=1e-15)  # softmax - onehot sums to 0 per row
    np.testing.assert_allclose(np.exp(F.log_softmax(logits)).sum(axis=-1), 1, rtol=1e-14)


# issue 20 item 3: a mask is 0/1 or bool; an empty batch is an error, not a loss of 0


@pytest.mark.parametrize("bad", [[1.0, -1.0, 1.0], [1.0, -1.0, 0.0], [1.0, 0.5, 1.0], [1.0, np.nan, 1.0],
                                 [2, 1, 1]])
def test_softmax_cross_entropy_refuses_non_binary_masks(bad, rng):
    logits, targets = rng.normal(size=(3, 4)), rng.integers(0, 4, 3)
    # before: [1, -1, 1] gave a different weighted mean, silently; [1, -1, 0] blamed "no non-zero entry"
    with pytest.raises(ValueError, match=r"^mask: expected only 0 and 1 \(or bool\), got 1 other value"):
        F.softmax_cross_entropy(logits, targets, np.array(bad))


def test_softmax_cross_entropy_mask_types(rng):
    logits, targets = rng.normal(size=(3, 4)), rng.integers(0, 4, 3)
    with pytest.raises(TypeError, match=r"^mask: expected an array of 0/1 or bool, got list"):
        F.softmax_cross_entropy(logits, targets, [1, 0, 1])
    with pytest.raises(TypeError, match=r"^mask: expected bool or 0/1 numbers, got dtype <U1"):
        F.softmax_cross_entropy(logits, targets, np.array(["1", "0", "1"]))
    with pytest.raises(ValueError, match=r"^mask: expected at least one non-zero entry"):
        F.softmax_cross_entropy(logits, targets, np.zeros(3, dtype=bool))
    ref = _ce_reference(logits, targets, np.array([1.0, 0.0, 1.0]))
    for m in (np.array([1, 0, 1]), np.array([True, False, True]), np.array([1.0, 0.0, 1.0], dtype=np.float32)):
        assert F.softmax_cross_entropy(logits, targets, m)[0] == pytest.approx(ref, rel=1e-13)


@pytest.mark.parametrize("shape", [(0, 4), (2, 0, 4), (3, 0)])
def test_softmax_cross_entropy_refuses_an_empty_batch(shape):
    logits = np.ones(shape)
    targets = np.zeros(shape[:-1], dtype=int)
    # before: (0, 4) returned a loss of 0.0
    with pytest.raises(ValueError, match=r"^logits: expected at least one"):
        F.softmax_cross_entropy(logits, targets)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_softmax_cross_entropy_of_wide_half_precision_rows_is_finite(dtype):
    logits = np.array([[-40000.0, 40000.0, 0.0], [1.0, 2.0, 3.0]], dtype=dtype)
    targets = np.array([0, 1])
    loss, cache = F.softmax_cross_entropy(logits, targets)
    # before: float16 shifted logits overflowed to -inf and the loss was inf
    z = logits.astype(np.float64)
    lse = z.max(axis=1) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1))
    assert loss == pytest.approx(float((lse - z[[0, 1], targets]).mean()), rel=1e-6)
    d = F.softmax_cross_entropy_backward(1.0, cache)
    assert d.dtype == dtype and np.isfinite(d).all()


def test_linear_backward_can_leave_the_input_gradient_out(rng):
    """``input_grad=False`` (the first layer, whose input is the data): ``dx`` is ``None``; ``dW`` and ``db`` are the
    same arrays' values as with it."""
    x, W, b = rng.normal(size=(2, 5, 7)), rng.normal(size=(7, 3)), rng.normal(size=3)
    dy = rng.normal(size=(2, 5, 3))
    _, cache = F.linear(x, W, b)
    dx, dW, db = F.linear_backward(dy, cache)
    none, dW2, db2 = F.linear_backward(dy, cache, input_grad=False)
    assert none is None and dx.shape == x.shape
    np.testing.assert_array_equal(dW2, dW)
    np.testing.assert_array_equal(db2, db)
