"""Recurrent layers (lnedu.nn.recurrent): backprop through time against finite differences for every cell and
layer-norm placement, the forward against plain NumPy transcriptions of the papers' equations, masks, truncated
BPTT, batch norm's per-step statistics, and the argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from lnedu import backend
from lnedu.functional.recurrent import normprop_variances
from lnedu.gradcheck import check_gradients
from lnedu.nn import BNLSTM, GRU, LSTM, MGU, RNN, LNConfig, NormPropLSTM, StackedRNN

TOL = 1e-7


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def ln(a, g, b, groups=1, eps=1e-5):
    """Layer norm of the rows of ``a``, statistics per block of K/groups units."""
    N, K = a.shape
    r = a.reshape(N, groups, K // groups)
    r = (r - r.mean(-1, keepdims=True)) / np.sqrt(r.var(-1, keepdims=True) + eps)
    return r.reshape(N, K) * g + b


def bn(a, g, b, eps=1e-5):
    return (a - a.mean(0)) / np.sqrt(a.var(0) + eps) * g + b


def _randomize(layer, rng):
    """Move gains off 1 and biases off 0 (and the learned initial state off 0) so that each one matters."""
    for name, p, _ in layer.named_parameters():
        leaf = name.split(".")[-1]
        if leaf.startswith("g"):
            p[...] = p * rng.uniform(0.7, 1.3, p.shape)
        elif leaf.startswith("b") or leaf in ("h0", "c0"):
            p[...] = p + rng.normal(0, 0.5, p.shape)
    return layer


def _lengths_mask(rng, T, B):
    lengths = rng.integers(2, T, size=B)
    lengths[0] = T  # one full-length sequence
    return np.arange(T)[:, None] < lengths[None, :]


def _states(layer, rng, B):
    if isinstance(layer, StackedRNN):
        return [_states(l, rng, B) for l in layer.layers]
    return tuple(rng.normal(0, 0.8, (B, layer.hidden_size)) for _ in layer._state_names)


def _flat(states):
    if isinstance(states, list):
        return [a for s in states for a in _flat(s)]
    return list(states)


def check_layer(layer, *, T=6, B=3, seed=0, mask=True, state=True):
    """Finite-difference check of everything ``backward`` returns or accumulates, through a whole sequence:
    x, every parameter, and the initial state, with random output and final-state gradients."""
    rng = np.random.default_rng(seed)
    layer = _randomize(layer.astype(np.float64), rng)
    x = rng.normal(0, 1, (T, B, layer.input_size))
    s0 = _states(layer, rng, B) if state else None
    m = _lengths_mask(rng, T, B) if mask else None
    out, final = layer.forward(x, s0, m)
    R = rng.normal(size=out.shape)
    RS = _states(layer, rng, B)
    if isinstance(layer, StackedRNN):
        RS = [tuple(r for r in rs) for rs in RS]

    def loss():
        o, f = layer.forward(x, s0, m)
        return float((o * R).sum() + sum((a * r).sum() for a, r in zip(_flat(f), _flat(RS))))

    layer.zero_grad()
    layer.forward(x, s0, m)
    dx, ds0 = layer.backward(R, RS)
    arrays = {k: p for k, p, _ in layer.named_parameters()}
    analytic = {k: g.copy() for k, _, g in layer.named_parameters()}
    arrays["x"], analytic["x"] = x, dx
    if state:
        for i, (a, d) in enumerate(zip(_flat(s0), _flat(ds0))):
            arrays[f"state0[{i}]"], analytic[f"state0[{i}]"] = a, d
    return check_gradients(loss, arrays, analytic), out, m


# --------------------------------------------------------------------------------------------------
# BPTT against finite differences

CASES = {
    "LSTM": lambda: LSTM(3, 3, rng=1),
    "LSTM-appendix": lambda: LSTM(3, 3, ln="appendix", rng=1),
    "LSTM-eq4": lambda: LSTM(3, 3, ln="eq4", rng=1),
    "LSTM-cell": lambda: LSTM(3, 3, ln="cell", rng=1),
    "LSTM-per-gate": lambda: LSTM(3, 3, ln=LNConfig(per_gate=True), rng=1),
    "LSTM-input-only": lambda: LSTM(3, 3, ln=LNConfig(recurrent=False, cell=False), rng=1),
    "LSTM-eq4-per-gate-cell": lambda: LSTM(3, 3, ln=LNConfig(joint_sum=True, per_gate=True), rng=1),
    "LSTM-weight-norm": lambda: LSTM(3, 3, weight_norm=True, learn_h0=True, rng=1),
    "GRU-after": lambda: GRU(3, 3, rng=1),
    "GRU-before": lambda: GRU(3, 3, reset="before", rng=1),
    "GRU-appendix-after": lambda: GRU(3, 3, ln="appendix", rng=1),
    "GRU-appendix-before": lambda: GRU(3, 3, ln="appendix", reset="before", rng=1),
    "GRU-eq4-after": lambda: GRU(3, 3, ln="eq4", rng=1),
    "GRU-eq4-before": lambda: GRU(3, 3, ln="eq4", reset="before", rng=1),
    "GRU-per-gate": lambda: GRU(3, 3, ln=LNConfig(per_gate=True), rng=1),
    "MGU": lambda: MGU(3, 3, rng=1),
    "MGU-appendix": lambda: MGU(3, 3, ln="appendix", rng=1),
    "MGU-eq4": lambda: MGU(3, 3, ln="eq4", rng=1),
    "RNN": lambda: RNN(3, 4, rng=1),
    "RNN-appendix": lambda: RNN(3, 4, ln="appendix", rng=1),
    "RNN-eq4": lambda: RNN(3, 4, ln="eq4", rng=1),
    "BNLSTM": lambda: BNLSTM(3, 3, gamma=0.5, rng=1),
    "NormProp-eq22": lambda: NormPropLSTM(3, 3, rng=1),
    "NormProp-eq9": lambda: NormPropLSTM(3, 3, variance="eq9", forget_bias=0.5, rng=1),
    "Stacked-LSTM-GRU": lambda: StackedRNN([LSTM(3, 3, ln="appendix", rng=1), GRU(3, 4, ln="eq4", rng=2)]),
    # the published variants (issue 16): every new switch of LNConfig through BPTT
    **{f"LSTM-{name}": (lambda name=name: LSTM(3, 3, ln=name, rng=1))
       for name in ("kiros-theano", "kiros-torch", "haste", "tfa", "tf-contrib", "keras-per-gate", "pytorch-fastrnns")},
    "LSTM-std+eps-both-uncentered": lambda: LSTM(3, 3, ln=LNConfig(denominator="std+eps", input_bias="both",
                                                                     center=False, carry="LN(c)"), rng=1),
    "GRU-uncentered-bias-before": lambda: GRU(3, 3, ln=LNConfig(center=False, input_bias="before"), rng=1),
    "MGU-bias-both-per-gate": lambda: MGU(3, 3, ln=LNConfig(input_bias="both", per_gate=True), rng=1),
    "GRU-haste-fused-candidate": lambda: GRU(3, 3, ln="haste-gru", rng=1),
    "GRU-fused-candidate-uncentered": lambda: GRU(3, 3, ln=LNConfig(fuse_candidate=True, center=False,
                                                                    input_bias="both"), rng=1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bptt_gradcheck(name):
    rep, _, _ = check_layer(CASES[name](), seed=len(name))
    assert rep.max_rel_error < TOL, rep


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_bptt_gradcheck_learned_initial_state(cls):
    layer = cls(3, 3, ln="appendix", learn_h0=True, rng=4)
    assert {"h0"} <= set(layer.params) and ("c0" in layer.params) == (cls is LSTM)
    rep, _, _ = check_layer(layer, seed=5, state=False)
    assert rep.max_rel_error < TOL, rep


def test_bptt_gradcheck_without_mask_and_with_a_longer_batch():
    rep, _, _ = check_layer(LSTM(2, 4, ln="appendix", rng=3), T=7, B=4, seed=8, mask=False)
    assert rep.max_rel_error < TOL, rep


# --------------------------------------------------------------------------------------------------
# the forward against the papers' equations, written out in NumPy


def ref_lstm(layer, x, h, c, gates=None):
    """LN paper Eq. 17-22 (and Eq. 4 for joint_sum), gate order f, i, o, g. Appends the activated gates to
    ``gates`` when given."""
    p, cfg = layer.params, layer.ln
    G = 4 if cfg is not None and cfg.per_gate else 1
    outs = []
    for x_t in x:
        ax, ah = x_t @ p["W_x"], h @ p["W_h"]
        if cfg is not None and cfg.joint_sum:
            a = ln(ax + ah, p["g"], p["b"], G)
        else:
            if cfg is not None and cfg.input:
                ax = ln(ax, p["g_x"], p["b_x"], G)
            if cfg is not None and cfg.recurrent:
                ah = ln(ah, p["g_h"], p["b_h"], G)
            a = ax + ah + p["b"]
        f, i, o, g = np.split(a, 4, axis=1)
        if gates is not None:
            gates.append(np.concatenate([sig(f), sig(i), sig(o), np.tanh(g)], axis=1))
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(ln(c, p["g_c"], p["b_c"]) if cfg is not None and cfg.cell else c)
        outs.append(h)
    return np.stack(outs), (h, c)


def ref_gru(layer, x, h):
    """LN paper Eq. 23-28 (reset after) or Cho v3 (reset before); h = (1 - z) h + z h_hat."""
    p, cfg = layer.params, layer.ln
    joint = cfg is not None and cfg.joint_sum
    sep_x = cfg is not None and cfg.input and not joint
    sep_h = cfg is not None and cfg.recurrent and not joint
    outs = []
    for x_t in x:
        ax, ah = x_t @ p["W_x"], h @ p["W_h"]
        if sep_x:
            ax = ln(ax, p["g_x"], p["b_x"])
        if sep_h:
            ah = ln(ah, p["g_h"], p["b_h"])
        a = ln(ax + ah, p["g"], p["b"]) if joint else ax + ah + p["b"]
        z, r = sig(a[:, : layer.hidden_size]), sig(a[:, layer.hidden_size:])
        wx = x_t @ p["W_xhat"]
        uh = h @ p["W_hhat"] if layer.reset == "after" else (r * h) @ p["W_hhat"]
        if sep_x:
            wx = ln(wx, p["g_xhat"], p["b_xhat"])
        if sep_h:
            uh = ln(uh, p["g_hhat"], p["b_hhat"])
        s = wx + (r * uh if layer.reset == "after" else uh)
        h_hat = np.tanh(ln(s, p["g_hat"], p["b_hat"]) if joint else s + p["b_hat"])
        h = (1 - z) * h + z * h_hat
        outs.append(h)
    return np.stack(outs), (h,)


def ref_mgu(layer, x, h):
    """Zhou et al. 2016, with separate LNs placed as in the LN paper's GRU."""
    p, cfg = layer.params, layer.ln
    sep = cfg is not None
    outs = []
    for x_t in x:
        ax, ah = x_t @ p["W_x"], h @ p["W_h"]
        if sep:
            ax, ah = ln(ax, p["g_x"], p["b_x"]), ln(ah, p["g_h"], p["b_h"])
        f = sig(ax + ah + p["b"])
        wx, uh = x_t @ p["W_xhat"], (f * h) @ p["W_hhat"]
        if sep:
            wx, uh = ln(wx, p["g_xhat"], p["b_xhat"]), ln(uh, p["g_hhat"], p["b_hhat"])
        h = (1 - f) * h + f * np.tanh(wx + uh + p["b_hat"])
        outs.append(h)
    return np.stack(outs), (h,)


