r"""The attentive reader's attention (Hermann et al. 2015, §3.2), forward and backward by hand.

The reader encodes the document into states :math:`y_t` and the query into one vector :math:`u`, then reads
the document through a soft attention:

.. math::
    m_t = \tanh(W_{ym} y_t + W_{um} u),\qquad s_t \propto \exp(w_{ms}^\top m_t),\qquad r = \sum_t s_t\, y_t .

:func:`attentive_read` takes the two projections :math:`a^y_t = W_{ym} y_t` and :math:`a^u = W_{um} u` as
inputs rather than the weights, so that a model can normalize them first (batch norm everywhere, say) and
still use this one function; with plain projections it is exactly Hermann et al.'s Eq. for :math:`m_t`.
Padded document positions (``mask`` 0) get no attention: their score is :math:`-\infty`.
:func:`candidate_logits` restricts the answer scores to the entities of the document.
"""

from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float_array, check_shape
from ..backend import get_array_module

__all__ = ["AttentiveReadCache", "attentive_read", "attentive_read_backward", "candidate_logits",
           "candidate_logits_backward"]


class AttentiveReadCache(NamedTuple):
    Y: object  # (T, B, H) document states
    m: object  # (T, B, A) tanh(a_y + a_u)
    s: object  # (T, B) attention weights (0 at padded positions)
    w_ms: object  # (A,)


def attentive_read(Y, a_y, a_u, w_ms, mask=None):
    r"""The attention read :math:`r = \sum_t s_t y_t` (Hermann et al. 2015, §3.2).

    ``Y`` (T, B, H): the document's states :math:`y_t`; ``a_y`` (T, B, A): :math:`W_{ym} y_t`; ``a_u`` (B, A):
    :math:`W_{um} u`; ``w_ms`` (A,); ``mask`` (T, B) bool or 0/1 (``None``: every position real).
    Returns ``(r (B, H), cache)``; ``cache.s`` (T, B) holds the attention weights, for plotting.
    """
    check_float_array("Y", Y, ndim=3)
    check_float_array("a_y", a_y, ndim=3)
    check_float_array("a_u", a_u, ndim=2)
    check_float_array("w_ms", w_ms, ndim=1)
    T, B, _ = Y.shape
    A = w_ms.shape[0]
    check_shape("a_y", a_y, (T, B, A))
    check_shape("a_u", a_u, (B, A))
    xp = get_array_module(Y)
    m = xp.tanh(a_y + a_u[None])
    e = m @ w_ms  # (T, B) scores
    if mask is not None:
        check_shape("mask", mask, (T, B))
        e = xp.where(xp.asarray(mask, dtype=bool), e, -xp.inf)
    e = e - e.max(axis=0, keepdims=True)
    s = xp.exp(e)
    s /= s.sum(axis=0, keepdims=True)
    r = xp.einsum("tb,tbh->bh", s, Y)
    return r, AttentiveReadCache(Y, m, s, w_ms)


def attentive_read_backward(dr, cache: AttentiveReadCache):
    r"""Gradients of :func:`attentive_read`: ``(dY, da_y, da_u, dw_ms)``.

    Backward through the three steps: :math:`dy_t = s_t\,dr` and :math:`ds_t = y_t^\top dr`; the softmax gives
    :math:`de_t = s_t (ds_t - \sum_k s_k ds_k)`; then :math:`dw_{ms} = \sum_{t,b} de_t m_t` and
    :math:`da^y_t = de_t\, w_{ms} \odot (1 - m_t^2)`, whose sum over t is :math:`da^u` (the same
    :math:`a^u` enters every position). The gradient of ``Y`` here is the read's share only; the share through
    ``a_y`` goes back through whatever made ``a_y``.
    """
    Y, m, s, w_ms = cache
    check_shape("dr", dr, (Y.shape[1], Y.shape[2]))
    xp = get_array_module(Y)
    dY = s[:, :, None] * dr[None]
    ds = xp.einsum("tbh,bh->tb", Y, dr)
    de = s * (ds - (s * ds).sum(axis=0, keepdims=True))
    dw_ms = xp.einsum("tb,tba->a", de, m)
    da_y = de[:, :, None] * w_ms
    da_y *= 1 - m * m
    return dY, da_y, da_y.sum(axis=0), dw_ms


def candidate_logits(z, candidates):
    """Answer scores restricted to the candidates: ``z`` where ``candidates`` (same shape, bool) is true, and
    ``-inf`` elsewhere, so the softmax gives the other entities probability 0. Returns ``(logits, candidates)``."""
    check_float_array("z", z, min_ndim=1)
    check_shape("candidates", candidates, z.shape)
    xp = get_array_module(z)
    cand = xp.asarray(candidates, dtype=bool)
    return xp.where(cand, z, -xp.inf).astype(z.dtype, copy=False), cand


def candidate_logits_backward(dlogits, cand):
    """``dz = dlogits`` on the candidates and 0 elsewhere."""
    xp = get_array_module(dlogits)
    return xp.where(cand, dlogits, 0).astype(dlogits.dtype, copy=False)
