r"""The Fisher geometry of plain and normalized generalized linear models (Ba, Kiros & Hinton 2016, §5.2).

The paper measures how far a parameter step ``delta`` moves a model by the KL divergence between the
model's predictions before and after the step, Eq. (8)-(9):

.. math::
    ds^2 = D_{KL}\big[P(y|x;\theta)\,\|\,P(y|x;\theta+\delta)\big] \approx \tfrac12\,\delta^T F(\theta)\,\delta,
    \qquad F(\theta) = \mathbb E_{x,\;y\sim P(y|x)}\big[\nabla_\theta\log P\;\nabla_\theta\log P^T\big].

This module computes that geometry for a generalized linear model (GLM) with ``H`` independent outputs,
Eq. (10)-(11), either plain (``z = W^T x + b``) or normalized with gains, the shared form of batch, weight
and layer norm, Eq. (5): ``z_i = g_i (a_i - mu_i) / sigma_i + b_i`` with ``a_i = w_i^T x``. Each output
follows an exponential family with canonical link, so the score with respect to the pre-activation is
the prediction error ``d log P / d z_i = (y_i - f(z_i)) / phi`` and the chain rule gives everything else.

Three ways to the same matrix, and the divergence it approximates, which the tests and notebook 03 compare:

* :func:`fisher_analytic` - the paper's closed forms: Eq. (12) for the plain GLM, Eq. (13) with the
  ``chi_i`` of Eq. (14) (:func:`chi`) for the normalized ones;
* :func:`fisher_exact` - ``E_x[J^T Cov[y|x]/phi^2 J]`` with the Jacobian ``J = dz/dtheta`` obtained by
  backprop through :mod:`lnedu.functional` (:func:`jacobian`);
* :func:`fisher_monte_carlo` - the definition itself: sample ``y ~ P(y|x)``, average outer products of the
  hand-derived score vectors (:func:`scores`), with the standard error of every entry;
* :func:`kl_divergence` - the exact ``ds^2`` for a finite step, to compare with :func:`quadratic_form`.

Conventions. The data distribution ``P(x)`` is the uniform distribution over the rows of a given finite
``X`` (N, D), so analytic and Monte Carlo results use the same inputs and differ only by sampling ``y``.
For batch norm, ``mu_i`` and ``sigma_i`` are therefore the *population* statistics of ``X``: a
prediction for one row depends on every row through them, but they are functions of ``theta`` only, not of
any ``y``, so the per-example scores are still independent given ``X``. Parameters are ordered per neuron
as the paper orders them, ``theta = vec([W, b]^T) = [w_1, b_1, ..., w_H, b_H]`` and, for the normalized
model, ``vec([W, b, g]^T) = [w_1, b_1, g_1, ...]``; ``W`` is (D, H) in lnedu's ``x @ W`` convention, so
``w_i`` is column ``i``. For weight norm ``w_i`` is the direction parameter (``v`` in
:func:`lnedu.functional.weight_norm`).

Epsilon. The paper's normalizers have no epsilon, and the geometry below is exact only without one:
``eps=0`` (the default here) is passed to :mod:`lnedu.functional` as the smallest positive normal float,
which vanishes when added to any variance above about 1e-292. A positive ``eps`` is honoured everywhere
(``sigma = sqrt(var + eps)`` in the closed forms too), but then BN, WN and LN are only nearly scale invariant.

Three findings the tests pin down (derived here, not stated in the paper):

* Eq. (13) is exact for BN and WN. For LN it keeps only the path from ``w_i`` to its own output: the shared
  ``mu`` and ``sigma`` make every ``z_k`` depend on every ``w_i`` (``dz_k/dw_i = (g_k/sigma) x [delta_ki -
  (1 + hat a_k hat a_i)/H]``), and those cross terms, of relative size about 1/H, are missing from Eq. (13).
* Scaling ``w_i`` by ``c`` (the whole ``W`` for LN) leaves the output unchanged and multiplies the
  ``w_i``-block of the Fisher matrix, the quadratic form ``ds^2``, by ``1/c^2``; the metric length ``ds``
  scales by ``1/c``. The paper's "factor of 1/2" for a doubled norm is the length, not the quadratic form.
* Eq. (33)-(35), the metric along the gains, match the Fisher matrix exactly; Eq. (32) for BN writes
  ``E[Cov[y|x]]`` where the Fisher matrix has ``E[Cov[y_i|x] hat a_i^2]``, which is the same only when
  ``Cov[y|x]`` does not depend on ``x`` (the Gaussian GLM, not the logistic one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from .. import functional as F
from .. import nn, optim
from .._checks import check_float_array, check_positive, check_shape
from ..backend import get_array_module, to_numpy

__all__ = [
    "PAPER_EPS",
    "NORMS",
    "Logistic",
    "Gaussian",
    "GLM",
    "random_glm",
    "pre_activation",
    "jacobian",
    "scores",
    "chi",
    "fisher_analytic",
    "fisher_exact",
    "MonteCarloFisher",
    "fisher_monte_carlo",
    "kl_divergence",
    "quadratic_form",
    "param_index",
    "block",
    "CurvatureScaling",
    "curvature_under_weight_scaling",
    "gain_metric",
    "gain_metric_paper",
    "gain_metric_vs_input_scale",
    "TrainingGeometry",
    "train_geometry",
]

PAPER_EPS = float(np.finfo(np.float64).tiny)
"""What ``eps=0`` becomes when passed to :mod:`lnedu.functional`, which asks for ``eps > 0``."""

NORMS = (None, "batch", "weight", "layer")
"""The models: the plain GLM (``None``) and the three normalized ones of Eq. (5)."""


# --------------------------------------------------------------------------------------------------
# output distributions (Eq. 10-11): canonical-link exponential families


class Logistic:
    r"""Bernoulli outputs with the logistic link: ``f = sigmoid``, ``phi = 1``, ``Var[y|x] = p (1 - p)``.

    ``log P(y|z) = y z - log(1 + e^z)`` is Eq. (10) with ``eta(z) = log(1 + e^z)`` and ``eta' = f``.
    """

    name = "logistic"
    phi = 1.0

    def mean(self, z):
        return F.sigmoid(z)[0]

    def variance(self, z):
        p = self.mean(z)
        return p * (1 - p)

    def sample(self, z, rng: np.random.Generator):
        """One draw of ``y`` per entry of ``z``; the uniforms come from the host ``rng`` (same on a GPU)."""
        xp = get_array_module(z)
        u = xp.asarray(rng.random(z.shape))
        return (u < self.mean(z)).astype(z.dtype)

    def kl(self, z, z2):
        r"""``KL(Bern(sigmoid z) || Bern(sigmoid z2))`` per row, summed over the outputs.

        In logits: ``p (z - z2) - softplus(z) + softplus(z2)``, with ``softplus(t) = log(1 + e^t)``.
        """
        xp = get_array_module(z)
        p = self.mean(z)
        return (p * (z - z2) - xp.logaddexp(0.0, z) + xp.logaddexp(0.0, z2)).sum(axis=-1)

    def __repr__(self):
        return "Logistic()"


class Gaussian:
    r"""Gaussian outputs with the identity link and fixed variance: ``f(z) = z``, ``Var[y|x] = phi``.

    ``log P(y|z) = (z y - z^2/2)/phi + c(y, phi)``: Eq. (10) with ``eta(z) = z^2/2``.
    """

    name = "gaussian"

    def __init__(self, phi: float = 1.0):
        self.phi = check_positive("phi", phi)

    def mean(self, z):
        return z

    def variance(self, z):
        return get_array_module(z).full(z.shape, self.phi, dtype=z.dtype)

    def sample(self, z, rng: np.random.Generator):
        xp = get_array_module(z)
        return z + math.sqrt(self.phi) * xp.asarray(rng.standard_normal(z.shape))

    def kl(self, z, z2):
        """``KL(N(z, phi) || N(z2, phi)) = (z - z2)^2 / (2 phi)`` per row, summed over the outputs."""
        d = z - z2
        return (d * d).sum(axis=-1) / (2 * self.phi)

    def __repr__(self):
        return f"Gaussian(phi={self.phi:g})"


# --------------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class GLM:
    r"""A GLM with ``H`` independent outputs, plain or normalized (the paper's Eq. 5, 10-13).

    * ``W``: (D, H), column ``i`` is ``w_i``; ``b``: (H,); ``family``: :class:`Logistic` or :class:`Gaussian`;
    * ``norm``: ``None`` (plain, ``z = x W + b``) or ``'batch'``, ``'weight'``, ``'layer'``, in which case
      ``g`` (H,) holds the gains and ``z_i = g_i (a_i - mu_i) / sigma_i + b_i``;
    * ``eps``: added to the normalizer's variance; 0 (default) is the paper's exact normalizer.

    Arrays must be floating point; use float64 for the geometry (the curvatures are compared to 1e-10).
    """

    W: object
    b: object
    family: object
    g: object = None
    norm: str | None = None
    eps: float = 0.0

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"norm: expected one of {NORMS}, got {self.norm!r}")
        check_float_array("W", self.W, ndim=2)
        check_float_array("b", self.b)
        check_shape("b", self.b, (self.H,))
        if self.norm is None:
            if self.g is not None:
                raise ValueError("g: expected None for the plain GLM (norm=None), got an array")
        else:
            if self.g is None:
                raise ValueError(f"g: expected gains of shape ({self.H},) for norm={self.norm!r}, got None")
            check_float_array("g", self.g)
            check_shape("g", self.g, (self.H,))
        if self.norm == "layer" and self.H < 2:
            raise ValueError(f"W: layer norm needs at least 2 outputs to normalize over, got H={self.H}")
        if not isinstance(self.family, (Logistic, Gaussian)):
            raise TypeError(f"family: expected Logistic() or Gaussian(phi), got {type(self.family).__name__}")
        if isinstance(self.eps, bool) or not (float(self.eps) >= 0 and math.isfinite(float(self.eps))):
            raise ValueError(f"eps: expected a finite number >= 0, got {self.eps!r}")

    @property
    def D(self) -> int:
        return int(self.W.shape[0])

    @property
    def H(self) -> int:
        return int(self.W.shape[1])

    @property
    def block_size(self) -> int:
        """Parameters per neuron: ``(w_i, b_i)`` = D + 1, or ``(w_i, b_i, g_i)`` = D + 2."""
        return self.D + (1 if self.norm is None else 2)

    @property
    def n_params(self) -> int:
        return self.H * self.block_size

    def theta(self):
        """The parameter vector ``vec([W, b]^T)`` or ``vec([W, b, g]^T)``, ordered per neuron."""
        return _pack(self.W, self.b, self.g)

    def with_theta(self, theta):
        """The same model with parameters ``theta`` (as ordered by :meth:`theta`)."""
        W, b, g = _unpack(theta, self.D, self.H, self.norm is not None)
        return replace(self, W=W, b=b, g=g)

    def scaled(self, c: float, unit: int | None = None):
        """The model with ``w_unit`` (or, with ``unit=None``, all of ``W``) multiplied by ``c``."""
        W = self.W.copy()
        if unit is None:
            W *= c
        else:
            W[:, unit] *= c
        return replace(self, W=W)


def _pack(W, b, g):
    xp = get_array_module(W)
    cols = [W.T, b[:, None]] + ([] if g is None else [g[:, None]])
    return xp.concatenate(cols, axis=1).reshape(-1)


def _unpack(theta, D, H, normalized):
    k = D + (2 if normalized else 1)
    check_shape("theta", theta, (H * k,))
    rows = theta.reshape(H, k)
    W = rows[:, :D].T.copy()
    b = rows[:, D].copy()
    g = rows[:, D + 1].copy() if normalized else None
    return W, b, g


def random_glm(D: int, H: int, family, norm=None, *, seed=0, weight_scale=1.0, eps=0.0) -> GLM:
    """A GLM with random float64 parameters: ``W ~ N(0, weight_scale^2/D)``, ``b ~ N(0, 0.3^2)``,
    gains ``g ~ 1 + U(-0.3, 0.3)`` (no exact zeros or ones anywhere). For tests and notebooks."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((D, H)) * (weight_scale / math.sqrt(D))
    b = 0.3 * rng.standard_normal(H)
    g = None if norm is None else 1.0 + rng.uniform(-0.3, 0.3, H)
    return GLM(W, b, family, g, norm, eps)


def param_index(model: GLM, unit: int, which: str) -> slice | int:
    """Where ``w_unit`` (``which='w'``, a slice), ``b_unit`` or ``g_unit`` (an index) sits in ``theta``."""
    if not 0 <= unit < model.H:
        raise ValueError(f"unit: expected an output index in [0, {model.H}), got {unit}")
    start = unit * model.block_size
    if which == "w":
        return slice(start, start + model.D)
    if which == "b":
        return start + model.D
    if which == "g" and model.norm is not None:
        return start + model.D + 1
    allowed = "'w' or 'b'" if model.norm is None else "'w', 'b' or 'g'"
    raise ValueError(f"which: expected {allowed}, got {which!r}")


def block(Fm, model: GLM, unit_i: int, which_i: str, unit_j: int | None = None, which_j: str | None = None):
    """The block of a Fisher matrix ``Fm`` between parameter groups, e.g. ``block(F, m, 0, 'w')`` (the
    ``w_0``-``w_0`` block) or ``block(F, m, 0, 'w', 1, 'g')``."""
    unit_j = unit_i if unit_j is None else unit_j
    which_j = which_i if which_j is None else which_j
    return Fm[param_index(model, unit_i, which_i), param_index(model, unit_j, which_j)]


# --------------------------------------------------------------------------------------------------
# forward and Jacobian by backprop through lnedu.functional


def _check_X(model: GLM, X):
    check_float_array("X", X, ndim=2)
    if X.shape[1] != model.D:
        raise ValueError(f"X: expected {model.D} columns (= W.shape[0]), got shape {tuple(X.shape)}")
    if model.norm == "batch" and X.shape[0] < 2:
        raise ValueError(f"X: batch norm statistics need at least 2 rows, got {X.shape[0]}")


def _forward(model: GLM, X):
    """``z`` (N, H) and the caches of every stage, for :func:`_backward`."""
    if model.norm is None:
        z, lin = F.linear(X, model.W, model.b)
        return z, (lin,)
    if model.norm == "weight":
        W_eff, wn = F.weight_norm(model.W, model.g)  # g_i w_i / ||w_i||: mu = 0, sigma = ||w_i||
        z, lin = F.linear(X, W_eff, model.b)
        return z, (lin, wn)
    a, lin = F.linear(X, model.W)
    eps = float(model.eps) if model.eps > 0 else PAPER_EPS  # lnedu.functional asks for eps > 0
    if model.norm == "layer":
        z, nc = F.layer_norm(a, model.g, model.b, eps)
    else:  # batch: the rows of X are the whole population, so these are population statistics
        z, nc = F.batch_norm(a, model.g, model.b, eps)
    return z, (lin, nc)


def _backward(model: GLM, dz, caches):
    """Gradients ``(dW, db, dg)`` of ``sum(dz * z)``: the chain rule, stage by stage, in reverse."""
    if model.norm is None:
        _, dW, db = F.linear_backward(dz, caches[0])
        return dW, db, None
    if model.norm == "weight":
        lin, wn = caches
        _, dW_eff, db = F.linear_backward(dz, lin)
        dW, dg = F.weight_norm_backward(dW_eff, wn)
        return dW, db, dg
    lin, nc = caches
    back = F.layer_norm_backward if model.norm == "layer" else F.batch_norm_backward
    da, dg, db = back(dz, nc)
    _, dW, _ = F.linear_backward(da, lin)
    return dW, db, dg


def pre_activation(model: GLM, X):
    """``z`` (N, H): the input of the transfer function, ``E[y|x] = f(z)`` (Eq. 11)."""
    _check_X(model, X)
    return _forward(model, X)[0]


def jacobian(model: GLM, X):
    r"""``J[n, k, :] = dz_k(x_n) / dtheta`` (N, H, P), one backward pass per scalar ``z_k(x_n)``.

    Each row is the gradient of one pre-activation, so it is what backprop returns for an upstream
    gradient that is one-hot at ``(n, k)``. The forward runs on all of ``X`` (batch norm needs the whole
    population for its statistics; for the other models the other rows simply get zero gradient).
    """
    _check_X(model, X)
    xp = get_array_module(X)
    N, H = X.shape[0], model.H
    z, caches = _forward(model, X)
    J = xp.zeros((N, H, model.n_params), dtype=z.dtype)
    dz = xp.zeros_like(z)
    for n in range(N):
        for k in range(H):
            dz[n, k] = 1.0
            dW, db, dg = _backward(model, dz, caches)
            J[n, k] = _pack(dW, db, dg)
            dz[n, k] = 0.0
    return J


def scores(model: GLM, X, Y, J=None):
    r"""Per-example score vectors ``d log P(y_n|x_n; theta) / dtheta`` (N, P), derived by hand.

    From Eq. (10), ``log P = sum_k ((z_k y_k - eta(z_k)) / phi + c)`` and ``eta' = f``, so
    ``d log P / dz_k = (y_k - f(z_k)) / phi`` (the prediction error), and the chain rule gives
    ``s_n = J_n^T (y_n - f(z_n)) / phi``. ``Y`` may carry extra leading sample axes: (..., N, H).
    """
    if J is None:
        J = jacobian(model, X)
    xp = get_array_module(J)
    z = pre_activation(model, X)
    err = (Y - model.family.mean(z)) / model.family.phi
    return xp.einsum("...nk,nkp->...np", err, J)


# --------------------------------------------------------------------------------------------------
# the closed forms: Eq. 12, 13, 14


def _norm_stats(model: GLM, X):
    """``(a, mu, sigma, ahat)``, each (N, H) or broadcastable: the statistics of Eq. (5) for this model."""
    xp = get_array_module(X)
    a = X @ model.W
    if model.norm == "weight":
        mu = xp.zeros((1, model.H), dtype=a.dtype)
        sigma = xp.sqrt((model.W * model.W).sum(axis=0))[None, :]
    elif model.norm == "layer":
        mu = a.mean(axis=1, keepdims=True)
        sigma = xp.sqrt(((a - mu) ** 2).mean(axis=1, keepdims=True) + model.eps)
    else:  # batch
        mu = a.mean(axis=0, keepdims=True)
        sigma = xp.sqrt(((a - mu) ** 2).mean(axis=0, keepdims=True) + model.eps)
    return a, mu, sigma, (a - mu) / sigma


def chi(model: GLM, X):
    r"""``chi_i(x_n)`` of Eq. (14), (N, H, D): ``x - dmu_i/dw_i - ((a_i - mu_i)/sigma_i) dsigma_i/dw_i``.

    * weight norm (``mu = 0``, ``sigma_i = ||w_i||``): ``chi_i = x - (a_i/||w_i||^2) w_i``, the part of
      ``x`` orthogonal to ``w_i``;
    * layer norm (shared ``mu``, ``sigma``; ``dmu/dw_i = x/H``, ``dsigma/dw_i = (a_i - mu) x / (H sigma)``):
      ``chi_i = x (1 - 1/H - hat a_i^2 / H)``, a multiple of ``x``;
    * batch norm (population statistics; ``dmu_i/dw_i = E[x]``, ``dsigma_i/dw_i = Cov(x) w_i / sigma_i``):
      ``chi_i = x - E[x] - hat a_i Cov(x) w_i / sigma_i``.

    Then ``dz_i / dw_i = (g_i / sigma_i) chi_i``: the only path from ``w_i`` that Eq. (13) keeps.
    """
    if model.norm is None:
        raise ValueError("model: chi (Eq. 14) is defined for a normalized GLM, got norm=None")
    _check_X(model, X)
    a, _, sigma, ahat = _norm_stats(model, X)
    x = X[:, None, :]  # (N, 1, D)
    if model.norm == "weight":
        return x - (a / sigma**2)[:, :, None] * model.W.T[None, :, :]
    if model.norm == "layer":
        H = model.H
        return x * (1.0 - 1.0 / H - ahat**2 / H)[:, :, None]
    mean_x = X.mean(axis=0)
    Xc = X - mean_x
    cov_w = (Xc.T @ (Xc @ model.W)) / X.shape[0]  # Cov(x) w_i, column i: (D, H)
    return x - mean_x - (ahat / sigma)[:, :, None] * cov_w.T[None, :, :]


def _output_cov(model: GLM, z):
    """``Cov[y|x] / phi^2`` as (N, H, H): diagonal, the outputs being independent given x."""
    xp = get_array_module(z)
    v = model.family.variance(z) / model.family.phi**2
    C = xp.zeros(v.shape + (v.shape[-1],), dtype=v.dtype)
    idx = xp.arange(v.shape[-1])
    C[:, idx, idx] = v
    return C


def fisher_analytic(model: GLM, X):
    r"""The paper's closed form: Eq. (12) for the plain GLM, Eq. (13) with Eq. (14) for a normalized one.

    Both have the form ``F_ij = E_x[ Cov[y_i, y_j|x]/phi^2 u_i u_j^T ]`` with one vector ``u_i`` per neuron:

    * Eq. (12): ``u_i = [x, 1]``, which is the Kronecker form ``Cov/phi^2 (x) [[x x^T, x], [x^T, 1]]``;
    * Eq. (13): ``u_i = [(g_i/sigma_i) chi_i, 1, (a_i - mu_i)/sigma_i]``, whose outer products are the nine
      entries of the paper's block ``bar F_ij``.

    Returns a (P, P) matrix ordered as :meth:`GLM.theta`.
    """
    _check_X(model, X)
    xp = get_array_module(X)
    N = X.shape[0]
    z = pre_activation(model, X)
    C = _output_cov(model, z)
    ones = xp.ones((N, model.H, 1), dtype=X.dtype)
    if model.norm is None:
        U = xp.concatenate([xp.broadcast_to(X[:, None, :], (N, model.H, model.D)), ones], axis=2)
    else:
        _, _, sigma, ahat = _norm_stats(model, X)
        scale = xp.broadcast_to(model.g / sigma, (N, model.H))[:, :, None]
        U = xp.concatenate([scale * chi(model, X), ones, ahat[:, :, None]], axis=2)
    P = model.n_params
    return xp.einsum("nij,nip,njq->ipjq", C, U, U).reshape(P, P) / N


def fisher_exact(model: GLM, X, J=None):
    r"""``F = E_x[J^T Cov[y|x]/phi^2 J]`` with the backprop Jacobian: Eq. (9) with the ``y``-expectation
    done in closed form (``E[(y - f)(y - f)^T | x] = Cov[y|x]``). Exact for every model, LN included."""
    _check_X(model, X)
    if J is None:
        J = jacobian(model, X)
    xp = get_array_module(J)
    z = pre_activation(model, X)
    v = model.family.variance(z) / model.family.phi**2
    return xp.einsum("nk,nkp,nkq->pq", v, J, J) / X.shape[0]


class MonteCarloFisher(NamedTuple):
    """A Monte Carlo estimate of the Fisher matrix: the mean of score outer products and its standard error."""

    F: object  # (P, P)
    se: object  # (P, P) standard error of each entry
    n_samples: int  # y draws per x


def fisher_monte_carlo(model: GLM, X, n_samples: int, rng=0, *, J=None, chunk: int = 256) -> MonteCarloFisher:
    r"""Estimate ``F`` from its definition, Eq. (9): draw ``y ~ P(y|x_n)`` ``n_samples`` times for every row,
    average ``s s^T`` over all draws, where ``s`` is the hand-derived score of :func:`scores`.

    The standard error of each entry treats the rows as strata (the ``x`` are fixed, only ``y`` is random):
    ``se^2 = sum_n Var_n[s s^T] / (N^2 S)`` with ``Var_n`` the sample variance over the ``S`` draws of row ``n``.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ValueError(f"n_samples: expected an integer >= 2, got {n_samples!r}")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    _check_X(model, X)
    if J is None:
        J = jacobian(model, X)
    xp = get_array_module(J)
    z = pre_activation(model, X)
    N, P, S = X.shape[0], model.n_params, int(n_samples)
    m1 = xp.zeros((N, P, P), dtype=J.dtype)  # per-row sums of s s^T
    m2 = xp.zeros((N, P, P), dtype=J.dtype)  # per-row sums of (s s^T)^2, entrywise
    for start in range(0, S, chunk):
        s_count = min(chunk, S - start)
        Y = model.family.sample(xp.broadcast_to(z, (s_count,) + z.shape), rng)
        s = scores(model, X, Y, J)  # (s_count, N, P)
        m1 += xp.einsum("snp,snq->npq", s, s)
        s2 = s * s
        m2 += xp.einsum("snp,snq->npq", s2, s2)
    mean_n = m1 / S
    var_n = (m2 - S * mean_n**2) / (S - 1)
    Fm = mean_n.mean(axis=0)
    se = xp.sqrt(xp.maximum(var_n, 0).sum(axis=0) / (N * N * S))
    return MonteCarloFisher(Fm, se, S)


# --------------------------------------------------------------------------------------------------
# ds^2: the KL divergence against the quadratic form


def kl_divergence(model: GLM, X, delta):
    r"""``ds^2 = E_x[KL(P(y|x; theta) || P(y|x; theta + delta))]``, exactly (Eq. 8's left-hand side)."""
    _check_X(model, X)
    z = pre_activation(model, X)
    z2 = pre_activation(model.with_theta(model.theta() + delta), X)
    return float(model.family.kl(z, z2).mean())


def quadratic_form(Fm, delta) -> float:
    r"""``(1/2) delta^T F delta``, the second-order approximation of ``ds^2`` (Eq. 8's right-hand side)."""
    return 0.5 * float(delta @ (Fm @ delta))


# --------------------------------------------------------------------------------------------------
# implicit learning-rate reduction: curvature along w_i when ||w_i|| grows


class CurvatureScaling(NamedTuple):
    """Curvature along a fixed direction in ``w_unit``'s block as the weights are scaled (each row: one scale)."""

    scales: np.ndarray  # (S,) factors c applied to w_unit (or to W for LN)
    output_change: np.ndarray  # (S,) max |z(c) - z(1)|: 0 for a scale-invariant model
    quad_form: np.ndarray  # (S,) d^T F d for the unit direction d: the curvature
    block_eig: np.ndarray  # (S,) largest eigenvalue of the w_unit block of F
    ds: np.ndarray  # (S,) metric length sqrt(1/2 t^2 d^T F d) of the step t d
    kl: np.ndarray  # (S,) exact KL divergence of the step t d
    sgd_kl: np.ndarray  # (S,) exact KL divergence of one SGD step on the scaled weights (NaN without targets)

    def ratios(self) -> dict:
        """Each column divided by its value at the first scale."""
        cols = ("quad_form", "block_eig", "ds", "kl", "sgd_kl")
        return {k: getattr(self, k) / getattr(self, k)[0] for k in cols}


def curvature_under_weight_scaling(model: GLM, X, scales=(1, 2, 4, 8), *, unit: int = 0, step: float = 1e-3,
                                   Y=None, lr: float = 0.1, seed: int = 0) -> CurvatureScaling:
    r"""Scale ``w_unit`` by each ``c`` in ``scales`` (all of ``W`` for layer norm, which is invariant only to
    scaling the whole matrix), and measure the geometry along one fixed unit direction ``d`` in ``w_unit``'s
    block: the quadratic form ``d^T F d``, the largest eigenvalue of the block, the length ``ds`` and the
    exact KL divergence of the step ``step * d``. Uses :func:`fisher_exact`.

    For BN and WN (and LN with the whole ``W``) ``chi_i`` does not change with ``c`` and ``sigma_i`` grows by
    ``c``, so Eq. (13)'s block, ``(g_i/sigma_i)^2 E[chi_i chi_i^T ...]``, shrinks by ``1/c^2``.

    With targets ``Y`` (N, H), also the KL divergence of one SGD step ``-lr grad`` of the mean negative
    log-likelihood ``-mean_n log P(y_n|x_n)`` taken on the scaled weights only: the gradient shrinks by
    ``1/c`` and the metric by ``1/c^2``, so this ``ds^2`` falls like ``1/c^4`` (``ds`` like ``1/c^2``).
    """
    xp = get_array_module(X)
    rng = np.random.default_rng(seed)
    idx = param_index(model, unit, "w")
    d = xp.zeros(model.n_params, dtype=X.dtype)
    u = rng.standard_normal(model.D)
    d[idx] = xp.asarray(u / np.linalg.norm(u))
    scale_unit = None if model.norm == "layer" else unit
    moved = xp.zeros(model.n_params, dtype=bool)  # the weights that get scaled, and stepped
    for i in range(model.H) if scale_unit is None else (unit,):
        moved[param_index(model, i, "w")] = True
    if Y is not None:
        check_shape("Y", Y, (X.shape[0], model.H))
    z0 = pre_activation(model, X)
    rows = []
    for c in scales:
        m = model.scaled(float(c), scale_unit)
        Fm = fisher_exact(m, X)
        q = float(d @ (Fm @ d))
        eig = float(to_numpy(xp.linalg.eigvalsh(Fm[idx, idx]))[-1])
        change = float(xp.abs(pre_activation(m, X) - z0).max())
        sgd = math.nan
        if Y is not None:
            grad = -scores(m, X, Y).mean(axis=0)  # gradient of the mean negative log-likelihood
            sgd = kl_divergence(m, X, xp.where(moved, -lr * grad, 0.0))
        rows.append((change, q, eig, math.sqrt(0.5 * step**2 * q), kl_divergence(m, X, step * d), sgd))
    cols = np.array(rows).T
    return CurvatureScaling(np.asarray(scales, dtype=float), *cols)


# --------------------------------------------------------------------------------------------------
# learning the magnitude of the incoming weights: Eq. 32-35


def _gain_direction(model: GLM, delta_g):
    """The parameter step that changes the magnitude of the incoming weights by ``delta_g``: the gains
    for a normalized model, ``delta_g_i w_i / ||w_i||`` for the plain GLM (Eq. 35's projection)."""
    xp = get_array_module(model.W)
    delta_g = xp.asarray(delta_g, dtype=model.W.dtype)
    check_shape("delta_g", delta_g, (model.H,))
    delta = xp.zeros(model.n_params, dtype=model.W.dtype)
    for i in range(model.H):
        if model.norm is None:
            w = model.W[:, i]
            delta[param_index(model, i, "w")] = delta_g[i] * w / xp.sqrt(w @ w)
        else:
            delta[param_index(model, i, "g")] = delta_g[i]
    return delta


def gain_metric(model: GLM, X, delta_g) -> float:
    r"""``ds^2 = (1/2) delta^T F delta`` along the magnitude of the incoming weights (Eq. 32-35, left side):
    ``delta = vec([0, 0, delta_g]^T)`` for BN, WN and LN; ``delta_g_i w_i/||w_i||`` in the ``w_i`` slots for
    the plain GLM. Computed from :func:`fisher_exact`."""
    _check_X(model, X)
    return quadratic_form(fisher_exact(model, X), _gain_direction(model, delta_g))


def gain_metric_paper(model: GLM, X, delta_g) -> float:
    r"""The right-hand sides of Eq. (32)-(35) as printed, with ``Cov = Cov[y|x]``:

    * BN (32): ``(1/2) delta_g^T E_x[Cov/phi^2] delta_g``;
    * LN (33): ``(1/2) delta_g^T E_x[M]/phi^2 delta_g``, ``M_ij = Cov_ij (a_i - mu)(a_j - mu)/sigma^2``;
    * WN (34) and the plain GLM (35): ``M_ij = Cov_ij a_i a_j / (||w_i|| ||w_j||)``.

    Eq. (32) replaces the factor ``hat a_i hat a_j`` that the Fisher matrix carries by its data average
    (1 on the diagonal); that is exact when ``Cov[y|x]`` does not depend on ``x`` (the Gaussian GLM).
    """
    _check_X(model, X)
    xp = get_array_module(X)
    delta_g = xp.asarray(delta_g, dtype=X.dtype)
    z = pre_activation(model, X)
    C = _output_cov(model, z)
    if model.norm == "batch":
        M = C
    else:
        if model.norm == "layer":
            _, _, _, r = _norm_stats(model, X)
        else:  # weight norm and the plain GLM: a_i / ||w_i||
            r = (X @ model.W) / xp.sqrt((model.W * model.W).sum(axis=0))
        M = C * r[:, :, None] * r[:, None, :]
    return 0.5 * float(delta_g @ (M.mean(axis=0) @ delta_g))


def gain_metric_vs_input_scale(model: GLM, X, scales, delta_g=None, *, paper: bool = False):
    """:func:`gain_metric` (or :func:`gain_metric_paper`) with the inputs scaled, ``X -> s X``, for each ``s``.

    ``delta_g`` defaults to a step of 1 on every gain. Returns a NumPy array, one value per scale.
    """
    xp = get_array_module(X)
    if delta_g is None:
        delta_g = xp.ones(model.H, dtype=X.dtype)
    f = gain_metric_paper if paper else gain_metric
    return np.array([f(model, X * float(s), delta_g) for s in scales])


# --------------------------------------------------------------------------------------------------
# a training run: the weight norm grows, the effective learning rate shrinks


class TrainingGeometry(NamedTuple):
    """What :func:`train_geometry` records at every SGD step ``t`` (arrays of length ``steps``)."""

    norm: str | None
    lr: float
    weight_norm: np.ndarray  # ||W_t||_F before step t (v for weight norm)
    effective_lr: np.ndarray  # ||U_{t+1} - U_t|| / ||grad_U L||, U = W/||W||: the step of the direction
    cos_grad_weight: np.ndarray  # cosine between grad_W L and W (0 for a scale-invariant model)
    loss: np.ndarray  # mini-batch loss before the step


def _bernoulli_nll(z, Y):
    """Mean Bernoulli negative log-likelihood of 0/1 targets ``Y`` under logits ``z``, and ``dL/dz``."""
    xp = get_array_module(z)
    B = z.shape[0]
    loss = float((xp.logaddexp(0.0, z) - Y * z).sum() / B)
    return loss, (F.sigmoid(z)[0] - Y) / B


def train_geometry(X, Y, norm=None, *, lr: float = 0.5, steps: int = 300, batch_size: int = 32, seed: int = 0,
                   eps: float = 0.0) -> TrainingGeometry:
    r"""Train a one-layer logistic GLM (``H = Y.shape[1]`` sigmoid outputs) with plain SGD and record the
    geometry of the weight matrix at every step.

    The model is built from :mod:`lnedu.nn`: ``Linear`` (plain), ``WeightNormLinear``, or ``Linear`` without
    bias followed by ``LayerNorm`` or ``BatchNorm`` (mini-batch statistics). Its loss is invariant to
    ``W -> c W`` for the three normalized ones, so the gradient is orthogonal to ``W`` and every step
    lengthens it: ``||W_{t+1}||^2 = ||W_t||^2 + lr^2 ||grad||^2``. Writing ``W = r U``, the direction moves by
    ``||Delta U|| ~ (lr / r^2) ||grad_U L||``: the effective learning rate ``lr / ||W||^2`` falls as the norm grows.

    ``effective_lr`` is measured as ``||U_{t+1} - U_t|| / ||grad_U L||`` with ``grad_U L = r P_perp grad_W L``
    (the gradient with respect to the direction at fixed norm), for every model alike; only for the
    normalized ones is the direction all that the output depends on. ``eps`` (LN and BN) defaults to the
    paper's 0, passed on as :data:`PAPER_EPS`, so that the invariance, and the orthogonality, are exact.
    ``X`` and ``Y`` must live on the default backend (the modules allocate their parameters there).
    """
    check_float_array("X", X, ndim=2)
    check_float_array("Y", Y, ndim=2)
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"Y: expected {X.shape[0]} rows (= X.shape[0]), got shape {tuple(Y.shape)}")
    if norm not in NORMS:
        raise ValueError(f"norm: expected one of {NORMS}, got {norm!r}")
    if batch_size > X.shape[0] or batch_size < (2 if norm == "batch" else 1):
        raise ValueError(f"batch_size: expected an integer in [{2 if norm == 'batch' else 1}, {X.shape[0]}], "
                         f"got {batch_size!r}")
    eps = float(eps) if eps > 0 else PAPER_EPS
    xp = get_array_module(X)
    D, H = X.shape[1], Y.shape[1]
    rng = np.random.default_rng(seed)
    init_seed = int(rng.integers(2**31))
    dtype = X.dtype
    if norm is None:
        model = nn.Linear(D, H, rng=init_seed, dtype=dtype)
    elif norm == "weight":
        model = nn.WeightNormLinear(D, H, rng=init_seed, dtype=dtype)
    else:
        Norm = nn.LayerNorm if norm == "layer" else nn.BatchNorm
        model = nn.Sequential(nn.Linear(D, H, bias=False, rng=init_seed, dtype=dtype), Norm(H, eps, dtype=dtype))
    layer = model if norm in (None, "weight") else model[0]
    wname = "v" if norm == "weight" else "W"
    opt = optim.SGD(model, lr=lr)
    rec = {k: np.empty(steps) for k in ("weight_norm", "effective_lr", "cos_grad_weight", "loss")}
    N = X.shape[0]
    order = rng.permutation(N)
    pos = 0
    for t in range(steps):
        if pos + batch_size > N:
            order, pos = rng.permutation(N), 0
        idx = xp.asarray(order[pos:pos + batch_size])
        pos += batch_size
        opt.zero_grad()
        z = model.forward(X[idx])
        loss, dz = _bernoulli_nll(z, Y[idx])
        model.backward(dz)
        W = layer.params[wname]
        G = layer.grads[wname]
        r = float(xp.sqrt((W * W).sum()))
        U = W / r
        g_norm = float(xp.sqrt((G * G).sum()))
        g_par = float((G * U).sum())
        grad_U = r * math.sqrt(max(g_norm**2 - g_par**2, 0.0))  # ||r P_perp grad_W L||
        opt.step()
        W_new = layer.params[wname]
        dU = W_new / float(xp.sqrt((W_new * W_new).sum())) - U
        rec["weight_norm"][t] = r
        rec["effective_lr"][t] = float(xp.sqrt((dU * dU).sum())) / grad_U if grad_U > 0 else np.nan
        rec["cos_grad_weight"][t] = g_par / g_norm if g_norm > 0 else 0.0
        rec["loss"][t] = loss
    return TrainingGeometry(norm, float(lr), **rec)
