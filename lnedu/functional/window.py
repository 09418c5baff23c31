r"""Graves's soft character window: which letter of the text the handwriting network is writing now.

Graves (2013), "Generating Sequences With Recurrent Neural Networks" (arXiv 1308.0850), §5.1, Eq. 46-51. The
text of a line is ``U`` one-hot characters ``c_1 .. c_U`` (each of size ``V``). At step ``t`` the first hidden
layer's output ``h^1_t`` is mapped linearly to ``3K`` numbers ``p_hat = (alpha_hat, beta_hat, kappa_hat)``
(Eq. 48; the linear map lives in the model), and

.. math::
    \alpha_t = \exp(\hat\alpha_t), \quad \beta_t = \exp(\hat\beta_t), \quad
    \kappa_t = \kappa_{t-1} + \exp(\hat\kappa_t)                                  \quad (49\text{-}51)

    \phi(t, u) = \sum_{k=1}^K \alpha_t^k \exp\big(-\beta_t^k (\kappa_t^k - u)^2\big) \quad (46) \qquad
    w_t = \sum_{u=1}^U \phi(t, u)\, c_u                                          \quad (47)

``kappa`` (the K Gaussians' positions, in characters) only moves forward, so the window slides along the text
as the pen moves along the line; ``alpha`` weighs each Gaussian and ``beta`` sets its width. Padding
characters beyond a line's length are zero vectors, so they add nothing to ``w``.

Backward, one line per equation in reverse. With ``dphi_u = c_u . dw`` (Eq. 47) and
``G_{ku} = dphi_u alpha_k E_{ku}``, ``E_{ku} = exp(-beta_k (kappa_k - u)^2)``:
``dalpha_k = sum_u dphi_u E_{ku}``, ``dbeta_k = -sum_u G_{ku} (kappa_k - u)^2``,
``dkappa_k = dkappa_k (from step t+1) - 2 beta_k sum_u G_{ku} (kappa_k - u)``; then through the exponentials
(``d alpha_hat = alpha dalpha``, the same for beta, ``d kappa_hat = exp(kappa_hat) dkappa``) and the sum of
Eq. 51 (``dkappa_{t-1} = dkappa_t``).
"""

from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float_array, check_same_dtype, check_shape
from ..backend import get_array_module

__all__ = ["WindowCache", "char_window", "char_window_backward"]


class WindowCache(NamedTuple):
    chars: object  # (B, U, V) the one-hot text
    alpha: object  # (B, K)
    beta: object  # (B, K)
    step: object  # (B, K) exp(kappa_hat), how far each Gaussian moved
    diff: object  # (B, K, U) kappa_k - u
    E: object  # (B, K, U) exp(-beta_k (kappa_k - u)^2)
    phi: object  # (B, U) the window's weights over the characters, Eq. 46


def char_window(p_hat, kappa_prev, chars):
    """One step of the window: ``(w (B, V), kappa (B, K), cache)``; ``cache.phi`` (B, U) is Eq. 46's weights.

    ``p_hat`` (B, 3K): ``[alpha_hat | beta_hat | kappa_hat]``, the linear map of ``h^1_t`` (Eq. 48);
    ``kappa_prev`` (B, K): the Gaussians' positions at ``t - 1`` (zeros before the first step); ``chars``
    (B, U, V): the one-hot text, characters numbered ``u = 1 .. U`` as in Graves.
    """
    check_float_array("p_hat", p_hat, ndim=2)
    check_float_array("kappa_prev", kappa_prev, ndim=2)
    check_float_array("chars", chars, ndim=3)
    B, K = kappa_prev.shape
    check_shape("p_hat", p_hat, (B, 3 * K))
    if chars.shape[0] != B:
        raise ValueError(f"chars: expected shape ({B}, U, V) (a text per sequence), got {tuple(chars.shape)}")
    for name, a in (("kappa_prev", kappa_prev), ("chars", chars)):
        check_same_dtype(name, a, p_hat.dtype)
    xp = get_array_module(p_hat)
    alpha = xp.exp(p_hat[:, :K])  # Eq. 49
    beta = xp.exp(p_hat[:, K: 2 * K])  # Eq. 50
    step = xp.exp(p_hat[:, 2 * K:])
    kappa = kappa_prev + step  # Eq. 51
    u = xp.arange(1, chars.shape[1] + 1, dtype=p_hat.dtype)
    diff = kappa[:, :, None] - u  # (B, K, U)
    E = xp.exp(-beta[:, :, None] * diff * diff)
    phi = (alpha[:, :, None] * E).sum(axis=1)  # Eq. 46: (B, U)
    w = (phi[:, None, :] @ chars)[:, 0]  # Eq. 47: (B, V)
    return w, kappa, WindowCache(chars, alpha, beta, step, diff, E, phi)


def char_window_backward(dw, dkappa, cache: WindowCache):
    """Backward of :func:`char_window`: ``(dp_hat (B, 3K), dkappa_prev (B, K))`` from ``dw`` (B, V), the
    gradient of the window vector, and ``dkappa`` (B, K), the gradient reaching ``kappa_t`` from step ``t + 1``
    (``None``: zero). The text is data: it gets no gradient."""
    if not isinstance(cache, WindowCache):
        raise TypeError(f"cache: expected the WindowCache of char_window, got {type(cache).__name__}")
    chars, alpha, beta, step, diff, E, _ = cache
    check_shape("dw", dw, (chars.shape[0], chars.shape[2]))
    xp = get_array_module(dw)
    dphi = (chars @ dw[:, :, None])[:, :, 0]  # (B, U): Eq. 47 backward
    dE = E * dphi[:, None, :]  # (B, K, U)
    G = alpha[:, :, None] * dE
    dalpha = dE.sum(axis=2)
    dbeta = -(G * diff * diff).sum(axis=2)
    dkap = -2 * beta * (G * diff).sum(axis=2)
    if dkappa is not None:
        check_shape("dkappa", dkappa, alpha.shape)
        dkap = dkap + dkappa
    dp_hat = xp.concatenate([dalpha * alpha, dbeta * beta, dkap * step], axis=1)
    return dp_hat, dkap
