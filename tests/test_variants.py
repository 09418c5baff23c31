"""Which LN-LSTM? (issue 16): every published variant against its source's equations, the layer norms of the
variants against finite differences, the numbers TensorFlow Addons' own test expects, and padding.

Conformance: for each variant the source's cell is written below from the cited file, in that file's gate
order, parameter names and conventions (``x @ W`` or ``W x``, per-gate weights, biases twice, ...), and
differentiated by HIPS ``autograd`` (an automatic-differentiation library independent of lnedu). lnedu's
forward, final state and every gradient (parameters, input, initial state) must match it to ~1e-12 in float64
on shared random weights. Why not PyTorch: its Linux wheels pull gigabytes of CUDA packages, which the CI
cannot afford, while ``autograd`` is a 50 kB pure-Python wheel over NumPy (``pip install autograd``).
"""

from __future__ import annotations

import numpy as np
import pytest

from lnedu.functional.ln_variants import DENOMINATORS, VariantNorm, variant_layer_norm, variant_layer_norm_backward
from lnedu.gradcheck import check_function
from lnedu.nn import GRU, LSTM, RNN, LNConfig
from lnedu.nn.recurrent.variants import VARIANTS, build, variant_rows

try:  # the gradients need autograd; without it the sources' forwards still run on plain NumPy
    import autograd as ag
    import autograd.numpy as anp
except ImportError:  # pragma: no cover - the [test] extra installs it
    ag, anp = None, np
needs_autograd = pytest.mark.skipif(ag is None, reason="the gradient conformance needs HIPS autograd "
                                                        "(pip install autograd, in the [test] extra)")

T, B, D, H = 5, 3, 4, 3
TIGHT = 1e-11


# --------------------------------------------------------------------------------------------------
# the sources' building blocks, in autograd.numpy


def asig(a):
    return 1.0 / (1.0 + anp.exp(-a))


def aln(z, gain=None, bias=None, eps=1e-5, denominator="sqrt(var+eps)"):
    """Layer norm of the rows of z with the biased variance, as each source writes it."""
    mu = anp.mean(z, axis=1, keepdims=True)
    d = z - mu
    var = anp.mean(d * d, axis=1, keepdims=True)
    if denominator == "sqrt(var+eps)":
        y = d / anp.sqrt(var + eps)
    elif denominator == "var+eps":  # LayerNormalization.lua: its 'std' is the mean of squares
        y = d / (var + eps)
    elif denominator == "sqrt(var+eps)+eps":  # the Keras port's normalize_layer
        y = d / (anp.sqrt(var + eps) + eps)
    else:
        raise AssertionError(denominator)
    if gain is not None:
        y = y * gain
    if bias is not None:
        y = y + bias
    return y


def blocks(a, order, lnedu="fiog"):
    """lnedu's f, i, o, g blocks of the last axis of ``a``, in a source's gate ``order`` (a string of f i o g)."""
    n = a.shape[-1] // 4
    parts = {k: a[..., j * n:(j + 1) * n] for j, k in enumerate(lnedu)}
    return np.concatenate([parts[k] for k in order], axis=-1)


def unblocks(a, order):
    """The inverse of :func:`blocks`: a source's blocks back in lnedu's order."""
    n = a.shape[-1] // 4
    parts = {k: a[..., j * n:(j + 1) * n] for j, k in enumerate(order)}
    return np.concatenate([parts[k] for k in "fiog"], axis=-1)


def split4(a):
    n = a.shape[1] // 4
    return [a[:, j * n:(j + 1) * n] for j in range(4)]


# --------------------------------------------------------------------------------------------------
# each source's cell over a sequence: (P, x, h0, c0) -> (outputs (T, B, H), h_T, carried c_T)


def paper_appendix(P, x, h, c):
    """Ba, Kiros & Hinton 2016, appendix Eq. 20-22 (gate order f, i, o, g as Eq. 17)."""
    outs = []
    for x_t in x:
        a = aln(h @ P["W_h"], P["alpha1"], P["beta1"]) + aln(x_t @ P["W_x"], P["alpha2"], P["beta2"]) + P["b"]
        f, i, o, g = split4(a)
        c = asig(f) * c + asig(i) * anp.tanh(g)
        h = asig(o) * anp.tanh(aln(c, P["alpha3"], P["beta3"]))
        outs.append(h)
    return anp.stack(outs), h, c


def kiros_theano(P, x, h, c):
    """ryankiros/layer-norm layers.py::lnlstm_layer: state_below = dot(x, W) + b before the scan; in the step
    ln(sbelow, b1, s1) + ln(dot(h, U), b2, s2) + b; gates i, f, o, c; c_ = ln(c, b3, s3) on the output path."""
    state_below = anp.einsum("tbd,dk->tbk", x, P["W"]) + P["b"]
    outs = []
    for sb in state_below:
        preact = aln(h @ P["U"], P["s2"], P["b2"]) + aln(sb, P["s1"], P["b1"]) + P["b"]
        i, f, o, cc = split4(preact)
        c = asig(f) * c + asig(i) * anp.tanh(cc)
        h = asig(o) * anp.tanh(aln(c, P["s3"], P["b3"]))
        outs.append(h)
    return anp.stack(outs), h, c


def kiros_torch(P, x, h, c):
    """ryankiros/layer-norm torch_modules/LSTM_LN.lua: per gate nn.Linear(x) + nn.Linear(prev_h) (each with a
    bias, W x + b), gates in_gate, forget_gate, out_gate, in_transform; next_h = out * tanh(LN(next_c)),
    LayerNormalization.lua dividing by (mean of squares + eps); next_c carried as it is."""
    outs = []
    for x_t in x:
        pre = {k: x_t @ P[f"i2h_{k}.weight"].T + P[f"i2h_{k}.bias"] + h @ P[f"h2h_{k}.weight"].T + P[f"h2h_{k}.bias"]
               for k in "ifog"}
        c = asig(pre["f"]) * c + asig(pre["i"]) * anp.tanh(pre["g"])
        h = asig(pre["o"]) * anp.tanh(aln(c, P["ln.weight"], P["ln.bias"], denominator="var+eps"))
        outs.append(h)
    return anp.stack(outs), h, c


