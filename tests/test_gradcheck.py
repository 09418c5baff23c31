"""lnedu.gradcheck itself: it must pass correct gradients, catch wrong ones, say where, and refuse float32."""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.functional as F
from lnedu import nn
from lnedu.gradcheck import check_function, check_gradients, check_module, numerical_gradient, relative_error


def _ln_backward_without_mean_term(dy, cache):
    """Layer norm's backward with the path through mu forgotten: a classic derivation slip."""
    xhat, rstd, gain = cache
    dxhat = dy * gain
    dx = rstd * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def _ln_backward_without_sigma_term(dy, cache):
    xhat, rstd, gain = cache
    dxhat = dy * gain
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def _ln_inputs(rng, shape=(4, 6)):
    return dict(x=rng.normal(1.0, 2.0, shape), gain=rng.normal(1, 0.5, shape[-1]), bias=rng.normal(size=shape[-1]))


def test_numerical_gradient_of_a_known_function(rng):
    x = rng.normal(size=(3, 4))
    x0 = x.copy()
    num = numerical_gradient(lambda: float(np.sin(x).sum() + (x**3).sum()), x)
    np.testing.assert_allclose(num, np.cos(x) + 3 * x**2, rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(x, x0)  # every perturbation was undone exactly


@pytest.mark.parametrize("wrong", [_ln_backward_without_mean_term, _ln_backward_without_sigma_term])
def test_a_wrong_layer_norm_backward_fails(wrong, rng):
    inputs = _ln_inputs(rng)
    assert check_function(F.layer_norm, F.layer_norm_backward, inputs).max_rel_error < 1e-7
    rep = check_function(F.layer_norm, wrong, inputs)
    assert rep.errors["x"] > 0.1, rep
    assert rep.errors["gain"] < 1e-7 and rep.errors["bias"] < 1e-7  # only the broken gradient is flagged
    assert not rep.passed()
    assert rep.worst[0] == "x"


def test_a_wrong_sign_fails(rng):
    x = rng.normal(size=(3, 5))
    rep = check_function(F.tanh, lambda dy, y: -F.tanh_backward(dy, y), dict(x=x))
    assert rep.max_rel_error > 0.1  # in fact about 2: |a - (-a)| / |a|
    assert rep.max_rel_error == pytest.approx(2.0, rel=1e-6)


def test_the_worst_entry_is_located(rng):
    inputs = _ln_inputs(rng, (3, 5))

    def one_entry_off(dy, cache):
        dx, dg, db = F.layer_norm_backward(dy, cache)
        dx = dx.copy()
        dx[2, 1] += 0.5 * np.abs(dx).max()
        return dx, dg, db

    rep = check_function(F.layer_norm, one_entry_off, inputs)
    assert rep.where["x"] == (2, 1)
    assert rep.worst == ("x", (2, 1))
    # 0.5 max|dx| off, over the larger max-norm of the two (at most 1.5 max|dx| with the entry moved)
    assert 1 / 3 - 1e-6 < rep.errors["x"] < 0.5 + 1e-6
    text = str(rep)
    assert "worst:" in text and "x[2, 1]" in text


def test_float32_is_refused(rng):
    x = rng.normal(size=(2, 3)).astype(np.float32)
    with pytest.raises(TypeError, match=r"arrays\['x'\]: expected float64 for a gradient check, got float32"):
        check_function(F.tanh, F.tanh_backward, dict(x=x))
    with pytest.raises(TypeError, match="float64"):
        check_module(nn.Linear(3, 2, rng=0), rng.normal(size=(2, 3)))  # a float32 module


def test_zero_gradients_are_handled(rng):
    x = rng.normal(size=(3, 4))
    unused = rng.normal(size=5)

    def loss():
        return float((x * x).sum())

    rep = check_gradients(loss, dict(x=x, unused=unused), dict(x=2 * x, unused=np.zeros(5)))
    assert rep.errors["unused"] == 0.0 and rep.scales["unused"] == 0.0
    assert rep.max_rel_error < 1e-7
    # claiming a gradient where there is none is caught (the floor turns it into an absolute comparison)
    rep = check_gradients(loss, dict(x=x, unused=unused), dict(x=2 * x, unused=np.full(5, 0.5)))
    assert rep.errors["unused"] > 0.1


def test_a_bias_before_batch_norm_has_a_zero_gradient_that_passes(rng):
    # batch norm removes any per-feature constant, so the Linear's bias gets exactly zero gradient in
    # exact arithmetic, and rounding noise elsewhere: the check must not divide that noise by itself
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.BatchNorm(4)).astype(np.float64)
    for _, p, _ in model.named_parameters():
        p[...] = rng.normal(0.5, 1.0, p.shape)
    rep = check_module(model, rng.normal(size=(6, 3)))
    assert rep.scales["0.b"] < 1e-8
    assert rep.max_rel_error < 1e-7, rep


