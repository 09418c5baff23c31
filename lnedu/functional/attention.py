"""DRAW's selective attention (Gregor et al. 2015, Eq. 19-28): Gaussian filterbanks, read and write.

An N x N grid of Gaussian filters is laid over a B x A image (height B, width A). Five numbers, produced by a
linear map of the decoder state, place it: the grid centre ``(g_X, g_Y)``, the stride ``delta`` between filters,
the filters' variance ``sigma^2`` and an intensity ``gamma``:

.. math::
    g_X = \\tfrac{A+1}{2}(\\tilde g_X + 1),\\quad g_Y = \\tfrac{B+1}{2}(\\tilde g_Y + 1),\\quad
    \\delta = \\tfrac{\\max(A,B)-1}{N-1}\\,e^{\\log\\tilde\\delta},\\quad \\sigma^2 = e^{\\log\\sigma^2},\\quad
    \\gamma = e^{\\log\\gamma}

    \\mu_X^i = g_X + (i - N/2 - 1/2)\\,\\delta, \\qquad
    F_X[i, a] = \\frac{1}{Z_X^i}\\exp\\Big(-\\frac{(a-\\mu_X^i)^2}{2\\sigma^2}\\Big)

(and the same along Y), with pixel positions ``a = 1..A`` and filter indices ``i = 1..N`` as in the paper.
Each row of ``F_X`` is a softmax over pixel positions of ``-(a - mu_i)^2 / (2 sigma^2)``, which is how it is
computed here: stable for tiny sigma, and its backward is the softmax backward.

``read(x) = gamma F_Y x F_X^T`` extracts an N x N glimpse; ``write(w) = (1/gamma) F_Y^T w F_X`` paints an N x N patch
back at image size. Batches carry a leading axis everywhere.
"""

from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float_array
from ..backend import get_array_module

__all__ = [
    "FilterbankCache",
    "filterbank",
    "filterbank_backward",
    "read_attention",
    "read_attention_backward",
    "write_attention",
    "write_attention_backward",
]


class FilterbankCache(NamedTuple):
    Fx: object  # (batch, N, A)
    Fy: object  # (batch, N, B)
    dist_x: object  # (batch, N, A)  a - mu_X^i
    dist_y: object  # (batch, N, B)
    offsets: object  # (N,)  i - N/2 - 1/2
    sigma2: object  # (batch,)
    delta: object  # (batch,)
    gamma: object  # (batch,)
    scale: tuple  # ((A+1)/2, (B+1)/2, (max(A,B)-1)/(N-1))


def _bank(xp, mu, positions, sigma2):
    """Rows ``softmax_a(-(a - mu_i)^2 / (2 sigma^2))`` and the distances ``a - mu_i``."""
    dist = positions[None, None, :] - mu[:, :, None]  # (batch, N, size)
    u = -(dist * dist) / (2 * sigma2[:, None, None])
    u -= u.max(axis=-1, keepdims=True)
    F = xp.exp(u)
    F /= F.sum(axis=-1, keepdims=True)
    return F, dist


def filterbank(params, N: int, A: int, B: int):
    """Filterbanks from the five attention parameters.

    ``params``: (batch, 5) = (g~_X, g~_Y, log sigma^2, log delta~, log gamma). Returns
    ``((Fx, Fy, gamma), cache)`` with ``Fx`` (batch, N, A), ``Fy`` (batch, N, B), ``gamma`` (batch,).
    """
    check_float_array("params", params, ndim=2)
    if params.shape[1] != 5:
        raise ValueError(f"params: expected shape (batch, 5), got {tuple(params.shape)}")
    if int(N) < 1 or int(A) < 1 or int(B) < 1:
        raise ValueError(f"N, A, B: expected positive sizes, got {N}, {A}, {B}")
    xp = get_array_module(params)
    sx, sy, sd = (A + 1) / 2, (B + 1) / 2, (max(A, B) - 1) / max(N - 1, 1)
    gx = sx * (params[:, 0] + 1)
    gy = sy * (params[:, 1] + 1)
    sigma2 = xp.exp(params[:, 2])
    delta = sd * xp.exp(params[:, 3])
    gamma = xp.exp(params[:, 4])
    offsets = xp.arange(1, N + 1, dtype=params.dtype) - N / 2 - 0.5
    Fx, dist_x = _bank(xp, gx[:, None] + offsets * delta[:, None], xp.arange(1, A + 1, dtype=params.dtype), sigma2)
    Fy, dist_y = _bank(xp, gy[:, None] + offsets * delta[:, None], xp.arange(1, B + 1, dtype=params.dtype), sigma2)
    cache = FilterbankCache(Fx, Fy, dist_x, dist_y, offsets, sigma2, delta, gamma, (sx, sy, sd))
    return (Fx, Fy, gamma), cache