def haste(P, x, h, c):
    """lmnt-com/haste LayerNormLSTM: Wx = LN(x kernel; gamma[0]) (no beta), Rh = LN(h recurrent_kernel;
    gamma[1]), gates i, g, f, o of Wx + Rh + bias; h = o * tanh(LN(c; gamma_h, beta_h)); c carried raw."""
    outs = []
    for x_t in x:
        v = aln(x_t @ P["kernel"], P["gamma"][0]) + aln(h @ P["recurrent_kernel"], P["gamma"][1]) + P["bias"]
        i, g, f, o = split4(v)
        c = asig(f) * c + asig(i) * anp.tanh(g)
        h = asig(o) * anp.tanh(aln(c, P["gamma_h"], P["beta_h"]))
        outs.append(h)
    return anp.stack(outs), h, c


def tfa(P, x, h, c, eps=1e-3):
    """tensorflow/addons LayerNormLSTMCell.call: z = kernel_norm(x kernel) + recurrent_norm(h rec_kernel) + bias,
    gates i, f, c, o; c = state_norm(f c + i tanh(z_c)); h = o tanh(c); returns h, [h, c]."""
    outs = []
    for x_t in x:
        z = (aln(x_t @ P["kernel"], P["kernel_norm/gamma"], P["kernel_norm/beta"], eps)
             + aln(h @ P["recurrent_kernel"], P["recurrent_norm/gamma"], P["recurrent_norm/beta"], eps) + P["bias"])
        i, f, cc, o = split4(z)
        c = asig(f) * c + asig(i) * anp.tanh(cc)
        c = aln(c, P["state_norm/gamma"], P["state_norm/beta"], eps)
        h = asig(o) * anp.tanh(c)
        outs.append(h)
    return anp.stack(outs), h, c


def tf_contrib(P, x, h, c, forget_bias=1.0, eps=1e-12):
    """tensorflow contrib LayerNormBasicLSTMCell.call: concat = [x, h] kernel (no bias with layer_norm);
    i, j, f, o each layer-normed with its own gamma, beta; new_c = c sigmoid(f + forget_bias) + sigmoid(i)
    tanh(j), then new_c = LN(new_c) ("state"); new_h = tanh(new_c) sigmoid(o); state (new_c, new_h)."""
    outs = []
    for x_t in x:
        concat = anp.concatenate([x_t, h], axis=1) @ P["kernel"]
        i, j, f, o = split4(concat)
        i = aln(i, P["input/gamma"], P["input/beta"], eps)
        j = aln(j, P["transform/gamma"], P["transform/beta"], eps)
        f = aln(f, P["forget/gamma"], P["forget/beta"], eps)
        o = aln(o, P["output/gamma"], P["output/beta"], eps)
        c = c * asig(f + forget_bias) + asig(i) * anp.tanh(j)
        c = aln(c, P["state/gamma"], P["state/beta"], eps)
        h = anp.tanh(c) * asig(o)
        outs.append(h)
    return anp.stack(outs), h, c


def keras_per_gate(P, x, h, c, eps=1e-7):
    """Binbose/keras-layer-normalization-rnn LSTMCell, implementation=1, layer_to_normalize=("input", "output",
    "recurrent"), normalize_layer_seperately (always true): x_k = dot(x, kernel_k) + bias_k; u_k = dot(h,
    recurrent_kernel_k); u_k = normalize_layer(u_k, ln_gain1_k, ln_bias1_k) ("input"); x_k =
    normalize_layer(x_k, ln_gain2_k, ln_bias2_k) ("recurrent"); gates i, f, c, o; h = o tanh(LN(c; gain3,
    bias3)); normalize_layer divides by sqrt(var + eps) + eps with eps = K.epsilon() = 1e-7. The sigmoid
    instead of the default hard_sigmoid (as lnedu)."""
    def k(name, j):
        a = P[name]
        n = a.shape[-1] // 4
        return a[..., j * n:(j + 1) * n]

    outs = []
    for x_t in x:
        pre = []
        for j in range(4):
            xk = aln(x_t @ k("kernel", j) + k("bias", j), k("ln_gain2", j), k("ln_bias2", j), eps, "sqrt(var+eps)+eps")
            uk = aln(h @ k("recurrent_kernel", j), k("ln_gain1", j), k("ln_bias1", j), eps, "sqrt(var+eps)+eps")
            pre.append(xk + uk)
        i, f, cc, o = pre
        c = asig(f) * c + asig(i) * anp.tanh(cc)
        h = asig(o) * anp.tanh(aln(c, P["ln_gain3"], P["ln_bias3"], eps, "sqrt(var+eps)+eps"))
        outs.append(h)
    return anp.stack(outs), h, c


def pytorch_fastrnns(P, x, h, c):
    """pytorch/pytorch benchmarks/fastrnns/custom_lstms.py LayerNormLSTMCell: igates = layernorm_i(input
    weight_ih^T), hgates = layernorm_h(hx weight_hh^T) (nn.LayerNorm, eps 1e-5), no other bias; ingate,
    forgetgate, cellgate, outgate; cy = layernorm_c(f cx + i g); hy = o tanh(cy); returns hy, (hy, cy)."""
    outs = []
    for x_t in x:
        gates = (aln(x_t @ P["weight_ih"].T, P["layernorm_i.weight"], P["layernorm_i.bias"])
                 + aln(h @ P["weight_hh"].T, P["layernorm_h.weight"], P["layernorm_h.bias"]))
        i, f, g, o = split4(gates)
        c = aln(asig(f) * c + asig(i) * anp.tanh(g), P["layernorm_c.weight"], P["layernorm_c.bias"])
        h = asig(o) * anp.tanh(c)
        outs.append(h)
    return anp.stack(outs), h, c


