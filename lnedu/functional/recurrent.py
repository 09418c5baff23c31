r"""Recurrent cells one time step at a time: forward/backward pairs that read like the papers' equations.

A recurrent *layer* (:mod:`lnedu.nn.recurrent`) splits every cell into the part that does not depend on the
recurrence, the input term ``W_x x_t`` (plus bias, normalized when asked), computed for all ``T`` steps in one
product before the loop, and the part that does: one step, here. So a step takes ``a_x``, the step's input
term, the previous state and the recurrent weights, and returns the new state and a cache::

    h, c, cache = lstm_step(a_x[t], h, c, W_h, norm_h=Norm.layer(g_h, b_h), norm_c=Norm.layer(g_c, b_c))
    g = lstm_step_backward(dh, dc, cache)        # g.a_x, g.h_prev, g.c_prev, g.W_h, g.norm_h, ...

Where a normalization sits in a cell is given by :class:`Norm` values: ``None`` (none), a layer norm
(Ba, Kiros & Hinton 2016), a batch norm with the mini-batch's statistics (Cooijmans et al. 2017), or a fixed
affine map (batch norm's population statistics at inference; NormProp's variance constants). One cell
function therefore serves the baseline, every layer-norm placement, BN-LSTM and NormProp LSTM, and the
equations in its docstring are the whole story.

Backprop through time needs ``dW_h = sum_t h_{t-1}^T da_{h,t}`` where ``da_{h,t}`` is the gradient of the
recurrent product ``a_{h,t} = h_{t-1} W_h``. A step's backward returns that ``a_h`` gradient; with
``weight_grad=False`` it skips its own small ``h_{t-1}^T da_h`` product, so that a layer can collect the
steps' ``a_h`` gradients in a ``(T, B, kH)`` buffer and form ``dW_h`` with one large product after the loop.

Shapes: ``B`` sequences in a batch, ``H`` hidden units, ``k`` stacked gates; weights follow lnedu's
``x @ W`` convention, so ``W_h`` is ``(H, kH)`` and column ``j`` holds unit ``j``'s incoming weights.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import check_float_array, check_positive
from ..backend import get_array_module
from .norms import (
    batch_norm,
    batch_norm_backward,
    layer_norm,
    layer_norm_backward,
    standardize,
)

__all__ = [
    "Norm",
    "NormCache",
    "normalize",
    "normalize_backward",
    "StepBatchNormCache",
    "stepwise_batch_norm",
    "stepwise_batch_norm_backward",
    "LSTMStepCache",
    "LSTMStepGrads",
    "lstm_step",
    "lstm_step_backward",
    "GRUStepCache",
    "GRUStepGrads",
    "gru_step",
    "gru_step_backward",
    "MGUStepCache",
    "MGUStepGrads",
    "mgu_step",
    "mgu_step_backward",
    "RNNStepCache",
    "RNNStepGrads",
    "rnn_step",
    "rnn_step_backward",
    "gaussian_moments",
    "normprop_variances",
]

_KINDS = ("layer", "batch", "fixed")


# --------------------------------------------------------------------------------------------------
# normalizations inside a cell


class Norm(NamedTuple):
    """One normalization of a pre-activation inside a cell: ``y = gain * (a - mean) / sqrt(var + eps) + bias``.

    ``kind`` says where the statistics come from:

    * ``"layer"``: mean and variance over the units of each row (each training case), Eq. 3 of the LN
      paper. With ``groups > 1`` the ``K`` units split into ``groups`` equal slices (one per gate) with their
      own statistics;
    * ``"batch"``: per unit, over the rows of the mini-batch (training-mode batch norm);
    * ``"fixed"``: the given ``mean`` and ``var`` (batch norm's population statistics; NormProp's constant
      ``Var[c]``), which are constants for the backward. ``mean=None`` means 0 and ``var=None`` means 1.

    ``gain``, ``bias``: ``(K,)`` arrays, or ``None`` for 1 and 0. Build one with :meth:`layer`,
    :meth:`batch` or :meth:`fixed`.
    """

    kind: str
    gain: object = None
    bias: object = None
    eps: float = 1e-5
    groups: int = 1
    mean: object = None
    var: object = None

    @classmethod
    def layer(cls, gain=None, bias=None, eps: float = 1e-5, groups: int = 1) -> Norm:
        return cls("layer", gain, bias, eps, int(groups))

    @classmethod
    def batch(cls, gain=None, bias=None, eps: float = 1e-5) -> Norm:
        return cls("batch", gain, bias, eps)

    @classmethod
    def fixed(cls, gain=None, bias=None, *, mean=None, var=None, eps: float = 0.0) -> Norm:
        return cls("fixed", gain, bias, eps, 1, mean, var)


class NormCache(NamedTuple):
    """What :func:`normalize_backward` needs: the kind, the wrapped pair's cache, and the affine parameters."""

    kind: str
    inner: object  # LayerNormCache / BatchNormCache, or (xhat, rstd) for "fixed"
    gain: object
    groups: int
    has_bias: bool


