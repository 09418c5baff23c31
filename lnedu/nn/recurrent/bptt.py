r"""Backprop through time: the two time loops every recurrent layer runs, forward over the T steps and back.

The loops are written once, here, for every cell (LSTM, GRU, MGU, RNN, BN-LSTM, NormProp-LSTM). A cell is
any object with these operations (each cell class in this package has them, written out for its equations)::

    A, icache = cell.input_term(x)          # a_x,t = W_x x_t + b for all T steps at once: (T, B, K)
    ctx = cell.step_context(T)               # what every step shares: the recurrent weights, the norms
    new, cache = cell.step(t, A[t], state, ctx)               # one step: the new state (h,) or (h, c)
    dprev, da_h = cell.step_backward(t, dnew, cache, ctx, out=dA[t])  # its backward; da_x goes into dA[t]
    cell.recurrent_grads(ctx, Hs, caches, dAh)   # dW_h = sum_t h_{t-1}^T da_h,t: one product after the loop
    dx = cell.input_term_backward(dA, icache)    # dW_x, db (and the input norm's gradients), and dx

Splitting off the input term makes ``x W_x`` one ``(T*B, D) @ (D, K)`` product instead of T small ones, and
collecting the recurrent products' gradients ``da_h,t`` in a (T, B, K) buffer does the same for ``dW_h``.

* **Masks** (variable-length sequences): at a padded step the state stays as it was, the output is 0, and in
  the backward the state's gradient passes through unchanged while the step receives none.
* **Truncated BPTT**: the forward starts from any ``state0`` and returns its final state; the backward takes
  the gradient of that final state (``dstate``) and returns the gradient of ``state0``, which the previous
  window's backward can take as its ``dstate``. (The checks, the initial state and the cache a layer keeps
  between the two calls are in :mod:`.layer`.)
"""

from __future__ import annotations

from typing import NamedTuple

from ...backend import get_array_module

__all__ = ["BPTTCache", "run_forward", "run_backward"]


class BPTTCache(NamedTuple):
    """What :func:`run_forward` keeps for :func:`run_backward`."""

    A_shape: tuple  # (T, B, K): the input terms' shape
    icache: object  # the input term's cache
    ctx: object  # the step context (the cell's typed NamedTuple)
    Hs: object  # (T + 1, B, H): h_0 .. h_T, the recurrent products' inputs
    caches: list  # one cache per step


def run_forward(cell, x, state0, mask):
    """Run ``cell`` over ``x`` (T, B, D) from ``state0`` (a tuple of (B, H) arrays, h first); ``mask`` (T, B)
    bool or ``None``. Returns ``(out (T, B, H), final state tuple, BPTTCache)``."""
    xp = get_array_module(x)
    T, B, _ = x.shape
    H = cell.hidden_size
    A, icache = cell.input_term(x)
    ctx = cell.step_context(T)
    Hs = xp.empty((T + 1, B, H), dtype=x.dtype)  # h_0 .. h_T
    Hs[0] = state0[0]
    out = None if mask is None else xp.empty((T, B, H), dtype=x.dtype)
    caches = []
    state = state0
    for t in range(T):
        new, cache = cell.step(t, A[t], state, ctx)
        if mask is not None:  # a padded step keeps the state and outputs 0
            m = mask[t][:, None]
            out[t] = xp.where(m, new[0], 0)
            new = tuple(xp.where(m, n, s) for n, s in zip(new, state))
        Hs[t + 1] = new[0]
        caches.append(cache)
        state = (Hs[t + 1],) + tuple(new[1:])  # the next step reads h from the buffer: h is stored once
    if mask is None:
        out = Hs[1:].copy()
    final = tuple(s.copy() for s in state)
    return out, final, BPTTCache(A.shape, icache, ctx, Hs, caches)


def run_backward(cell, cache: BPTTCache, dout, dstate, mask):
    """Backprop through the steps of ``cache`` in reverse: ``dout`` (T, B, H) or ``None`` (zero), ``dstate``
    the final state's gradient (a tuple of (B, H) arrays), ``mask`` as in the forward. Accumulates the
    parameters' gradients into ``cell.grads``; returns ``(dx (T, B, D), dstate0)``."""
    A_shape, icache, ctx, Hs, caches = cache
    xp = get_array_module(Hs)
    dA = xp.empty(A_shape, dtype=Hs.dtype)  # the input terms' gradients da_x,t
    # the recurrent products' gradients da_h,t: the same array, unless a norm or a candidate sits between them
    dAh = xp.empty(A_shape, dtype=Hs.dtype) if ctx.own_da_h else dA
    ds = dstate
    for t in reversed(range(len(caches))):
        d = list(ds)
        if dout is not None:  # h_t goes both to the output and to the next step
            d[0] = d[0] + dout[t]
        if mask is not None:
            m = mask[t][:, None]
            keep = [xp.where(m, 0, di) for di in ds]  # a padded step passes the state's gradient through
            d = [xp.where(m, di, 0) for di in d]
        dprev, da_h = cell.step_backward(t, d, caches[t], ctx, dA[t])
        if dAh is not dA:
            dAh[t] = da_h
        if mask is not None:
            dprev = [dp + k for dp, k in zip(dprev, keep)]
        ds = tuple(dprev)
    dx = cell.input_term_backward(dA, icache)
    cell.recurrent_grads(ctx, Hs, caches, dAh)
    return dx, ds
