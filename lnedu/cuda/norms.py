"""Fused layer norm and RMSNorm for CuPy arrays: the launch side of ``kernels/layer_norm.cuh``.

:func:`lnedu.functional.layer_norm` and :func:`~lnedu.functional.rms_norm` (and their backwards) find these
through :mod:`lnedu.functional.dispatch` (registered by :func:`lnedu.cuda.register`) and call them for CuPy
arrays when :func:`supported` says the kernels can take the case; everything else, and every NumPy array,
takes the reference code, which is what a student reads and what the CPU tests check. The functions here
take the same arguments and return the same results and caches as the reference, so a forward on one path
and a backward on the other also work.

Launch configuration. A row of ``n`` units is spread over one block: ``ITEMS`` values per thread in
registers, with the fewest items that keep the block within 256 threads (``row_config``). Rows up to
``MAX_ROW`` = 8192 units are fused (4096 in float64, whose values take two registers each: at 32 items the
backward would spill); longer rows take the reference. The forward gives each row its
own block (a grid-stride loop past 32 blocks per multiprocessor); the backward uses about half a GPU's
worth of resident blocks, each walking many rows, because each block writes one row of partial gain and
bias sums and fewer blocks mean fewer partial rows to add up.

Range. The kernels sum squares in the accumulation type (float32 for 16- and 32-bit storage, float64 for
float64) without the reference's rescaling, so a float32 row whose values pass ~1e19 overflows here (its
``rstd`` comes back 0 or NaN), where the reference rescales it. Telling such a row apart needs its data, which
``supported`` never reads (that would cost a device synchronization per call); pass ``check_finite=True``
or use ``lnedu.functional.use_reference()`` for data of that size.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..functional.norms import LayerNormCache, RMSNormCache
from . import _kernels
from ._kernels import DTYPES, KERNEL_TYPES, acc_dtype, fused_enabled, launch

__all__ = ["MAX_ROW", "row_config", "supported", "backward_supported", "layer_norm", "layer_norm_backward",
           "rms_norm", "rms_norm_backward"]

_ITEMS = (1, 2, 4, 8, 16, 32)
_TARGET_THREADS = 256
MAX_ROW = _ITEMS[-1] * _TARGET_THREADS  # 8192


def _items(dtype):
    """Items per thread the kernels are built for: up to 32, or 16 in float64 (two registers a value)."""
    return _ITEMS[:-1] if dtype in (np.float64, "double") else _ITEMS


def row_config(n: int, dtype=np.float32):
    """``(items, threads)`` for rows of ``n`` units of ``dtype``, or ``None`` past the fused range.

    The fewest items per thread (1, 2, 4, ..., 32) that keep a block within 256 threads, and the block
    rounded up to whole warps: n = 1000 gives (4, 256), n = 4097 gives (32, 160), n = 3 gives (1, 32).
    """
    return _kernels.block_config(n, _items(dtype), _TARGET_THREADS)


def supported(x, *params) -> bool:
    """Whether the fused kernels take ``x`` (rows over the last axis) with these gains/biases (or ``None``)."""
    xp = get_array_module(x)
    if xp is np or not fused_enabled() or x.dtype not in DTYPES or x.ndim == 0:
        return False
    if row_config(x.shape[-1], x.dtype) is None:
        return False
    return all(p is None or (p.dtype == x.dtype and get_array_module(p) is xp) for p in params)


def backward_supported(dy, cache) -> bool:
    """Whether the fused backward takes ``dy`` with ``cache`` (same dtype, a cache the kernels can read)."""
    xhat, rstd, gain = cache
    return (supported(xhat, gain) and dy.dtype == xhat.dtype and xhat.ndim == 2 and xhat.flags.c_contiguous
            and rstd.dtype == acc_dtype(xhat.dtype) and rstd.size == xhat.shape[0] and rstd.flags.c_contiguous)


def _flag(center: bool) -> str:
    return "true" if center else "false"


def _forward(x, gain, bias, eps, center):
    xp = get_array_module(x)
    rows = xp.ascontiguousarray(x.reshape(-1, x.shape[-1]))
    N, n = rows.shape
    items, threads = row_config(n, x.dtype)
    y = xp.empty_like(rows)
    xhat = xp.empty_like(rows)
    rstd = xp.empty((N, 1), dtype=acc_dtype(x.dtype))
    if N:
        grid = _kernels.forward_grid(N)
        gain = None if gain is None else xp.ascontiguousarray(gain)
        bias = None if bias is None else xp.ascontiguousarray(bias)
        launch(f"norm_forward<{DTYPES[x.dtype]}, {items}, {_flag(center)}>", grid, threads,
               rows, gain, bias, y, xhat, rstd, np.int64(N), np.int32(n), np.float64(eps))
    return y.reshape(x.shape), xhat, rstd


def _backward(dy, xhat, rstd, gain, center):
    xp = get_array_module(dy)
    N, n = xhat.shape
    dy2 = xp.ascontiguousarray(dy.reshape(N, n))
    items, threads = row_config(n, xhat.dtype)
    T = DTYPES[xhat.dtype]
    width = 2 * n if center else n  # [sum dy * xhat | sum dy] per block; RMSNorm has no bias
    dx = xp.empty_like(xhat)
    gain_c = None if gain is None else xp.ascontiguousarray(gain)
    sums = _kernels.launch_row_backward(f"norm_backward<{T}, {items}, {_flag(center)}>", N, threads, width,
                                        xhat.dtype, (dy2, xhat, rstd, gain_c, dx), (np.int64(N), np.int32(n)))
    dgain = sums[:n] if gain is not None else None
    return dx.reshape(dy.shape), dgain, (sums[n:] if center else None)


def layer_norm(x, gain, bias, eps: float):
    """Fused :func:`lnedu.functional.layer_norm` (arguments already checked): ``(y, LayerNormCache)``."""
    y, xhat, rstd = _forward(x, gain, bias, eps, True)
    return y, LayerNormCache(xhat, rstd, gain)


def layer_norm_backward(dy, cache: LayerNormCache):
    """Fused :func:`lnedu.functional.layer_norm_backward`: ``(dx, dgain, dbias)``."""
    return _backward(dy, cache.xhat, cache.rstd, cache.gain, True)


def rms_norm(x, gain, eps: float):
    """Fused :func:`lnedu.functional.rms_norm` (arguments already checked): ``(y, RMSNormCache)``."""
    y, xhat, rstd = _forward(x, gain, None, eps, False)
    return y, RMSNormCache(xhat, rstd, gain)


def rms_norm_backward(dy, cache: RMSNormCache):
    """Fused :func:`lnedu.functional.rms_norm_backward`: ``(dx, dgain)``."""
    dx, dgain, _ = _backward(dy, cache.xhat, cache.rstd, cache.gain, False)
    return dx, dgain


def name_expressions():
    """Every instantiation these functions can launch (for ahead-of-time compile checks)."""
    out = []
    for T in KERNEL_TYPES:
        for items in _items(T):
            for center in (True, False):
                out += [f"norm_forward<{T}, {items}, {_flag(center)}>", f"norm_backward<{T}, {items}, {_flag(center)}>"]
        out.append(f"sum_columns<{T}>")
    return out