def normalize(a, norm: Norm):
    r"""Apply ``norm`` (a :class:`Norm`) to the pre-activations ``a`` of shape (N, K); returns ``(y, cache)``.

    Layer norm and batch norm are :func:`~lnedu.functional.layer_norm` and
    :func:`~lnedu.functional.batch_norm`. For per-gate layer norm (``groups = G``) the rows are viewed as
    ``(N, G, K/G)``, standardized per slice, and the ``(K,)`` gain and bias applied after.
    A "fixed" norm is the affine map :math:`y = g\odot(a-m)/\sqrt{v+\epsilon} + b` with constant m, v.
    """
    kind, gain, bias, eps, groups, mean, var = norm
    if kind == "layer":
        if groups == 1:
            y, inner = layer_norm(a, gain, bias, eps)
            return y, NormCache(kind, inner, gain, 1, bias is not None)
        N, K = a.shape
        if K % groups:
            raise ValueError(f"norm.groups: expected a divisor of the {K} units, got {groups}")
        y, inner = layer_norm(a.reshape(N, groups, K // groups), None, None, eps)
        y = y.reshape(N, K)
        if gain is not None:
            y *= gain
        if bias is not None:
            y += bias
        return y, NormCache(kind, inner, gain, groups, bias is not None)
    if kind == "batch":
        y, inner = batch_norm(a, gain, bias, eps)
        return y, NormCache(kind, inner, gain, 1, bias is not None)
    if kind == "fixed":
        xp = get_array_module(a)
        if var is None:
            rstd = 1.0 / math.sqrt(1.0 + eps)
        elif isinstance(var, (int, float)):
            rstd = 1.0 / math.sqrt(float(var) + eps)
        else:
            rstd = 1.0 / xp.sqrt(var + eps)
        xhat = a - mean if mean is not None else a.copy()
        xhat *= rstd
        y = xhat * gain if gain is not None else xhat.copy()
        if bias is not None:
            y += bias
        return y, NormCache(kind, (xhat, rstd), gain, 1, bias is not None)
    raise ValueError(f"norm.kind: expected one of {_KINDS}, got {kind!r}")


def normalize_backward(dy, cache: NormCache):
    r"""Gradients of :func:`normalize`: ``(da, dgain, dbias)`` (``None`` for a gain or bias that was ``None``).

    Layer and batch norm defer to their pairs. Per-gate layer norm: ``dgain = sum_rows(dy * xhat)``,
    ``dbias = sum_rows(dy)``, then the standardization's backward (gain 1) on ``dy * gain`` per slice.
    A fixed norm is affine in ``a``: ``da = dy * gain / sqrt(v + eps)``.
    """
    kind, inner, gain, groups, has_bias = cache
    if kind == "layer" and groups == 1:
        da, dgain, dbias = layer_norm_backward(dy, inner)
    elif kind == "layer":
        N, K = dy.shape
        xhat = inner.xhat.reshape(N, K)
        dgain = (dy * xhat).sum(axis=0) if gain is not None else None
        dbias = dy.sum(axis=0)
        dxhat = dy * gain if gain is not None else dy
        da = layer_norm_backward(dxhat.reshape(N, groups, K // groups), inner)[0].reshape(N, K)
    elif kind == "batch":
        da, dgain, dbias = batch_norm_backward(dy, inner)
    else:
        xhat, rstd = inner
        K = dy.shape[-1]
        dgain = (dy * xhat).reshape(-1, K).sum(axis=0) if gain is not None else None
        dbias = dy.reshape(-1, K).sum(axis=0)
        da = dy * (gain * rstd) if gain is not None else dy * rstd
    return da, dgain, (dbias if has_bias else None)


class StepBatchNormCache(NamedTuple):
    xhat: object  # (T, B, K)
    rstd: object  # (T, 1, K)
    gain: object
    mean: object  # (T, K) each step's batch mean
    var: object  # (T, K) each step's (biased) batch variance


def stepwise_batch_norm(a, gain, bias=None, eps: float = 1e-5):
    r"""Batch norm of ``a`` (T, B, K) with separate statistics for every time step (Cooijmans et al., Eq. 5).

    :math:`y_{t} = g\odot(a_{t}-\mu_t)/\sqrt{\sigma_t^2+\epsilon} + b`, with :math:`\mu_t, \sigma_t^2` the mean
    and biased variance over the B rows of step t: the same as :func:`~lnedu.functional.batch_norm` on each
    ``a[t]``, done for all steps at once. Returns ``(y, cache)``; the cache holds the per-step statistics.
    """
    check_float_array("a", a, ndim=3)
    if a.shape[1] < 2:
        raise ValueError(f"a: batch norm needs a batch of at least 2 along axis 1, got {a.shape[1]}")
    eps = check_positive("eps", eps)
    xhat, rstd, mean, var = standardize(a, eps, axis=1)
    y = xhat * gain if gain is not None else xhat.copy()
    if bias is not None:
        y += bias
    return y, StepBatchNormCache(xhat, rstd, gain, mean[:, 0], var[:, 0])


def stepwise_batch_norm_backward(dy, cache: StepBatchNormCache):
    r"""Gradients of :func:`stepwise_batch_norm`: ``(da, dgain, dbias)``; the batch-norm backward per step,

    :math:`da_t = \frac{1}{\sigma_t}\big(d\hat a_t - \overline{d\hat a_t}
    - \hat a_t\,\overline{d\hat a_t\odot\hat a_t}\big)`
    with the bars means over the batch axis and :math:`d\hat a = dy\odot g`.
    """
    xhat, rstd, gain, _, _ = cache
    K = dy.shape[-1]
    dgain = (dy * xhat).reshape(-1, K).sum(axis=0)
    dbias = dy.reshape(-1, K).sum(axis=0)
    dxhat = dy * gain if gain is not None else dy.copy()
    proj = (dxhat * xhat).mean(axis=1, keepdims=True)
    dxhat -= dxhat.mean(axis=1, keepdims=True)
    dxhat -= xhat * proj
    dxhat *= rstd
    return dxhat, (dgain if gain is not None else None), dbias


# --------------------------------------------------------------------------------------------------
# small helpers


def _sigmoid_(x):
    """Logistic sigmoid in place, as ``(1 + tanh(x/2)) / 2``: no overflow, and no temporary array.

    Gate values only matter to absolute precision (they multiply O(1) quantities), which this form keeps;
    :func:`lnedu.functional.sigmoid` keeps relative precision in the far tails at the cost of temporaries.
    """
    xp = get_array_module(x)
    x *= 0.5
    xp.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


def _sigmoid_grad_(d, s):
    """``d *= s (1 - s)`` in place: the chain rule through ``s = sigmoid(a)``."""
    t = 1.0 - s
    t *= s
    d *= t
    return d


def _tanh_grad_(d, y):
    """``d *= 1 - y^2`` in place: the chain rule through ``y = tanh(a)``."""
    t = y * y
    t *= d
    d -= t
    return d


def _norm(a, norm):
    """``normalize`` when a norm is given, else ``a`` itself (and no cache)."""
    if norm is None:
        return a, None
    return normalize(a, norm)


def _norm_back(d, cache):
    """``(d, None)`` through a missing norm, else ``(da, (dgain, dbias))``."""
    if cache is None:
        return d, None
    da, dg, db = normalize_backward(d, cache)
    return da, (dg, db)


def _into(out, value):
    """Copy ``value`` into ``out`` (when given and different) and return the array that holds the result."""
    if out is None or value is out:
        return value
    out[...] = value
    return out


def _fused():
    """:mod:`lnedu.cuda.recurrent`, the fused CUDA steps; imported only once a CuPy array reaches a step."""
    from ..cuda import recurrent  # noqa: PLC0415  (CUDA code only loads for CuPy arrays)

    return recurrent


# --------------------------------------------------------------------------------------------------
# LSTM


class LSTMStepCache(NamedTuple):
    h_prev: object  # (B, H)
    c_prev: object  # (B, H)
    W_h: object  # (H, 4H)
    gates: object  # (B, 4H): sigma(a_f), sigma(a_i), sigma(a_o), tanh(a_g)
    tanh_c: object  # (B, H): tanh(N_c(c_t))
    norm_h: object  # NormCache or None
    norm_a: object
    norm_c: object
    out_scale: object  # float or None


class LSTMStepGrads(NamedTuple):
    """Gradients of one LSTM step, in the forward's argument order, then the recurrent product's."""

    a_x: object  # (B, 4H)
    h_prev: object  # (B, H)
    c_prev: object  # (B, H)
    W_h: object  # (H, 4H), or None with weight_grad=False
    norm_h: object  # (dgain, dbias) of norm_h, or None
    norm_a: object
    norm_c: object
    a_h: object  # (B, 4H): gradient of a_h = h_prev @ W_h


def lstm_step(a_x, h_prev, c_prev, W_h, *, norm_h=None, norm_a=None, norm_c=None, out_scale=None):
    r"""One LSTM step with optional normalizations (LN paper, appendix Eq. 17-22; gate order f, i, o, g).

    .. math::
        a_h &= W_h h_{t-1} \qquad a = a_x + N_h(a_h) \qquad a \leftarrow N_a(a)\\
        (f, i, o, g) &= (\sigma(a_f), \sigma(a_i), \sigma(a_o), \tanh(a_g))\\
        c_t &= f\odot c_{t-1} + i\odot g\\
        h_t &= s\; o\odot\tanh(N_c(c_t))

    ``a_x`` (B, 4H) is the input term, already holding ``W_x x_t + b`` (or ``LN(W_x x_t) + b``);
    ``h_prev``, ``c_prev`` (B, H); ``W_h`` (H, 4H). Each ``N`` is a :class:`Norm` or ``None``:

    * baseline (Eq. 17-19): all ``None``;
    * LN-LSTM (Eq. 20-22): ``norm_h = LN(.; g_h, b_h)`` over the 4H stacked gates and ``norm_c = LN(.; g_c, b_c)``
      (the input's LN is in ``a_x``); the carried cell ``c_t`` stays un-normalized, only the output path sees LN;
    * Eq. 4's placement: ``norm_a = LN(.; g, b)`` of the sum;  DRAW (Eq. 29-31): ``norm_c`` only;
    * BN-LSTM (Cooijmans Eq. 6-8): batch norms; NormProp (Laurent Eq. 15): a fixed ``norm_c`` of
      ``gamma_c / sqrt(Var[c])`` and ``out_scale = 1 / sqrt(Var[h])`` (the ``s`` above; ``None`` is 1).

    Returns ``(h_t, c_t, cache)``. For CuPy arrays the LN-LSTM and the baseline run as one fused kernel
    after the product (:mod:`lnedu.cuda.recurrent`), with a cache of their own that the backward recognizes.
    """
    xp = get_array_module(a_x)
    if xp is not np and (fused := _fused()).lstm_supported(a_x, h_prev, c_prev, W_h, norm_h=norm_h, norm_a=norm_a,
                                                           norm_c=norm_c, out_scale=out_scale):
        return fused.lstm_step(a_x, h_prev, c_prev, W_h, norm_h=norm_h, norm_c=norm_c)
    H = h_prev.shape[-1]
    a, ch = _norm(h_prev @ W_h, norm_h)  # N_h(W_h h_{t-1}), a fresh array: what follows works in place
    a += a_x
    a, ca = _norm(a, norm_a)
    gates = a  # (B, 4H): f, i, o, g
    _sigmoid_(gates[:, : 3 * H])
    xp.tanh(gates[:, 3 * H:], out=gates[:, 3 * H:])
    f, i, o, g = (gates[:, k * H: (k + 1) * H] for k in range(4))
    c = f * c_prev  # c_t = f c_{t-1} + i g
    c += i * g
    c_hat, cc = _norm(c, norm_c)  # only the output path sees N_c; c_t is carried as it is
    tanh_c = xp.tanh(c_hat)
    h = o * tanh_c
    if out_scale is not None:
        h *= out_scale
    return h, c, LSTMStepCache(h_prev, c_prev, W_h, gates, tanh_c, ch, ca, cc, out_scale)


def lstm_step_backward(dh, dc, cache: LSTMStepCache, *, weight_grad: bool = True, out=None) -> LSTMStepGrads:
    r"""Backward of :func:`lstm_step`: an :class:`LSTMStepGrads` (``dh``, ``dc``: gradients of h_t and c_t).

    Walking Eq. 17-22 in reverse: :math:`do = dh\odot\tanh(\hat c)`, :math:`d\hat c = dh\odot o\odot(1-\tanh^2\hat c)`
    pulled back through :math:`N_c`, then :math:`dc_t` (both paths) gives :math:`df = dc_t\odot c_{t-1}`,
    :math:`di = dc_t\odot g`, :math:`dg = dc_t\odot i` and :math:`dc_{t-1} = dc_t\odot f`; the gate nonlinearities
    multiply by :math:`\sigma(1-\sigma)` or :math:`1-\tanh^2`. Through the norms: ``da_x = N_a'(da)``,
    ``da_h = N_h'(da_x)``, and ``dh_{t-1} = da_h W_h^T``. ``dc=None`` means zero.
    ``out``: an optional (B, 4H) array that receives ``da_x`` (a layer's per-step slice of its buffer).
    A cache of the fused forward (CuPy) takes the fused backward.
    """
    if type(cache) is not LSTMStepCache and isinstance(cache, (fused := _fused()).FusedLSTMCache):
        return fused.lstm_step_backward(dh, dc, cache, weight_grad=weight_grad, out=out)  # only it reads that cache
    h_prev, c_prev, W_h, gates, tanh_c, ch, ca, cc, out_scale = cache
    xp = get_array_module(dh)
    H = h_prev.shape[-1]
    f, i, o, g = (gates[:, k * H: (k + 1) * H] for k in range(4))
    if out_scale is not None:  # h = s o tanh(c_hat)
        dh = dh * out_scale
    dc_hat = dh * o
    _tanh_grad_(dc_hat, tanh_c)  # d c_hat = dh o (1 - tanh^2 c_hat)
    dc_t, gc = _norm_back(dc_hat, cc)
    if dc is not None:  # c_t also reaches the next step directly
        dc_t = dc_t + dc
    # the four gate gradients, side by side in da as the gates are in a
    da = out if (out is not None and ca is None) else xp.empty_like(gates)
    xp.multiply(dc_t, c_prev, out=da[:, :H])  # df = dc_t c_{t-1}
    xp.multiply(dc_t, g, out=da[:, H: 2 * H])  # di = dc_t g
    xp.multiply(dh, tanh_c, out=da[:, 2 * H: 3 * H])  # do = dh tanh(c_hat)
    xp.multiply(dc_t, i, out=da[:, 3 * H:])  # dg = dc_t i
    _sigmoid_grad_(da[:, : 3 * H], gates[:, : 3 * H])  # through sigma: * sigma (1 - sigma)
    _tanh_grad_(da[:, 3 * H:], g)  # through tanh: * (1 - g^2)
    dc_prev = dc_t * f
    da_x, ga = _norm_back(da, ca)
    da_x = _into(out, da_x)
    da_h, gh = _norm_back(da_x, ch)
    dh_prev = da_h @ W_h.T
    dW_h = h_prev.T @ da_h if weight_grad else None
    return LSTMStepGrads(da_x, dh_prev, dc_prev, dW_h, gh, ga, gc, da_h)


# --------------------------------------------------------------------------------------------------
# GRU


class GRUStepCache(NamedTuple):
    h_prev: object  # (B, H)
    W_hh: object  # (H, 3H) = [W_h | W_hc]
    reset: str
    gates: object  # (B, 2H): z, r
    u: object  # (B, H): N_hc(U h) ("after") or unused
    rh: object  # (B, H): r * h_prev ("before"), the candidate product's input; None for "after"
    h_hat: object  # (B, H)
    norm_h: object
    norm_hc: object
    norm_a: object
    norm_ac: object


class GRUStepGrads(NamedTuple):
    a_x: object  # (B, 3H)
    h_prev: object  # (B, H)
    W_hh: object  # (H, 3H), or None with weight_grad=False
    norm_h: object
    norm_hc: object
    norm_a: object
    norm_ac: object
    a_hh: object  # (B, 3H): gradients of h_prev W_h and of (h_prev or r*h_prev) W_hc


def gru_step(a_x, h_prev, W_hh, *, reset: str = "after", norm_h=None, norm_hc=None, norm_a=None, norm_ac=None):
    r"""One GRU step (LN paper, appendix Eq. 23-28; gate order z, r), the reset after or before ``U``.

    .. math::
        (a_z; a_r) &= N_a\big(a_x^{zr} + N_h(W_h h_{t-1})\big), \qquad z = \sigma(a_z),\ r = \sigma(a_r)\\
        \text{after: } \hat h_t &= \tanh N_{ac}\big(a_x^{c} + r\odot N_{hc}(U h_{t-1})\big)\qquad
        \text{before: } \hat h_t = \tanh N_{ac}\big(a_x^{c} + N_{hc}(U (r\odot h_{t-1}))\big)\\
        h_t &= (1-z)\odot h_{t-1} + z\odot\hat h_t

    The "after" form is the LN paper's (Eq. 27: the reset multiplies the normalized ``U h``); "before" is
    Cho et al.'s v3 / Hafner's cell. Note the update convention of Eq. 28, ``(1-z) h + z h_hat``; the LN
    paper's released code uses the opposite, ``u h + (1-u) h_hat``.

    ``a_x`` (B, 3H) = ``[W_x x_t + b | W_xc x_t + b_c]`` (normalized parts included); ``W_hh`` (H, 3H) is
    ``[W_h | W_hc]``, the gates' recurrent weights and the candidate's ``U`` side by side, so the "after" form
    takes one product per step. LN paper: ``norm_h``, ``norm_hc`` are LN(.; alpha_1, beta_1) and
    LN(.; alpha_4, beta_4) (Eq. 26-27); Eq. 4's placement uses ``norm_a`` and ``norm_ac``.
    Returns ``(h_t, cache)``. For CuPy arrays the LN paper's GRU and the baseline (reset after) run as one
    fused kernel after the product (:mod:`lnedu.cuda.recurrent`).
    """
    xp = get_array_module(a_x)
    if xp is not np and (fused := _fused()).gru_supported(a_x, h_prev, W_hh, reset=reset, norm_h=norm_h,
                                                          norm_hc=norm_hc, norm_a=norm_a, norm_ac=norm_ac):
        return fused.gru_step(a_x, h_prev, W_hh, norm_h=norm_h, norm_hc=norm_hc)
    H = h_prev.shape[-1]
    if reset == "after":
        a_hh = h_prev @ W_hh
        rec, ch = _norm(a_hh[:, : 2 * H], norm_h)
        u, chc = _norm(a_hh[:, 2 * H:], norm_hc)
    elif reset == "before":
        rec, ch = _norm(h_prev @ W_hh[:, : 2 * H], norm_h)
    else:
        raise ValueError(f"reset: expected 'after' or 'before', got {reset!r}")
    a = a_x[:, : 2 * H] + rec
    gates, ca = _norm(a, norm_a)
    _sigmoid_(gates)
    z, r = gates[:, :H], gates[:, H:]
    if reset == "after":
        rh = None
        s = r * u
    else:
        rh = r * h_prev
        s, chc = _norm(rh @ W_hh[:, 2 * H:], norm_hc)
        u = None
    s += a_x[:, 2 * H:]
    h_hat, cac = _norm(s, norm_ac)
    xp.tanh(h_hat, out=h_hat)
    h = h_hat - h_prev
    h *= z
    h += h_prev
    return h, GRUStepCache(h_prev, W_hh, reset, gates, u, rh, h_hat, ch, chc, ca, cac)


def gru_step_backward(dh, cache: GRUStepCache, *, weight_grad: bool = True, out=None) -> GRUStepGrads:
    r"""Backward of :func:`gru_step`: a :class:`GRUStepGrads`.

    From :math:`h_t = h_{t-1} + z\odot(\hat h - h_{t-1})`: :math:`dz = dh\odot(\hat h - h_{t-1})`,
    :math:`d\hat h = dh\odot z`, and :math:`dh_{t-1} = dh\odot(1-z)` plus the paths through the products.
    After: :math:`dr = ds\odot u`, :math:`du = ds\odot r`. Before: :math:`d(rh) = da_{hc} U^T` gives
    :math:`dr = d(rh)\odot h_{t-1}` and adds :math:`d(rh)\odot r` to :math:`dh_{t-1}`.
    A cache of the fused forward (CuPy) takes the fused backward.
    """
    if type(cache) is not GRUStepCache and isinstance(cache, (fused := _fused()).FusedGRUCache):
        return fused.gru_step_backward(dh, cache, weight_grad=weight_grad, out=out)  # only it reads that cache
    h_prev, W_hh, reset, gates, u, rh, h_hat, ch, chc, ca, cac = cache
    xp = get_array_module(dh)
    H = h_prev.shape[-1]
    z, r = gates[:, :H], gates[:, H:]
    da_x = out if out is not None else xp.empty((dh.shape[0], 3 * H), dtype=dh.dtype)
    da_hh = xp.empty_like(da_x)
    dz = h_hat - h_prev
    dz *= dh
    dh_prev = dh - dh * z
    ds = dh * z
    _tanh_grad_(ds, h_hat)
    ds, gac = _norm_back(ds, cac)
    da_x[:, 2 * H:] = ds
    if reset == "after":
        dr = ds * u
        du, ghc = _norm_back(ds * r, chc)
        da_hh[:, 2 * H:] = du
    else:
        da_c, ghc = _norm_back(ds, chc)
        da_hh[:, 2 * H:] = da_c
        drh = da_c @ W_hh[:, 2 * H:].T
        dr = drh * h_prev
        drh *= r
        dh_prev += drh
    dgates = xp.concatenate([dz, dr], axis=1)
    _sigmoid_grad_(dgates, gates)
    dgates, ga = _norm_back(dgates, ca)
    da_x[:, : 2 * H] = dgates
    da_hg, gh = _norm_back(dgates, ch)
    da_hh[:, : 2 * H] = da_hg
    if reset == "after":
        dh_prev += da_hh @ W_hh.T
        dW = h_prev.T @ da_hh if weight_grad else None
    else:
        dh_prev += da_hg @ W_hh[:, : 2 * H].T
        dW = xp.concatenate([h_prev.T @ da_hg, rh.T @ da_hh[:, 2 * H:]], axis=1) if weight_grad else None
    return GRUStepGrads(da_x, dh_prev, dW, gh, ghc, ga, gac, da_hh)


# --------------------------------------------------------------------------------------------------
# MGU


class MGUStepCache(NamedTuple):
    h_prev: object
    W_hh: object  # (H, 2H) = [W_h | W_hc]
    f: object  # (B, H) the forget gate
    fh: object  # (B, H) f * h_prev, the candidate product's input
    h_hat: object
    norm_h: object
    norm_hc: object
    norm_a: object
    norm_ac: object


class MGUStepGrads(NamedTuple):
    a_x: object  # (B, 2H)
    h_prev: object
    W_hh: object  # (H, 2H) or None
    norm_h: object
    norm_hc: object
    norm_a: object
    norm_ac: object
    a_hh: object  # (B, 2H): gradients of h_prev W_h and of (f * h_prev) W_hc


def mgu_step(a_x, h_prev, W_hh, *, norm_h=None, norm_hc=None, norm_a=None, norm_ac=None):
    r"""One minimal-gated-unit step (Zhou et al. 2016): a single gate ``f`` does the GRU's reset and update.

    .. math::
        f_t &= \sigma\,N_a\big(a_x^f + N_h(W_h h_{t-1})\big)\\
        \hat h_t &= \tanh N_{ac}\big(a_x^c + N_{hc}(U(f_t\odot h_{t-1}))\big)\\
        h_t &= (1-f_t)\odot h_{t-1} + f_t\odot\hat h_t

    ``a_x`` (B, 2H) = ``[W_x x_t + b | W_xc x_t + b_c]``; ``W_hh`` (H, 2H) = ``[W_h | W_hc]``. Layer norm goes
    where it goes in the LN paper's GRU (separate LNs of ``W_h h`` and ``U(f h)``; the input LNs are in
    ``a_x``), an analogy with Eq. 26-27: no paper places LN in the MGU.
    """
    xp = get_array_module(a_x)
    H = h_prev.shape[-1]
    rec, ch = _norm(h_prev @ W_hh[:, :H], norm_h)
    a = a_x[:, :H] + rec
    f, ca = _norm(a, norm_a)
    _sigmoid_(f)
    fh = f * h_prev
    s, chc = _norm(fh @ W_hh[:, H:], norm_hc)
    s += a_x[:, H:]
    h_hat, cac = _norm(s, norm_ac)
    xp.tanh(h_hat, out=h_hat)
    h = h_hat - h_prev
    h *= f
    h += h_prev
    return h, MGUStepCache(h_prev, W_hh, f, fh, h_hat, ch, chc, ca, cac)


def mgu_step_backward(dh, cache: MGUStepCache, *, weight_grad: bool = True, out=None) -> MGUStepGrads:
    r"""Backward of :func:`mgu_step`: an :class:`MGUStepGrads`.

    The gate has two uses, so its gradient adds two paths: :math:`df = dh\odot(\hat h - h_{t-1}) + d(fh)\odot h_{t-1}`
    with :math:`d(fh) = da_{hc} U^T`; and :math:`dh_{t-1} = dh\odot(1-f) + d(fh)\odot f + da_h W_h^T`.
    """
    h_prev, W_hh, f, fh, h_hat, ch, chc, ca, cac = cache
    xp = get_array_module(dh)
    H = h_prev.shape[-1]
    da_x = out if out is not None else xp.empty((dh.shape[0], 2 * H), dtype=dh.dtype)
    da_hh = xp.empty_like(da_x)
    df = h_hat - h_prev
    df *= dh
    dh_prev = dh - dh * f
    ds = dh * f
    _tanh_grad_(ds, h_hat)
    ds, gac = _norm_back(ds, cac)
    da_x[:, H:] = ds
    da_c, ghc = _norm_back(ds, chc)
    da_hh[:, H:] = da_c
    dfh = da_c @ W_hh[:, H:].T
    df += dfh * h_prev
    dfh *= f
    dh_prev += dfh
    _sigmoid_grad_(df, f)
    df, ga = _norm_back(df, ca)
    da_x[:, :H] = df
    da_hf, gh = _norm_back(df, ch)
    da_hh[:, :H] = da_hf
    dh_prev += da_hf @ W_hh[:, :H].T
    dW = xp.concatenate([h_prev.T @ da_hf, fh.T @ da_c], axis=1) if weight_grad else None
    return MGUStepGrads(da_x, dh_prev, dW, gh, ghc, ga, gac, da_hh)


# --------------------------------------------------------------------------------------------------
# plain tanh RNN


class RNNStepCache(NamedTuple):
    h_prev: object
    W_h: object
    h: object
    norm_h: object
    norm_a: object


class RNNStepGrads(NamedTuple):
    a_x: object
    h_prev: object
    W_h: object
    norm_h: object
    norm_a: object
    a_h: object


def rnn_step(a_x, h_prev, W_h, *, norm_h=None, norm_a=None):
    r"""One step of a tanh RNN: :math:`h_t = \tanh N_a\big(a_x + N_h(W_h h_{t-1})\big)`.

    With ``norm_a = LN(.; g, b)`` and ``a_x = W_x x_t`` this is the LN paper's Eq. 4 (one LN over the summed
    inputs); with ``norm_h`` and a normalized ``a_x`` it is the appendix's separate placement.
    """
    xp = get_array_module(a_x)
    a, ch = _norm(h_prev @ W_h, norm_h)
    a += a_x
    h, ca = _norm(a, norm_a)
    xp.tanh(h, out=h)
    return h, RNNStepCache(h_prev, W_h, h, ch, ca)


def rnn_step_backward(dh, cache: RNNStepCache, *, weight_grad: bool = True, out=None) -> RNNStepGrads:
    r"""Backward of :func:`rnn_step`: ``da = dh (1 - h^2)`` through ``N_a`` and ``N_h``; ``dh_{t-1} = da_h W_h^T``."""
    h_prev, W_h, h, ch, ca = cache
    xp = get_array_module(dh)
    da = out if (out is not None and ca is None) else xp.empty_like(dh)
    xp.multiply(dh, h, out=da)
    da *= h
    xp.subtract(dh, da, out=da)
    da_x, ga = _norm_back(da, ca)
    da_x = _into(out, da_x)
    da_h, gh = _norm_back(da_x, ch)
    dW = h_prev.T @ da_h if weight_grad else None
    return RNNStepGrads(da_x, da_h @ W_h.T, dW, gh, ga, da_h)


# --------------------------------------------------------------------------------------------------
# NormProp's variance constants


def gaussian_moments(f, scale: float, n: int | None = None):
    r"""Mean and variance of ``f(scale * z)`` for ``z ~ N(0, 1)``, by two-level Gauss-Hermite quadrature.

    Gauss-Hermite (``numpy.polynomial.hermite_e.hermegauss``, weight :math:`e^{-x^2/2}`) computes
    :math:`E[g(z)] \approx \sum_k w_k g(x_k)/\sqrt{2\pi}`, and converges fast for functions analytic in a
    wide strip around the real axis. ``tanh(s z)`` has poles at :math:`z = i\pi/(2s)`, close for a large scale
    (s = 4: 160 nodes still leave a 4e-4 error in Var). So the Gaussian is split exactly into two independent
    ones, :math:`z = \sqrt{1-\tau^2}\,u + \tau w` with :math:`\tau = \min(1.5/s, 1/\sqrt2)`: in ``w`` the poles
    sit a distance ~1 away, and the outer integrand :math:`E_w[f(\cdot)]`, a Gaussian blur of ``f``, is
    entire. A product rule of ``n`` x ``n`` nodes then reaches ~1e-9 at s = 4 with n = 100 (the default
    ``n`` grows with the scale: 100 up to s = 4, then 25 s, at most 300; ~1e-8 at s = 8).
    """
    s = abs(float(scale))
    if n is None:
        n = min(300, max(100, math.ceil(25 * s)))
    x, w = np.polynomial.hermite_e.hermegauss(int(n))
    w = w / math.sqrt(2.0 * math.pi)
    tau = min(1.5 / s, math.sqrt(0.5)) if s > 0 else 0.0
    u = s * (math.sqrt(1.0 - tau * tau) * x[:, None] + tau * x[None, :])
    W = w[:, None] * w[None, :]
    y = f(u)
    mean = float((W * y).sum())
    return mean, float((W * (y - mean) ** 2).sum())


def _np_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def normprop_variances(gamma_x: float = 2.0, gamma_h: float = 2.0, gamma_c: float = 1.0, variance: str = "eq22"):
    r"""NormProp's fixed variance constants ``(Var[c], Var[h])`` (Laurent, Ballas & Vincent, Eq. 8 and 12).

    With every pre-activation :math:`\gamma_x \hat w^T x + \gamma_h \hat u^T h` of a unit-norm row modelled as
    :math:`s z`, :math:`z \sim N(0,1)`, and the bias ignored:

    .. math::
        \mathrm{Var}[c] = \frac{\mathrm{Var}[\tanh(sz)]\,(\mathrm{Var}[\sigma(sz)] + E[\sigma(sz)]^2)}
                               {1 - \mathrm{Var}[\sigma(sz)] - E[\sigma(sz)]^2}  \quad\text{(Eq. 8)},\qquad
        \mathrm{Var}[h] = \mathrm{Var}[\tanh(\gamma_c z)]\,(\mathrm{Var}[\sigma(sz)] + E[\sigma(sz)]^2)
        \quad\text{(Eq. 12)}

    where Eq. 12 takes :math:`c/\sqrt{\mathrm{Var}[c]} \sim N(0, 1)`. The paper gives two scales: Eq. 9-10 use
    :math:`s = \gamma_x + \gamma_h` (``variance="eq9"``), §4's Eq. 22-23 use
    :math:`s = \sqrt{\gamma_x^2 + \gamma_h^2}` (``"eq22"``), which is what independent ``x`` and ``h`` imply.
    E.g. (2, 2, 1): eq9 gives (0.55695, 0.16119), eq22 (0.44805, 0.14983). (Plain Gauss-Hermite with 200 nodes
    gives Var[tanh(4z)] = 0.80554 instead of 0.80540 and hence Var[c] = 0.55705 for eq9: see
    :func:`gaussian_moments` for why that rule converges slowly there.)
    """
    if variance == "eq9":
        s = float(gamma_x) + float(gamma_h)
    elif variance == "eq22":
        s = math.hypot(float(gamma_x), float(gamma_h))
    else:
        raise ValueError(f"variance: expected 'eq22' or 'eq9', got {variance!r}")
    e_sig, v_sig = gaussian_moments(_np_sigmoid, s)
    _, v_tanh = gaussian_moments(np.tanh, s)
    second = v_sig + e_sig**2  # E[sigma^2]
    var_c = v_tanh * second / (1.0 - second)
    _, v_out = gaussian_moments(np.tanh, float(gamma_c))
    return var_c, v_out * second