def ref_rnn(layer, x, h):
    """LN paper Eq. 4: h = tanh(LN(W_h h + W_x x; g, b))."""
    p = layer.params
    outs = []
    for x_t in x:
        h = np.tanh(ln(x_t @ p["W_x"] + h @ p["W_h"], p["g"], p["b"]) if layer.ln else
                    x_t @ p["W_x"] + h @ p["W_h"] + p["b"])
        outs.append(h)
    return np.stack(outs), (h,)


def ref_normprop(layer, x, h, c):
    """Laurent et al. Eq. 13-15."""
    p = layer.params
    Wx = p["W_x"] / np.linalg.norm(p["W_x"], axis=0)
    Wh = p["W_h"] / np.linalg.norm(p["W_h"], axis=0)
    outs = []
    for x_t in x:
        a = p["g_x"] * (x_t @ Wx) + p["g_h"] * (h @ Wh) + p["b"]
        f, i, o, g = np.split(a, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(p["g_c"] * c / np.sqrt(layer.var_c)) / np.sqrt(layer.var_h)
        outs.append(h)
    return np.stack(outs), (h, c)


def ref_bnlstm(layer, x, h, c, stats=None):
    """Cooijmans et al. Eq. 6-8 with per-step batch statistics, or the population ``stats`` (eval)."""
    p, eps = layer.params, layer.eps
    outs, seen = [], {"x": [], "h": [], "c": []}

    def norm(key, t, a, g, b):
        seen[key].append((a.mean(0), a.var(0, ddof=1)))
        if stats is None:
            return bn(a, g, b, eps)
        s = min(t, stats["mean_x"].shape[0] - 1)
        return (a - stats["mean_" + key][s]) / np.sqrt(stats["var_" + key][s] + eps) * g + b

    for t, x_t in enumerate(x):
        a = norm("x", t, x_t @ p["W_x"], p["g_x"], 0) + norm("h", t, h @ p["W_h"], p["g_h"], 0) + p["b"]
        f, i, o, g = np.split(a, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(norm("c", t, c, p["g_c"], p["b_c"]))
        outs.append(h)
    return np.stack(outs), (h, c), seen


REFERENCES = [
    (lambda: LSTM(3, 4, rng=0), ref_lstm),
    (lambda: LSTM(3, 4, ln="appendix", rng=0), ref_lstm),
    (lambda: LSTM(3, 4, ln="eq4", rng=0), ref_lstm),
    (lambda: LSTM(3, 4, ln="cell", rng=0), ref_lstm),
    (lambda: LSTM(3, 4, ln=LNConfig(per_gate=True, cell=False), rng=0), ref_lstm),
    (lambda: GRU(3, 4, rng=0), ref_gru),
    (lambda: GRU(3, 4, ln="appendix", rng=0), ref_gru),
    (lambda: GRU(3, 4, ln="appendix", reset="before", rng=0), ref_gru),
    (lambda: GRU(3, 4, ln="eq4", reset="before", rng=0), ref_gru),
    (lambda: MGU(3, 4, ln="appendix", rng=0), ref_mgu),
    (lambda: RNN(3, 4, ln="eq4", rng=0), ref_rnn),
    (lambda: NormPropLSTM(3, 4, rng=0), ref_normprop),
]


@pytest.mark.parametrize("make,ref", REFERENCES, ids=lambda v: getattr(v, "__name__", ""))
def test_forward_matches_the_equations(make, ref):
    rng = np.random.default_rng(3)
    layer = _randomize(make().astype(np.float64), rng)
    x = rng.normal(size=(5, 3, 3))
    s0 = _states(layer, rng, 3)
    out, final = layer.forward(x, s0)
    ref_out, ref_final = ref(layer, x, *s0)
    np.testing.assert_allclose(out, ref_out, rtol=1e-11, atol=1e-12)
    for a, b in zip(final, ref_final):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


def test_parameter_names_shapes_and_initial_values():
    lstm = LSTM(5, 4, ln="appendix", forget_bias=1.5, rng=0)
    shapes = {k: tuple(p.shape) for k, p in lstm.params.items()}
    assert shapes == {"W_x": (5, 16), "W_h": (4, 16), "b": (16,), "g_x": (16,), "b_x": (16,), "g_h": (16,),
                      "b_h": (16,), "g_c": (4,), "b_c": (4,)}
    np.testing.assert_array_equal(lstm.params["b"], np.r_[np.full(4, 1.5), np.zeros(12)])  # f block first
    assert all(np.all(lstm.params[k] == 1) for k in ("g_x", "g_h", "g_c"))
    assert all(np.all(lstm.params[k] == 0) for k in ("b_x", "b_h", "b_c"))
    # orthogonal initialization: each (H, H) block of W_h is orthogonal
    W = lstm.params["W_h"].astype(np.float64)
    for k in range(4):
        np.testing.assert_allclose(W[:, 4 * k: 4 * k + 4].T @ W[:, 4 * k: 4 * k + 4], np.eye(4), atol=1e-6)
    gru = GRU(5, 4, ln="appendix", update_bias=-1.0, rng=0)
    assert {k: tuple(p.shape) for k, p in gru.params.items()} == {
        "W_x": (5, 8), "W_h": (4, 8), "W_xhat": (5, 4), "W_hhat": (4, 4), "b": (8,), "b_hat": (4,), "g_x": (8,),
        "b_x": (8,), "g_xhat": (4,), "b_xhat": (4,), "g_h": (8,), "b_h": (8,), "g_hhat": (4,), "b_hhat": (4,)}
    np.testing.assert_array_equal(gru.params["b"], np.r_[np.full(4, -1.0), np.zeros(4)])  # z block first
    assert set(LSTM(5, 4, ln="eq4", rng=0).params) == {"W_x", "W_h", "b", "g"}
    assert set(RNN(5, 4, ln="eq4", rng=0).params) == {"W_x", "W_h", "b", "g"}
    npl = NormPropLSTM(5, 4, gamma_x=1.5, rng=0)
    np.testing.assert_allclose(np.linalg.norm(npl.params["W_x"], axis=0), 1, rtol=1e-6)  # unit-norm columns
    assert np.all(npl.params["g_x"] == 1.5) and npl.params["g_c"].shape == (4,)
    assert (npl.var_c, npl.var_h) == normprop_variances(1.5, 2.0, 1.0, "eq22")
    bnl = BNLSTM(5, 4, rng=0)
    assert all(np.allclose(bnl.params[k], 0.1) for k in ("g_x", "g_h", "g_c")) and "b_x" not in bnl.params
    assert all(p.dtype == np.float32 and p.flags.c_contiguous for p in gru.params.values())


# --------------------------------------------------------------------------------------------------
# layer norm on/off, and what it buys


@pytest.mark.parametrize("cls", [LSTM, GRU, MGU, RNN])
def test_a_config_that_normalizes_nothing_is_the_baseline_exactly(cls):
    rng = np.random.default_rng(0)
    off = LNConfig(input=False, recurrent=False, cell=False)
    a, b = cls(3, 4, ln=None, rng=7), cls(3, 4, ln=off, rng=7)
    assert set(a.params) == set(b.params)
    x = rng.normal(size=(5, 2, 3)).astype(np.float32)
    (oa, sa), (ob, sb) = a.forward(x), b.forward(x)
    for u, v in zip(sa, sb):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(oa, ob)
    dout = rng.normal(size=oa.shape).astype(np.float32)
    dxa, _ = a.backward(dout)
    dxb, _ = b.backward(dout)
    np.testing.assert_array_equal(dxa, dxb)
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])


