"""lnedu.functional.vae: the Bernoulli reconstruction term, the Gaussian KL and the reparameterization."""

from __future__ import annotations

import numpy as np
import pytest

from lnedu.functional import vae
from lnedu.gradcheck import check_function

TOL = 1e-7
SHAPES = [(1, 1), (4, 6), (3, 17), (7, 2)]


def _assert_passes(report):
    assert report.max_rel_error < TOL, f"\n{report}"


@pytest.mark.parametrize("shape", SHAPES)
def test_bernoulli_nll_gradcheck(shape, rng):
    logits = rng.normal(rng.uniform(-1, 1), 3, shape)
    x = (rng.random(shape) < 0.4).astype(np.float64)
    _assert_passes(check_function(vae.bernoulli_nll, vae.bernoulli_nll_backward, {"logits": logits, "x": x},
                                  wrt=["logits"]))


@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_kl_gradcheck(shape, rng):
    mu, log_sigma = rng.normal(0, 1.5, shape), rng.normal(0, 0.5, shape)
    _assert_passes(check_function(vae.gaussian_kl, vae.gaussian_kl_backward, {"mu": mu, "log_sigma": log_sigma}))


@pytest.mark.parametrize("shape", SHAPES)
def test_reparameterize_gradcheck(shape, rng):
    mu, log_sigma, eps = rng.normal(size=shape), rng.normal(0, 0.5, shape), rng.normal(size=shape)
    _assert_passes(check_function(vae.reparameterize, vae.reparameterize_backward,
                                  {"mu": mu, "log_sigma": log_sigma, "eps": eps}, wrt=["mu", "log_sigma"]))


def test_a_wrong_backward_fails_the_check(rng):
    """The checks above can fail: a backward that forgets the factor 2 in d(sigma^2)/d(log sigma) is caught."""
    mu, log_sigma = rng.normal(size=(3, 4)), rng.normal(0, 0.5, (3, 4))

    def wrong(dkl, cache):
        dmu, dls = vae.gaussian_kl_backward(dkl, cache)
        return dmu, 0.5 * dls

    rep = check_function(vae.gaussian_kl, wrong, {"mu": mu, "log_sigma": log_sigma})
    assert rep.max_rel_error > 1e-2


def test_values_against_the_textbook_formulas(rng):
    logits = np.array([[-800.0, 0.0, 30.0]])
    x = np.array([[0.0, 1.0, 1.0]])
    nll, _ = vae.bernoulli_nll(logits, x)  # no overflow at -800; exact values from log(1 + e^-c)
    np.testing.assert_allclose(nll, [0.0 + np.log(2) + np.log1p(np.exp(-30.0))], rtol=1e-12)
    c, xb = rng.normal(0, 2, (5, 8)), (rng.random((5, 8)) < 0.5).astype(np.float64)
    p = 1 / (1 + np.exp(-c))
    np.testing.assert_allclose(vae.bernoulli_nll(c, xb)[0], -(xb * np.log(p) + (1 - xb) * np.log(1 - p)).sum(1),
                               rtol=1e-10)
    mu, log_sigma = rng.normal(size=(2, 3)), rng.normal(0, 0.5, (2, 3))
    kl, _ = vae.gaussian_kl(mu, log_sigma)
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2)/2 - 1/2, per unit
    s = np.exp(log_sigma)
    np.testing.assert_allclose(kl, (np.log(1 / s) + (s**2 + mu**2) / 2 - 0.5).sum(axis=1), rtol=1e-12)
    eps = rng.normal(size=(2, 3))
    np.testing.assert_allclose(vae.reparameterize(mu, log_sigma, eps)[0], mu + s * eps, rtol=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a, b: vae.bernoulli_nll(a, b[:, :2]), "x: expected shape (3, 4), got (3, 2)"),
        (lambda a, b: vae.bernoulli_nll(a[0], b[0]), "logits: expected a 2-d array"),
        (lambda a, b: vae.gaussian_kl(a, b.T), "log_sigma: expected shape (3, 4), got (4, 3)"),
        (lambda a, b: vae.reparameterize(a, b, b[:1]), "eps: expected shape (3, 4), got (1, 4)"),
        (lambda a, b: vae.gaussian_kl_backward(np.ones(2), vae.gaussian_kl(a, b)[1]), "dkl: expected shape (3,)"),
    ],
)
def test_bad_shapes_are_named(call, message, rng):
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(a, b)


def test_integer_input_is_refused():
    with pytest.raises(TypeError, match="logits: expected a floating-point array"):
        vae.bernoulli_nll(np.zeros((2, 3), dtype=int), np.zeros((2, 3)))