def kiros_theano_gru(P, x, h, c=None):
    """ryankiros/layer-norm layers.py::lngru_layer: state_below_ = dot(x, W) + b, state_belowx = dot(x, Wx) + bx
    before the scan; in the step x_ = ln(x_, b1, s1), xx_ = ln(xx_, b2, s2), preact = ln(dot(h, U), b3, s3) + x_,
    r, u = slices 0, 1; preactx = ln(dot(h, Ux), b4, s4) * r + xx_; h = u h + (1 - u) tanh(preactx)."""
    below = anp.einsum("tbd,dk->tbk", x, P["W"]) + P["b"]
    belowx = anp.einsum("tbd,dk->tbk", x, P["Wx"]) + P["bx"]
    n = P["Ux"].shape[0]
    outs = []
    for x_, xx_ in zip(below, belowx):
        preact = aln(h @ P["U"], P["s3"], P["b3"]) + aln(x_, P["s1"], P["b1"])
        r, u = asig(preact[:, :n]), asig(preact[:, n:])
        preactx = aln(h @ P["Ux"], P["s4"], P["b4"]) * r + aln(xx_, P["s2"], P["b2"])
        h = u * h + (1.0 - u) * anp.tanh(preactx)
        outs.append(h)
    return anp.stack(outs), h, None


def haste_gru(P, x, h, c=None):
    """lmnt-com/haste frameworks/pytorch/layer_norm_gru.py::LayerNormGRUScript: Wx = layer_norm(x kernel, 3H,
    weight=gamma[0]) + bias; per step Rh = layer_norm(h recurrent_kernel, 3H, weight=gamma[1]) +
    recurrent_bias; z = sigmoid(vx0 + vh0), r = sigmoid(vx1 + vh1), g = tanh(vx2 + r vh2); h = z h + (1 - z) g."""
    n = P["recurrent_kernel"].shape[0]
    outs = []
    for x_t in x:
        vx = aln(x_t @ P["kernel"], P["gamma"][0]) + P["bias"]
        vh = aln(h @ P["recurrent_kernel"], P["gamma"][1]) + P["recurrent_bias"]
        z = asig(vx[:, :n] + vh[:, :n])
        r = asig(vx[:, n:2 * n] + vh[:, n:2 * n])
        g = anp.tanh(vx[:, 2 * n:] + r * vh[:, 2 * n:])
        h = z * h + (1.0 - z) * g
        outs.append(h)
    return anp.stack(outs), h, None


def tfa_simple_rnn(P, x, h, c=None):
    """tensorflow/addons LayerNormSimpleRNNCell.call: net = x kernel + h recurrent_kernel; output =
    tanh(layernorm(net) + bias), the LayerNormalization with center=False (gamma only), eps 1e-5."""
    outs = []
    for x_t in x:
        h = anp.tanh(aln(x_t @ P["kernel"] + h @ P["recurrent_kernel"], P["gamma"]) + P["bias"])
        outs.append(h)
    return anp.stack(outs), h, None


# --------------------------------------------------------------------------------------------------
# lnedu's parameters <-> each source's, and back for the gradients


def _split_bias(rng, b):
    """Two biases that add to ``b`` (sources with a bias on both products)."""
    b1 = rng.normal(0, 0.3, b.shape)
    return b1, b - b1