def _run_scaled(layer, x, scale):
    """Scale W_h, run; return the outputs, the final cell, and the fraction of saturated gate units (a sigmoid
    within 0.01 of 0 or 1, or |tanh| > 0.99), taken from the equations written out above."""
    layer.params["W_h"] *= scale
    out, (h, c) = layer.forward(x)
    gates = []
    ref_out, _ = ref_lstm(layer, x, np.zeros_like(h), np.zeros_like(c), gates)
    layer.params["W_h"] /= scale
    np.testing.assert_allclose(out, ref_out, rtol=1e-8, atol=1e-9)  # saturated dynamics amplify rounding
    H = layer.hidden_size
    gates = np.stack(gates)
    sat = np.concatenate([((gates[..., : 3 * H] < 0.01) | (gates[..., : 3 * H] > 0.99)).ravel(),
                          (np.abs(gates[..., 3 * H:]) > 0.99).ravel()])
    return out, c, float(sat.mean())


def test_layer_norm_keeps_the_lstm_bounded_when_recurrent_weights_grow():
    """LN paper §3: the normalization makes the recurrent dynamics invariant to rescaling the summed inputs.
    Scaling W_h by 10 leaves the LN-LSTM's hidden states unchanged (up to eps), while the baseline's gates
    saturate and its cell runs away."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 16, 8))
    base = LSTM(8, 32, rng=1, dtype=np.float64)
    lnl = LSTM(8, 32, ln="appendix", rng=1, dtype=np.float64)
    out_b1, c_b1, sat_b1 = _run_scaled(base, x, 1.0)
    out_b10, c_b10, sat_b10 = _run_scaled(base, x, 10.0)
    out_l1, c_l1, sat_l1 = _run_scaled(lnl, x, 1.0)
    out_l10, c_l10, sat_l10 = _run_scaled(lnl, x, 10.0)
    assert np.abs(out_l10 - out_l1).max() < 1e-3  # LN: rescaling W_h does (next to) nothing
    assert abs(sat_l10 - sat_l1) < 1e-3 and sat_l10 < 0.05
    assert np.abs(out_b10 - out_b1).max() > 0.5  # the baseline's dynamics change completely...
    assert sat_b1 < 0.02 and sat_b10 > 0.2  # ... into saturated gates
    assert np.abs(c_b10).max() > 3 * max(np.abs(c_b1).max(), np.abs(c_l10).max())  # and a runaway cell


# --------------------------------------------------------------------------------------------------
# masks and truncated BPTT


@pytest.mark.parametrize("make", [lambda: LSTM(3, 4, ln="appendix", rng=2), lambda: GRU(3, 4, ln="eq4", rng=2),
                                  lambda: MGU(3, 4, rng=2), lambda: NormPropLSTM(3, 4, rng=2)])
def test_padding_equals_running_each_sequence_alone(make):
    rng = np.random.default_rng(4)
    layer = _randomize(make().astype(np.float64), rng)
    T, B = 6, 4
    lengths = np.array([6, 3, 1, 4])
    mask = np.arange(T)[:, None] < lengths
    x = rng.normal(size=(T, B, 3))
    x[~mask] = 7.0  # garbage in the padding must not matter
    s0 = _states(layer, rng, B)
    out, final = layer.forward(x, s0, mask.astype(np.float32))
    dout = rng.normal(size=out.shape)
    dfinal = _states(layer, rng, B)
    layer.zero_grad()
    dx, ds0 = layer.backward(dout, dfinal)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    assert np.all(out[~mask] == 0)
    assert np.all(dx[~mask] == 0)  # padded steps receive no gradient
    layer.zero_grad()
    for b, n in enumerate(lengths):
        o, f = layer.forward(x[:n, b: b + 1], tuple(s[b: b + 1] for s in s0))
        np.testing.assert_allclose(out[:n, b: b + 1], o, rtol=1e-12, atol=1e-13)
        for a, e in zip(final, f):  # the final state is the state at the true length
            np.testing.assert_allclose(a[b: b + 1], e, rtol=1e-12, atol=1e-13)
        d, d0 = layer.backward(dout[:n, b: b + 1], tuple(s[b: b + 1] for s in dfinal))
        np.testing.assert_allclose(dx[:n, b: b + 1], d, rtol=1e-10, atol=1e-12)
        for a, e in zip(ds0, d0):
            np.testing.assert_allclose(a[b: b + 1], e, rtol=1e-10, atol=1e-12)
    for k, g in layer.grads.items():  # per-sequence runs accumulate to the batch's gradients
        np.testing.assert_allclose(grads[k], g, rtol=1e-10, atol=1e-12)


def test_a_padded_step_keeps_the_state():
    rng = np.random.default_rng(6)
    layer = LSTM(2, 3, ln="appendix", rng=0, dtype=np.float64)
    x = rng.normal(size=(4, 2, 2))
    mask = np.array([[1, 1], [0, 1], [1, 0], [0, 0]], dtype=bool)  # holes in the middle are allowed too
    s = (rng.normal(size=(2, 3)), rng.normal(size=(2, 3)))
    out, fin = layer.forward(x, s, mask)
    o_a, s_a = layer.forward(x[[0, 2]][:, :1], (s[0][:1], s[1][:1]))  # sequence 0 sees steps 0 and 2 only
    np.testing.assert_allclose(out[[0, 2], 0], o_a[:, 0], rtol=1e-12)
    np.testing.assert_allclose(fin[1][0], s_a[1][0], rtol=1e-12)
    assert np.all(out[[1, 3], 0] == 0) and np.all(out[2:, 1] == 0)


@pytest.mark.parametrize("make", [lambda: LSTM(3, 4, ln="appendix", rng=5), lambda: GRU(3, 4, reset="before", rng=5),
                                  lambda: RNN(3, 4, ln="eq4", rng=5)])
def test_truncated_bptt_chains_to_the_full_sequence(make):
    """T steps at once equal two calls of T/2 with the state carried; and chaining the second call's dstate0
    into the first call's backward gives the full sequence's gradients."""
    rng = np.random.default_rng(8)
    full, half = make().astype(np.float64), make().astype(np.float64)
    x = rng.normal(size=(8, 3, 3))
    out, fin = full.forward(x)
    out1, s1 = half.forward(x[:4])
    o1 = out1.copy()
    out2, s2 = half.forward(x[4:], s1)
    np.testing.assert_allclose(np.concatenate([o1, out2]), out, rtol=1e-12, atol=1e-13)
    for a, b in zip(fin, s2):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    dout = rng.normal(size=out.shape)
    dx_full, _ = full.backward(dout)
    dx2, dmid = half.backward(dout[4:])  # backward of the second call (its cache)
    half.forward(x[:4])
    dx1, _ = half.backward(dout[:4], dmid)
    np.testing.assert_allclose(np.concatenate([dx1, dx2]), dx_full, rtol=1e-10, atol=1e-12)
    for k in full.grads:
        np.testing.assert_allclose(half.grads[k], full.grads[k], rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# batch norm's per-step statistics


def test_bnlstm_training_uses_per_step_batch_statistics_and_keeps_running_ones():
    rng = np.random.default_rng(9)
    layer = _randomize(BNLSTM(3, 4, momentum=1.0, rng=0).astype(np.float64), rng)
    x = rng.normal(size=(4, 5, 3))
    s0 = _states(layer, rng, 5)
    out, fin = layer.forward(x, s0)
    ref_out, ref_fin, seen = ref_bnlstm(layer, x, *s0)
    np.testing.assert_allclose(out, ref_out, rtol=1e-11, atol=1e-12)
    assert layer.stat_steps == 4  # grew to the longest training sequence
    for key in ("x", "h", "c"):  # momentum 1: the running statistics are the last batch's (unbiased variance)
        np.testing.assert_allclose(layer.buffers["running_mean_" + key], [m for m, _ in seen[key]], atol=1e-12)
        np.testing.assert_allclose(layer.buffers["running_var_" + key], [v for _, v in seen[key]], rtol=1e-11)


def test_bnlstm_eval_uses_per_step_population_statistics_and_reuses_the_last():
    rng = np.random.default_rng(10)
    layer = _randomize(BNLSTM(3, 4, momentum=0.5, rng=0).astype(np.float64), rng)
    for _ in range(3):
        layer.forward(rng.normal(size=(4, 6, 3)))
    stats = {k[len("running_"):]: v.copy() for k, v in layer.buffers.items()}
    assert stats["mean_x"].shape == (4, 16)
    layer.eval()
    x = rng.normal(size=(7, 2, 3))  # longer than any training sequence, and a batch of 2
    s0 = _states(layer, rng, 2)
    out, fin = layer.forward(x, s0)
    ref_out, _, _ = ref_bnlstm(layer, x, *s0, stats=stats)
    np.testing.assert_allclose(out, ref_out, rtol=1e-11, atol=1e-12)
    for k, v in layer.buffers.items():  # eval does not touch the statistics
        np.testing.assert_array_equal(v, stats[k[len("running_"):]])
    single, _ = layer.forward(x[:, :1], tuple(s[:1] for s in s0))  # batch of one works in eval mode
    np.testing.assert_allclose(single, out[:, :1], rtol=1e-12)


def test_bnlstm_max_steps_pools_the_later_steps_into_the_last_slot():
    rng = np.random.default_rng(11)
    layer = BNLSTM(3, 4, max_steps=2, momentum=1.0, rng=0).astype(np.float64)
    x = rng.normal(size=(5, 6, 3))
    layer.forward(x)
    a = x @ layer.params["W_x"]
    assert layer.stat_steps == 2
    np.testing.assert_allclose(layer.buffers["running_mean_x"][0], a[0].mean(0), atol=1e-12)
    np.testing.assert_allclose(layer.buffers["running_mean_x"][1], a[1:].mean(1).mean(0), atol=1e-12)
    np.testing.assert_allclose(layer.buffers["running_var_x"][1], a[1:].var(1, ddof=1).mean(0), rtol=1e-12)


def test_bnlstm_state_dict_round_trip_takes_the_saved_length():
    rng = np.random.default_rng(12)
    a = BNLSTM(3, 4, rng=0)
    a.forward(rng.normal(size=(5, 4, 3)).astype(np.float32))
    b = BNLSTM(3, 4, rng=1).load_state_dict(a.state_dict())
    assert b.stat_steps == 5
    x = rng.normal(size=(6, 2, 3)).astype(np.float32)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])


# --------------------------------------------------------------------------------------------------
# float32 and the GPU

FLOAT_CASES = [
    lambda d: LSTM(3, 4, ln="appendix", rng=0, dtype=d),
    lambda d: LSTM(3, 4, ln=LNConfig(joint_sum=True, per_gate=True), rng=0, dtype=d),
    lambda d: GRU(3, 4, ln="appendix", reset="before", rng=0, dtype=d),
    lambda d: MGU(3, 4, ln="eq4", rng=0, dtype=d),
    lambda d: RNN(3, 4, ln="eq4", rng=0, dtype=d),
    lambda d: BNLSTM(3, 4, rng=0, dtype=d),
    lambda d: NormPropLSTM(3, 4, rng=0, dtype=d),
]


def _run_all(layer, x, mask, xp=np):
    out, state = layer.forward(xp.asarray(x), mask=None if mask is None else xp.asarray(mask))
    dx, ds0 = layer.backward(out, state)
    return [out, dx, *ds0, *(layer.grads[k] for k in sorted(layer.grads))]


@pytest.mark.parametrize("make", FLOAT_CASES)
def test_float32_stays_float32_and_agrees_with_float64(make):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 3, 3))
    mask = np.ones((6, 3), bool)
    mask[4:, 1] = False
    lo = _run_all(make(np.float32), x.astype(np.float32), mask)
    hi = _run_all(make(np.float64), x, mask)
    assert all(a.dtype == np.float32 for a in lo)
    for a, b in zip(lo, hi):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("make", FLOAT_CASES)
def test_the_same_code_runs_on_cupy(make):
    import cupy  # noqa: PLC0415

    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 3, 3))
    mask = np.ones((6, 3), bool)
    mask[4:, 1] = False
    ref = _run_all(make(np.float64), x, mask)
    try:
        layer = make(np.float64).to_backend("cupy")
        got = _run_all(layer, x, mask, xp=cupy)
    finally:
        backend.use("numpy")
    for a, b in zip(got, ref):
        assert isinstance(a, cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(a), b, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# stacking


def test_stacked_rnn_is_its_layers_in_sequence():
    rng = np.random.default_rng(13)
    stack = StackedRNN.build(GRU, 3, 4, num_layers=3, ln="appendix", rng=0)
    assert [l.input_size for l in stack.layers] == [3, 4, 4] and len(stack) == 3
    assert not np.allclose(stack[0].params["W_h"], stack[1].params["W_h"])  # one rng, different draws
    assert {k.split(".")[0] for k, _, _ in stack.named_parameters()} == {"0", "1", "2"}
    x = rng.normal(size=(5, 2, 3)).astype(np.float32)
    out, states = stack.forward(x)
    y = x
    for layer in stack.layers:
        y, _ = layer.forward(y)
    np.testing.assert_array_equal(out, y)
    assert len(states) == 3 and all(len(s) == 1 for s in states)
    dx, ds0 = stack.backward(np.ones_like(out), [None, None, (np.ones((2, 4), np.float32),)])
    assert dx.shape == x.shape and len(ds0) == 3
    with pytest.raises(ValueError, match="layers\\[1\\]"):
        StackedRNN([LSTM(3, 4), LSTM(5, 4)])
    with pytest.raises(TypeError, match="state"):
        stack.forward(x, [None])


# --------------------------------------------------------------------------------------------------
# argument checks


def test_bad_input_names_the_argument():
    layer = LSTM(3, 4, rng=0)
    x = np.zeros((5, 2, 3), np.float32)
    cases = [
        (ValueError, "x: expected a 3-d", lambda: layer.forward(x[0])),
        (ValueError, "x: expected shape \\(T, B, 3\\)", lambda: layer.forward(np.zeros((5, 2, 4), np.float32))),
        (TypeError, "x: expected dtype float32", lambda: layer.forward(x.astype(np.float64))),
        (TypeError, "x: expected a floating", lambda: layer.forward(x.astype(np.int64))),
        (ValueError, "mask: expected shape \\(T, B\\) = \\(5, 2\\)", lambda: layer.forward(x, mask=np.ones((5, 3)))),
        (ValueError, "mask: expected only 0 and 1", lambda: layer.forward(x, mask=np.full((5, 2), 2.0))),
        (TypeError, "mask: expected bool", lambda: layer.forward(x, mask=np.full((5, 2), "a"))),
        (ValueError, "state\\[1\\] \\(c\\): expected shape \\(2, 4\\)",
         lambda: layer.forward(x, (np.zeros((2, 4), np.float32), np.zeros((2, 5), np.float32)))),
        (TypeError, "state: expected a tuple \\(h, c\\)", lambda: layer.forward(x, np.zeros((2, 4), np.float32))),
        (TypeError, "state: expected a tuple \\(h,\\)", lambda: GRU(3, 4).forward(x, (np.zeros((2, 4)),) * 2)),
        (ValueError, "x: expected finite values",
         lambda: layer.forward(np.full((5, 2, 3), np.nan, np.float32), check_finite=True)),
        (ValueError, "state\\[1\\]: expected finite values",
         lambda: LSTM(3, 4, check_finite=True).forward(x, (np.zeros((2, 4), np.float32),
                                                           np.full((2, 4), np.inf, np.float32)))),
        (ValueError, "ln: expected None, an LNConfig or one of", lambda: LSTM(3, 4, ln="appendx")),
        (TypeError, "ln: expected None, a preset name", lambda: LSTM(3, 4, ln=True)),
        (ValueError, "ln: 'cell' normalizes only the LSTM's memory cell", lambda: GRU(3, 4, ln="cell")),
        (ValueError, "reset: expected 'after' or 'before'", lambda: GRU(3, 4, reset="late")),
        (ValueError, "LNConfig.joint_sum", lambda: LNConfig(joint_sum=True, recurrent=False)),
        (TypeError, "LNConfig.cell: expected a bool", lambda: LNConfig(cell="yes")),
        (ValueError, "variance: expected 'eq22' or 'eq9'", lambda: NormPropLSTM(3, 4, variance="eq23")),
        (ValueError, "hidden_size: expected a positive integer", lambda: LSTM(3, 0)),
        (TypeError, "forget_bias: expected a real number", lambda: LSTM(3, 4, forget_bias="1")),
        (ValueError, "x: BNLSTM in training mode needs a batch of at least 2",
         lambda: BNLSTM(3, 4).forward(x[:, :1])),
        (ValueError, "init: expected a callable or one of", lambda: LSTM(3, 4, init="uniformish")),
        (RuntimeError, "LSTM.backward: call forward first", lambda: LSTM(3, 4).backward(np.zeros((5, 2, 4)))),
    ]
    for exc, msg, call in cases:
        with pytest.raises(exc, match=msg):
            call()
    out, _ = layer.forward(x)
    with pytest.raises(ValueError, match="dout: expected shape \\(5, 2, 4\\)"):
        layer.backward(out[:4])
    with pytest.raises(TypeError, match="dstate: expected a tuple"):
        layer.backward(out, (out[0],))
