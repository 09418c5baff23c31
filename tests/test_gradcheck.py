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
