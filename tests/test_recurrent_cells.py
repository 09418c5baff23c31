"""The recurrent cells one step at a time (lnedu.functional.recurrent): each step's backward against float64
finite differences, every normalization kind, and NormProp's variance constants."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.functional.recurrent import Norm
from lnedu.gradcheck import check_function, check_gradients

TOL = 1e-7


def _norm_params(rng, K):
    """A gain and a bias away from 1 and 0, so that a wrong use of either shows."""
    return rng.normal(1.0, 0.3, K), rng.normal(0.0, 0.5, K)


def _make_norm(kind, rng, K, groups=1):
    """A :class:`Norm` of ``kind`` over K units, and the names/arrays of its trainable parameters."""
    g, b = _norm_params(rng, K)
    if kind == "layer":
        return (lambda g, b: Norm.layer(g, b, 1e-5, groups)), {"g": g, "b": b}
    if kind == "batch":
        return (lambda g, b: Norm.batch(g, b, 1e-5)), {"g": g, "b": b}
    mean, var = rng.normal(0, 1, K), rng.uniform(0.5, 2.0, K)
    return (lambda g, b: Norm.fixed(g, b, mean=mean, var=var, eps=1e-5)), {"g": g, "b": b}


# --------------------------------------------------------------------------------------------------
# normalize / normalize_backward


@pytest.mark.parametrize("kind,groups", [("layer", 1), ("layer", 2), ("batch", 1), ("fixed", 1)])
def test_normalize_gradcheck(kind, groups):
    rng = np.random.default_rng(7 + groups)
    a = rng.normal(0.5, 2.0, (4, 8))
    make, p = _make_norm(kind, rng, 8, groups)
    rep = check_function(lambda a, g, b: F.normalize(a, make(g, b)), F.normalize_backward,
                         dict(a=a, g=p["g"], b=p["b"]), seed=groups)
    assert rep.max_rel_error < TOL, rep


def test_normalize_matches_its_definition():
    rng = np.random.default_rng(1)
    a = rng.normal(2.0, 3.0, (5, 8))
    g, b = _norm_params(rng, 8)
    # per-gate layer norm: each block of 4 units standardized on its own
    y, _ = F.normalize(a, Norm.layer(g, b, 1e-5, groups=2))
    blocks = a.reshape(5, 2, 4)
    ref = ((blocks - blocks.mean(-1, keepdims=True)) / np.sqrt(blocks.var(-1, keepdims=True) + 1e-5)).reshape(5, 8)
    np.testing.assert_allclose(y, ref * g + b, rtol=1e-12, atol=1e-12)
    # fixed statistics: an affine map
    m, v = rng.normal(size=8), rng.uniform(0.5, 2, 8)
    y, _ = F.normalize(a, Norm.fixed(g, b, mean=m, var=v, eps=1e-3))
    np.testing.assert_allclose(y, g * (a - m) / np.sqrt(v + 1e-3) + b, rtol=1e-12)
    y, _ = F.normalize(a, Norm.fixed(g, None, var=0.25, eps=0.0))
    np.testing.assert_allclose(y, g * a / 0.5, rtol=1e-12)
    with pytest.raises(ValueError, match="norm.kind"):
        F.normalize(a, Norm("group", g, b))
    with pytest.raises(ValueError, match="norm.groups"):
        F.normalize(a, Norm.layer(g, b, groups=3))


def test_stepwise_batch_norm_is_batch_norm_per_step():
    rng = np.random.default_rng(2)
    a = rng.normal(1.0, 2.0, (4, 5, 6))
    g, b = _norm_params(rng, 6)
    y, cache = F.stepwise_batch_norm(a, g, b)
    for t in range(4):
        y_t, c_t = F.batch_norm(a[t], g, b)
        np.testing.assert_allclose(y[t], y_t, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(cache.mean[t], c_t.mean, rtol=1e-12)
        np.testing.assert_allclose(cache.var[t], c_t.var, rtol=1e-12)
    rep = check_function(F.stepwise_batch_norm, F.stepwise_batch_norm_backward, dict(a=a, gain=g, bias=b), seed=3)
    assert rep.max_rel_error < TOL, rep
    with pytest.raises(ValueError, match="at least 2"):
        F.stepwise_batch_norm(a[:, :1], g, b)


# --------------------------------------------------------------------------------------------------
# one step of each cell, against finite differences


def _check_step(step, backward, inputs, norms, douts, grad_fields, rng):
    """Finite-difference check of one step: ``inputs`` (arrays), ``norms`` {field: (make, params)}, the random
    directions ``douts`` for the step's outputs; the loss is sum(out_k * dout_k)."""
    arrays = dict(inputs)
    for field, (_, p) in norms.items():
        arrays.update({f"{field}.g": p["g"], f"{field}.b": p["b"]})

    def run():
        kw = {field: make(p["g"], p["b"]) for field, (make, p) in norms.items()}
        return step(**inputs, **kw)

    def loss():
        outs = run()[:-1]
        return float(sum((o * d).sum() for o, d in zip(outs, douts)))

    *outs, cache = run()
    g = backward(*douts, cache)
    analytic = {name: getattr(g, f) for name, f in grad_fields.items()}
    for field in norms:
        analytic[f"{field}.g"], analytic[f"{field}.b"] = getattr(g, field)
    return check_gradients(loss, arrays, analytic), g


