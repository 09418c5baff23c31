"""Normalization layers as forward/backward pairs: layer norm, batch norm, weight norm, RMSNorm.

Notation follows Ba, Kiros & Hinton (2016), "Layer Normalization" (arXiv 1607.06450): ``a`` are the summed
inputs of a layer, ``H`` the number of hidden units, ``g`` the gains and ``b`` the biases. Every forward
returns ``(out, cache)``; every backward takes ``(dout, cache)`` and returns the gradients of the
differentiable inputs in the order the forward takes them.

The bodies below are the reference: the equations, written plainly. Faster versions (the Numba kernels of the
``[fast]`` extra in :mod:`lnedu.functional._numba` for layer norm, RMSNorm and 2-d batch norm from 512 values,
cache-blocked NumPy for big arrays in :mod:`lnedu.functional._blocked`, lnedu's fused CUDA kernels) register
themselves with :mod:`lnedu.functional.dispatch` and are asked first; ``with dispatch.use_reference():`` runs these
alone.
float16 and bfloat16 are computed in float32 and stored at 16 bits (the dispatch does it).

Numerics (:func:`standardize`). The mean and variance use a *shifted two-pass* method (Chan, Golub &
LeVeque, 1983): each row is first shifted by its own first value, then centred on its mean, then squared.
The shift is exact for values near each other, so float32 rows with a large offset (mean 1e4, std 1) keep
their full precision, which the one-pass ``E[x^2] - E[x]^2`` formula loses; and a constant row is exactly
zero from the first step on, so it normalizes to exactly ``0`` (the output is the bias). Where the squares
would overflow (``|a|`` past ~1e19 in float32, ~1e154 in float64), the row is first multiplied by a power
of two, which is exact, and ``eps`` scaled with it. ``eps`` is added to the variance inside the square root,
as in the paper's released code (the paper itself has no eps).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import (
    check_finite as _check_finite,
)
from .._checks import (
    check_float_array,
    check_positive,
    check_same_dtype,
    check_shape,
)
from ..backend import get_array_module
from . import dispatch

__all__ = [
    "LayerNormCache",
    "layer_norm",
    "layer_norm_backward",
    "LayerNormStagedCache",
    "layer_norm_staged",
    "layer_norm_staged_backward",
    "layer_norm_backward_staged",
    "RMSNormCache",
    "rms_norm",
    "rms_norm_backward",
    "BatchNormCache",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_inference",
    "WeightNormCache",
    "weight_norm",
    "weight_norm_backward",
    "standardize",
]


# --------------------------------------------------------------------------------------------------
# shared statistics


def mean(a, axis: int = -1):
    """The mean of ``a`` along ``axis``, kept as an axis of size 1: ``a.mean(axis=axis, keepdims=True)``, bit for bit
    (NumPy's mean is this sum divided by the count), without the Python wrapper NumPy puts around its mean, which
    costs 3 of its 8 us on a (64, 256) float32 array: four of them made a teaching-size layer norm slower than the
    textbook version in ``benchmarks/bench_norms.py``."""
    return a.sum(axis=axis, keepdims=True) / a.shape[axis]


def standardize(x, eps, *, axis: int = -1):
    r"""Return ``(xhat, rstd, mean, var)``: ``xhat = (x - mean) / sqrt(var + eps)`` along ``axis`` (Eq. 3).

    ``mean`` and the biased ``var`` (divided by the length ``n`` of ``axis``) keep ``axis`` (size 1);
    ``rstd = 1 / sqrt(var + eps)``. Shifted two-pass (see the module's docstring): with ``k`` the first value
    along ``axis``, ``u = x - k``, ``mean = k + mean(u)``, ``var = mean((u - mean(u))^2)``.
    """
    xp = get_array_module(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    k = _first(x, axis)
    xc = x - k  # shifted: exact for values near k; a constant row is 0 from here on
    m = mean(xc, axis)
    xc -= m  # x - mean, with mean = k + m
    var = mean(xc * xc, axis)  # biased: divides by n
    if not math.isfinite(var.sum()):  # the squares overflowed (or x holds NaN/inf)
        return _standardize_rescaled(x, eps, axis)
    rstd = 1.0 / xp.sqrt(var + eps)
    xc *= rstd  # xhat, in place
    return xc, rstd, k + m, var


def _first(x, axis):
    """The first entry of ``x`` along ``axis``, with ``axis`` kept (a view)."""
    return x[(slice(None),) * (axis % x.ndim) + (slice(0, 1),)]


def _exponents(x, axis):
    """Per slice along ``axis``, the ``e >= 0`` for which ``max|x| * 2^-e`` lies below 1 (``frexp``'s exponent)."""
    xp = get_array_module(x)
    return xp.maximum(xp.frexp(xp.abs(x).max(axis=axis, keepdims=True))[1], 0)


def _standardize_rescaled(x, eps, axis):
    """:func:`standardize` for rows whose squares overflow: each is multiplied by ``2^-e`` (exact) first.

    ``(x/s - mean/s) / sqrt(var/s^2 + eps/s^2) = (x - mean) / sqrt(var + eps)``, so the row is scaled, eps
    with it, and ``rstd``, ``mean`` and ``var`` are scaled back (``var`` is ``inf`` where it is out of range).
    A row holding NaN or inf stays NaN.
    """
    xp = get_array_module(x)
    e = _exponents(x, axis)
    xs = xp.ldexp(x, -e)
    eps_s = xp.ldexp(xp.asarray(eps, dtype=x.dtype), -2 * e)
    k = _first(xs, axis)
    xc = xs - k
    m = mean(xc, axis)
    xc -= m
    var = mean(xc * xc, axis)
    sd = xp.sqrt(var + eps_s)
    vanished = sd == 0  # a constant row whose eps underflowed in the scaling: xhat = 0, rstd = 1/sqrt(eps)
    sd[vanished] = 1
    xc /= sd
    rstd = xp.where(vanished, 1.0 / np.sqrt(eps), xp.ldexp(1.0 / sd, -e))
    with np.errstate(over="ignore"):
        return xc, rstd.astype(x.dtype, copy=False), xp.ldexp(k + m, e), xp.ldexp(var, 2 * e)


def _gain_bias(xhat, gain, bias):
    """``gain * xhat + bias`` (Eq. 5), ``None`` meaning gain 1 or bias 0; always a new array."""
    y = xhat * gain if gain is not None else xhat.copy()
    if bias is not None:
        y += bias
    return y


def _check_norm_args(x, gain, bias, eps, check_finite, *, axis_len_name="x.shape[-1]", feat_shape=None):
    check_float_array("x", x, min_ndim=1)
    if feat_shape is None and x.shape[-1] == 0:  # a row of no units has no mean
        raise ValueError(f"x: expected at least one unit along the last axis, got shape {tuple(x.shape)}")
    shape = feat_shape if feat_shape is not None else (x.shape[-1],)
    for name, p in (("gain", gain), ("bias", bias)):
        if p is None:
            continue
        check_float_array(name, p)
        if tuple(p.shape) != tuple(shape):
            raise ValueError(f"{name}: expected shape {tuple(shape)} (= {axis_len_name}), got {tuple(p.shape)}")
        check_same_dtype(name, p, x.dtype)
    eps = check_positive("eps", eps)
    if check_finite:
        _check_finite("x", x)
    return eps


def _rows_of(dy, cache):
    """``(xhat, rstd)`` of a layer-norm or RMSNorm cache in the shape of ``dy`` (a fused kernel's cache keeps
    them as 2-d rows); ``dy`` must have the shape of the forward's input."""
    xhat, rstd = cache.xhat, cache.rstd
    if dy.shape != xhat.shape:
        if dy.ndim < 1 or dy.size != xhat.size or dy.shape[-1] != xhat.shape[-1]:
            check_shape("dy", dy, xhat.shape)
        xhat, rstd = xhat.reshape(dy.shape), rstd.reshape(dy.shape[:-1] + (1,))
    return xhat, rstd


# --------------------------------------------------------------------------------------------------
# layer norm


class LayerNormCache(NamedTuple):
    """What :func:`layer_norm_backward` needs: the normalized input, ``1/sigma`` per row, the gain."""

    xhat: object  # (..., H)  (a - mu) / sigma
    rstd: object  # (..., 1)  1 / sqrt(sigma^2 + eps)
    gain: object  # (H,)


def layer_norm(x, gain, bias, eps: float = 1e-5, *, check_finite: bool = False):
    r"""Layer normalization over the last axis (the paper's Eq. 3 and Eq. 5).

    .. math::
        \mu = \frac1H\sum_i a_i,\quad \sigma = \sqrt{\frac1H\sum_i (a_i-\mu)^2 + \epsilon},\quad
        y_i = \frac{g_i}{\sigma}(a_i-\mu) + b_i

    All ``H`` units of a row share ``mu`` and ``sigma``; every row (training case) has its own, so a
    batch of one works. ``x``: (..., H) float array; ``gain``, ``bias``: (H,) of the same dtype (``None``
    means gain 1 / bias 0). Returns ``(y, cache)``.
    """
    eps = _check_norm_args(x, gain, bias, eps, check_finite)
    if (fast := dispatch.lookup(layer_norm, x, gain, bias)) is not None:
        return fast(x, gain, bias, eps)
    xhat, rstd, _, _ = standardize(x, eps)  # Eq. 3: (a - mu) / sigma, each row on its own
    y = _gain_bias(xhat, gain, bias)  # Eq. 5: g * xhat + b
    return y, LayerNormCache(xhat, rstd, gain)


def layer_norm_backward(dy, cache: LayerNormCache):
    r"""Gradients of :func:`layer_norm`: returns ``(dx, dgain, dbias)``.

    With :math:`\hat a = (a-\mu)/\sigma` and :math:`d\hat a = dy \odot g`, the three paths through
    ``a``, ``mu`` and ``sigma`` collapse to

    .. math:: da = \frac{1}{\sigma}\Big(d\hat a - \overline{d\hat a} - \hat a\,\overline{d\hat a\odot\hat a}\Big)

    where the bars are means over the H units (the mean path removes the average, the sigma path the
    component along :math:`\hat a`). ``dgain = sum_rows(dy * xhat)`` and ``dbias = sum_rows(dy)``.
    """
    if (fast := dispatch.lookup(layer_norm_backward, dy, cache)) is not None:
        return fast(dy, cache)
    xhat, rstd = _rows_of(dy, cache)
    gain = cache.gain
    dxhat = dy * gain if gain is not None else dy
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    rows = tuple(range(dy.ndim - 1))
    dgain = (dy * xhat).sum(axis=rows) if gain is not None else None
    return dx, dgain, dy.sum(axis=rows)


class LayerNormStagedCache(NamedTuple):
    """Every intermediate of the staged layer-norm graph, for the one-step-per-line backward."""

    x: object
    mu: object
    xc: object
    sq: object
    var: object
    std: object
    rstd: object
    xhat: object
    gain: object
    H: int


def layer_norm_staged(x, gain, bias, eps: float = 1e-5):
    """Layer norm as a computational graph, one elementary operation per line (for teaching).

    Computes the same ``y`` as :func:`layer_norm` with the textbook two-pass statistics (``gain`` and
    ``bias`` may be ``None``, meaning 1 and 0); keeps every node so that
    :func:`layer_norm_staged_backward` can walk the graph backwards one step at a time.
    """
    eps = _check_norm_args(x, gain, bias, eps, False)
    xp = get_array_module(x)
    H = x.shape[-1]
    mu = x.sum(axis=-1, keepdims=True) / H  # 1. mean
    xc = x - mu  # 2. centre
    sq = xc**2  # 3. square
    var = sq.sum(axis=-1, keepdims=True) / H  # 4. variance (biased, divides by H)
    std = xp.sqrt(var + eps)  # 5. standard deviation
    rstd = 1.0 / std  # 6. reciprocal
    xhat = xc * rstd  # 7. normalize
    y = xhat * (1.0 if gain is None else gain) + (0.0 if bias is None else bias)  # 8. gain and bias (None: 1, 0)
    return y, LayerNormStagedCache(x, mu, xc, sq, var, std, rstd, xhat, gain, H)


def layer_norm_staged_backward(dy, cache: LayerNormStagedCache):
    """Backward of :func:`layer_norm_staged`: the chain rule applied to each forward line in reverse.

    Each line is the local derivative of one forward step times the upstream gradient; where a node
    feeds two later nodes (``xc`` feeds steps 3 and 7, ``x`` feeds steps 1 and 2) the gradients add.
    Returns ``(dx, dgain, dbias)``, equal to :func:`layer_norm_backward` up to rounding.
    """
    x, mu, xc, sq, var, std, rstd, xhat, gain, H = cache
    check_shape("dy", dy, x.shape)
    xp = get_array_module(dy)
    lead = tuple(range(dy.ndim - 1))
    # 8. y = gain * xhat + bias
    dbias = dy.sum(axis=lead)
    dgain = (dy * xhat).sum(axis=lead) if gain is not None else None
    dxhat = dy * gain if gain is not None else dy
    # 7. xhat = xc * rstd
    dxc = dxhat * rstd
    drstd = (dxhat * xc).sum(axis=-1, keepdims=True)
    # 6. rstd = 1 / std
    dstd = -drstd / std**2
    # 5. std = sqrt(var + eps)
    dvar = dstd * 0.5 / std
    # 4. var = sum(sq) / H
    dsq = xp.broadcast_to(dvar / H, x.shape)  # the sum copies dvar/H back to every element
    # 3. sq = xc ** 2   (second path into xc: add)
    dxc = dxc + 2 * xc * dsq
    # 2. xc = x - mu
    dx = dxc.copy()
    dmu = -dxc.sum(axis=-1, keepdims=True)
    # 1. mu = sum(x) / H   (second path into x: add)
    dx += dmu / H
    return dx, dgain, dbias


#: the name this pair's backward had until 0.1 (its suffix order differed from every other pair's)
layer_norm_backward_staged = layer_norm_staged_backward


# --------------------------------------------------------------------------------------------------
# RMSNorm


class RMSNormCache(NamedTuple):
    xhat: object  # (..., H)  a / rms(a)
    rstd: object  # (..., 1)  1 / sqrt(mean(a^2) + eps)
    gain: object


def rms_norm(x, gain, eps: float = 1e-5, *, check_finite: bool = False):
    r"""RMSNorm (Zhang & Sennrich, 2019) over the last axis: layer norm without the re-centring.

    .. math:: y_i = g_i\, a_i / \sqrt{\tfrac1H\sum_j a_j^2 + \epsilon}

    Returns ``(y, cache)``. ``gain`` may be ``None`` (gain 1).
    """
    eps = _check_norm_args(x, gain, None, eps, check_finite)
    if (fast := dispatch.lookup(rms_norm, x, gain)) is not None:
        return fast(x, gain, eps)
    xp = get_array_module(x)
    ms = mean(x * x)  # the mean square of each row
    if math.isfinite(ms.sum()):
        rstd = 1.0 / xp.sqrt(ms + eps)
        xhat = x * rstd
    else:  # the squares overflowed: scale each row by a power of two first (see standardize)
        xhat, rstd = _rms_rescaled(x, eps)
    y = _gain_bias(xhat, gain, None)
    return y, RMSNormCache(xhat, rstd, gain)


def _rms_rescaled(x, eps):
    """``(xhat, rstd)`` of RMSNorm with each row multiplied by ``2^-e`` first (eps by ``2^-2e``)."""
    xp = get_array_module(x)
    e = _exponents(x, -1)
    xs = xp.ldexp(x, -e)
    rstd = 1.0 / xp.sqrt(mean(xs * xs) + xp.ldexp(xp.asarray(eps, dtype=x.dtype), -2 * e))
    return xs * rstd, xp.ldexp(rstd, -e)


def rms_norm_backward(dy, cache: RMSNormCache):
    r"""Gradients of :func:`rms_norm`: returns ``(dx, dgain)``.

    Only the scale path exists (no mean), so
    :math:`da = \frac{1}{r}\big(d\hat a - \hat a\,\overline{d\hat a\odot\hat a}\big)` with
    :math:`d\hat a = dy\odot g` and :math:`r = \mathrm{rms}(a)`.
    """
    if (fast := dispatch.lookup(rms_norm_backward, dy, cache)) is not None:
        return fast(dy, cache)
    xhat, rstd = _rows_of(dy, cache)
    gain = cache.gain
    dxhat = dy * gain if gain is not None else dy
    dx = rstd * (dxhat - xhat * mean(dxhat * xhat))
    dgain = (dy * xhat).sum(axis=tuple(range(dy.ndim - 1))) if gain is not None else None
    return dx, dgain


# --------------------------------------------------------------------------------------------------
# batch norm


class BatchNormCache(NamedTuple):
    xhat: object  # (N, ...)   normalized input
    rstd: object  # (1, ...)   1 / sqrt(var + eps)
    gain: object
    mean: object  # (...)      batch mean (for running statistics)
    var: object  # (...)      batch variance as used (biased, or unbiased if asked)
    m: int  # divisor of the variance: N, or N - 1 when unbiased


def batch_norm(x, gain, bias, eps: float = 1e-5, *, unbiased: bool = False, check_finite: bool = False):
    r"""Batch normalization with mini-batch statistics over axis 0 (the paper's Eq. 2).

    .. math:: \mu_i = \tfrac1N\sum_n a_i^{(n)},\quad \sigma_i^2 = \tfrac1M\sum_n (a_i^{(n)}-\mu_i)^2,\quad
              y_i = \frac{g_i}{\sqrt{\sigma_i^2+\epsilon}}(a_i-\mu_i) + b_i

    with ``M = N`` (biased) or ``M = N - 1`` (``unbiased=True``, as the LN paper uses at batch size 4).
    ``x``: (N, ...) with N >= 2; ``gain``, ``bias``: x.shape[1:].
    The cache carries the batch mean and variance so a module can keep running statistics.
    """
    check_float_array("x", x, min_ndim=2)
    eps = _check_norm_args(x, gain, bias, eps, check_finite, axis_len_name="x.shape[1:]", feat_shape=x.shape[1:])
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"x: batch norm needs a batch of at least 2 along axis 0, got {n}")
    if (fast := dispatch.lookup(batch_norm, x, gain, bias, unbiased=unbiased)) is not None:
        return fast(x, gain, bias, eps, unbiased=unbiased)
    xp = get_array_module(x)
    xhat, rstd, mu, var = standardize(x, eps, axis=0)
    m = n - 1 if unbiased else n
    if unbiased:  # rescale to the unbiased variance c * var, c = n / m
        # 1/sqrt(c var + eps) = rstd * r with r = 1/sqrt(c - (eps/m) / (var + eps)): no product that could
        # overflow where var is near the dtype's range (or inf, from a rescaled column), where r = 1/sqrt(c)
        with np.errstate(over="ignore"):
            r = 1.0 / xp.sqrt(n / m - (eps / m) / (var + eps))
            var = var * (n / m)
        xhat *= r
        rstd = rstd * r
    y = _gain_bias(xhat, gain, bias)
    return y, BatchNormCache(xhat, rstd, gain, mu[0], var[0], m)


def batch_norm_backward(dy, cache: BatchNormCache):
    r"""Gradients of :func:`batch_norm` (training statistics): returns ``(dx, dgain, dbias)``.

    Same algebra as layer norm with the roles of the axes swapped: means run over the batch, and the
    variance path divides by ``M`` (N or N-1):
    :math:`da = \frac{1}{\sigma}\big(d\hat a - \overline{d\hat a} - \hat a\,\tfrac1M\sum_n d\hat a\odot\hat a\big)`.
    """
    if (fast := dispatch.lookup(batch_norm_backward, dy, cache)) is not None:
        return fast(dy, cache)
    xhat, rstd, gain, _, _, m = cache
    check_shape("dy", dy, xhat.shape)
    dbias = dy.sum(axis=0)
    dgain = (dy * xhat).sum(axis=0)
    g = gain if gain is not None else 1.0
    dxhat = dy * g
    dx = rstd * (dxhat - (dbias * g) / xhat.shape[0] - xhat * ((dgain * g) / m))
    return dx, (dgain if gain is not None else None), dbias


def batch_norm_inference(x, gain, bias, running_mean, running_var, eps: float = 1e-5):
    """Batch norm at inference: a fixed affine map with the population (running) statistics,
    ``y = gain * (x - running_mean) / sqrt(running_var + eps) + bias``.

    ``running_mean`` and ``running_var``: x.shape[1:], of x's dtype; the variance finite and >= 0 (checked:
    the statistics are small, and a negative variance would give NaN silently).
    """
    check_float_array("x", x, min_ndim=2)
    eps = _check_norm_args(x, gain, bias, eps, False, axis_len_name="x.shape[1:]", feat_shape=x.shape[1:])
    for name, s in (("running_mean", running_mean), ("running_var", running_var)):
        check_float_array(name, s)
        if tuple(s.shape) != tuple(x.shape[1:]):
            raise ValueError(f"{name}: expected shape {tuple(x.shape[1:])} (= x.shape[1:]), got {tuple(s.shape)}")
        check_same_dtype(name, s, x.dtype)
    xp = get_array_module(x)
    if not bool(((running_var >= 0) & xp.isfinite(running_var)).all()):
        bad = int((~((running_var >= 0) & xp.isfinite(running_var))).sum())
        raise ValueError(f"running_var: expected finite values >= 0, got {bad} negative or non-finite entr"
                         f"{'y' if bad == 1 else 'ies'}")
    _check_finite("running_mean", running_mean)
    scale = 1.0 / xp.sqrt(running_var + eps)
    return _gain_bias((x - running_mean) * scale, gain, bias)


# --------------------------------------------------------------------------------------------------
# weight norm


class WeightNormCache(NamedTuple):
    v: object  # (D_in, D_out)
    g: object  # (D_out,)
    inv_norm: object  # (D_out,)  1 / ||v_j||


def weight_norm(v, g):
    r"""Weight normalization (Salimans & Kingma, 2016): ``w = g * v / ||v||`` per output unit.

    lnedu's linear maps compute ``x @ W``, so ``W`` has shape (D_in, D_out) and unit ``j``'s incoming
    weight vector is column ``j``; the norm runs over axis 0. In the LN paper's Eq. 5 this is
    ``mu = 0`` and ``sigma = ||w||``. Returns ``(w, cache)``.
    """
    check_float_array("v", v, ndim=2)
    check_float_array("g", g, ndim=1)
    if g.shape[0] != v.shape[1]:
        raise ValueError(f"g: expected shape ({v.shape[1]},) (= v.shape[1]), got {tuple(g.shape)}")
    check_same_dtype("g", g, v.dtype)
    xp = get_array_module(v)
    norm = xp.sqrt(xp.einsum("ij,ij->j", v, v))
    if bool((norm == 0).any()):
        raise ValueError("v: every column (a unit's incoming weights) must be non-zero, got a zero column")
    inv_norm = 1.0 / norm
    return v * (g * inv_norm), WeightNormCache(v, g, inv_norm)


def weight_norm_backward(dw, cache: WeightNormCache):
    r"""Gradients of :func:`weight_norm`: returns ``(dv, dg)``.

    :math:`\nabla_g = (\nabla_w\cdot v)/\|v\|` and
    :math:`\nabla_v = \frac{g}{\|v\|}\nabla_w - \frac{g\,\nabla_g}{\|v\|^2} v`: the weight gradient scaled by
    ``g/||v||`` and projected away from ``v`` (so ``dv`` is orthogonal to ``v``).
    """
    v, g, inv_norm = cache
    check_shape("dw", dw, v.shape)
    xp = get_array_module(dw)
    dg = xp.einsum("ij,ij->j", dw, v) * inv_norm
    dv = dw * (g * inv_norm) - v * (g * dg * inv_norm**2)
    return dv, dg
