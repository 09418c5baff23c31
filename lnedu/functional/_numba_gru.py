"""The GRU and MGU steps' pointwise parts compiled with Numba: the CPU fast path of
:func:`lnedu.functional.gru_step`, :func:`lnedu.functional.mgu_step` and their backwards, registered with the
dispatch when Numba is installed.

The same idea as :mod:`lnedu.functional._numba_lstm`, whose module docstring says why: the products stay with
BLAS (``h_prev @ [W_h | U]`` once with the reset after ``U``; ``h_prev @ W_h`` and ``(r * h_prev) @ U`` with it
before, and in the MGU), ``tanh`` with NumPy's vectorized loop, and what lies between (the layer norms of the
recurrent terms, the sums with the input terms, the gates, the update) is a few compiled loops over the batch's
rows. The caches are the reference's types (:class:`~lnedu.functional.recurrent.GRUStepCache`,
:class:`~lnedu.functional.recurrent.MGUStepCache`), so either backward runs after either forward.

Which steps: both resets of the GRU and the MGU, un-normalized or with whole-row layer norms of the recurrent
terms (the LN paper's ``N_h`` over the 2H gates, ``N_hc`` over the candidate's H; the input terms' norms are in
``a_x``), float32 or float64 NumPy arrays of at least ``_numba.MIN_SIZE`` input values. Any other norm (batch
norm, per-gate layer norm, a norm of a sum, haste's one norm of the whole 3H product) takes the reference, and so
does a call where a row's statistics are not finite (the reference rescales or shows it).
"""

from __future__ import annotations

import numpy as np

from . import _numba, dispatch
from . import recurrent as _recurrent
from ._numba_lstm import _DTYPES, _affine, _ln_of, _norm_buffers, _norm_cache, _norm_grads, _rows, _whole_row_ln
from .recurrent import GRUStepCache, GRUStepGrads, MGUStepCache, MGUStepGrads

__all__ = ["gru_step", "gru_step_backward", "mgu_step", "mgu_step_backward", "step_supported", "register",
           "unregister"]


def step_supported(a_x, h_prev, W_hh, *, reset="after", norm_h=None, norm_hc=None, norm_a=None, norm_ac=None,
                   norm_hh=None) -> bool:
    """NumPy float32/float64 arrays (shapes and dtypes already checked by the public function) with at least
    ``_numba.MIN_SIZE`` input values, ``norm_h`` and ``norm_hc`` each absent or a whole-row layer norm, no other
    norm. The MGU's step is asked the same (its ``a_x`` is (B, 2H) and its ``N_h`` covers H)."""
    if not (type(a_x) is np.ndarray and a_x.dtype in _DTYPES and a_x.size >= _numba.MIN_SIZE
            and type(h_prev) is np.ndarray and type(W_hh) is np.ndarray
            and norm_a is None and norm_ac is None and norm_hh is None and reset in ("after", "before")):
        return False
    H = h_prev.shape[-1]
    gates = a_x.shape[-1] - H  # 2H in the GRU, H in the MGU
    return _whole_row_ln(norm_h, gates, a_x.dtype) and _whole_row_ln(norm_hc, H, a_x.dtype)


def _backward_supported(dh, cache, cache_type, gates) -> bool:
    """A cache of ``cache_type`` from a step :func:`step_supported` accepts (whichever path ran its forward), and
    NumPy ``dh`` of its dtype."""
    return (isinstance(cache, cache_type) and type(dh) is np.ndarray and dh.dtype in _DTYPES
            and type(gates) is np.ndarray and gates.dtype == dh.dtype
            and gates.ndim == 2 and (gates.shape[1] + cache.h_prev.shape[-1]) * gates.shape[0] >= _numba.MIN_SIZE
            and cache.norm_a is None and cache.norm_ac is None and getattr(cache, "norm_hh", None) is None
            and _ln_of(cache.norm_h) and _ln_of(cache.norm_hc))


def gru_backward_supported(dh, cache, *, weight_grad=True, out=None) -> bool:
    return _backward_supported(dh, cache, GRUStepCache, getattr(cache, "gates", None))


def mgu_backward_supported(dh, cache, *, weight_grad=True, out=None) -> bool:
    return _backward_supported(dh, cache, MGUStepCache, getattr(cache, "f", None))


