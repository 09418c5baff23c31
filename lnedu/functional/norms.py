"""Normalization layers as forward/backward pairs: layer norm, batch norm, weight norm, RMSNorm.

Notation follows Ba, Kiros & Hinton (2016), "Layer Normalization" (arXiv 1607.06450): ``a`` are the summed
inputs of a layer, ``H`` the number of hidden units, ``g`` the gains and ``b`` the biases. Every forward
returns ``(out, cache)``; every backward takes ``(dout, cache)`` and returns the gradients of the
differentiable inputs in the order the forward takes them.

Numerics. Statistics use a *corrected two-pass* method (Chan, Golub & LeVeque, 1983): the mean ``mu`` is
taken first, the row is centred, and the mean of the centred row ``d`` (which is zero in exact arithmetic
and holds the rounding error of ``mu``) is subtracted again. Centring is nearly exact in floating point
when the values sit close to their mean, so float32 rows with a large offset (mean 1e4, std 1) keep
their full precision, which the one-pass ``E[x^2] - E[x]^2`` formula loses. ``eps`` is added to the
variance inside the square root, as in the paper's released code (the paper itself has no eps).
"""

from __future__ import annotations

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

__all__ = [
    "LayerNormCache",
    "layer_norm",
    "layer_norm_backward",
    "LayerNormStagedCache",
    "layer_norm_staged",
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
#
# Speed, without leaving NumPy. Each NumPy operation is one pass over its arrays, and a normalization
# needs several, so on a large array the time goes into streaming it from main memory again and again.
# The row-wise functions below therefore walk the rows in blocks of about _BLOCK_BYTES: the first pass
# over a block brings it into the CPU cache, and the other passes find it there. Within a block, row
# and column sums are matrix-vector products (``x @ ones``, ``ones @ dy``), which BLAS does fast and
# without a temporary, and full-size results are written in place or through ``out=``. On a GPU the
# whole array is a single block: there, fewer and larger kernels are what counts.

_BLOCK_BYTES = 1 << 19  # 512 KiB of a block's rows; with its temporaries it stays within the CPU's caches


def _as_rows(x):
    """View ``x`` as a 2-d array of rows over its last axis (a view, no copy, for contiguous x)."""
    return x.reshape(-1, x.shape[-1])


def _row_blocks(rows):
    """Slices that cut the 2-d array ``rows`` into blocks of about ``_BLOCK_BYTES`` (one block on a GPU)."""
    n, H = rows.shape
    if get_array_module(rows) is not np:
        return [slice(0, n)]
    step = max(1, _BLOCK_BYTES // max(1, H * rows.itemsize))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def _row_dots(a, b):
    """``(a * b).sum(axis=-1)`` for 2-d ``a``, ``b`` without the temporary ``a * b``: a stack of
    (1, H) @ (H, 1) matrix products, that is one BLAS dot product per row."""
    return (a[:, None, :] @ b[:, :, None])[:, 0, 0]


def _standardize_rows(x, eps, out, ones):
    """Corrected two-pass statistics of each row of the 2-d block ``x``, writing ``xhat`` into ``out``.

    ``ones`` holds ``x.shape[-1]`` ones, so that ``x @ ones`` are the row sums. Returns
    ``(mean, var, rstd)``, each of shape ``(rows,)``.
    """
    xp = get_array_module(x)
    H = x.shape[-1]
    mean = x @ ones
    mean /= H
    xc = xp.subtract(x, mean[:, None], out=out)  # centred, in place of the result
    d = xc @ ones
    d /= H  # mean(xc): zero but for the rounding error of `mean`
    var = _row_dots(xc, xc)
    var /= H
    var -= d * d  # mean(xc^2) - mean(xc)^2
    xp.maximum(var, 0, out=var)  # guard the subtraction against a tiny negative
    rstd = 1.0 / xp.sqrt(var + eps)
    xc -= d[:, None]
    xc *= rstd[:, None]  # out now holds xhat
    mean += d
    return mean, var, rstd


def _scale_shift(xhat, gain, bias, out):
    """``out = xhat * gain + bias`` without a temporary; ``None`` means gain 1 or bias 0."""
    xp = get_array_module(xhat)
    if gain is not None:
        xp.multiply(xhat, gain, out=out)
        if bias is not None:
            out += bias
    elif bias is not None:
        xp.add(xhat, bias, out=out)
    else:
        out[...] = xhat
    return out


def standardize(x, eps: float, *, axis: int = -1):
    """Return ``(xhat, rstd, mean, var)``: ``xhat = (x - mean) / sqrt(var + eps)`` along ``axis``.

    ``mean`` and the biased ``var`` have ``axis`` kept (size 1), ``rstd = 1/sqrt(var + eps)``.
    Corrected two-pass: ``var = mean(xc^2) - d^2`` and ``xhat = (xc - d) * rstd`` where ``xc = x - mean``
    and ``d = mean(xc)`` is the rounding error of the first mean.
    """
    xp = get_array_module(x)
    if axis in (-1, x.ndim - 1):  # the last axis: row by row, in cache-sized blocks
        rows = _as_rows(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.float64
        xhat = xp.empty(rows.shape, dtype=dtype)
        mean, var, rstd = (xp.empty(rows.shape[0], dtype=dtype) for _ in range(3))
        ones = xp.ones(rows.shape[-1], dtype=dtype)
        for b in _row_blocks(rows):
            mean[b], var[b], rstd[b] = _standardize_rows(rows[b].astype(dtype, copy=False), eps, xhat[b], ones)
        keep = x.shape[:-1] + (1,)
        return xhat.reshape(x.shape), rstd.reshape(keep), mean.reshape(keep), var.reshape(keep)
    n = x.shape[axis]
    mean = x.mean(axis=axis, keepdims=True)
    xhat = x - mean  # centred; becomes xhat in place below
    d = xhat.mean(axis=axis, keepdims=True)
    var = (xhat * xhat).sum(axis=axis, keepdims=True) / n - d * d
    xp.maximum(var, 0, out=var)  # guard the subtraction against a tiny negative
    mean += d
    rstd = 1.0 / xp.sqrt(var + eps)
    xhat -= d
    xhat *= rstd
    return xhat, rstd, mean, var


def _check_norm_args(x, gain, bias, eps, check_finite, *, axis_len_name="x.shape[-1]", feat_shape=None):
    check_float_array("x", x, min_ndim=1)
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


def _storage_only(dtype) -> bool:
    """bfloat16 (ml_dtypes', as CuPy >= 14 takes it) is a storage format here: NumPy and CuPy have few
    bfloat16 kernels (a matrix product comes back in float32), so the portable code computes in float32
    and rounds its results to bfloat16. The fused CUDA kernels do the same inside one kernel."""
    return dtype.name == "bfloat16"


def _f32(*arrays):
    return [None if a is None else a.astype(np.float32) for a in arrays]


def _fused(x, *params):
    """The fused CUDA kernels (:mod:`lnedu.cuda.norms`) when they take this CuPy case, else ``None``.

    NumPy arrays return at the first test, so the CPU path pays one ``is`` comparison for the GPU's sake.
    """
    if get_array_module(x) is np:
        return None
    from ..cuda import norms as fused  # noqa: PLC0415  (CUDA code only loads for CuPy arrays)

    return fused if fused.supported(x, *params) else None


def _fused_backward(dy, cache):
    if get_array_module(dy) is np:
        return None
    from ..cuda import norms as fused  # noqa: PLC0415

    return fused if fused.backward_supported(dy, cache) else None


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
    if (fused := _fused(x, gain, bias)) is not None:  # CuPy: one kernel (lnedu/cuda/kernels/layer_norm.cuh)
        return fused.layer_norm(x, gain, bias, eps)
    if _storage_only(x.dtype):
        y, (xhat, rstd, _) = layer_norm(*_f32(x, gain, bias), eps)
        return y.astype(x.dtype), LayerNormCache(xhat.astype(x.dtype), rstd, gain)
    xp = get_array_module(x)
    rows = _as_rows(x)
    xhat = xp.empty(rows.shape, dtype=x.dtype)
    y = xp.empty(rows.shape, dtype=x.dtype)
    rstd = xp.empty((rows.shape[0], 1), dtype=x.dtype)
    ones = xp.ones(rows.shape[-1], dtype=x.dtype)
    for b in _row_blocks(rows):  # cache-sized blocks of rows (see "shared statistics" above)
        rstd[b, 0] = _standardize_rows(rows[b], eps, xhat[b], ones)[2]
        _scale_shift(xhat[b], gain, bias, out=y[b])
    return y.reshape(x.shape), LayerNormCache(xhat, rstd, gain)


def layer_norm_backward(dy, cache: LayerNormCache):
    r"""Gradients of :func:`layer_norm`: returns ``(dx, dgain, dbias)``.

    With :math:`\hat a = (a-\mu)/\sigma` and :math:`d\hat a = dy \odot g`, the three paths through
    ``a``, ``mu`` and ``sigma`` collapse to

    .. math:: da = \frac{1}{\sigma}\Big(d\hat a - \overline{d\hat a} - \hat a\,\overline{d\hat a\odot\hat a}\Big)

    where the bars are means over the H units (the mean path removes the average, the sigma path the
    component along :math:`\hat a`). ``dgain = sum_rows(dy * xhat)`` and ``dbias = sum_rows(dy)``.
    Row means and column sums are matrix-vector products, so BLAS does the reductions.
    """
    xhat, rstd, gain = cache
    xp = get_array_module(dy)
    dy2 = _as_rows(dy)
    check_shape("dy", dy2, xhat.shape)
    if (fused := _fused_backward(dy, cache)) is not None:  # CuPy: one kernel and a column sum
        return fused.layer_norm_backward(dy, cache)
    if _storage_only(xhat.dtype):
        dx, dgain, dbias = layer_norm_backward(dy.astype(np.float32), LayerNormCache(*_f32(xhat, rstd, gain)))
        return dx.astype(xhat.dtype), *(None if g is None else g.astype(xhat.dtype) for g in (dgain, dbias))
    n, H = xhat.shape
    dtype = np.result_type(dy2.dtype, xhat.dtype)
    dx = xp.empty((n, H), dtype=dtype)
    dgain = xp.zeros(H, dtype=dtype)
    dbias = xp.zeros(H, dtype=dtype)
    ones = xp.ones(max(n, H), dtype=dtype)  # ones[b] @ dy: column sums of a block; ones[:H]: gain 1
    g = gain if gain is not None else ones[:H]
    for b in _row_blocks(xhat):
        dy_b, xhat_b, dx_b = dy2[b], xhat[b], dx[b]
        t = dy_b * xhat_b  # a block-sized temporary, reused below
        dbias += ones[b] @ dy_b
        dgain += ones[b] @ t
        m_mean = (dy_b @ g) / H  # mean(dxhat) per row, with dxhat = dy * g
        m_proj = (t @ g) / H  # mean(dxhat * xhat) per row
        xp.multiply(dy_b, g, out=dx_b)  # dxhat, built up into dx in place
        dx_b -= m_mean[:, None]
        dx_b -= xp.multiply(xhat_b, m_proj[:, None], out=t)
        dx_b *= rstd[b]
    return dx.reshape(dy.shape), (dgain if gain is not None else None), dbias


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
    :func:`layer_norm_backward_staged` can walk the graph backwards one step at a time.
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


def layer_norm_backward_staged(dy, cache: LayerNormStagedCache):
    """Backward of :func:`layer_norm_staged`: the chain rule applied to each forward line in reverse.

    Each line is the local derivative of one forward step times the upstream gradient; where a node
    feeds two later nodes (``xc`` feeds steps 3 and 7, ``x`` feeds steps 1 and 2) the gradients add.
    Returns ``(dx, dgain, dbias)``, equal to :func:`layer_norm_backward` up to rounding.
    """
    x, mu, xc, sq, var, std, rstd, xhat, gain, H = cache
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
    if (fused := _fused(x, gain)) is not None:  # CuPy: one kernel (lnedu/cuda/kernels/layer_norm.cuh)
        return fused.rms_norm(x, gain, eps)
    if _storage_only(x.dtype):
        y, (xhat, rstd, _) = rms_norm(*_f32(x, gain), eps)
        return y.astype(x.dtype), RMSNormCache(xhat.astype(x.dtype), rstd, gain)
    xp = get_array_module(x)
    rows = _as_rows(x)
    H = rows.shape[-1]
    xhat = xp.empty(rows.shape, dtype=x.dtype)
    y = xp.empty(rows.shape, dtype=x.dtype)
    rstd = xp.empty((rows.shape[0], 1), dtype=x.dtype)
    for b in _row_blocks(rows):  # cache-sized blocks of rows (see "shared statistics" above)
        x_b = rows[b]
        rstd[b, 0] = 1.0 / xp.sqrt(_row_dots(x_b, x_b) / H + eps)
        xp.multiply(x_b, rstd[b], out=xhat[b])
        _scale_shift(xhat[b], gain, None, out=y[b])
    return y.reshape(x.shape), RMSNormCache(xhat, rstd, gain)


def rms_norm_backward(dy, cache: RMSNormCache):
    r"""Gradients of :func:`rms_norm`: returns ``(dx, dgain)``.

    Only the scale path exists (no mean), so
    :math:`da = \frac{1}{r}\big(d\hat a - \hat a\,\overline{d\hat a\odot\hat a}\big)` with
    :math:`d\hat a = dy\odot g` and :math:`r = \mathrm{rms}(a)`.
    """
    xhat, rstd, gain = cache
    xp = get_array_module(dy)
    dy2 = _as_rows(dy)
    check_shape("dy", dy2, xhat.shape)
    if (fused := _fused_backward(dy, cache)) is not None:  # CuPy: one kernel and a column sum
        return fused.rms_norm_backward(dy, cache)
    if _storage_only(xhat.dtype):
        dx, dgain = rms_norm_backward(dy.astype(np.float32), RMSNormCache(*_f32(xhat, rstd, gain)))
        return dx.astype(xhat.dtype), (None if dgain is None else dgain.astype(xhat.dtype))
    n, H = xhat.shape
    dtype = np.result_type(dy2.dtype, xhat.dtype)
    dx = xp.empty((n, H), dtype=dtype)
    dgain = xp.zeros(H, dtype=dtype)
    ones = xp.ones(max(n, H), dtype=dtype)  # ones[b] @ t: column sums of a block; ones[:H]: gain 1
    g = gain if gain is not None else ones[:H]
    for b in _row_blocks(xhat):  # as in layer_norm_backward, without the mean path
        dy_b, xhat_b, dx_b = dy2[b], xhat[b], dx[b]
        t = dy_b * xhat_b
        dgain += ones[b] @ t
        m_proj = (t @ g) / H  # mean(dxhat * xhat) per row
        xp.multiply(dy_b, g, out=dx_b)
        dx_b -= xp.multiply(xhat_b, m_proj[:, None], out=t)
        dx_b *= rstd[b]
    return dx.reshape(dy.shape), (dgain if gain is not None else None)


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
    ``x``: (N, ...) with N >= 2 (>= 2 as well when unbiased); ``gain``, ``bias``: x.shape[1:].
    The cache carries the batch mean and variance so a module can keep running statistics.
    """
    check_float_array("x", x, min_ndim=2)
    eps = _check_norm_args(x, gain, bias, eps, check_finite, axis_len_name="x.shape[1:]", feat_shape=x.shape[1:])
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"x: batch norm needs a batch of at least 2 along axis 0, got {n}")
    xp = get_array_module(x)
    xhat, rstd, mean, var = standardize(x, eps, axis=0)
    m = n - 1 if unbiased else n
    if unbiased:  # recompute rstd and xhat with the unbiased variance
        var = var * (n / m)
        new_rstd = 1.0 / xp.sqrt(var + eps)
        xhat *= new_rstd / rstd
        rstd = new_rstd
    y = xhat * gain if gain is not None else xhat.copy()
    if bias is not None:
        y += bias
    return y, BatchNormCache(xhat, rstd, gain, mean[0], var[0], m)


def batch_norm_backward(dy, cache: BatchNormCache):
    r"""Gradients of :func:`batch_norm` (training statistics): returns ``(dx, dgain, dbias)``.

    Same algebra as layer norm with the roles of the axes swapped: means run over the batch, and the
    variance path divides by ``M`` (N or N-1):
    :math:`da = \frac{1}{\sigma}\big(d\hat a - \overline{d\hat a} - \hat a\,\tfrac1M\sum_n d\hat a\odot\hat a\big)`.
    """
    xhat, rstd, gain, _, _, m = cache
    check_shape("dy", dy, xhat.shape)
    dbias = dy.sum(axis=0)
    t = dy * xhat
    dgain = t.sum(axis=0)
    if gain is not None:
        dxhat = dy * gain
        s_proj = dgain * gain
        s_mean = dbias * gain
    else:
        dxhat = dy.copy()
        s_proj, s_mean = dgain, dbias
    dxhat -= s_mean / xhat.shape[0]
    dxhat -= xhat * (s_proj / m)
    dxhat *= rstd
    return dxhat, (dgain if gain is not None else None), dbias


def batch_norm_inference(x, gain, bias, running_mean, running_var, eps: float = 1e-5):
    """Batch norm at inference: a fixed affine map with the population (running) statistics."""
    eps = _check_norm_args(x, gain, bias, eps, False, axis_len_name="x.shape[1:]", feat_shape=x.shape[1:])
    xp = get_array_module(x)
    scale = 1.0 / xp.sqrt(running_var + eps)
    if gain is not None:
        scale = scale * gain
    y = (x - running_mean) * scale
    if bias is not None:
        y += bias
    return y


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
