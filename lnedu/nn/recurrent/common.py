r"""The pieces the recurrent cells share, as plain functions (no base class): drawing weights, the layer-norm
gains and biases, the input term ``W_x x_t + b`` of all steps at once (with its layer norm or its weight
norm) and its backward, and adding a step's norm gradients into a layer's ``grads``.

A cell class (:mod:`.lstm`, :mod:`.gru`, ...) calls these from its own few operations; the time loops that
call the operations are in :mod:`.bptt`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ... import functional as F
from ... import init as I
from ...backend import get_array_module
from ...functional.ln_variants import VariantNorm, variant_layer_norm, variant_layer_norm_backward
from ...functional.recurrent import Norm, NormCache

__all__ = [
    "draw_weights",
    "check_bias_value",
    "add_ln_params",
    "LNContext",
    "ln_step_context",
    "ln_input_term",
    "ln_input_term_backward",
    "add_norm_grads",
    "add_ln_step_grads",
    "add_fused_norm_grads",
    "add_weight_norm_lengths",
    "weight_norm_input_term",
    "weight_norm_input_term_backward",
    "weight_norm_recurrent_grads",
]


# --------------------------------------------------------------------------------------------------
# parameters


def draw_weights(init):
    """The initializer ``init`` (name or callable), returning C-contiguous arrays (a wide orthogonal draw is a
    transposed view, and the gradient checks, like BLAS calls, want C order)."""
    make = I.get(init)

    def draw(shape, rng, dtype):
        W = make(shape, rng, dtype)
        return get_array_module(W).ascontiguousarray(W)

    return draw


def check_bias_value(name, value):
    """``value`` as a float, or an error naming ``name`` (a gate's initial bias: a finite real number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def add_ln_params(layer, cfg, gates: int, *, candidate: bool = False, memory: bool = False):
    """Register the layer-norm gains (1) and biases (0) that ``cfg`` asks for, in this order: input LN
    ``g_x, b_x`` (gates * H), recurrent LN ``g_h, b_h``, joint LN gain ``g`` (its bias is the cell's ``b``),
    cell LN ``g_c, b_c`` (H; ``memory``: the LSTM). With a GRU/MGU ``candidate`` each LN of the gates has a
    twin (H,) for the candidate: ``g_xhat, b_xhat``, ``g_hhat, b_hhat``, ``g_hat`` (its bias is ``b_hat``)."""
    if cfg is None:
        return
    H, dtype = layer.hidden_size, layer.dtype

    def gain_bias(g, b, n):  # a gain of ones and (unless b is None) a bias of zeros, n units each
        layer.add_param(g, I.ones((n,), dtype=dtype))
        if b is not None:
            layer.add_param(b, I.zeros((n,), dtype=dtype))

    def term_bias(name):  # cfg.center=False: the separate input/recurrent LNs scale only (haste)
        return name if cfg.center else None

    if cfg.separate_input:
        gain_bias("g_x", term_bias("b_x"), gates * H)
        if candidate:
            gain_bias("g_xhat", term_bias("b_xhat"), H)
    if cfg.separate_recurrent:
        gain_bias("g_h", term_bias("b_h"), gates * H)
        if candidate:
            gain_bias("g_hhat", term_bias("b_hhat"), H)
    if cfg.joint_sum:
        gain_bias("g", None, gates * H)
        if candidate:
            gain_bias("g_hat", None, H)
    if cfg.cell and memory:
        gain_bias("g_c", "b_c", H)


def add_weight_norm_lengths(layer):
    """Weight normalization (Salimans & Kingma 2016) of ``W_x`` and ``W_h``: register their columns' lengths
    ``g_x``, ``g_h`` (kH,), initialized to the columns' norms, so the layer starts as the same function."""
    for w, g in (("W_x", "g_x"), ("W_h", "g_h")):
        W = layer.params[w]
        layer.add_param(g, get_array_module(W).sqrt((W * W).sum(axis=0)))


# --------------------------------------------------------------------------------------------------
# the step context of the layer-norm cells (LSTM, GRU, MGU, RNN)


class LNContext(NamedTuple):
    """What every step of one sequence shares in an LSTM, GRU, MGU or RNN (set up once, before the loop).

    ``None`` marks a normalization the layer does not have; the names are the step functions' keywords
    (:func:`lnedu.functional.lstm_step` and its siblings)."""

    W_hh: object  # the recurrent weights: W_h (H, kH); GRU/MGU [W_h | W_hhat] (H, kH + H); weight-normed W_h
    norm_h: Norm | None  # LN of the recurrent term W_h h_{t-1} (g_h, b_h)
    norm_a: Norm | None  # LN of the sum W_x x_t + W_h h_{t-1} (g, b)
    norm_c: Norm | None  # LN of the LSTM's cell on the output path (g_c, b_c)
    norm_hc: Norm | None  # GRU/MGU: LN of the candidate's recurrent term (g_hhat, b_hhat)
    norm_ac: Norm | None  # GRU/MGU: LN of the candidate's sum (g_hat, b_hat)
    wcache: object  # weight norm's cache of W_h (LSTM(weight_norm=True)), else None
    own_da_h: bool  # the recurrent product's gradient differs from the input term's (a norm or a candidate)
    norm_hh: Norm | None = None  # GRU, LNConfig.fuse_candidate: one LN of [W_h h | W_hhat h] (g_h|g_hhat, b_h|b_hhat)


def _layer_norm(layer, g, b, groups=1):
    """The layer norm with gain ``g`` and bias ``b`` (``None`` when the layer has no such parameter): a
    :class:`Norm` for the paper's norms, a :class:`~lnedu.functional.ln_variants.VariantNorm` for another
    denominator or carried cell (``LNConfig.classic`` false)."""
    p, cfg = layer.params, layer.ln
    if cfg.classic:
        return Norm.layer(p[g], p.get(b), cfg.eps, groups)
    return VariantNorm(p[g], p.get(b), cfg.eps, groups, cfg.denominator)


def _normalize(a, norm):
    """``(y, cache)`` of either kind of norm (:func:`_layer_norm`)."""
    return F.normalize(a, norm) if isinstance(norm, Norm) else variant_layer_norm(a, norm)


def _normalize_backward(dy, cache):
    return F.normalize_backward(dy, cache) if isinstance(cache, NormCache) else variant_layer_norm_backward(dy, cache)


def ln_step_context(layer, gates: int, *, candidate: bool = False, memory: bool = False) -> LNContext:
    """The :class:`LNContext` of a layer whose ``ln`` config and parameters are those of :func:`add_ln_params`."""
    p, cfg = layer.params, layer.ln
    xp = get_array_module(p["W_h"])
    W_hh = xp.concatenate([p["W_h"], p["W_hhat"]], axis=1) if candidate else p["W_h"]
    norm_h = norm_a = norm_c = norm_hc = norm_ac = norm_hh = None
    if cfg is not None and cfg.fuse_candidate:  # one LN of the gates' and the candidate's recurrent products
        norm_hh = _fused_norm(layer, "g_h", "b_h", "g_hhat", "b_hhat")
    elif cfg is not None:
        groups = gates if cfg.per_gate else 1  # per gate: statistics over each gate's H units
        if cfg.separate_recurrent:
            norm_h = _layer_norm(layer, "g_h", "b_h", groups)
            if candidate:
                norm_hc = _layer_norm(layer, "g_hhat", "b_hhat")
        if cfg.joint_sum:
            norm_a = _layer_norm(layer, "g", "b", groups)
            if candidate:
                norm_ac = _layer_norm(layer, "g_hat", "b_hat")
        if cfg.cell and memory:
            norm_c = _layer_norm(layer, "g_c", "b_c")
    return LNContext(W_hh, norm_h, norm_a, norm_c, norm_hc, norm_ac, None, candidate or norm_h is not None, norm_hh)


def _fused_norm(layer, g, b, g_hat, b_hat):
    """One layer norm over the gates and the candidate (``LNConfig.fuse_candidate``): the gains ``[g | g_hat]``
    and biases ``[b | b_hat]`` of the separate LNs side by side (``None`` without biases)."""
    p, xp = layer.params, get_array_module(layer.params[g])
    bias = xp.concatenate([p[b], p[b_hat]]) if b in p else None
    return Norm.layer(xp.concatenate([p[g], p[g_hat]]), bias, layer.ln.eps)


def add_fused_norm_grads(layer, pair, names=("g_h", "b_h", "g_hhat", "b_hhat")):
    """Split the (3H) gradients of a fused norm (:func:`_fused_norm`) into the gates' and the candidate's."""
    if pair is None:
        return
    kH = 2 * layer.hidden_size
    dg, db = pair
    add_norm_grads(layer.grads, names, (dg[:kH], None if db is None else db[:kH],
                                        dg[kH:], None if db is None else db[kH:]))


def add_norm_grads(grads, names, pair):
    """Add a step's ``(dgain, dbias)`` of one norm into ``grads`` under ``names`` (``None``: not a parameter)."""
    if pair is None:
        return
    for name, g in zip(names, pair):
        if name is not None and g is not None:
            grads[name] += g


def add_ln_step_grads(layer, g):
    """Add the norm gradients of one step's grads ``g`` (``LSTMStepGrads``, ``GRUStepGrads``, ...)."""
    for field, names in (("norm_h", ("g_h", "b_h")), ("norm_hc", ("g_hhat", "b_hhat")), ("norm_a", ("g", "b")),
                         ("norm_ac", ("g_hat", "b_hat")), ("norm_c", ("g_c", "b_c"))):
        add_norm_grads(layer.grads, names, getattr(g, field, None))


# --------------------------------------------------------------------------------------------------
# the input term of all T steps at once


def ln_input_term(layer, x, gates: int, *, candidate: bool = False):
    """``A[t] = N_x(x_t W_x) + b`` for every t, one ``(T*B, D) @ (D, K)`` product (GRU/MGU: ``[W_x | W_xhat]``,
    bias ``[b | b_hat]``); with a joint LN the bias belongs to that LN (in the step) and is not added here.
    Returns ``A`` (T, B, K) and the cache of :func:`ln_input_term_backward`."""
    T, B, D = x.shape
    kH = gates * layer.hidden_size
    xp = get_array_module(x)
    p, cfg = layer.params, layer.ln
    X = x.reshape(T * B, D)
    W = xp.concatenate([p["W_x"], p["W_xhat"]], axis=1) if candidate else p["W_x"]
    A = X @ W
    b = xp.concatenate([p["b"], p["b_hat"]]) if candidate else p["b"]
    caches = None
    if cfg is not None and cfg.separate_input:
        if cfg.input_bias != "after":  # LN(W_x x + b): the Theano lnlstm_layer, the Keras port
            A += b
        norm_x = _layer_norm(layer, "g_x", "b_x", gates if cfg.per_gate else 1)
        if candidate and cfg.fuse_candidate:  # one LN of [W_x x | W_xhat x] (haste's GRU)
            A, cg = F.normalize(A, _fused_norm(layer, "g_x", "b_x", "g_xhat", "b_xhat"))
            caches = ("fused", cg)
        elif candidate:
            yg, cg = _normalize(A[:, :kH], norm_x)
            yc, cc = _normalize(A[:, kH:], _layer_norm(layer, "g_xhat", "b_xhat"))
            A[:, :kH] = yg
            A[:, kH:] = yc
            caches = (cg, cc)
        else:
            A, cg = _normalize(A, norm_x)
            caches = (cg,)
    if cfg is None or (not cfg.joint_sum and cfg.input_bias != "before"):
        A += b  # after the input LN; with joint_sum, b is the joint LN's bias (inside the step)
    return A.reshape(T, B, A.shape[-1]), (X, W, caches)


def ln_input_term_backward(layer, dA, icache, gates: int, *, candidate: bool = False):
    """Backward of :func:`ln_input_term`: accumulates ``db``, the input LN's gradients and ``dW_x`` (one
    product each) and returns ``dx`` (T, B, D)."""
    X, W, caches = icache
    T, B, K = dA.shape
    kH = gates * layer.hidden_size
    dA = dA.reshape(T * B, K)
    cfg, grads = layer.ln, layer.grads

    def add_db(dA):
        db = dA.sum(axis=0)
        grads["b"] += db[:kH]
        if candidate:
            grads["b_hat"] += db[kH:]

    if cfg is None or (not cfg.joint_sum and cfg.input_bias != "before"):
        add_db(dA)
    if caches is not None:
        if caches[0] == "fused":
            dA, dgg, dgb = F.normalize_backward(dA, caches[1])
            add_fused_norm_grads(layer, (dgg, dgb), ("g_x", "b_x", "g_xhat", "b_xhat"))
        elif candidate:
            dg, dgg, dgb = _normalize_backward(dA[:, :kH], caches[0])
            dc, dcg, dcb = _normalize_backward(dA[:, kH:], caches[1])
            dA[:, :kH] = dg
            dA[:, kH:] = dc
            add_norm_grads(grads, ("g_x", "b_x", "g_xhat", "b_xhat"), (dgg, dgb, dcg, dcb))
        else:
            dA, dgg, dgb = _normalize_backward(dA, caches[0])
            add_norm_grads(grads, ("g_x", "b_x"), (dgg, dgb))
        if cfg.input_bias != "after":  # b inside the input LN
            add_db(dA)
    dW = X.T @ dA
    grads["W_x"] += dW[:, :kH]
    if candidate:
        grads["W_xhat"] += dW[:, kH:]
    return (dA @ W.T).reshape(T, B, X.shape[1])


def weight_norm_input_term(layer, x):
    """``A[t] = x_t (g_x v_x / ||v_x||) + b`` for every t, with ``W_x`` weight-normalized per unit (column):
    :func:`lnedu.functional.weight_norm`, then one product. Returns ``A`` (T, B, K) and its cache."""
    T, B, D = x.shape
    p = layer.params
    W, wcache = F.weight_norm(p["W_x"], p["g_x"])
    X = x.reshape(T * B, D)
    A = X @ W
    A += p["b"]
    return A.reshape(T, B, -1), (X, W, wcache)


def weight_norm_input_term_backward(layer, dA, icache):
    """Backward of :func:`weight_norm_input_term`: the weight gradient is formed once, then
    :func:`lnedu.functional.weight_norm_backward` splits it into the direction's and the length's."""
    X, W, wcache = icache
    T, B, K = dA.shape
    dA = dA.reshape(T * B, K)
    layer.grads["b"] += dA.sum(axis=0)
    dW, dg = F.weight_norm_backward(X.T @ dA, wcache)
    layer.grads["W_x"] += dW
    layer.grads["g_x"] += dg
    return (dA @ W.T).reshape(T, B, X.shape[1])


def weight_norm_recurrent_grads(layer, wcache, Hs, dAh):
    """``dW_h = sum_t h_{t-1}^T da_{h,t}`` as one product, split by weight norm into ``dW_h`` (direction) and
    ``dg_h`` (length)."""
    T1, B, H = Hs.shape
    dW, dg = F.weight_norm_backward(Hs[:-1].reshape(-1, H).T @ dAh.reshape(-1, dAh.shape[-1]), wcache)
    layer.grads["W_h"] += dW
    layer.grads["g_h"] += dg