def _gates_and_candidate(a_x, h_prev, W_hh, G, r0, norm_h, norm_hc, k):
    """The steps where the gate multiplies ``h_prev`` before ``U`` (the reset-before GRU, the MGU), up to the
    candidate's ``tanh``: ``(gates, rh, s, caches)``, or ``None`` where a row's statistics were not finite."""
    B, H = h_prev.shape
    dt = a_x.dtype
    on_h, gh, bh, eps_h = _affine(norm_h, G, dt)
    on_c, gc, bc, eps_c = _affine(norm_hc, H, dt)
    xhat_h, rstd_h = _norm_buffers(on_h, B, G, dt)
    xhat_c, rstd_c = _norm_buffers(on_c, B, H, dt)
    gates, rh, s = np.empty((B, G), dt), np.empty((B, H), dt), np.empty((B, H), dt)
    a_h = np.ascontiguousarray(h_prev @ W_hh[:, :G], dtype=dt)
    if k.gate_preactivation_rows(a_x, a_h, on_h, gh, bh, eps_h, gates, xhat_h, rstd_h, G):
        return None
    np.tanh(gates, out=gates)
    k.reset_rows(gates, h_prev, r0, rh)
    a_c = np.ascontiguousarray(rh @ W_hh[:, G:], dtype=dt)
    if k.gate_preactivation_rows(a_x[:, G:], a_c, on_c, gc, bc, eps_c, s, xhat_c, rstd_c, 0):  # s = a_x^c + N_hc(a_c)
        return None
    return gates, rh, s, _norm_cache(norm_h, xhat_h, rstd_h), _norm_cache(norm_hc, xhat_c, rstd_c)


def _update(h_prev, gates, s, k):
    """``h_hat = tanh(s)`` (in place) and ``h = h_prev + z * (h_hat - h_prev)``."""
    np.tanh(s, out=s)
    h = np.empty_like(h_prev)
    k.update_rows(h_prev, gates, s, h)
    return h


def gru_step(a_x, h_prev, W_hh, *, reset="after", norm_h=None, norm_hc=None, norm_a=None, norm_ac=None,
             norm_hh=None):
    """:func:`lnedu.functional.gru_step` (arguments already checked): BLAS for the products, NumPy for ``tanh``,
    compiled loops over the rows for the rest."""
    B, H = h_prev.shape
    dt = a_x.dtype
    k = _numba._compiled()
    a_x, h_prev = np.ascontiguousarray(a_x), np.ascontiguousarray(h_prev)
    if reset == "before":
        done = _gates_and_candidate(a_x, h_prev, W_hh, 2 * H, H, norm_h, norm_hc, k)
        if done is not None:
            gates, rh, s, cache_h, cache_hc = done
            h = _update(h_prev, gates, s, k)
            return h, GRUStepCache(h_prev, W_hh, reset, gates, None, rh, s, cache_h, cache_hc, None, None)
    else:
        on_h, gh, bh, eps_h = _affine(norm_h, 2 * H, dt)
        on_c, gc, bc, eps_c = _affine(norm_hc, H, dt)
        xhat_h, rstd_h = _norm_buffers(on_h, B, 2 * H, dt)
        xhat_c, rstd_c = _norm_buffers(on_c, B, H, dt)
        gates, s = np.empty((B, 2 * H), dt), np.empty((B, H), dt)
        a_hh = np.ascontiguousarray(h_prev @ W_hh, dtype=dt)  # [W_h h | U h]; both parts normalized in place
        if not k.gru_after_rows(a_x, a_hh, on_h, gh, bh, eps_h, xhat_h, rstd_h, on_c, gc, bc, eps_c, xhat_c, rstd_c,
                                gates):
            np.tanh(gates, out=gates)
            u = a_hh[:, 2 * H:].copy()  # N_hc(U h_{t-1}), on its own: the cache keeps (B, H), not (B, 3H)
            k.gru_after_candidate_rows(gates, a_x, u, s)
            h = _update(h_prev, gates, s, k)
            return h, GRUStepCache(h_prev, W_hh, reset, gates, u, None, s, _norm_cache(norm_h, xhat_h, rstd_h),
                                   _norm_cache(norm_hc, xhat_c, rstd_c), None, None)
    with dispatch.use_reference():  # a row overflowed (or held NaN/inf): the reference rescales or shows it
        return _recurrent.gru_step(a_x, h_prev, W_hh, reset=reset, norm_h=norm_h, norm_hc=norm_hc)


def _da_x_buffer(out, shape, dt):
    """``out`` itself when the kernel can write into it (C-contiguous, of the shape and dtype), else a new array
    (which ``_into`` copies into ``out``)."""
    if type(out) is np.ndarray and out.shape == shape and out.dtype == dt and out.flags.c_contiguous:
        return out
    return np.empty(shape, dt)