def _bank_backward(dF, F, dist, sigma2):
    """Through the row softmax to ``mu_i`` and ``sigma^2``: returns ``(dmu (batch, N), dsigma2 (batch,))``."""
    du = F * (dF - (dF * F).sum(axis=-1, keepdims=True))  # softmax backward
    s = sigma2[:, None, None]
    dmu = (du * dist / s).sum(axis=-1)  # du/dmu = (a - mu) / sigma^2
    dsigma2 = (du * dist * dist / (2 * s * s)).sum(axis=(1, 2))  # du/ds = (a - mu)^2 / (2 s^2)
    return dmu, dsigma2


def filterbank_backward(dout, cache: FilterbankCache):
    """Gradient of the five parameters from ``dout = (dFx, dFy, dgamma)``; returns ``dparams`` (batch, 5)."""
    dFx, dFy, dgamma = dout
    Fx, Fy, dist_x, dist_y, offsets, sigma2, delta, gamma, (sx, sy, sd) = cache
    xp = get_array_module(Fx)
    dmux, ds_x = _bank_backward(dFx, Fx, dist_x, sigma2)
    dmuy, ds_y = _bank_backward(dFy, Fy, dist_y, sigma2)
    dparams = xp.empty((Fx.shape[0], 5), dtype=Fx.dtype)
    dparams[:, 0] = sx * dmux.sum(axis=1)  # mu_X^i = g_X + offset_i delta
    dparams[:, 1] = sy * dmuy.sum(axis=1)
    dparams[:, 2] = (ds_x + ds_y) * sigma2  # d exp(p)/dp = exp(p)
    dparams[:, 3] = ((dmux + dmuy) @ offsets) * delta
    dparams[:, 4] = (dgamma if dgamma is not None else 0) * gamma
    return dparams


def read_attention(x, Fx, Fy, gamma):
    """Glimpse ``gamma F_Y x F_X^T``: ``x`` (batch, B, A) -> (batch, N, N). Returns ``(glimpse, cache)``."""
    check_float_array("x", x, ndim=3)
    if x.shape[1:] != (Fy.shape[2], Fx.shape[2]):
        raise ValueError(f"x: expected images of shape (B, A) = {(Fy.shape[2], Fx.shape[2])}, got {x.shape[1:]}")
    t = Fy @ x  # (batch, N, A)
    g = t @ Fx.transpose(0, 2, 1)  # (batch, N, N)
    return g * gamma[:, None, None], (x, Fx, Fy, gamma, t, g)


def read_attention_backward(dglimpse, cache):
    """``(dx, dFx, dFy, dgamma)`` of :func:`read_attention` (matrix-product rules)."""
    x, Fx, Fy, gamma, t, g = cache
    dgamma = (dglimpse * g).sum(axis=(1, 2))
    dg = dglimpse * gamma[:, None, None]
    dFx = dg.transpose(0, 2, 1) @ t  # g = t Fx^T  ->  dFx = dg^T t
    dt = dg @ Fx
    dFy = dt @ x.transpose(0, 2, 1)  # t = Fy x  ->  dFy = dt x^T, dx = Fy^T dt
    dx = Fy.transpose(0, 2, 1) @ dt
    return dx, dFx, dFy, dgamma


def write_attention(w, Fx, Fy, gamma):
    """Patch ``(1/gamma) F_Y^T w F_X``: ``w`` (batch, N, N) -> (batch, B, A). Returns ``(patch, cache)``."""
    check_float_array("w", w, ndim=3)
    if w.shape[1:] != (Fy.shape[1], Fx.shape[1]):
        raise ValueError(f"w: expected patches of shape (N, N) = {(Fy.shape[1], Fx.shape[1])}, got {w.shape[1:]}")
    u = Fy.transpose(0, 2, 1) @ w  # (batch, B, N)
    p = u @ Fx  # (batch, B, A)
    return p / gamma[:, None, None], (w, Fx, Fy, gamma, u, p)


def write_attention_backward(dpatch, cache):
    """``(dw, dFx, dFy, dgamma)`` of :func:`write_attention`."""
    w, Fx, Fy, gamma, u, p = cache
    inv = 1.0 / gamma
    dgamma = -(dpatch * p).sum(axis=(1, 2)) * inv * inv
    dp = dpatch * inv[:, None, None]
    dFx = u.transpose(0, 2, 1) @ dp  # p = u Fx  ->  dFx = u^T dp, du = dp Fx^T
    du = dp @ Fx.transpose(0, 2, 1)
    dFy = w @ du.transpose(0, 2, 1)  # u = Fy^T w  ->  dFy = w du^T, dw = Fy du
    dw = Fy @ du
    return dw, dFx, dFy, dgamma
