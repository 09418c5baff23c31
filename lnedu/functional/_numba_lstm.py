"""The LSTM step's pointwise part compiled with Numba: the CPU fast path of :func:`lnedu.functional.lstm_step` and
its backward, registered with the dispatch when Numba is installed.

:func:`lnedu.functional.lstm_step` is what a student reads: one NumPy operation per line of Eq. 20-22, which at
the sizes a CPU trains a recurrent network on (a batch of tens, a few hundred units) makes a step about twenty
NumPy calls and as many temporaries, each costing more than its arithmetic. Here the matrix product
``h_prev @ W_h`` stays with BLAS and ``tanh`` with NumPy's vectorized loop; the rest (the layer norm of the
recurrent term, the sum with the input term, the gates, the cell and its layer norm) is two compiled loops over
the batch's rows. The backward, which needs no ``tanh``, is one compiled loop, with the two products
``da_h @ W_h.T`` and ``h_prev.T @ da_h`` back in BLAS. The caches are the reference's own types
(:class:`~lnedu.functional.recurrent.LSTMStepCache` holding ``NormCache``/``LayerNormCache``), so either
backward runs after either forward.

Which steps: the un-normalized LSTM (Eq. 17-19) and the LN-LSTM (Eq. 20-22: a whole-row layer norm of
``W_h h``, of ``c``, or both), with or without NormProp's output scale, float32 or float64 NumPy arrays. Any
other normalization (batch norm, per-gate layer norm, NormProp's fixed norm, a norm of the sum) takes the
reference. Numerics as in :mod:`lnedu.functional._numba`: shifted two-pass statistics, sums in float64; a row
whose statistics are not finite sends the whole call to the reference. Nothing is imported or compiled when
lnedu is imported.
"""

from __future__ import annotations

import math

import numpy as np

from . import _numba, dispatch
from . import recurrent as _recurrent
from .norms import LayerNormCache
from .recurrent import LSTMStepCache, LSTMStepGrads, Norm, NormCache