def gru_step_backward(dh, cache, *, weight_grad: bool = True, out=None):
    """:func:`lnedu.functional.gru_step_backward`: compiled loops per row, BLAS for the products."""
    _recurrent._check_backward(dh, cache, GRUStepCache, "gru_step")
    h_prev, W_hh, reset, gates, u, rh, h_hat, cache_h, cache_hc = cache[:9]
    B, H = h_prev.shape
    dt = dh.dtype
    dh = np.ascontiguousarray(dh)
    on_c, xhat_c, rstd_c, gc = _rows(cache_hc, B, H, dt)
    on_h, xhat_h, rstd_h, gh = _rows(cache_h, B, 2 * H, dt)
    da_x = _da_x_buffer(out, (B, 3 * H), dt)
    da_hh, dh_prev = np.empty((B, 3 * H), dt), np.empty((B, H), dt)
    pgc, pbc, pgh, pbh = np.zeros(H), np.zeros(H), np.zeros(2 * H), np.zeros(2 * H)
    k = _numba._compiled()
    if reset == "after":
        k.gru_after_backward_rows(dh, h_prev, gates, u, h_hat, on_c, xhat_c, rstd_c, gc, on_h, xhat_h, rstd_h, gh,
                                  da_x, da_hh, dh_prev, pgc, pbc, pgh, pbh)
        dh_prev += da_hh @ W_hh.T
        dW = h_prev.T @ da_hh if weight_grad else None
    else:
        da_h, da_c = da_hh[:, : 2 * H], da_hh[:, 2 * H:]
        dz = np.empty((B, H), dt)
        k.candidate_backward_rows(dh, h_prev, gates, h_hat, on_c, xhat_c, rstd_c, gc, da_x, 2 * H, da_c, dz, dh_prev,
                                  pgc, pbc)
        drh = da_c @ W_hh[:, 2 * H:].T
        k.gate_backward_rows(drh, h_prev, gates, H, dz, on_h, xhat_h, rstd_h, gh, da_x, da_h, dh_prev, pgh, pbh)
        dh_prev += da_h @ W_hh[:, : 2 * H].T
        dW = np.concatenate([h_prev.T @ da_h, rh.T @ da_c], axis=1) if weight_grad else None
    return GRUStepGrads(_recurrent._into(out, da_x), dh_prev, dW, _norm_grads(cache_h, pgh, pbh, dt),
                        _norm_grads(cache_hc, pgc, pbc, dt), None, None, da_hh, None)


def mgu_step(a_x, h_prev, W_hh, *, norm_h=None, norm_hc=None, norm_a=None, norm_ac=None):
    """:func:`lnedu.functional.mgu_step` (arguments already checked): as the reset-before GRU, with one gate."""
    H = h_prev.shape[-1]
    a_x, h_prev = np.ascontiguousarray(a_x), np.ascontiguousarray(h_prev)
    k = _numba._compiled()
    done = _gates_and_candidate(a_x, h_prev, W_hh, H, 0, norm_h, norm_hc, k)
    if done is None:
        with dispatch.use_reference():
            return _recurrent.mgu_step(a_x, h_prev, W_hh, norm_h=norm_h, norm_hc=norm_hc)
    f, fh, s, cache_h, cache_hc = done
    h = _update(h_prev, f, s, k)
    return h, MGUStepCache(h_prev, W_hh, f, fh, s, cache_h, cache_hc, None, None)


def mgu_step_backward(dh, cache, *, weight_grad: bool = True, out=None):
    """:func:`lnedu.functional.mgu_step_backward`: two compiled loops per row, BLAS for the products."""
    _recurrent._check_backward(dh, cache, MGUStepCache, "mgu_step")
    h_prev, W_hh, f, fh, h_hat, cache_h, cache_hc = cache[:7]
    B, H = h_prev.shape
    dt = dh.dtype
    dh = np.ascontiguousarray(dh)
    on_c, xhat_c, rstd_c, gc = _rows(cache_hc, B, H, dt)
    on_h, xhat_h, rstd_h, gh = _rows(cache_h, B, H, dt)
    da_x = _da_x_buffer(out, (B, 2 * H), dt)
    da_hh, dh_prev, df = np.empty((B, 2 * H), dt), np.empty((B, H), dt), np.empty((B, H), dt)
    da_h, da_c = da_hh[:, :H], da_hh[:, H:]
    pgc, pbc, pgh, pbh = np.zeros(H), np.zeros(H), np.zeros(H), np.zeros(H)
    k = _numba._compiled()
    k.candidate_backward_rows(dh, h_prev, f, h_hat, on_c, xhat_c, rstd_c, gc, da_x, H, da_c, df, dh_prev, pgc, pbc)
    dfh = da_c @ W_hh[:, H:].T
    k.gate_backward_rows(dfh, h_prev, f, 0, df, on_h, xhat_h, rstd_h, gh, da_x, da_h, dh_prev, pgh, pbh)
    dh_prev += da_h @ W_hh[:, :H].T
    dW = np.concatenate([h_prev.T @ da_h, fh.T @ da_c], axis=1) if weight_grad else None
    return MGUStepGrads(_recurrent._into(out, da_x), dh_prev, dW, _norm_grads(cache_h, pgh, pbh, dt),
                        _norm_grads(cache_hc, pgc, pbc, dt), None, None, da_hh)


_PAIRS = (("gru_step", step_supported, gru_step), ("gru_step_backward", gru_backward_supported, gru_step_backward),
          ("mgu_step", step_supported, mgu_step), ("mgu_step_backward", mgu_backward_supported, mgu_step_backward))


def register() -> bool:
    """Register the steps and their backwards with :mod:`lnedu.functional.dispatch` if Numba is installed
    (nothing is imported or compiled here). Returns whether they were registered."""
    return _numba.register_pairs(_PAIRS)


def unregister() -> None:
    """Undo :func:`register` (for tests and benchmarks)."""
    _numba.unregister_pairs(_PAIRS)