def test_argument_errors(rng):
    x = rng.normal(size=(4, 4))
    with pytest.raises(ValueError, match="x: expected a C-contiguous array"):
        numerical_gradient(lambda: 0.0, x.T)
    with pytest.raises(ValueError, match=r"analytic: expected shape \(4, 4\)"):
        relative_error(np.zeros((2, 8)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"analytic: expected gradients for \['x'\]"):
        check_gradients(lambda: 0.0, dict(x=x), dict(y=x))


def test_relative_error_is_normwise(rng):
    a = rng.normal(size=10)
    err, idx = relative_error(a, a)
    assert err == 0.0
    b = a.copy()
    b[3] += 1e-3 * np.abs(a).max()
    err, idx = relative_error(a, b)
    assert idx == (3,) and err == pytest.approx(1e-3, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# issue 20 item 4 / 18: the teaching checker refuses what it cannot check, and skips nothing silently


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, np.float32, bool])
def test_numerical_gradient_refuses_non_float64(dtype):
    # an int array truncated the +-h step ([0, 50000, 150000, 250000] for d sum(x^2) at arange(4)),
    # float16 rounded it away (zeros): both were returned as if they were gradients
    x = np.arange(4).astype(dtype)
    with pytest.raises(TypeError, match=r"^x: expected float64 .*got " + np.dtype(dtype).name):
        numerical_gradient(lambda: float((x.astype(np.float64) ** 2).sum()), x)
    with pytest.raises(TypeError, match=r"^x: expected a float64 array"):
        numerical_gradient(lambda: 0.0, [1.0, 2.0])


@pytest.mark.parametrize("h", [0.0, -1e-5, float("nan"), float("inf")])
def test_numerical_gradient_refuses_a_bad_step(h):
    x = np.arange(3.0)
    with pytest.raises(ValueError, match=r"^h: expected a finite step > 0"):
        numerical_gradient(lambda: float((x ** 2).sum()), x, h)


def test_numerical_gradient_of_float64_is_right(rng):
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(numerical_gradient(lambda: float((x ** 3).sum()), x), 3 * x ** 2, rtol=1e-8)


def test_check_function_and_module_refuse_float32_inputs(rng):
    x = rng.normal(size=(3, 5)).astype(np.float32)
    with pytest.raises(TypeError, match=r"arrays\['x'\]: expected float64.*float32"):
        check_function(F.layer_norm, F.layer_norm_backward, dict(x=x, gain=None, bias=None))
    with pytest.raises(TypeError, match=r"^x: expected float64.*float32"):
        check_module(nn.Linear(5, 2, rng=0, dtype=np.float64), x)
    with pytest.raises(TypeError, match=r"^module.params\['W'\]: expected float64.*float32"):
        check_module(nn.Linear(5, 2, rng=0, dtype=np.float32), x.astype(np.float64))


def test_a_nan_gradient_fails_the_check_with_an_infinite_error(rng):
    x = rng.normal(size=(2, 3))
    err, idx = relative_error(np.where(x > 0, np.nan, 1.0), np.ones_like(x))
    assert err == np.inf and x[idx] > 0
    rep = check_gradients(lambda: float(x.sum()), {"x": x}, {"x": np.full_like(x, np.nan)})
    assert not rep.passed() and rep.max_rel_error == np.inf


def _ln_forgetting_dbias(dy, cache):
    dx, dgain, _ = F.layer_norm_backward(dy, cache)
    return dx, dgain, None  # a backward that "forgot" one gradient


def _ln_returning_two(dy, cache):
    return F.layer_norm_backward(dy, cache)[:2]


@pytest.mark.parametrize("backward", [_ln_forgetting_dbias, _ln_returning_two])
def test_check_function_does_not_skip_a_missing_gradient(backward, rng):
    inputs = dict(x=rng.normal(size=(3, 6)), gain=rng.normal(1, 0.2, 6), bias=rng.normal(size=6))
    # before: the None gradient of `bias` was skipped and the check passed
    with pytest.raises(ValueError, match=r"^backward: returned no gradient \(None\) for input\(s\) \['bias'\]"):
        check_function(F.layer_norm, backward, inputs)
    # the explicit opt-out: name what to check
    rep = check_function(F.layer_norm, backward, inputs, wrt=["x", "gain"])
    assert set(rep.errors) == {"x", "gain"} and rep.passed()
    with pytest.raises(ValueError, match=r"^backward: returned no gradient"):
        check_function(F.layer_norm, backward, inputs, wrt=["bias"])
    with pytest.raises(ValueError, match=r"^wrt: expected names among"):
        check_function(F.layer_norm, F.layer_norm_backward, inputs, wrt=["gian"])


def test_check_function_skips_none_integer_and_scalar_inputs(rng):
    logits, targets = rng.normal(size=(4, 3)), rng.integers(0, 3, 4)
    rep = check_function(F.softmax_cross_entropy, F.softmax_cross_entropy_backward,
                         dict(logits=logits, targets=targets, mask=np.array([True, False, True, True])))
    assert set(rep.errors) == {"logits"} and rep.passed()
    rep = check_function(F.layer_norm, F.layer_norm_backward, dict(x=rng.normal(size=(2, 5)), gain=None, bias=None))
    assert set(rep.errors) == {"x"} and rep.passed()


def test_a_step_lost_next_to_a_huge_entry_is_refused_not_a_silent_zero():
    x = np.array([1.0, 3e20, -2.0])
    # before: x + 1e-5 == x at 3e20, so the gradient of sum(x^2) there came out as 0
    with pytest.raises(ValueError, match=r"^h: a step of 1e-05 is lost in rounding next to x\[1\] = 3e\+20"):
        numerical_gradient(lambda: float((x ** 2).sum()), x)
    g = numerical_gradient(lambda: float((x ** 2).sum()), x, h=1e-5 * 3e20)
    assert g[1] == pytest.approx(6e20, rel=1e-9)
    # next to 1e6 the step taken differs from 2h by ~1e-5 of itself (dividing by 2h was off by that);
    # for f = y[0], fp - fm is the step taken exactly, so the quotient is exactly 1
    y = np.array([1e6 + 0.1, -7e5 + 0.3])
    np.testing.assert_array_equal(numerical_gradient(lambda: float(y[0]), y), [1.0, 0.0])
