r"""The layer norms and the LSTM step of the published layer-norm LSTM *variants* (notebook 15, "Which LN-LSTM?").

The LN paper's layer norm (Ba, Kiros & Hinton 2016, Eq. 3-4) divides by :math:`\sqrt{\sigma^2+\epsilon}`, and
its appendix LSTM (Eq. 20-22) carries the *un-normalized* cell to the next step. Released code does not always
do that. :func:`variant_layer_norm` divides by one of four denominators found in that code:

* ``"sqrt(var+eps)"``: the paper, Theano's ``layers.py``, haste, TensorFlow (Addons and contrib), PyTorch;
* ``"std+eps"``: :math:`\sigma + \epsilon` (a common hand-written form; with eps 0 it is PyTorch's
  ``benchmarks/fastrnns`` ``decompose_layernorm=True``);
* ``"var+eps"``: :math:`\sigma^2 + \epsilon`, no square root: the paper's own Torch module
  (``torch_modules/LayerNormalization.lua`` names the variance ``std`` and never takes its root);
* ``"sqrt(var+eps)+eps"``: the Keras port's ``normalize_layer`` adds Keras' epsilon twice.

:func:`lstm_variant_step` is :func:`lnedu.functional.lstm_step` with these norms, and with ``carry="LN(c)"``:
the *normalized* cell goes to the next step (TensorFlow Addons, TensorFlow contrib, PyTorch's fastrnns).

Backward of every denominator ``s = phi(v)``, ``v = mean(d^2)``, ``d = a - mean(a)``, ``xhat = d / s``:

.. math::
    da = \frac{1}{s}\big(g - \bar g\big) - \frac{2\,\phi'(v)}{K s^2}\, d\, \textstyle\sum_k g_k d_k,
    \qquad g = dy\odot\gamma

(the mean of the second term is 0 because the ``d`` sum to 0).
"""

from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float_array, check_int, check_one_of
from ..backend import get_array_module
from .recurrent import LSTMStepGrads

__all__ = [
    "DENOMINATORS",
    "VariantNorm",
    "VariantNormCache",
    "variant_layer_norm",
    "variant_layer_norm_backward",
    "VariantLSTMStepCache",
    "lstm_variant_step",
    "lstm_variant_step_backward",
]

DENOMINATORS = ("sqrt(var+eps)", "std+eps", "var+eps", "sqrt(var+eps)+eps")
CARRIES = ("c", "LN(c)")


class VariantNorm(NamedTuple):
    """One layer norm inside a variant cell: ``gain`` and ``bias`` (K,) or ``None`` (1 and 0), ``eps``,
    ``groups`` (per-gate statistics when > 1) and the ``denominator`` (one of :data:`DENOMINATORS`)."""

    gain: object = None
    bias: object = None
    eps: float = 1e-5
    groups: int = 1
    denominator: str = "sqrt(var+eps)"


class VariantNormCache(NamedTuple):
    d: object  # (N, G, K/G): a minus its mean
    s: object  # (N, G, 1): the denominator
    v: object  # (N, G, 1): the variance
    xhat: object  # (N, K)
    norm: VariantNorm


def _denominator(xp, v, eps, kind):
    if kind == "sqrt(var+eps)":
        return xp.sqrt(v + eps)
    if kind == "std+eps":
        return xp.sqrt(v) + eps
    if kind == "var+eps":
        return v + eps
    return xp.sqrt(v + eps) + eps  # "sqrt(var+eps)+eps"


def _denominator_slope(xp, v, eps, kind):
    """``phi'(v)`` of the denominator ``s = phi(v)``."""
    if kind in ("sqrt(var+eps)", "sqrt(var+eps)+eps"):
        return 0.5 / xp.sqrt(v + eps)
    if kind == "std+eps":
        return 0.5 / xp.sqrt(v)
    return xp.ones_like(v)  # "var+eps"