def to_source(name, p, rng):
    """The source's parameters (a dict) from lnedu's ``p``, and ``back(gP)``: lnedu-named gradients."""
    if name == "ba2016-appendix":
        P = dict(W_x=p["W_x"], W_h=p["W_h"], b=p["b"], alpha1=p["g_h"], beta1=p["b_h"], alpha2=p["g_x"],
                 beta2=p["b_x"], alpha3=p["g_c"], beta3=p["b_c"])
        back = {"W_x": "W_x", "W_h": "W_h", "b": "b", "g_h": "alpha1", "b_h": "beta1", "g_x": "alpha2",
                "b_x": "beta2", "g_c": "alpha3", "b_c": "beta3"}
        return P, lambda g: {k: g[v] for k, v in back.items()}
    if name == "kiros-theano":
        o = "ifog"
        P = dict(W=blocks(p["W_x"], o), U=blocks(p["W_h"], o), b=blocks(p["b"], o), s1=blocks(p["g_x"], o),
                 b1=blocks(p["b_x"], o), s2=blocks(p["g_h"], o), b2=blocks(p["b_h"], o), s3=p["g_c"], b3=p["b_c"])
        return P, lambda g: dict(W_x=unblocks(g["W"], o), W_h=unblocks(g["U"], o), b=unblocks(g["b"], o),
                                 g_x=unblocks(g["s1"], o), b_x=unblocks(g["b1"], o), g_h=unblocks(g["s2"], o),
                                 b_h=unblocks(g["b2"], o), g_c=g["s3"], b_c=g["b3"])
    if name == "kiros-torch":
        P = {"ln.weight": p["g_c"], "ln.bias": p["b_c"]}
        for j, k in enumerate("fiog"):  # lnedu's blocks
            sl = slice(j * H, (j + 1) * H)
            P[f"i2h_{k}.weight"], P[f"h2h_{k}.weight"] = p["W_x"][:, sl].T, p["W_h"][:, sl].T
            P[f"i2h_{k}.bias"], P[f"h2h_{k}.bias"] = _split_bias(rng, p["b"][sl])

        def back(g):
            for k in "fiog":  # both products' biases get the same gradient: the pre-activation's
                np.testing.assert_allclose(g[f"i2h_{k}.bias"], g[f"h2h_{k}.bias"], rtol=0, atol=1e-13)
            return dict(W_x=np.concatenate([g[f"i2h_{k}.weight"].T for k in "fiog"], 1),
                        W_h=np.concatenate([g[f"h2h_{k}.weight"].T for k in "fiog"], 1),
                        b=np.concatenate([g[f"i2h_{k}.bias"] for k in "fiog"]), g_c=g["ln.weight"], b_c=g["ln.bias"])
        return P, back
    if name == "haste":
        o = "igfo"
        P = dict(kernel=blocks(p["W_x"], o), recurrent_kernel=blocks(p["W_h"], o), bias=blocks(p["b"], o),
                 gamma=np.stack([blocks(p["g_x"], o), blocks(p["g_h"], o)]), gamma_h=p["g_c"], beta_h=p["b_c"])
        return P, lambda g: dict(W_x=unblocks(g["kernel"], o), W_h=unblocks(g["recurrent_kernel"], o),
                                 b=unblocks(g["bias"], o), g_x=unblocks(g["gamma"][0], o),
                                 g_h=unblocks(g["gamma"][1], o), g_c=g["gamma_h"], b_c=g["beta_h"])
    if name in ("tfa", "tfa-test"):
        o = "ifgo"
        P = {"kernel": blocks(p["W_x"], o), "recurrent_kernel": blocks(p["W_h"], o), "bias": blocks(p["b"], o),
             "kernel_norm/gamma": blocks(p["g_x"], o), "kernel_norm/beta": blocks(p["b_x"], o),
             "recurrent_norm/gamma": blocks(p["g_h"], o), "recurrent_norm/beta": blocks(p["b_h"], o),
             "state_norm/gamma": p["g_c"], "state_norm/beta": p["b_c"]}
        return P, lambda g: dict(W_x=unblocks(g["kernel"], o), W_h=unblocks(g["recurrent_kernel"], o),
                                 b=unblocks(g["bias"], o), g_x=unblocks(g["kernel_norm/gamma"], o),
                                 b_x=unblocks(g["kernel_norm/beta"], o), g_h=unblocks(g["recurrent_norm/gamma"], o),
                                 b_h=unblocks(g["recurrent_norm/beta"], o), g_c=g["state_norm/gamma"],
                                 b_c=g["state_norm/beta"])
    if name == "tf-contrib":
        o, names = "igfo", ("input", "transform", "forget", "output")
        shift = p["b"].copy()
        shift[:H] -= 1.0  # lnedu's b holds contrib's forget-gate shift plus its constant forget_bias 1.0
        G, Bt = blocks(p["g"], o), blocks(shift, o)
        P = {"kernel": np.concatenate([blocks(p["W_x"], o), blocks(p["W_h"], o)], 0),
             "state/gamma": p["g_c"], "state/beta": p["b_c"]}
        for j, nm in enumerate(names):
            P[f"{nm}/gamma"], P[f"{nm}/beta"] = G[j * H:(j + 1) * H], Bt[j * H:(j + 1) * H]
        return P, lambda g: dict(W_x=unblocks(g["kernel"][:D], o), W_h=unblocks(g["kernel"][D:], o),
                                 g=unblocks(np.concatenate([g[f"{n}/gamma"] for n in names]), o),
                                 b=unblocks(np.concatenate([g[f"{n}/beta"] for n in names]), o),
                                 g_c=g["state/gamma"], b_c=g["state/beta"])
    if name == "keras-per-gate":
        o = "ifgo"
        P = {"kernel": blocks(p["W_x"], o), "recurrent_kernel": blocks(p["W_h"], o), "bias": blocks(p["b"], o),
             "ln_gain1": blocks(p["g_h"], o), "ln_bias1": blocks(p["b_h"], o),  # "input" normalizes h U
             "ln_gain2": blocks(p["g_x"], o), "ln_bias2": blocks(p["b_x"], o),  # "recurrent" normalizes x W
             "ln_gain3": p["g_c"], "ln_bias3": p["b_c"]}
        return P, lambda g: dict(W_x=unblocks(g["kernel"], o), W_h=unblocks(g["recurrent_kernel"], o),
                                 b=unblocks(g["bias"], o), g_h=unblocks(g["ln_gain1"], o),
                                 b_h=unblocks(g["ln_bias1"], o), g_x=unblocks(g["ln_gain2"], o),
                                 b_x=unblocks(g["ln_bias2"], o), g_c=g["ln_gain3"], b_c=g["ln_bias3"])
    if name == "pytorch-fastrnns":
        o = "ifgo"
        P = {"weight_ih": blocks(p["W_x"], o).T, "weight_hh": blocks(p["W_h"], o).T,
             "layernorm_i.weight": blocks(p["g_x"], o), "layernorm_i.bias": blocks(p["b_x"], o),
             "layernorm_h.weight": blocks(p["g_h"], o), "layernorm_h.bias": blocks(p["b_h"], o),
             "layernorm_c.weight": p["g_c"], "layernorm_c.bias": p["b_c"]}
        # no cell bias in the source: lnedu's b (set to 0) gets the gradient of the summed pre-activation,
        # which is layernorm_i.bias's
        return P, lambda g: dict(W_x=unblocks(g["weight_ih"].T, o), W_h=unblocks(g["weight_hh"].T, o),
                                 b=unblocks(g["layernorm_i.bias"], o), g_x=unblocks(g["layernorm_i.weight"], o),
                                 b_x=unblocks(g["layernorm_i.bias"], o), g_h=unblocks(g["layernorm_h.weight"], o),
                                 b_h=unblocks(g["layernorm_h.bias"], o), g_c=g["layernorm_c.weight"],
                                 b_c=g["layernorm_c.bias"])
    if name == "kiros-theano-gru":
        def ru(a, sign=1.0):  # lnedu's (z, r) blocks as the source's (r, u), u = 1 - z: the z block negated
            return np.concatenate([a[..., H:], sign * a[..., :H]], axis=-1)

        def zr(a, sign=1.0):
            return np.concatenate([sign * a[..., H:], a[..., :H]], axis=-1)

        P = dict(W=ru(p["W_x"]), b=ru(p["b"]), U=ru(p["W_h"]), Wx=p["W_xhat"], bx=p["b_hat"], Ux=p["W_hhat"],
                 s1=ru(p["g_x"], -1.0), b1=ru(p["b_x"], -1.0), s3=ru(p["g_h"], -1.0), b3=ru(p["b_h"], -1.0),
                 s2=p["g_xhat"], b2=p["b_xhat"], s4=p["g_hhat"], b4=p["b_hhat"])
        return P, lambda g: dict(W_x=zr(g["W"]), b=zr(g["b"]), W_h=zr(g["U"]), W_xhat=g["Wx"], b_hat=g["bx"],
                                 W_hhat=g["Ux"], g_x=zr(g["s1"], -1.0), b_x=zr(g["b1"], -1.0),
                                 g_h=zr(g["s3"], -1.0), b_h=zr(g["b3"], -1.0), g_xhat=g["s2"], b_xhat=g["b2"],
                                 g_hhat=g["s4"], b_hhat=g["b4"])
    if name == "haste-gru":
        def neg_z(a):  # haste's z is lnedu's 1 - z: the update block's gains and biases change sign
            return np.concatenate([-a[..., :H], a[..., H:]], axis=-1)

        P = dict(kernel=np.concatenate([p["W_x"], p["W_xhat"]], 1),
                 recurrent_kernel=np.concatenate([p["W_h"], p["W_hhat"]], 1),
                 gamma=np.stack([np.concatenate([neg_z(p["g_x"]), p["g_xhat"]]),
                                 np.concatenate([neg_z(p["g_h"]), p["g_hhat"]])]),
                 bias=np.concatenate([neg_z(p["b_x"] + p["b"]), p["b_xhat"] + p["b_hat"]]),
                 recurrent_bias=np.concatenate([neg_z(p["b_h"]), p["b_hhat"]]))

        def back(g):
            k, rk, gm, bias, rb = (g[n] for n in ("kernel", "recurrent_kernel", "gamma", "bias", "recurrent_bias"))
            b2 = neg_z(bias[:2 * H])  # b_x and b add to one pre-activation: the same gradient
            return dict(W_x=k[:, :2 * H], W_xhat=k[:, 2 * H:], W_h=rk[:, :2 * H], W_hhat=rk[:, 2 * H:],
                        g_x=neg_z(gm[0][:2 * H]), g_xhat=gm[0][2 * H:], g_h=neg_z(gm[1][:2 * H]),
                        g_hhat=gm[1][2 * H:], b_x=b2, b=b2, b_xhat=bias[2 * H:], b_hat=bias[2 * H:],
                        b_h=neg_z(rb[:2 * H]), b_hhat=rb[2 * H:])
        return P, back
    if name == "ba2016-eq4":
        P = dict(kernel=p["W_x"], recurrent_kernel=p["W_h"], gamma=p["g"], bias=p["b"])
        return P, lambda g: dict(W_x=g["kernel"], W_h=g["recurrent_kernel"], g=g["gamma"], b=g["bias"])
    raise AssertionError(name)


