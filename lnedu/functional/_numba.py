"""Numba-compiled layer norm and RMSNorm (and batch norm of 2-d batches): the CPU fast path, registered with the
dispatch when Numba is installed.

The reference bodies in :mod:`lnedu.functional.norms` are what a student reads, and what runs wherever the
optional ``[fast]`` extra (Numba) is absent, e.g. on Binder or in Pyodide. Each NumPy operation there is one
pass over the array. The loops below do a row at a time, on all cores (``prange``): the forward reads a row
twice while it sits in the CPU's cache (its sum, then its squared deviations) and writes ``y`` and ``xhat``
once; the backward reads ``dy`` and ``xhat`` and writes ``dx`` once, with both row sums of the compact
formula fused into one loop. Forward + backward thus move about six arrays through main memory, close to the
four that cannot be avoided (``benchmarks/bench_norms.py`` measures the copy rate and the fraction of it).
Outputs of a megabyte or more are written into memory that earlier calls' outputs used once no one holds them
any more (:mod:`lnedu.functional._buffers`): fresh pages cost the operating system a fault and a zero-fill
each, more than the kernels' arithmetic.

Same numerics as the reference (:func:`lnedu.functional.standardize`): *shifted* two-pass statistics
(each row shifted by its first value, so a constant row is exactly 0 and its output is the bias), with the
sums accumulated in float64 whatever the storage type. In float64 the squares of float32 values cannot
overflow, so no rescaling is needed for float32; a float64 row whose squares overflow (past ~1e154), or that
holds NaN or inf, makes the whole call go to the reference, which rescales it. ``dgain`` and ``dbias`` are
summed over rows without races: each of a fixed number of row chunks sums into its own float64 row, and those
partial sums are added at the end (the result does not depend on the number of threads).

Nothing here is compiled, nor Numba imported, when lnedu is imported: :func:`register` only asks whether
Numba is installed. The kernels compile on their first call above :data:`MIN_SIZE` elements (a few seconds,
then cached on disk by ``cache=True``; ``benchmarks/bench_norms.py --cold`` measures it).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from . import _buffers, dispatch
from . import norms as _norms
from .norms import BatchNormCache, LayerNormCache, RMSNormCache

__all__ = ["MIN_SIZE", "available", "layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward",
           "batch_norm", "batch_norm_backward", "batch_supported", "batch_backward_supported",
           "supported", "backward_supported", "register", "unregister", "register_pairs", "unregister_pairs",
           "PARALLEL_SIZE"]

#: arrays with fewer elements take the reference. Not for speed: on one thread the kernels beat the reference
#: at every size (forward + backward in float32, best of 7 timeit repeats on a shared 2-core machine: 13-15 vs
#: 25-31 us at (4, 8), 12-15 vs 30-45 us at (8, 256), 20-28 vs 65-70 us at (64, 256); compare them side by side
#: with ``benchmarks/bench_norms.py --shapes 4x8,8x256,64x256``), but a hand-sized example (a few rows of a
#: few units, as in the notebooks' derivations) should execute the code a student reads. From here on, the
#: recurrent layers' steps take the kernels (the handwriting model's smallest: a batch of 8 x 64 units).
MIN_SIZE = 1 << 9

#: from this many elements on the kernels run on all of Numba's threads, below it on the calling thread only
#: (a thread pool's start costs more than it saves on small arrays, and far more on a loaded machine)
PARALLEL_SIZE = 1 << 18

#: at most this many row chunks hold partial sums of dgain/dbias (fixed, so results do not depend on threads)
_CHUNKS = 64
_ROWS_PER_CHUNK = 16  # ... and at least this many rows each

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_kernels = None  # the compiled module's namespace, made on first use


def available() -> bool:
    """Whether Numba is installed (asked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def _compiled():
    """The Numba kernels (imported, and so compiled or loaded from Numba's cache, on the first call)."""
    global _kernels
    if _kernels is None:
        from . import _numba_kernels

        _kernels = _numba_kernels
    return _kernels


def _contiguous(a) -> bool:
    return type(a) is np.ndarray and a.flags.c_contiguous


def supported(x, *params) -> bool:
    """A C-contiguous NumPy float32/float64 array of at least ``MIN_SIZE`` elements."""
    return (type(x) is np.ndarray and x.dtype in _DTYPES and x.size >= MIN_SIZE and x.ndim >= 1
            and x.flags.c_contiguous)


def backward_supported(dy, cache) -> bool:
    """What :func:`supported` asks, of ``dy``, and a cache of C-contiguous NumPy arrays of ``dy``'s dtype."""
    xhat, rstd = cache.xhat, cache.rstd
    return (supported(dy) and _contiguous(xhat) and xhat.dtype == dy.dtype and xhat.shape == dy.shape
            and type(rstd) is np.ndarray and rstd.dtype == dy.dtype and rstd.size * dy.shape[-1] == dy.size)


def _params(H, dtype, gain, bias=None):
    """Gain and bias as contiguous arrays (``None`` -> ones / zeros)."""
    g = np.ones(H, dtype=dtype) if gain is None else np.ascontiguousarray(gain)
    b = np.zeros(H, dtype=dtype) if bias is None else np.ascontiguousarray(bias)
    return g, b


def _partials(n, H):
    """Zeroed float64 partial sums (chunks, H) and the rows per chunk."""
    chunks = max(1, min(_CHUNKS, n // _ROWS_PER_CHUNK))
    per = -(-n // chunks)
    return np.zeros((chunks, H)), per


def _kernel(name, size):
    """The compiled kernel ``name``: its parallel version for arrays of ``PARALLEL_SIZE`` elements or more
    when Numba may use more than one thread (``NUMBA_NUM_THREADS=1``, as ``make test`` sets, keeps every
    call on the calling thread), else the serial one."""
    k = _compiled()
    parallel = size >= PARALLEL_SIZE and k.threads() > 1
    return getattr(k, name if parallel else name + "_serial")


def _via_reference(fn, *args):
    with dispatch.use_reference():
        return fn(*args)


def layer_norm(x, gain, bias, eps):
    """:func:`lnedu.functional.layer_norm` (arguments already checked), one compiled pass per row."""
    H = x.shape[-1]
    rows = x.reshape(-1, H)
    n = rows.shape[0]
    y, xhat = _buffers.empty(rows.shape, x.dtype), _buffers.empty(rows.shape, x.dtype)
    rstd, mean = np.empty(n, x.dtype), np.empty(n, x.dtype)
    g, b = _params(H, x.dtype, gain, bias)
    if _kernel("layer_norm_rows", rows.size)(rows, g, b, float(eps), y, xhat, rstd, mean):
        return _via_reference(_norms.layer_norm, x, gain, bias, eps)  # squares overflowed, or NaN/inf
    keep = x.shape[:-1] + (1,)
    return y.reshape(x.shape), LayerNormCache(xhat.reshape(x.shape), rstd.reshape(keep), gain)


def _backward_rows(kernel: str, dy, cache, bias: bool):
    """The backward both norms share: one compiled loop per row writes dx and per-chunk partial sums of the
    gain's (and, with ``bias``, the bias's) gradient, summed here without races. Returns ``(dx, dgain, dbias)``."""
    xhat, rstd, gain = cache
    H = dy.shape[-1]
    dy2 = dy.reshape(-1, H)
    g, _ = _params(H, dy.dtype, gain)
    dx = _buffers.empty(dy2.shape, dy.dtype)
    pg, per = _partials(dy2.shape[0], H)
    # layer norm's kernel also takes (n, 2) of the storage type for its two row means
    extra = (np.zeros_like(pg), per, np.empty((dy2.shape[0], 2), dy.dtype)) if bias else (per,)
    _kernel(kernel, dy.size)(dy2, xhat.reshape(-1, H), rstd.reshape(-1), g, dx, pg, *extra)
    dgain = pg.sum(axis=0).astype(dy.dtype) if gain is not None else None
    return dx.reshape(dy.shape), dgain, (extra[0].sum(axis=0).astype(dy.dtype) if bias else None)


def layer_norm_backward(dy, cache):
    """:func:`lnedu.functional.layer_norm_backward`: both row means and dx in one compiled loop per row."""
    return _backward_rows("layer_norm_backward_rows", dy, cache, bias=True)


def rms_norm(x, gain, eps):
    """:func:`lnedu.functional.rms_norm` (arguments already checked), one compiled pass per row."""
    H = x.shape[-1]
    rows = x.reshape(-1, H)
    n = rows.shape[0]
    y, xhat, rstd = _buffers.empty(rows.shape, x.dtype), _buffers.empty(rows.shape, x.dtype), np.empty(n, x.dtype)
    g, _ = _params(H, x.dtype, gain)
    if _kernel("rms_norm_rows", rows.size)(rows, g, float(eps), y, xhat, rstd):
        return _via_reference(_norms.rms_norm, x, gain, eps)
    keep = x.shape[:-1] + (1,)
    return y.reshape(x.shape), RMSNormCache(xhat.reshape(x.shape), rstd.reshape(keep), gain)


def rms_norm_backward(dy, cache):
    """:func:`lnedu.functional.rms_norm_backward` (layer norm's without the mean path)."""
    dx, dgain, _ = _backward_rows("rms_norm_backward_rows", dy, cache, bias=False)
    return dx, dgain


def batch_supported(x, gain, bias, *, unbiased=False) -> bool:
    """A C-contiguous 2-d NumPy float32/float64 batch (N, K) of at least ``MIN_SIZE`` elements, with the biased
    variance (the unbiased one, which the LN paper's batch-4 MLP uses on 400 values, stays with the reference)."""
    return supported(x) and x.ndim == 2 and not unbiased


def batch_backward_supported(dy, cache) -> bool:
    """What :func:`batch_supported` asks, of ``dy``, and a cache of C-contiguous arrays of its shape and dtype."""
    if not isinstance(cache, BatchNormCache):
        return False
    xhat, rstd = cache.xhat, cache.rstd
    return (supported(dy) and dy.ndim == 2 and _contiguous(xhat) and xhat.dtype == dy.dtype
            and xhat.shape == dy.shape and type(rstd) is np.ndarray and rstd.dtype == dy.dtype
            and rstd.size == dy.shape[1])


def batch_norm(x, gain, bias, eps, *, unbiased=False):
    """:func:`lnedu.functional.batch_norm` (arguments already checked, biased variance): the statistics of each
    column over the batch in one compiled loop, the normalization in another. A recurrent BN step calls it twice
    per time step: at (32, 128) it takes a fifth of the reference's ~20 NumPy passes and temporaries."""
    n, K = x.shape
    dt = x.dtype
    y, xhat = _buffers.empty(x.shape, dt), _buffers.empty(x.shape, dt)
    rstd, shift, var = np.empty(K, dt), np.empty(K, dt), np.empty(K, dt)
    g, b = _params(K, dt, gain, bias)
    if _compiled().batch_norm_cols(x, g, b, float(eps), y, xhat, rstd, shift, var):
        return _via_reference(_norms.batch_norm, x, gain, bias, eps)  # squares overflowed, or NaN/inf
    return y, BatchNormCache(xhat, rstd.reshape(1, K), gain, x[0] + shift, var, n)


def batch_norm_backward(dy, cache):
    """:func:`lnedu.functional.batch_norm_backward`: the two column sums, then ``dx``, in compiled loops."""
    xhat, rstd, gain, _, _, m = cache
    n, K = dy.shape
    dt = dy.dtype
    g, _ = _params(K, dt, gain)
    dx, pg, pb = _buffers.empty(dy.shape, dt), np.zeros(K), np.zeros(K)
    _compiled().batch_norm_backward_cols(dy, xhat, rstd.reshape(K), g, m, dx, pg, pb, np.empty((2, K), dt))
    return dx, (pg.astype(dt) if gain is not None else None), pb.astype(dt)


_PAIRS = (("layer_norm", supported, layer_norm), ("layer_norm_backward", backward_supported, layer_norm_backward),
          ("rms_norm", supported, rms_norm), ("rms_norm_backward", backward_supported, rms_norm_backward),
          ("batch_norm", batch_supported, batch_norm),
          ("batch_norm_backward", batch_backward_supported, batch_norm_backward))


def _label(fn) -> str:
    return f"{fn.__module__}.{fn.__name__}"


def register_pairs(pairs) -> bool:
    """Register each ``(name, supported, impl)`` with :mod:`lnedu.functional.dispatch`, labelled by the impl's module
    and name, if Numba is installed (nothing is imported or compiled here). Returns whether they were registered.
    This module's :func:`register` and those of the recurrent steps' Numba modules call it."""
    if not available():
        return False
    for name, ok, fn in pairs:
        dispatch.register(name, ok, fn, label=_label(fn))
    return True


def unregister_pairs(pairs) -> None:
    """Undo :func:`register_pairs` (for tests and benchmarks)."""
    for name, _, fn in pairs:
        if _label(fn) in dispatch.implementations(name):
            dispatch.unregister(name, fn)


def register() -> bool:
    """Register the six functions with :mod:`lnedu.functional.dispatch` if Numba is installed (done when
    lnedu.functional loads; nothing is imported or compiled here). Returns whether they were registered."""
    return register_pairs(_PAIRS)


def unregister() -> None:
    """Undo :func:`register` (for tests and benchmarks)."""
    unregister_pairs(_PAIRS)