def variant_layer_norm(a, norm: VariantNorm):
    r"""Layer norm of the rows of ``a`` (N, K): :math:`y = \gamma\odot(a-\mu)/s + \beta` with ``s`` the
    norm's denominator, statistics over all K units or (``groups`` G) over each of G equal slices (one per
    gate); the biased variance, as in every source. Returns ``(y, cache)``."""
    check_float_array("a", a, ndim=2)
    check_one_of("norm.denominator", norm.denominator, DENOMINATORS)
    xp = get_array_module(a)
    N, K = a.shape
    G = check_int("norm.groups", norm.groups, minimum=1)
    if K % G:
        raise ValueError(f"norm.groups: expected a divisor of the {K} units, got {G}")
    r = a.reshape(N, G, K // G)
    d = r - r.mean(axis=-1, keepdims=True)
    v = (d * d).mean(axis=-1, keepdims=True)
    s = _denominator(xp, v, norm.eps, norm.denominator)
    xhat = (d / s).reshape(N, K)
    y = xhat * norm.gain if norm.gain is not None else xhat.copy()
    if norm.bias is not None:
        y += norm.bias
    return y, VariantNormCache(d, s, v, xhat, norm)


def variant_layer_norm_backward(dy, cache: VariantNormCache):
    """Gradients of :func:`variant_layer_norm`: ``(da, dgain, dbias)`` (``None`` for a missing gain or bias);
    the formula is in the module docstring."""
    d, s, v, xhat, norm = cache
    xp = get_array_module(dy)
    N, G, n = d.shape
    dgain = (dy * xhat).sum(axis=0) if norm.gain is not None else None
    dbias = dy.sum(axis=0) if norm.bias is not None else None
    g = (dy * norm.gain if norm.gain is not None else dy).reshape(N, G, n)
    slope = _denominator_slope(xp, v, norm.eps, norm.denominator)
    da = (g - g.mean(axis=-1, keepdims=True)) / s - (2.0 * slope / (n * s * s)) * d * (g * d).sum(-1, keepdims=True)
    return da.reshape(N, G * n), dgain, dbias


def _norm(a, norm):
    return (a, None) if norm is None else variant_layer_norm(a, norm)


def _norm_back(d, cache):
    if cache is None:
        return d, None
    da, dg, db = variant_layer_norm_backward(d, cache)
    return da, (dg, db)


def _sigmoid(a):
    return 0.5 * get_array_module(a).tanh(0.5 * a) + 0.5


class VariantLSTMStepCache(NamedTuple):
    h_prev: object
    c_prev: object
    W_h: object
    gates: object  # (B, 4H): sigma(a_f), sigma(a_i), sigma(a_o), tanh(a_g)
    tanh_c: object  # tanh(N_c(c_t))
    norm_h: object  # VariantNormCache or None
    norm_a: object
    norm_c: object
    carry: str


def lstm_variant_step(a_x, h_prev, c_prev, W_h, *, norm_h=None, norm_a=None, norm_c=None, carry="c"):
    r"""One LSTM step (gate order f, i, o, g) with :class:`VariantNorm` layer norms.

    .. math::
        a = N_a\big(a_x + N_h(W_h h_{t-1})\big),\quad c_t = \sigma(a_f)\odot \tilde c_{t-1}
        + \sigma(a_i)\odot\tanh(a_g),\quad h_t = \sigma(a_o)\odot\tanh(N_c(c_t))

    and the step returns :math:`\tilde c_t = c_t` (``carry="c"``, the paper) or :math:`\tilde c_t = N_c(c_t)`
    (``carry="LN(c)"``). ``a_x`` already holds the input term (``N_x(W_x x_t) + b``). Returns ``(h, c, cache)``.
    """
    check_one_of("carry", carry, CARRIES)
    if carry == "LN(c)" and norm_c is None:
        raise ValueError("carry: 'LN(c)' carries the normalized cell and needs norm_c, got norm_c=None")
    xp = get_array_module(a_x)
    H = h_prev.shape[-1]
    a_h, cache_h = _norm(h_prev @ W_h, norm_h)
    a, cache_a = _norm(a_x + a_h, norm_a)
    gates = xp.concatenate([_sigmoid(a[:, : 3 * H]), xp.tanh(a[:, 3 * H:])], axis=1)
    f, i, o, g = (gates[:, k * H: (k + 1) * H] for k in range(4))
    c = f * c_prev + i * g
    c_hat, cache_c = _norm(c, norm_c)
    tanh_c = xp.tanh(c_hat)
    h = o * tanh_c
    carried = c_hat if carry == "LN(c)" else c
    return h, carried, VariantLSTMStepCache(h_prev, c_prev, W_h, gates, tanh_c, cache_h, cache_a, cache_c, carry)


def lstm_variant_step_backward(dh, dc, cache: VariantLSTMStepCache, *, weight_grad: bool = True, out=None):
    r"""Backward of :func:`lstm_variant_step`: an :class:`~lnedu.functional.recurrent.LSTMStepGrads`.

    As :func:`lnedu.functional.lstm_step_backward`, except where the carried cell's gradient ``dc`` enters:
    with ``carry="c"`` it adds to :math:`dc_t` after :math:`N_c`, with ``carry="LN(c)"`` to
    :math:`d\hat c_t` before :math:`N_c`'s backward (the carried and the output paths share :math:`N_c`).
    """
    if not isinstance(cache, VariantLSTMStepCache):
        raise TypeError(f"cache: expected the VariantLSTMStepCache of lstm_variant_step, got {type(cache).__name__}")
    h_prev, c_prev, W_h, gates, tanh_c, cache_h, cache_a, cache_c, carry = cache
    xp = get_array_module(dh)
    H = h_prev.shape[-1]
    f, i, o, g = (gates[:, k * H: (k + 1) * H] for k in range(4))
    do = dh * tanh_c
    dc_hat = dh * o * (1 - tanh_c * tanh_c)
    if dc is not None and carry == "LN(c)":
        dc_hat = dc_hat + dc
    dc_t, d_norm_c = _norm_back(dc_hat, cache_c)
    if dc is not None and carry == "c":
        dc_t = dc_t + dc
    da = xp.concatenate([dc_t * c_prev * f * (1 - f), dc_t * g * i * (1 - i), do * o * (1 - o),
                         dc_t * i * (1 - g * g)], axis=1)
    da_x, d_norm_a = _norm_back(da, cache_a)
    da_h, d_norm_h = _norm_back(da_x, cache_h)
    if out is not None:
        out[...] = da_x
        da_x = out
    dW_h = h_prev.T @ da_h if weight_grad else None
    return LSTMStepGrads(da_x, da_h @ W_h.T, dc_t * f, dW_h, d_norm_h, d_norm_a, d_norm_c, da_h)