SOURCES = {"ba2016-eq4": tfa_simple_rnn, "ba2016-appendix": paper_appendix, "kiros-theano": kiros_theano,
           "kiros-torch": kiros_torch, "haste": haste, "tfa": tfa, "tf-contrib": tf_contrib,
           "keras-per-gate": keras_per_gate, "pytorch-fastrnns": pytorch_fastrnns,
           "kiros-theano-gru": kiros_theano_gru, "haste-gru": haste_gru}


def _random_layer(name, rng):
    layer = build(name, D, H, rng=rng, dtype=np.float64)
    for k, p in layer.params.items():  # every gain off 1, every bias off 0, so each one matters
        if k.startswith("g"):
            p[...] = rng.uniform(0.6, 1.4, p.shape) * np.sign(p)  # keeps the Theano GRU's -1 gains negative
        elif k.startswith("b"):
            p[...] = rng.normal(0, 0.5, p.shape)
    if name == "pytorch-fastrnns":
        layer.params["b"][...] = 0.0  # the source has no cell bias
    if name == "tf-contrib":
        layer.params["b"][:H] += 1.0  # contrib's constant forget_bias (lnedu keeps it in b)
    return layer


def test_every_variant_has_a_conformance_source_and_its_row_states_its_config():
    assert set(SOURCES) == set(VARIANTS)
    for v in VARIANTS.values():
        assert v.ln.denominator == v.denominator and v.ln.eps == v.eps, v.name
        assert (v.ln.carry if v.cell == "LSTM" else "h") == v.carried, v.name
        assert (v.stats == "per gate") == v.ln.per_gate, v.name
    rows = variant_rows()
    assert [r["variant"] for r in rows] == list(VARIANTS) and all(r["source"] for r in rows)


