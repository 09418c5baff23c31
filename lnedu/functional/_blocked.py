"""Cache-blocked NumPy layer norm and RMSNorm: the CPU fast path for big arrays, registered with the dispatch.

The reference bodies in :mod:`lnedu.functional.norms` are what a student reads and what runs at teaching
sizes. They make several passes over the array (a mean, a subtraction, the squares, ...), and each NumPy
operation is one pass. Once an array no longer fits in the CPU's caches, every pass streams it from main
memory again. The functions here compute the same results in blocks of rows of about ``_BLOCK_BYTES``:
the first pass over a block brings it into the cache and the other passes find it there. Within a block,
row and column sums are matrix-vector products (``x @ ones``, ``ones @ dy``), which BLAS does fast and
without a temporary, and full-size results are written in place or through ``out=``.

They register for float32 and float64 NumPy arrays of at least :data:`MIN_SIZE` elements (below it the
blocks buy nothing: ``benchmarks/bench_norms.py`` measures both). Their caches are the reference's, so a
forward on one path and a backward on the other work. A row whose squares overflow is handed to the
reference, which rescales it. Switch them off with ``lnedu.functional.dispatch.use_reference()``.
"""

from __future__ import annotations

import numpy as np

from . import dispatch
from . import norms as _norms
from .norms import LayerNormCache, RMSNormCache

__all__ = ["MIN_SIZE", "layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward", "supported",
           "backward_supported"]

_BLOCK_BYTES = 1 << 19  # 512 KiB of a block's rows; with its temporaries it stays within the CPU's caches

#: arrays with fewer elements take the reference (measured with benchmarks/bench_norms.py --shapes ...)
MIN_SIZE = 1 << 15

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def supported(x, *params) -> bool:
    """A NumPy float32/float64 array of at least ``MIN_SIZE`` elements, with gains/biases of its dtype."""
    return type(x) is np.ndarray and x.dtype in _DTYPES and x.size >= MIN_SIZE and x.ndim >= 1


def backward_supported(dy, cache) -> bool:
    """What :func:`supported` asks, of ``dy``, and a cache of NumPy arrays of ``dy``'s dtype."""
    xhat, rstd = cache.xhat, cache.rstd
    return (supported(dy) and type(xhat) is np.ndarray and xhat.dtype == dy.dtype and xhat.shape == dy.shape
            and type(rstd) is np.ndarray and rstd.size * dy.shape[-1] == dy.size)


