r"""The variational autoencoder's loss: a Bernoulli reconstruction term, a Gaussian KL term and the
reparameterization that lets a gradient pass through a sample.

Kingma & Welling (2014), "Auto-Encoding Variational Bayes" (arXiv 1312.6114), and DRAW (Gregor et al. 2015,
arXiv 1502.04623, Eq. 9-12), which :mod:`lnedu.experiments.draw` trains: for an image ``x`` in {0, 1}^D, a
decoder output ``c`` (logits) and a posterior ``q(z | x) = N(mu, diag(sigma^2))`` per step, the loss is the
negative variational bound

.. math::
    L = \underbrace{-\log D(x \mid c)}_{L^x\ (\text{Eq. 9})}
        + \underbrace{\sum_t \mathrm{KL}\big(N(\mu_t, \sigma_t^2)\,\|\,N(0, I)\big)}_{L^z\ (\text{Eq. 10-11})},
    \qquad z_t = \mu_t + \sigma_t \odot \epsilon_t,\ \epsilon_t \sim N(0, I)

Each piece is a forward/backward pair in the style of :mod:`lnedu.functional`: ``out, cache = f(...)`` then
``grads = f_backward(dout, cache)``. Rows are examples: ``logits`` and ``x`` are (batch, D), ``mu``,
``log_sigma`` and ``eps`` are (batch, Z); the per-example losses are (batch,).
"""

from __future__ import annotations

from .._checks import check_float_array, check_shape
from ..backend import get_array_module
from .basic import sigmoid

__all__ = [
    "bernoulli_nll",
    "bernoulli_nll_backward",
    "gaussian_kl",
    "gaussian_kl_backward",
    "reparameterize",
    "reparameterize_backward",
]


def _check_pair(a_name, a, b_name, b):
    check_float_array(a_name, a, ndim=2)
    check_float_array(b_name, b, ndim=2)
    check_shape(b_name, b, a.shape)


def _check_dper(name, d, n):
    """The gradient of a per-example loss: one entry per row, shape (batch,)."""
    check_float_array(name, d, ndim=1)
    check_shape(name, d, (n,))


def bernoulli_nll(logits, x):
    r"""Reconstruction term ``L^x = -log D(x | c)`` (Gregor et al. Eq. 9) per example, in nats.

    With ``p = sigmoid(c)``,
    :math:`-\sum_j [x_j \log p_j + (1-x_j)\log(1-p_j)] = \sum_j [\mathrm{softplus}(c_j) - x_j c_j]`, computed as
    ``max(c, 0) + log1p(exp(-|c|)) - x c`` so that no logit overflows. ``logits``, ``x``: (batch, D).
    Returns ``(nll (batch,), cache)``.
    """
    _check_pair("logits", logits, "x", x)
    xp = get_array_module(logits)
    nll = (xp.maximum(logits, 0) + xp.log1p(xp.exp(-xp.abs(logits))) - x * logits).sum(axis=1)
    return nll, (logits, x)


def bernoulli_nll_backward(dnll, cache):
    """``dlogits = dnll (sigmoid(c) - x)``: the derivative of softplus is the sigmoid."""
    logits, x = cache
    _check_dper("dnll", dnll, logits.shape[0])
    p, _ = sigmoid(logits)
    return dnll[:, None] * (p - x)


def gaussian_kl(mu, log_sigma):
    r"""``KL(N(mu, sigma^2) || N(0, 1))`` summed over the latent units (Gregor et al. Eq. 11, one step;
    Kingma & Welling Appendix B): :math:`\tfrac12\sum_k (\mu_k^2 + \sigma_k^2 - 2\log\sigma_k - 1)`.
    ``mu``, ``log_sigma``: (batch, Z). Returns ``(kl (batch,), cache)``."""
    _check_pair("mu", mu, "log_sigma", log_sigma)
    xp = get_array_module(mu)
    s2 = xp.exp(2 * log_sigma)
    return 0.5 * (mu * mu + s2 - 2 * log_sigma - 1).sum(axis=1), (mu, s2)


def gaussian_kl_backward(dkl, cache):
    """``(dmu, dlog_sigma) = (dkl mu, dkl (sigma^2 - 1))``."""
    mu, s2 = cache
    _check_dper("dkl", dkl, mu.shape[0])
    return dkl[:, None] * mu, dkl[:, None] * (s2 - 1)


def reparameterize(mu, log_sigma, eps):
    """``z = mu + exp(log_sigma) eps`` (Kingma & Welling 2014, §2.4): the sample is a differentiable function of
    the distribution's parameters, the noise ``eps ~ N(0, I)`` being an input. All three (batch, Z).
    Returns ``(z, cache)``."""
    _check_pair("mu", mu, "log_sigma", log_sigma)
    check_float_array("eps", eps, ndim=2)
    check_shape("eps", eps, mu.shape)
    xp = get_array_module(mu)
    sigma = xp.exp(log_sigma)
    return mu + sigma * eps, sigma * eps


def reparameterize_backward(dz, cache):
    """``(dmu, dlog_sigma) = (dz, dz sigma eps)``; ``eps`` is noise and gets no gradient."""
    check_shape("dz", dz, cache.shape)
    return dz, dz * cache