LSTM_CASES = [
    dict(),  # baseline, Eq. 17-19
    dict(norm_h="layer", norm_c="layer"),  # LN-LSTM, Eq. 20-22 (the input LN sits in a_x)
    dict(norm_h="layer4", norm_c="layer"),  # per-gate statistics
    dict(norm_a="layer"),  # Eq. 4: one LN of the sum
    dict(norm_c="layer"),  # DRAW, Eq. 29-31
    dict(norm_h="batch", norm_c="batch"),  # BN-LSTM, training statistics
    dict(norm_h="fixed", norm_c="fixed"),  # BN-LSTM, population statistics
]


@pytest.mark.parametrize("case", LSTM_CASES, ids=lambda c: "+".join(f"{k}={v}" for k, v in c.items()) or "plain")
@pytest.mark.parametrize("seed", [0, 1])
def test_lstm_step_gradcheck(case, seed):
    rng = np.random.default_rng(seed)
    B, H = 4, 3
    inputs = dict(a_x=rng.normal(0, 1.5, (B, 4 * H)), h_prev=rng.normal(size=(B, H)),
                  c_prev=rng.normal(size=(B, H)), W_h=rng.normal(0, 0.7, (H, 4 * H)))
    norms = {}
    for field, kind in case.items():
        K = H if field == "norm_c" else 4 * H
        groups = 4 if kind == "layer4" else 1
        norms[field] = _make_norm(kind.rstrip("4"), rng, K, groups)
    douts = (rng.normal(size=(B, H)), rng.normal(size=(B, H)))

    def step(**kw):
        return F.lstm_step(**kw, out_scale=1.3)

    fields = dict(a_x="a_x", h_prev="h_prev", c_prev="c_prev", W_h="W_h")
    rep, g = _check_step(step, F.lstm_step_backward, inputs, norms, douts, fields, rng)
    assert rep.max_rel_error < TOL, rep
    # the recurrent product's gradient is what dW_h is made of
    np.testing.assert_allclose(g.W_h, inputs["h_prev"].T @ g.a_h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("placement", ["none", "separate", "joint", "per_gate"])
def test_gru_step_gradcheck(reset, placement):
    rng = np.random.default_rng(len(reset) + len(placement))
    B, H = 4, 3
    inputs = dict(a_x=rng.normal(0, 1.5, (B, 3 * H)), h_prev=rng.normal(size=(B, H)),
                  W_hh=rng.normal(0, 0.7, (H, 3 * H)))
    norms = {}
    if placement in ("separate", "per_gate"):
        norms["norm_h"] = _make_norm("layer", rng, 2 * H, 2 if placement == "per_gate" else 1)
        norms["norm_hc"] = _make_norm("layer", rng, H)
    elif placement == "joint":
        norms["norm_a"] = _make_norm("layer", rng, 2 * H)
        norms["norm_ac"] = _make_norm("layer", rng, H)
    douts = (rng.normal(size=(B, H)),)

    def step(**kw):
        return F.gru_step(**kw, reset=reset)

    rep, _ = _check_step(step, F.gru_step_backward, inputs, norms, douts,
                         dict(a_x="a_x", h_prev="h_prev", W_hh="W_hh"), rng)
    assert rep.max_rel_error < TOL, rep


@pytest.mark.parametrize("placement", ["none", "separate", "joint"])
def test_mgu_step_gradcheck(placement):
    rng = np.random.default_rng(11 + len(placement))
    B, H = 4, 3
    inputs = dict(a_x=rng.normal(0, 1.5, (B, 2 * H)), h_prev=rng.normal(size=(B, H)),
                  W_hh=rng.normal(0, 0.7, (H, 2 * H)))
    norms = {}
    if placement == "separate":
        norms = {"norm_h": _make_norm("layer", rng, H), "norm_hc": _make_norm("layer", rng, H)}
    elif placement == "joint":
        norms = {"norm_a": _make_norm("layer", rng, H), "norm_ac": _make_norm("layer", rng, H)}
    rep, _ = _check_step(F.mgu_step, F.mgu_step_backward, inputs, norms, (rng.normal(size=(B, H)),),
                         dict(a_x="a_x", h_prev="h_prev", W_hh="W_hh"), rng)
    assert rep.max_rel_error < TOL, rep


@pytest.mark.parametrize("placement", ["none", "separate", "joint"])
def test_rnn_step_gradcheck(placement):
    rng = np.random.default_rng(21 + len(placement))
    B, H = 4, 4
    inputs = dict(a_x=rng.normal(0, 1.5, (B, H)), h_prev=rng.normal(size=(B, H)), W_h=rng.normal(0, 0.7, (H, H)))
    norms = {}
    if placement == "separate":
        norms = {"norm_h": _make_norm("layer", rng, H)}
    elif placement == "joint":
        norms = {"norm_a": _make_norm("layer", rng, H)}
    rep, _ = _check_step(F.rnn_step, F.rnn_step_backward, inputs, norms, (rng.normal(size=(B, H)),),
                         dict(a_x="a_x", h_prev="h_prev", W_h="W_h"), rng)
    assert rep.max_rel_error < TOL, rep


def test_step_backward_writes_into_out_and_skips_the_weight_product():
    rng = np.random.default_rng(5)
    B, H = 3, 2
    a_x, h, c, W = rng.normal(size=(B, 4 * H)), rng.normal(size=(B, H)), rng.normal(size=(B, H)), rng.normal(
        size=(H, 4 * H))
    for norm_a in (None, Norm.layer(*_norm_params(rng, 4 * H))):
        _, _, cache = F.lstm_step(a_x, h, c, W, norm_a=norm_a)
        dh, dc = rng.normal(size=(B, H)), rng.normal(size=(B, H))
        ref = F.lstm_step_backward(dh, dc, cache)
        out = np.full((B, 4 * H), np.nan)
        g = F.lstm_step_backward(dh, dc, cache, weight_grad=False, out=out)
        assert g.a_x is out and g.W_h is None
        np.testing.assert_array_equal(out, ref.a_x)


def test_gru_update_convention_and_reset_placement():
    """Eq. 28: ``h = (1 - z) h_prev + z h_hat``; "after" multiplies ``U h`` by r, "before" multiplies h."""
    rng = np.random.default_rng(9)
    B, H = 3, 2
    a_x, h = rng.normal(size=(B, 3 * H)), rng.normal(size=(B, H))
    W = rng.normal(size=(H, 3 * H))
    sig = lambda a: 1 / (1 + np.exp(-a))
    a = a_x[:, : 2 * H] + h @ W[:, : 2 * H]
    z, r = sig(a[:, :H]), sig(a[:, H:])
    for reset, s in (("after", a_x[:, 2 * H:] + r * (h @ W[:, 2 * H:])),
                     ("before", a_x[:, 2 * H:] + (r * h) @ W[:, 2 * H:])):
        out, _ = F.gru_step(a_x, h, W, reset=reset)
        np.testing.assert_allclose(out, (1 - z) * h + z * np.tanh(s), rtol=1e-12)
    with pytest.raises(ValueError, match="reset"):
        F.gru_step(a_x, h, W, reset="middle")


# --------------------------------------------------------------------------------------------------
# NormProp's constants


def _moments_by_trapezoid(f, s):
    """Reference moments of f(s z), z ~ N(0, 1), on a fine grid (the trapezoid rule is spectrally accurate
    for smooth integrands that decay like the Gaussian)."""
    z = np.linspace(-12, 12, 400_001)
    w = np.exp(-z * z / 2) / math.sqrt(2 * math.pi) * (z[1] - z[0])
    y = f(s * z)
    m = float(w @ y)
    return m, float(w @ (y - m) ** 2)


@pytest.mark.parametrize("scale", [0.3, 1.0, 2 * math.sqrt(2), 4.0, 7.0])
def test_gaussian_moments_against_a_fine_grid(scale):
    sig = lambda u: 0.5 * (1 + np.tanh(0.5 * u))
    for f in (np.tanh, sig):
        m, v = F.gaussian_moments(f, scale)
        m_ref, v_ref = _moments_by_trapezoid(f, scale)
        assert abs(m - m_ref) < 1e-9 and abs(v - v_ref) < 1e-7, (f, scale, m - m_ref, v - v_ref)


# paper-notes §6 "Illustrative constants": (gammas) -> variance mode -> (Var[c], Var[h]), 4 decimals.
# The notes' (2, 2, 1) eq9 row says Var[c] = 0.55705, computed from Var[tanh(4z)] = 0.80554, which is what plain
# Gauss-Hermite with 200 nodes gives; the converged value is 0.80540 (checked by the fine grid above), and with
# it Var[c] = 0.55695. Every other entry of the table agrees with the converged values.
NORMPROP_TABLE = [
    ((2.0, 2.0, 1.0), "eq9", (0.55695, 0.16119)),
    ((2.0, 2.0, 1.0), "eq22", (0.44805, 0.14983)),
    ((0.5, 0.5, 0.5), "eq9", (0.16371, 0.05091)),
    ((0.5, 0.5, 0.5), "eq22", (0.10400, 0.04778)),
]


@pytest.mark.parametrize("gammas,variance,expected", NORMPROP_TABLE)
def test_normprop_variances_table(gammas, variance, expected):
    var_c, var_h = F.normprop_variances(*gammas, variance=variance)
    assert abs(var_c - expected[0]) < 5e-5 and abs(var_h - expected[1]) < 5e-5, (var_c, var_h)


def test_normprop_variances_follow_eq8_and_eq12():
    """Rebuild both constants from the fine-grid moments and the paper's Eq. 8 and 12."""
    sig = lambda u: 0.5 * (1 + np.tanh(0.5 * u))
    gx, gh, gc = 1.5, 0.7, 1.2
    for variance, s in (("eq9", gx + gh), ("eq22", math.hypot(gx, gh))):
        e_s, v_s = _moments_by_trapezoid(sig, s)
        _, v_t = _moments_by_trapezoid(np.tanh, s)
        _, v_o = _moments_by_trapezoid(np.tanh, gc)
        second = v_s + e_s**2
        var_c, var_h = F.normprop_variances(gx, gh, gc, variance=variance)
        assert abs(var_c - v_t * second / (1 - second)) < 1e-7
        assert abs(var_h - v_o * second) < 1e-7
    with pytest.raises(ValueError, match="variance"):
        F.normprop_variances(2, 2, 1, variance="eq10")


# --------------------------------------------------------------------------------------------------
# argument checks of the public steps (issue 20, item 5)


def _lstm_args(rng, B=3, H=2, dtype=np.float64):
    return [rng.normal(size=s).astype(dtype) for s in ((B, 4 * H), (B, H), (B, H), (H, 4 * H))]


@pytest.mark.parametrize("change, error, message", [
    (lambda a: (a[0][:, :-1], *a[1:]), ValueError, r"a_x: expected shape \(3, 8\), got \(3, 7\)"),
    (lambda a: (a[0], a[1], a[2][:1], a[3]), ValueError, r"c_prev: expected shape \(3, 2\), got \(1, 2\)"),
    (lambda a: (*a[:3], a[3].T), ValueError, r"W_h: expected shape \(2, 8\), got \(8, 2\)"),
    (lambda a: (a[0], a[1][0], *a[2:]), ValueError, r"h_prev: expected a 2-d array, got ndim=1"),
    (lambda a: (a[0].astype(np.int64), *a[1:]), TypeError, r"a_x: expected a floating-point array"),
    (lambda a: (a[0], a[1].astype(np.float32), *a[2:]), TypeError,
     r"h_prev: expected dtype float64 \(the input's\), got float32"),
    (lambda a: (*a[:3], a[3].astype(np.float32)), TypeError, r"W_h: expected dtype float64"),
])
def test_lstm_step_refuses_bad_arguments(change, error, message, rng):
    """Before: a (1, H) c_prev broadcast over the batch, int inputs and mixed dtypes went through silently."""
    with pytest.raises(error, match=message):
        F.lstm_step(*change(_lstm_args(rng)))


def test_the_other_steps_check_their_arguments(rng):
    B, H = 3, 2
    a3, h, W3 = rng.normal(size=(B, 3 * H)), rng.normal(size=(B, H)), rng.normal(size=(H, 3 * H))
    with pytest.raises(ValueError, match=r"W_hh: expected shape \(2, 6\), got \(2, 4\)"):
        F.gru_step(a3, h, W3[:, :4])
    with pytest.raises(ValueError, match=r"reset: expected one of \('after', 'before'\), got 'middle'"):
        F.gru_step(a3, h, W3, reset="middle")
    with pytest.raises(TypeError, match=r"norm_h: expected a Norm .* got tuple"):
        F.gru_step(a3, h, W3, norm_h=("layer", None))
    with pytest.raises(ValueError, match=r"a_x: expected shape \(3, 4\), got \(3, 6\)"):
        F.mgu_step(a3, h, W3[:, :4])
    with pytest.raises(TypeError, match=r"h_prev: expected dtype float64 \(the input's\), got float32"):
        F.rnn_step(a3[:, :H], h.astype(np.float32), W3[:, :H])
    with pytest.raises(ValueError, match=r"a_x: expected shape \(3, 2\), got \(1, 2\)"):
        F.rnn_step(a3[:1, :H], h, W3[:, :H])  # no silent broadcasting of one row over the batch
    _, cache = F.rnn_step(a3[:, :H], h, W3[:, :H])
    with pytest.raises(ValueError, match=r"dh: expected shape \(3, 2\), got \(1, 2\)"):
        F.rnn_step_backward(h[:1], cache)
    with pytest.raises(TypeError, match=r"cache: expected the LSTMStepCache of lstm_step, got RNNStepCache"):
        F.lstm_step_backward(h, None, cache)
    with pytest.raises(ValueError, match=r"groups: expected an integer >= 1, got 0"):
        Norm.layer(groups=0)
    with pytest.raises(TypeError, match=r"groups: expected an integer, got float"):
        Norm.layer(groups=2.5)


# --------------------------------------------------------------------------------------------------
# Norm.fixed and the defaults (issue 20, item 18)


def test_fixed_norm_without_variance_or_mean_is_the_gain_and_bias_map(rng):
    """``Norm.fixed(gain, bias)``: mean 0, variance 1, eps 0 by default, so y = gain * a + bias exactly."""
    a = rng.normal(0.5, 2.0, (4, 6))
    g, b = _norm_params(rng, 6)
    norm = Norm.fixed(g, b)
    assert norm.eps == 0.0 and norm.mean is None and norm.var is None
    y, _ = F.normalize(a, norm)
    np.testing.assert_array_equal(y, g * a + b)
    y, _ = F.normalize(a, Norm.fixed(g, b, eps=0.25))
    np.testing.assert_allclose(y, g * a / np.sqrt(1.25) + b, rtol=1e-15)
    rep = check_function(lambda a, g, b: F.normalize(a, Norm.fixed(g, b, eps=0.25)), F.normalize_backward,
                         dict(a=a, g=g, b=b), seed=2)
    assert rep.max_rel_error < TOL, rep


@pytest.mark.parametrize("kind", ["fixed", "layer", "batch"])
def test_norm_backward_without_a_gain(kind, rng):
    """A norm with no gain (gain 1): its backward returns no gain gradient and the input's is right."""
    a = rng.normal(0.5, 2.0, (5, 6))
    b = rng.normal(size=6)
    make = {"fixed": lambda b: Norm.fixed(None, b, mean=np.full(6, 0.3), var=np.full(6, 2.0), eps=1e-3),
            "layer": lambda b: Norm.layer(None, b), "batch": lambda b: Norm.batch(None, b)}[kind]
    _, cache = F.normalize(a, make(b))
    assert F.normalize_backward(rng.normal(size=a.shape), cache)[1] is None
    rep = check_function(lambda a, b: F.normalize(a, make(b)), lambda d, c: F.normalize_backward(d, c)[::2],
                         dict(a=a, b=b), seed=3)
    assert rep.max_rel_error < TOL, rep
    if kind == "fixed":
        d = rng.normal(size=a.shape)
        np.testing.assert_allclose(F.normalize_backward(d, cache)[0], d / np.sqrt(2.0 + 1e-3), rtol=1e-15)


def test_the_defaults_of_norm_layer_batch_fixed_and_normprop_variances():
    assert Norm.layer() == Norm("layer", None, None, 1e-5, 1, None, None)
    assert Norm.batch() == Norm("batch", None, None, 1e-5, 1, None, None)
    assert Norm.fixed() == Norm("fixed", None, None, 0.0, 1, None, None)
    assert F.normprop_variances() == F.normprop_variances(2.0, 2.0, 1.0, variance="eq22")
    var_c, var_h = F.normprop_variances()
    assert abs(var_c - 0.44805) < 5e-5 and abs(var_h - 0.14983) < 5e-5  # the eq22 row of the table above