__all__ = ["lstm_step", "lstm_step_backward", "step_supported", "backward_supported", "register", "unregister"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _whole_row_ln(norm, n: int, dtype) -> bool:
    """``None``, or a layer norm over the whole row (``groups == 1``) of ``n`` units, a finite positive ``eps``, and a
    gain and bias (each may be ``None``) of shape ``(n,)`` and ``dtype`` (anything else goes to the reference,
    which refuses what it must, naming the argument)."""
    if norm is None:
        return True
    return (isinstance(norm, Norm) and norm.kind == "layer" and norm.groups == 1
            and isinstance(norm.eps, (int, float)) and not isinstance(norm.eps, bool) and 0 < norm.eps < math.inf
            and all(p is None or (type(p) is np.ndarray and p.shape == (n,) and p.dtype == dtype)
                    for p in (norm.gain, norm.bias)))


def step_supported(a_x, h_prev, c_prev, W_h, *, norm_h=None, norm_a=None, norm_c=None, out_scale=None) -> bool:
    """Float32/float64 NumPy arrays (already checked for shapes and dtypes by the public function) whose gates
    hold at least ``_numba.MIN_SIZE`` numbers (a hand-sized step runs the code a student reads, as layer norm
    does), no ``norm_a``, ``norm_h`` and ``norm_c`` each absent or a whole-row layer norm, ``out_scale`` absent
    or a number."""
    if not (type(a_x) is np.ndarray and a_x.dtype in _DTYPES and a_x.size >= _numba.MIN_SIZE
            and type(h_prev) is np.ndarray and type(c_prev) is np.ndarray and type(W_h) is np.ndarray
            and norm_a is None):
        return False
    H = c_prev.shape[-1]
    return (_whole_row_ln(norm_h, 4 * H, a_x.dtype) and _whole_row_ln(norm_c, H, a_x.dtype)
            and (out_scale is None or (isinstance(out_scale, (int, float)) and not isinstance(out_scale, bool))))


def _ln_of(cache) -> bool:
    return cache is None or (isinstance(cache, NormCache) and cache.kind == "layer" and cache.groups == 1
                             and isinstance(cache.inner, LayerNormCache))


def backward_supported(dh, dc, cache, *, weight_grad=True, out=None) -> bool:
    """A cache of a step :func:`step_supported` accepts (whichever path ran its forward), NumPy ``dh`` (and
    ``dc`` of its shape and dtype)."""
    return (isinstance(cache, LSTMStepCache) and type(dh) is np.ndarray and dh.dtype in _DTYPES
            and type(cache.gates) is np.ndarray and cache.gates.size >= _numba.MIN_SIZE
            and cache.gates.dtype == dh.dtype and cache.norm_a is None
            and (dc is None or (type(dc) is np.ndarray and dc.shape == dh.shape and dc.dtype == dh.dtype))
            and _ln_of(cache.norm_h) and _ln_of(cache.norm_c)
            and (cache.out_scale is None or isinstance(cache.out_scale, (int, float))))


def _affine(norm, n, dtype):
    """``(flag, gain, bias, eps)`` of a norm for the kernel: ones and zeros where the gain or bias is absent."""
    if norm is None:
        return False, np.ones(1, dtype), np.zeros(1, dtype), 1.0
    g = np.ones(n, dtype) if norm.gain is None else np.ascontiguousarray(norm.gain, dtype)
    b = np.zeros(n, dtype) if norm.bias is None else np.ascontiguousarray(norm.bias, dtype)
    return True, g, b, float(norm.eps)


def _norm_buffers(on, B, n, dt):
    """``xhat`` and ``rstd`` for a norm the kernel computes (dummies where it has none)."""
    return (np.empty((B, n), dt), np.empty(B, dt)) if on else (np.empty((1, 1), dt), np.empty(1, dt))


def _norm_cache(norm, xhat, rstd):
    """The reference's cache of a whole-row layer norm, from the kernel's ``xhat`` and ``1/sigma``."""
    if norm is None:
        return None
    return NormCache("layer", LayerNormCache(xhat, rstd.reshape(-1, 1), norm.gain), norm.gain, 1,
                     norm.bias is not None)


def lstm_step(a_x, h_prev, c_prev, W_h, *, norm_h=None, norm_a=None, norm_c=None, out_scale=None):
    """:func:`lnedu.functional.lstm_step` (arguments already checked): BLAS for ``h_prev @ W_h``, NumPy for
    ``tanh``, two compiled loops over the rows for the rest."""
    B, H = c_prev.shape
    dt = a_x.dtype
    a_h = np.ascontiguousarray(h_prev @ W_h, dtype=dt)  # normalized in place by the kernel
    on_h, gh, bh, eps_h = _affine(norm_h, 4 * H, dt)
    on_c, gc, bc, eps_c = _affine(norm_c, H, dt)
    c, tanh_c, gates = np.empty((B, H), dt), np.empty((B, H), dt), np.empty((B, 4 * H), dt)
    xhat_h, rstd_h = _norm_buffers(on_h, B, 4 * H, dt)
    xhat_c, rstd_c = _norm_buffers(on_c, B, H, dt)
    k = _numba._compiled()
    bad = k.gate_preactivation_rows(np.ascontiguousarray(a_x), a_h, on_h, gh, bh, eps_h, gates, xhat_h, rstd_h,
                                    3 * H)
    if not bad:
        np.tanh(gates, out=gates)  # tanh(a_g), and tanh(a/2) of f, i, o, which the next kernel makes sigma(a)
        bad = k.lstm_cell_rows(gates, np.ascontiguousarray(c_prev), on_c, gc, bc, eps_c, c, tanh_c, xhat_c, rstd_c)
    if bad:  # a row's statistics overflowed (or held NaN/inf): the reference rescales or shows it
        with dispatch.use_reference():
            return _recurrent.lstm_step(a_x, h_prev, c_prev, W_h, norm_h=norm_h, norm_c=norm_c, out_scale=out_scale)
    np.tanh(tanh_c, out=tanh_c)
    h = np.multiply(gates[:, 2 * H: 3 * H], tanh_c)
    if out_scale is not None:
        h *= out_scale
    return h, c, LSTMStepCache(h_prev, c_prev, W_h, gates, tanh_c, _norm_cache(norm_h, xhat_h, rstd_h), None,
                               _norm_cache(norm_c, xhat_c, rstd_c), out_scale)


def _norm_grads(norm_cache, pg, pb, dtype):
    """``(dgain, dbias)`` of a step's norm from the float64 sums (``None`` where it has no gain or bias)."""
    if norm_cache is None:
        return None
    return (pg.astype(dtype) if norm_cache.gain is not None else None,
            pb.astype(dtype) if norm_cache.has_bias else None)


def _rows(cache, B, width, dt):
    """``(present, xhat, rstd, gain)`` of a norm cache as the kernel takes them (dummies where there is none)."""
    if cache is None:
        return False, np.empty((1, 1), dt), np.empty(1, dt), np.ones(1, dt)
    inner = cache.inner
    gain = np.ones(width, dt) if cache.gain is None else np.ascontiguousarray(cache.gain, dt)
    return (True, np.ascontiguousarray(inner.xhat, dt).reshape(B, width),
            np.ascontiguousarray(inner.rstd, dt).reshape(B), gain)


def lstm_step_backward(dh, dc, cache, *, weight_grad: bool = True, out=None):
    """:func:`lnedu.functional.lstm_step_backward`: one compiled loop per row, BLAS for the two products."""
    _recurrent._check_backward(dh, cache, LSTMStepCache, "lstm_step")
    h_prev, c_prev, W_h, gates, tanh_c, cache_h, _, cache_c, out_scale = cache
    B, H = h_prev.shape
    dt = dh.dtype
    on_c, xhat_c, rstd_c, gc = _rows(cache_c, B, H, dt)
    on_h, xhat_h, rstd_h, gh = _rows(cache_h, B, 4 * H, dt)
    da_x, da_h, dc_prev = np.empty((B, 4 * H), dt), np.empty((B, 4 * H), dt), np.empty((B, H), dt)
    pgc, pbc = np.zeros(H), np.zeros(H)
    pgh, pbh = np.zeros(4 * H), np.zeros(4 * H)
    scale = 1.0 if out_scale is None else float(out_scale)
    has_dc = dc is not None
    _numba._compiled().lstm_step_backward_rows(
        np.ascontiguousarray(dh), np.ascontiguousarray(dc) if has_dc else dh, has_dc, np.ascontiguousarray(c_prev),
        np.ascontiguousarray(gates), np.ascontiguousarray(tanh_c), scale, on_c, xhat_c, rstd_c, gc,
        on_h, xhat_h, rstd_h, gh, da_x, da_h, dc_prev, pgc, pbc, pgh, pbh)
    dW_h = h_prev.T @ da_h if weight_grad else None
    return LSTMStepGrads(_recurrent._into(out, da_x), da_h @ W_h.T, dc_prev, dW_h, _norm_grads(cache_h, pgh, pbh, dt),
                         None, _norm_grads(cache_c, pgc, pbc, dt), da_h)


_PAIRS = (("lstm_step", step_supported, lstm_step), ("lstm_step_backward", backward_supported, lstm_step_backward))


def register() -> bool:
    """Register the step and its backward with :mod:`lnedu.functional.dispatch` if Numba is installed
    (nothing is imported or compiled here). Returns whether they were registered."""
    return _numba.register_pairs(_PAIRS)


def unregister() -> None:
    """Undo :func:`register` (for tests and benchmarks)."""
    _numba.unregister_pairs(_PAIRS)