@needs_autograd
@pytest.mark.parametrize("name", list(SOURCES))
def test_variant_matches_its_source_forward_state_and_every_gradient(name):
    rng = np.random.default_rng(sorted(SOURCES).index(name))
    layer = _random_layer(name, rng)
    lstm = isinstance(layer, LSTM)
    x = rng.normal(0, 1, (T, B, D))
    h0 = rng.normal(0, 0.8, (B, H))
    c0 = rng.normal(0, 0.8, (B, H))
    R, Rh, Rc = rng.normal(size=(T, B, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    P, back = to_source(name, {k: v.copy() for k, v in layer.params.items()}, rng)
    source = SOURCES[name]

    def loss(args):
        P_, x_, h_, c_ = args
        out, hT, cT = source(P_, x_, h_, c_ if lstm else None)
        total = anp.sum(out * R) + anp.sum(hT * Rh)
        return total + anp.sum(cT * Rc) if lstm else total

    out_s, hT_s, cT_s = source(P, x, h0, c0 if lstm else None)
    gP, gx, gh0, gc0 = ag.grad(loss)((P, x, h0, c0))

    state0 = (h0, c0) if lstm else (h0,)
    out, final = layer.forward(x, state0)
    layer.zero_grad()
    layer.forward(x, state0)
    dx, dstate0 = layer.backward(R, (Rh, Rc) if lstm else (Rh,))
    np.testing.assert_allclose(out, out_s, rtol=0, atol=TIGHT)
    np.testing.assert_allclose(final[0], hT_s, rtol=0, atol=TIGHT)
    if lstm:
        np.testing.assert_allclose(final[1], cT_s, rtol=0, atol=TIGHT)  # the carried cell, c or LN(c)
        np.testing.assert_allclose(dstate0[1], gc0, rtol=0, atol=TIGHT)
    np.testing.assert_allclose(dx, gx, rtol=0, atol=TIGHT)
    np.testing.assert_allclose(dstate0[0], gh0, rtol=0, atol=TIGHT)
    expected = back(gP)
    assert set(expected) == set(layer.grads), (sorted(expected), sorted(layer.grads))
    for k, g in expected.items():
        np.testing.assert_allclose(layer.grads[k], g, rtol=0, atol=TIGHT, err_msg=f"{name}: d{k}")


def test_the_theano_gru_variant_starts_as_the_theano_cell():
    """build() starts the update block's gains at -1, so lnedu's (1 - z) h + z h_hat is the source's
    u h + (1 - u) h_hat at initialization (gains 1, biases 0 in the source)."""
    rng = np.random.default_rng(4)
    layer = build("kiros-theano-gru", D, H, rng=rng, dtype=np.float64)
    assert isinstance(layer, GRU) and np.all(layer.params["g_x"][:H] == -1) and np.all(layer.params["g_x"][H:] == 1)
    P, _ = to_source("kiros-theano-gru", layer.params, rng)
    assert all(np.all(P[k] == 1) for k in ("s1", "s2", "s3", "s4")) and all(np.all(P[k] == 0) for k in ("b1", "b3"))
    x, h0 = rng.normal(size=(T, B, D)), rng.normal(size=(B, H))
    np.testing.assert_allclose(layer.forward(x, (h0,))[0], kiros_theano_gru(P, x, h0)[0], rtol=0, atol=TIGHT)


def test_gru_step_refuses_a_fused_recurrent_norm_it_cannot_apply():
    from lnedu.functional import gru_step
    from lnedu.functional.recurrent import Norm
    a_x, h, W = np.zeros((2, 9)), np.zeros((2, 3)), np.zeros((3, 9))
    with pytest.raises(ValueError, match="norm_hh"):
        gru_step(a_x, h, W, reset="before", norm_hh=Norm.layer())
    with pytest.raises(ValueError, match="norm_hh"):
        gru_step(a_x, h, W, norm_h=Norm.layer(), norm_hh=Norm.layer())
    with pytest.raises(ValueError, match="fuse_candidate"):
        GRU(3, 3, ln="haste-gru", reset="before")
    from lnedu.cuda import recurrent as CR  # the fused GPU step declines it (and is never asked: see gru_step)
    assert CR.gru_config(4, norm_hh=Norm.layer()) is None and CR.gru_config(4) is not None
    with pytest.raises(ValueError, match="GRU option"):
        LSTM(3, 3, ln=LNConfig(fuse_candidate=True))


def test_a_planted_slip_in_a_variant_is_caught_by_its_conformance_check():
    """The comparison can fail: carrying c instead of LN(c) in the TFA variant changes the final state."""
    rng = np.random.default_rng(0)
    layer = _random_layer("tfa", rng)
    slipped = LSTM(D, H, ln=LNConfig(eps=1e-3), dtype=np.float64)  # TFA's norms, the paper's carry
    slipped.load_state_dict(layer.state_dict())
    x, h0, c0 = rng.normal(size=(T, B, D)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    P, _ = to_source("tfa", layer.params, rng)
    _, _, cT = tfa(P, x, h0, c0)
    _, (_, c_slip) = slipped.forward(x, (h0, c0))
    assert np.abs(c_slip - cT).max() > 1e-2


# --------------------------------------------------------------------------------------------------
# the numbers of the sources' own tests


def test_tensorflow_addons_test_cell_output_numbers():
    """tensorflow/addons tensorflow_addons/rnn/tests/layer_norm_lstm_cell_test.py::test_cell_output: two stacked
    LayerNormLSTMCell(units=2) with every kernel 0.5, bias 0.5 (plus 1 on the forget gate: unit_forget_bias),
    norm_epsilon 1e-12, x = ones, states h0 = 0.1 [2, 3], c0 = 0.1 [0, 1] and h1 = 0.1 [6, 7], c1 = 0.1 [4, 5];
    expected output and h of both [-0.47406167, 0.47406143], carried c of both [-1, 1], rtol 1e-5. Then one
    cell with input size 3: the same numbers."""
    expected_h = np.array([[-0.47406167, 0.47406143]])
    expected_c = np.array([[-1.0, 1.0]])

    def cell(D_in):
        layer = LSTM(D_in, 2, ln=LNConfig(eps=1e-12, carry="LN(c)"), dtype=np.float64)
        for k in ("W_x", "W_h"):
            layer.params[k][...] = 0.5
        layer.params["b"][...] = 0.5  # bias_initializer 0.5 ...
        layer.params["b"][:2] = 1.0  # ... except the forget block (lnedu's first), which unit_forget_bias sets to 1
        return layer

    x = np.ones((1, 1, 2))
    l0, l1 = cell(2), cell(2)
    out0, (h0, c0) = l0.forward(x, (0.1 * np.array([[2.0, 3.0]]), 0.1 * np.array([[0.0, 1.0]])))
    out1, (h1, c1) = l1.forward(out0, (0.1 * np.array([[6.0, 7.0]]), 0.1 * np.array([[4.0, 5.0]])))
    for got, want in ((out1[0], expected_h), (h0, expected_h), (c0, expected_c), (h1, expected_h), (c1, expected_c)):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    l3 = cell(3)
    out, (h, c) = l3.forward(np.ones((1, 1, 3)), (0.1 * np.array([[2.0, 3.0]]), 0.1 * np.array([[0.0, 1.0]])))
    np.testing.assert_allclose(out[0], expected_h, rtol=1e-5)
    np.testing.assert_allclose(h, expected_h, rtol=1e-5)
    np.testing.assert_allclose(c, expected_c, rtol=1e-5)
    # the paper's carry would not give [-1, 1]: the carried state is the raw cell
    paper = cell(3)
    paper.ln = LNConfig(eps=1e-12)
    _, (_, c_raw) = paper.forward(np.ones((1, 1, 3)), (0.1 * np.array([[2.0, 3.0]]), 0.1 * np.array([[0.0, 1.0]])))
    assert np.abs(c_raw - expected_c).max() > 0.1


def test_tensorflow_contrib_layer_norm_basic_lstm_cell_test_numbers():
    """tensorflow/tensorflow tensorflow/contrib/rnn/python/kernel_tests/rnn_cell_test.py
    LayerNormBasicLSTMCellTest.testBasicLSTMCell: two stacked LayerNormBasicLSTMCell(2), kernel 0.5, the LN gains 1
    and shifts 0, forget_bias 1, x = ones, (c, h) states 0.1 [0, 1], 0.1 [2, 3] and 0.1 [4, 5], 0.1 [6, 7];
    expected h of both [-0.38079708, 0.38079708] and carried c [-1, 1], rtol 1e-5; then one cell with input
    size 3: the same."""
    expected_h, expected_c = np.array([[-0.38079708, 0.38079708]]), np.array([[-1.0, 1.0]])

    def cell(D_in):
        layer = build("tf-contrib", D_in, 2, dtype=np.float64)  # g = 1, b = 0 except the forget block: 1
        layer.params["W_x"][...] = 0.5
        layer.params["W_h"][...] = 0.5
        assert np.all(layer.params["b"] == [1, 1, 0, 0, 0, 0, 0, 0]) and np.all(layer.params["g"] == 1)
        return layer

    x = np.ones((1, 1, 2))
    out0, (h0, c0) = cell(2).forward(x, (0.1 * np.array([[2.0, 3.0]]), 0.1 * np.array([[0.0, 1.0]])))
    out1, (h1, c1) = cell(2).forward(out0, (0.1 * np.array([[6.0, 7.0]]), 0.1 * np.array([[4.0, 5.0]])))
    for got, want in ((out1[0], expected_h), (h0, expected_h), (c0, expected_c), (h1, expected_h), (c1, expected_c)):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    out, (h, c) = cell(3).forward(np.ones((1, 1, 3)), (0.1 * np.array([[2.0, 3.0]]), 0.1 * np.array([[0.0, 1.0]])))
    np.testing.assert_allclose(h, expected_h, rtol=1e-5)
    np.testing.assert_allclose(c, expected_c, rtol=1e-5)


# --------------------------------------------------------------------------------------------------
# the variants' layer norm, and the cells' new switches, against finite differences


@pytest.mark.parametrize("denominator", DENOMINATORS)
@pytest.mark.parametrize("shape,groups", [((3, 8), 1), ((4, 12), 4), ((2, 6), 3)])
def test_variant_layer_norm_backward(denominator, shape, groups):
    rng = np.random.default_rng(len(denominator) + shape[1])
    K = shape[1]
    for gain, bias in ((rng.uniform(0.5, 1.5, K), rng.normal(size=K)), (None, None), (rng.uniform(0.5, 1.5, K), None)):
        rep = check_function(
            lambda a, gain, bias: variant_layer_norm(a, VariantNorm(gain, bias, 1e-3, groups, denominator)),
            variant_layer_norm_backward,
            {"a": rng.normal(0, 2, shape), "gain": gain, "bias": bias}, seed=groups)
        assert rep.max_rel_error < 1e-7, rep


def test_variant_layer_norm_with_the_papers_denominator_is_lnedus_layer_norm():
    from lnedu.functional import layer_norm
    rng = np.random.default_rng(3)
    a, g, b = rng.normal(size=(4, 6)), rng.uniform(0.5, 1.5, 6), rng.normal(size=6)
    y, _ = variant_layer_norm(a, VariantNorm(g, b, 1e-5))
    np.testing.assert_allclose(y, layer_norm(a, g, b, 1e-5)[0], rtol=0, atol=1e-13)


def test_variant_layer_norm_refuses_bad_arguments():
    with pytest.raises(ValueError, match="norm.denominator"):
        variant_layer_norm(np.ones((2, 4)), VariantNorm(denominator="std"))
    with pytest.raises(ValueError, match="norm.groups"):
        variant_layer_norm(np.ones((2, 4)), VariantNorm(groups=3))
    with pytest.raises((TypeError, ValueError), match="norm.groups"):
        variant_layer_norm(np.ones((2, 4)), VariantNorm(groups=0))


def test_lnconfig_refuses_switches_that_do_not_fit():
    with pytest.raises(ValueError, match="LNConfig.carry"):
        LNConfig(cell=False, carry="LN(c)")
    with pytest.raises(ValueError, match="LNConfig.input_bias"):
        LNConfig(joint_sum=True, input_bias="both")
    with pytest.raises(ValueError, match="LNConfig.denominator"):
        LNConfig(denominator="std")
    with pytest.raises(ValueError, match="LSTM options"):
        RNN(3, 4, ln="tfa")
    with pytest.raises(ValueError, match="name: expected one of"):
        build("tensorflow", 3, 4)


def test_classic_configs_give_the_same_numbers_on_both_step_paths():
    """The variant step (lstm_variant_step) with the paper's denominator and carry is the reference step."""
    from lnedu.functional import lstm_step
    from lnedu.functional.ln_variants import lstm_variant_step
    from lnedu.functional.recurrent import Norm
    rng = np.random.default_rng(5)
    a_x, h, c, W = rng.normal(size=(3, 8)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(2, 8))
    g, b, gc, bc = rng.uniform(0.5, 1.5, 8), rng.normal(size=8), rng.uniform(0.5, 1.5, 2), rng.normal(size=2)
    h1, c1, _ = lstm_step(a_x, h, c, W, norm_h=Norm.layer(g, b), norm_c=Norm.layer(gc, bc))
    h2, c2, _ = lstm_variant_step(a_x, h, c, W, norm_h=VariantNorm(g, b), norm_c=VariantNorm(gc, bc))
    np.testing.assert_allclose(h1, h2, rtol=0, atol=1e-14)
    np.testing.assert_allclose(c1, c2, rtol=0, atol=1e-14)


# --------------------------------------------------------------------------------------------------
# padding cannot leak (issue 16 item 5)


def _run(layer, x, mask, dout):
    layer.zero_grad()
    out, final = layer.forward(x, None, mask)
    dx, _ = layer.backward(dout, None)
    return out, final, dx, {k: g.copy() for k, g in layer.grads.items()}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_padding_cannot_leak_into_any_variant(name):
    """Valid steps' outputs, the final state and every gradient are the same for any amount of padding and
    any padded values: each row's layer norm sees only that row, and a padded step keeps the state."""
    rng = np.random.default_rng(11)
    layer = _random_layer(name, rng)
    lengths = np.array([5, 3, 1])
    x = rng.normal(size=(5, 3, D))
    dout = rng.normal(size=(5, 3, H))
    ref = None
    for extra in (0, 2, 7):
        Tp = 5 + extra
        xp = np.concatenate([x, rng.normal(0, 10, (extra, 3, D))]) if extra else x.copy()
        mask = np.arange(Tp)[:, None] < lengths[None, :]
        xp[~mask] = rng.normal(0, 10, xp[~mask].shape)  # garbage wherever it is padding
        dp = np.concatenate([dout, rng.normal(size=(extra, 3, H))]) if extra else dout.copy()
        dp[~mask] = 0.0  # a loss reads valid steps only
        out, final, dx, grads = _run(layer, xp, mask, dp)
        got = (out[:5] * mask[:5, :, None], final, dx[:5] * mask[:5, :, None], grads)
        if ref is None:
            ref = got
            continue
        np.testing.assert_allclose(got[0], ref[0], rtol=0, atol=1e-13)
        for a, b in zip(got[1], ref[1]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
        np.testing.assert_allclose(got[2], ref[2], rtol=0, atol=1e-13)
        assert np.all(dx[~mask] == 0)
        for k in grads:
            np.testing.assert_allclose(got[3][k], ref[3][k], rtol=0, atol=1e-12, err_msg=k)


def test_per_time_step_batch_norm_can_leak_padding():
    """Batch norm with per-time-step statistics (Cooijmans et al. 2017, Eq. 5: mean and variance over the
    mini-batch at step t) mixes the rows of a batch, so a padded row changes a valid row's output unless the
    statistics are masked. What the authors advise (Cooijmans et al., "Recurrent Batch Normalization", ICLR
    2017, §3): statistics per time step, estimated over the mini-batch in training; population statistics per
    step for t = 1..T_max, and T_max's reused beyond it. They give no rule for padded rows in a training batch,
    so per-step statistics over a padded batch count the padding (lnedu's BNLSTM docstring says so too)."""
    from lnedu.functional import stepwise_batch_norm
    rng = np.random.default_rng(2)
    a = rng.normal(size=(4, 3, 5))
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]], bool)
    outs = []
    for fill in (0.0, 100.0):
        padded = a.copy()
        padded[~mask] = fill
        y, _ = stepwise_batch_norm(padded, np.ones(5), np.zeros(5))
        outs.append(y[mask])
    assert np.abs(outs[0] - outs[1]).max() > 0.1  # the valid rows moved: the padding leaked
    # a layer norm of each row cannot leak: the same experiment on the rows
    lns = []
    for fill in (0.0, 100.0):
        padded = a.copy()
        padded[~mask] = fill
        y, _ = variant_layer_norm(padded.reshape(-1, 5), VariantNorm())
        lns.append(y.reshape(a.shape)[mask])
    np.testing.assert_array_equal(lns[0], lns[1])


def test_haste_gru_step_computes_float16_in_float32():
    """The fused-3H norm (``norm_hh``) goes through the dispatch like every other step: float16 is computed in
    float32 and rounded once (in float16 the row's sum of squares overflows and the step returns NaN)."""
    import lnedu.functional as F

    rng = np.random.default_rng(7)
    B, H = 3, 64
    h = rng.normal(0, 1, (B, H))
    W = rng.normal(0, 12, (H, 3 * H))  # products of spread ~100: their squares overflow float16 over 3H units
    a_x = rng.normal(0, 1, (B, 3 * H))
    norm = F.Norm.layer(rng.normal(1, 0.1, 3 * H), rng.normal(0, 0.1, 3 * H))
    half = [v.astype(np.float16) for v in (a_x, h, W)]
    norm16 = F.Norm.layer(*(v.astype(np.float16) for v in (norm.gain, norm.bias)))
    h16, _ = F.gru_step(*half, norm_hh=norm16)
    norm32 = F.Norm.layer(*(v.astype(np.float16).astype(np.float32) for v in (norm.gain, norm.bias)))
    h32, _ = F.gru_step(*(v.astype(np.float32) for v in half), norm_hh=norm32)
    assert h16.dtype == np.float16
    assert np.isfinite(h16).all()
    np.testing.assert_allclose(h16.astype(np.float32), h32, atol=2e-3)