def _row_blocks(n, H, itemsize):
    """Slices that cut ``n`` rows of ``H`` values into blocks of about ``_BLOCK_BYTES``."""
    step = max(1, _BLOCK_BYTES // max(1, H * itemsize))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def _row_dots(a, b):
    """``(a * b).sum(axis=-1)`` for 2-d ``a``, ``b`` without the temporary ``a * b``: one BLAS dot per row."""
    return (a[:, None, :] @ b[:, :, None])[:, 0, 0]


def _standardize_rows(x, eps, out, ones):
    """Shifted two-pass statistics of the rows of the block ``x`` (as :func:`~lnedu.functional.standardize`),
    writing ``xhat`` into ``out``; returns ``rstd`` (rows,), or ``None`` where the squares overflowed."""
    H = x.shape[-1]
    xc = np.subtract(x, x[:, :1], out=out)  # shifted by each row's first value
    m = xc @ ones
    m /= H
    xc -= m[:, None]
    var = _row_dots(xc, xc)
    var /= H
    if not np.isfinite(var).all():
        return None
    rstd = 1.0 / np.sqrt(var + eps)
    xc *= rstd[:, None]
    return rstd


def _scale_shift(xhat, gain, bias, out):
    """``out = xhat * gain + bias`` without a temporary; ``None`` means gain 1 or bias 0."""
    if gain is not None:
        np.multiply(xhat, gain, out=out)
        if bias is not None:
            out += bias
    elif bias is not None:
        np.add(xhat, bias, out=out)
    else:
        out[...] = xhat
    return out


def _via_reference(fn, *args):
    with dispatch.use_reference():
        return fn(*args)


def layer_norm(x, gain, bias, eps):
    """:func:`lnedu.functional.layer_norm` (arguments already checked), in cache-sized blocks of rows."""
    rows = x.reshape(-1, x.shape[-1])
    n, H = rows.shape
    xhat, y = np.empty((n, H), dtype=x.dtype), np.empty((n, H), dtype=x.dtype)
    rstd = np.empty((n, 1), dtype=x.dtype)
    ones = np.ones(H, dtype=x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        for b in _row_blocks(n, H, x.itemsize):
            r = _standardize_rows(rows[b], eps, xhat[b], ones)
            if r is None:  # the squares overflowed: the reference rescales
                return _via_reference(_norms.layer_norm, x, gain, bias, eps)
            rstd[b, 0] = r
            _scale_shift(xhat[b], gain, bias, out=y[b])
    keep = x.shape[:-1] + (1,)
    return y.reshape(x.shape), LayerNormCache(xhat.reshape(x.shape), rstd.reshape(keep), gain)


def layer_norm_backward(dy, cache):
    """:func:`lnedu.functional.layer_norm_backward`, in blocks of rows; the reductions are BLAS products."""
    return _backward_rows(dy, cache, center=True)


def _backward_rows(dy, cache, *, center: bool):
    """Layer norm's backward (``center``) or RMSNorm's (no mean path, no bias), block by block:
    ``dx = rstd * (dxhat - [mean(dxhat)] - xhat * mean(dxhat * xhat))`` with ``dxhat = dy * g``."""
    xhat, rstd, gain = cache
    H = dy.shape[-1]
    dy2, xhat2, rstd2 = dy.reshape(-1, H), xhat.reshape(-1, H), rstd.reshape(-1, 1)
    n = dy2.shape[0]
    dx = np.empty((n, H), dtype=dy.dtype)
    dgain = np.zeros(H, dtype=dy.dtype)
    dbias = np.zeros(H, dtype=dy.dtype) if center else None
    ones = np.ones(max(n, H), dtype=dy.dtype)  # ones[b] @ dy: column sums of a block; ones[:H]: gain 1
    g = gain if gain is not None else ones[:H]
    for b in _row_blocks(n, H, dy.itemsize):
        dy_b, xhat_b, dx_b = dy2[b], xhat2[b], dx[b]
        t = dy_b * xhat_b  # a block-sized temporary, reused below
        if center:
            dbias += ones[: t.shape[0]] @ dy_b
        dgain += ones[: t.shape[0]] @ t
        m_proj = (t @ g) / H  # mean(dxhat * xhat) per row
        np.multiply(dy_b, g, out=dx_b)  # dxhat, built up into dx in place
        if center:
            dx_b -= ((dy_b @ g) / H)[:, None]  # mean(dxhat) per row
        dx_b -= np.multiply(xhat_b, m_proj[:, None], out=t)
        dx_b *= rstd2[b]
    dgain = dgain if gain is not None else None
    return (dx.reshape(dy.shape), dgain, dbias) if center else (dx.reshape(dy.shape), dgain)


def rms_norm(x, gain, eps):
    """:func:`lnedu.functional.rms_norm` (arguments already checked), in cache-sized blocks of rows."""
    rows = x.reshape(-1, x.shape[-1])
    n, H = rows.shape
    xhat, y = np.empty((n, H), dtype=x.dtype), np.empty((n, H), dtype=x.dtype)
    rstd = np.empty((n, 1), dtype=x.dtype)
    with np.errstate(over="ignore"):
        for b in _row_blocks(n, H, x.itemsize):
            x_b = rows[b]
            ms = _row_dots(x_b, x_b) / H
            if not np.isfinite(ms).all():
                return _via_reference(_norms.rms_norm, x, gain, eps)
            rstd[b, 0] = 1.0 / np.sqrt(ms + eps)
            np.multiply(x_b, rstd[b], out=xhat[b])
            _scale_shift(xhat[b], gain, None, out=y[b])
    keep = x.shape[:-1] + (1,)
    return y.reshape(x.shape), RMSNormCache(xhat.reshape(x.shape), rstd.reshape(keep), gain)


def rms_norm_backward(dy, cache):
    """:func:`lnedu.functional.rms_norm_backward`, in blocks of rows (layer norm's without the mean path)."""
    return _backward_rows(dy, cache, center=False)


def register():
    """Register the four functions with :mod:`lnedu.functional.dispatch` (done when lnedu.functional loads)."""
    for name, ok, fn in (("layer_norm", supported, layer_norm), ("layer_norm_backward", backward_supported,
                                                                  layer_norm_backward),
                         ("rms_norm", supported, rms_norm), ("rms_norm_backward", backward_supported,
                                                              rms_norm_backward)):
        dispatch.register(name, ok, fn, label=f"lnedu.functional._blocked.{fn.__name__}")
