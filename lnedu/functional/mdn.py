r"""The mixture density output of Graves's handwriting model: a loss with its backward, and a sampler.

Graves (2013), "Generating Sequences With Recurrent Neural Networks" (arXiv 1308.0850), §4.1: at every step
the network emits a vector ``y_hat`` of ``1 + 6M`` numbers that parametrize the distribution of the *next* pen
offset ``x = (x1, x2, x3)``: a pen displacement ``(x1, x2)`` and an end-of-stroke bit ``x3`` (1: the pen lifts
after this point). The raw outputs are squashed into valid parameters:

.. math::
    e = \sigma(\hat e), \quad \pi_j = \mathrm{softmax}_j(\hat\pi), \quad \mu_j = \hat\mu_j, \quad
    \sigma_j = \exp(\hat\sigma_j), \quad \rho_j = \tanh(\hat\rho_j)

    \Pr(x \mid y) = \sum_{j=1}^M \pi_j\, \mathcal N(x_1, x_2 \mid \mu_j, \sigma_j, \rho_j)
                    \cdot \begin{cases} e & x_3 = 1 \\ 1 - e & x_3 = 0 \end{cases}

    \mathcal N = \frac{1}{2\pi\sigma_1\sigma_2\sqrt{1-\rho^2}} \exp\Big(-\frac{Z}{2(1-\rho^2)}\Big), \quad
    Z = u_1^2 + u_2^2 - 2\rho u_1 u_2, \quad u_i = \frac{x_i - \mu_i}{\sigma_i}

and the loss is ``L = -sum_t log Pr(x_{t+1} | y_t)``. Sign convention: Graves writes ``e = 1 / (1 + exp(e_hat))``;
we use the ordinary logistic ``e = 1 / (1 + exp(-e_hat))``, the same model with ``e_hat`` negated.

Layout of ``y_hat`` along its last axis, in blocks of ``M``:
``[e_hat | pi_hat (M) | mu1 (M) | mu2 (M) | log sigma1 (M) | log sigma2 (M) | rho_hat (M)]``.

Numerics. Everything stays in the log domain: ``log N_j`` is formed directly, the mixture is a log-sum-exp
over ``log pi_j + log N_j``, the Bernoulli term is a softplus, and ``log(1 - rho^2)`` is computed from
``rho_hat`` as ``2 log sech(rho_hat)``, which does not round to ``log 0`` when ``|rho|`` is close to 1.

Backward (Graves gives the same formulas after his loss). With the responsibilities
``gamma_j = pi_j N_j / sum_k pi_k N_k`` and ``C = 1 / (1 - rho^2)``:
``dL/de_hat = e - x3``, ``dL/dpi_hat_j = pi_j - gamma_j``, ``dL/dmu1_j = -gamma_j C (u1 - rho u2) / sigma1``,
``dL/dlog sigma1_j = -gamma_j (C u1 (u1 - rho u2) - 1)`` (and the same with 1 and 2 swapped),
``dL/drho_hat_j = -gamma_j (u1 u2 + rho (1 - C Z))``: each term is ``-gamma_j`` times the derivative of
``log N_j``, since ``d log sum_k pi_k N_k = sum_j gamma_j d log N_j``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import check_float_array, check_shape
from ..backend import get_array_module, to_numpy

__all__ = [
    "MDNParams",
    "MDNCache",
    "mdn_size",
    "mdn_components",
    "mdn_params",
    "mdn_nll",
    "mdn_nll_backward",
    "mdn_sample",
]

_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


def mdn_size(M: int) -> int:
    """Number of outputs per step for ``M`` components: ``1 + 6M``."""
    return 1 + 6 * int(M)


def mdn_components(y_hat) -> int:
    """``M`` from the width of ``y_hat``; raises unless the last axis is ``1 + 6M`` with ``M >= 1``."""
    D = y_hat.shape[-1]
    if D < 7 or (D - 1) % 6:
        raise ValueError(f"y_hat: expected a last axis of size 1 + 6M (7, 13, 19, ...), got {D}")
    return (D - 1) // 6


class MDNParams(NamedTuple):
    """The squashed parameters of one or more steps; each field has shape ``(..., M)`` except ``e`` ``(...)``."""

    e: object  # end-of-stroke probability
    pi: object  # mixture weights, summing to 1 over M
    mu1: object
    mu2: object
    sigma1: object
    sigma2: object
    rho: object


def _split(y_hat, M):
    """Views of the seven blocks of ``y_hat`` (no copies)."""
    return (y_hat[..., 0],) + tuple(y_hat[..., 1 + k * M: 1 + (k + 1) * M] for k in range(6))


def _log_softmax(z, xp):
    z = z - z.max(axis=-1, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))


def _softplus(z, xp):
    """``log(1 + e^z)`` without overflow."""
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


def _log_one_minus_rho2(rho_hat, xp):
    """``log(1 - tanh(r)^2) = 2 log sech(r) = 2 (log 2 - |r| - log(1 + e^{-2|r|}))``, exact for large ``|r|``."""
    a = xp.abs(rho_hat)
    return 2 * (_LOG_2 - a - xp.log1p(xp.exp(-2 * a)))


def mdn_params(y_hat, *, bias: float = 0.0) -> MDNParams:
    """The mixture's parameters from the raw outputs ``y_hat`` (..., 1 + 6M).

    ``bias`` >= 0 is Graves's sampling bias (§5.4): ``pi = softmax(pi_hat (1 + b))`` and
    ``sigma = exp(log sigma - b)``, which makes samples more likely and neater; 0 gives the model itself.
    """
    check_float_array("y_hat", y_hat, min_ndim=1)
    if bias < 0:
        raise ValueError(f"bias: expected a number >= 0, got {bias!r}")
    xp = get_array_module(y_hat)
    M = mdn_components(y_hat)
    e_hat, pi_hat, mu1, mu2, ls1, ls2, rho_hat = _split(y_hat, M)
    e = 1 / (1 + xp.exp(-e_hat))
    pi = xp.exp(_log_softmax(pi_hat * (1 + bias), xp))
    return MDNParams(e, pi, mu1, mu2, xp.exp(ls1 - bias), xp.exp(ls2 - bias), xp.tanh(rho_hat))


class MDNCache(NamedTuple):
    e: object  # (N,) end-of-stroke probabilities
    x3: object  # (N,) the observed end-of-stroke bits
    pi: object  # (N, M)
    gamma: object  # (N, M) responsibilities pi_j N_j / sum_k pi_k N_k
    u1: object  # (N, M) (x1 - mu1) / sigma1
    u2: object  # (N, M)
    sigma1: object  # (N, M)
    sigma2: object  # (N, M)
    rho: object  # (N, M)
    C: object  # (N, M) 1 / (1 - rho^2)
    Z: object  # (N, M)
    w: object  # (N,) weight of each step in the loss (mask / normalizer)
    shape: tuple  # y_hat's shape


def mdn_nll(y_hat, x, mask=None, *, reduction: str = "mean"):
    r"""Negative log-likelihood of the next offsets ``x`` under the mixture ``y_hat`` (nats).

    ``y_hat``: (..., 1 + 6M) raw network outputs; ``x``: (..., 3) targets ``(dx, dy, end_of_stroke)`` with the
    same leading shape and ``x[..., 2]`` in {0, 1}; ``mask`` (optional, the leading shape): steps with mask 0
    (padding) do not count. ``reduction``: ``"mean"``, the NLL per step averaged over the counted steps, or
    ``"sum"``, the total over them (Graves's per-sequence loss, summed over a batch).

    Returns ``(loss, cache)`` with ``loss`` a Python float.
    """
    check_float_array("y_hat", y_hat, min_ndim=1)
    check_float_array("x", x, min_ndim=1)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    xp = get_array_module(y_hat)
    M = mdn_components(y_hat)
    check_shape("x", x, y_hat.shape[:-1] + (3,))
    Y = y_hat.reshape(-1, y_hat.shape[-1])
    X = x.reshape(-1, 3).astype(y_hat.dtype, copy=False)
    n = Y.shape[0]
    e_hat, pi_hat, mu1, mu2, ls1, ls2, rho_hat = _split(Y, M)
    x1, x2, x3 = X[:, 0:1], X[:, 1:2], X[:, 2]

    log_pi = _log_softmax(pi_hat, xp)
    sigma1, sigma2 = xp.exp(ls1), xp.exp(ls2)
    u1, u2 = (x1 - mu1) / sigma1, (x2 - mu2) / sigma2
    rho = xp.tanh(rho_hat)
    log_1mr2 = _log_one_minus_rho2(rho_hat, xp)
    C = xp.exp(-log_1mr2)
    Z = u1 * u1 + u2 * u2 - 2 * rho * u1 * u2
    log_N = -_LOG_2PI - ls1 - ls2 - 0.5 * log_1mr2 - 0.5 * C * Z

    # log sum_j pi_j N_j by log-sum-exp; the normalized terms are the responsibilities
    a = log_pi + log_N
    a_max = a.max(axis=1, keepdims=True)
    r = xp.exp(a - a_max)
    s = r.sum(axis=1, keepdims=True)
    log_mix = (a_max + xp.log(s))[:, 0]
    gamma = r / s
    # -log e if x3 = 1 else -log(1 - e): softplus(-e_hat) or softplus(e_hat)
    nll_pen = _softplus(xp.where(x3 > 0.5, -e_hat, e_hat), xp)
    nll = nll_pen - log_mix

    if mask is None:
        w = xp.ones(n, dtype=y_hat.dtype)
    else:
        check_shape("mask", mask, y_hat.shape[:-1])
        w = mask.reshape(-1).astype(y_hat.dtype)
    if reduction == "mean":
        total = float(w.sum())
        if total <= 0:
            raise ValueError("mask: expected at least one non-zero entry, got none")
        w = w / total
    loss = float((nll * w).sum())
    e = 1 / (1 + xp.exp(-e_hat))
    return loss, MDNCache(e, x3, xp.exp(log_pi), gamma, u1, u2, sigma1, sigma2, rho, C, Z, w, tuple(y_hat.shape))


def mdn_nll_backward(dloss, cache: MDNCache):
    """Gradient of :func:`mdn_nll` with respect to ``y_hat`` (one array, ``y_hat``'s shape).

    ``dloss`` is the upstream gradient of the scalar loss (1.0 when the loss is the objective).
    """
    e, x3, pi, gamma, u1, u2, sigma1, sigma2, rho, C, Z, w, shape = cache
    xp = get_array_module(gamma)
    M = pi.shape[1]
    g = gamma * (dloss * w)[:, None]  # each step's responsibilities, weighted as in the loss
    a1 = u1 - rho * u2
    a2 = u2 - rho * u1
    d = xp.empty((pi.shape[0], 1 + 6 * M), dtype=gamma.dtype)
    d[:, 0] = (e - x3) * (dloss * w)
    blocks = (
        pi * (dloss * w)[:, None] - g,  # pi_hat
        -g * C * a1 / sigma1,  # mu1
        -g * C * a2 / sigma2,  # mu2
        -g * (C * u1 * a1 - 1),  # log sigma1
        -g * (C * u2 * a2 - 1),  # log sigma2
        -g * (u1 * u2 + rho * (1 - C * Z)),  # rho_hat
    )
    for k, block in enumerate(blocks):
        d[:, 1 + k * M: 1 + (k + 1) * M] = block
    return d.reshape(shape)


def mdn_sample(y_hat, rng, *, bias: float = 0.0):
    """Draw one next offset ``(dx, dy, end_of_stroke)`` per row of ``y_hat`` (..., 1 + 6M).

    A component ``j ~ pi``, then ``(dx, dy) ~ N(mu_j, sigma_j, rho_j)`` (as ``mu1 + sigma1 z1`` and
    ``mu2 + sigma2 (rho z1 + sqrt(1 - rho^2) z2)``), and the pen bit ``~ Bernoulli(e)``. ``rng``: a NumPy
    ``Generator`` (random numbers are drawn on the host, so that a seed gives the same strokes on every
    backend). ``bias``: Graves's sampling bias (see :func:`mdn_params`). Returns an array of shape
    ``(..., 3)`` on ``y_hat``'s backend.
    """
    xp = get_array_module(y_hat)
    p = mdn_params(y_hat, bias=bias)
    e, pi, mu1, mu2, s1, s2, rho = (np.asarray(to_numpy(v), dtype=np.float64) for v in p)
    lead = pi.shape[:-1]
    pi2 = pi.reshape(-1, pi.shape[-1])
    u = rng.random(pi2.shape[0])
    j = np.minimum((np.cumsum(pi2, axis=1) < u[:, None]).sum(axis=1), pi2.shape[1] - 1)
    rows = np.arange(pi2.shape[0])

    def pick(v):
        return v.reshape(pi2.shape)[rows, j]

    z1, z2 = rng.standard_normal(pi2.shape[0]), rng.standard_normal(pi2.shape[0])
    r = pick(rho)
    dx = pick(mu1) + pick(s1) * z1
    dy = pick(mu2) + pick(s2) * (r * z1 + np.sqrt(1 - r * r) * z2)
    pen = (rng.random(pi2.shape[0]) < e.reshape(-1)).astype(np.float64)
    out = np.stack([dx, dy, pen], axis=-1).reshape(lead + (3,))
    return xp.asarray(out.astype(y_hat.dtype))
