"""Tests of lnedu.theory.geometry: the Fisher geometry of plain and normalized GLMs (LN paper §5.2).

The chain of evidence: the backprop Jacobian agrees with finite differences; Eq. (14)'s chi agrees with the
Jacobian; the closed forms Eq. (12)/(13) agree with the exact Fisher matrix (except where the test says why
not: LN's cross-unit terms); the exact matrix agrees with its Monte Carlo estimate within sampling error;
and the KL divergence agrees with the quadratic form to second order.
"""

from __future__ import annotations

import numpy as np
import pytest

from lnedu.gradcheck import check_gradients
from lnedu.theory import geometry as G

FAMILIES = {"logistic": G.Logistic(), "gaussian": G.Gaussian(0.7)}
NORMED = ("batch", "weight", "layer")


def _data(N, D, seed, offset=0.5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)) * rng.uniform(0.5, 2.0, D) + offset


def _unit(rng, n):
    d = rng.standard_normal(n)
    return d / np.linalg.norm(d)


# --------------------------------------------------------------------------------------------------
# parameters and validation


def test_theta_is_ordered_per_neuron_and_round_trips():
    m = G.random_glm(3, 4, G.Logistic(), "layer", seed=1)
    theta = m.theta()
    assert theta.shape == (4 * (3 + 2),)
    for i in range(4):
        np.testing.assert_array_equal(theta[G.param_index(m, i, "w")], m.W[:, i])
        assert theta[G.param_index(m, i, "b")] == m.b[i]
        assert theta[G.param_index(m, i, "g")] == m.g[i]
    m2 = m.with_theta(theta * 1.5)
    np.testing.assert_array_equal(m2.theta(), theta * 1.5)
    plain = G.random_glm(3, 2, G.Gaussian(), None, seed=2)
    assert plain.theta().shape == (2 * 4,)
    with pytest.raises(ValueError, match="which"):
        G.param_index(plain, 0, "g")


def test_bad_arguments_are_named():
    W, b = np.ones((3, 2)) * 0.5, np.zeros(2) + 0.1
    with pytest.raises(ValueError, match="norm"):
        G.GLM(W, b, G.Logistic(), np.ones(2), norm="group")
    with pytest.raises(ValueError, match="g: expected gains"):
        G.GLM(W, b, G.Logistic(), None, norm="batch")
    with pytest.raises(ValueError, match="g: expected None"):
        G.GLM(W, b, G.Logistic(), np.ones(2))
    with pytest.raises(ValueError, match="b: expected shape"):
        G.GLM(W, np.zeros(3), G.Logistic())
    with pytest.raises(ValueError, match="at least 2 outputs"):
        G.GLM(W[:, :1], b[:1], G.Logistic(), np.ones(1), norm="layer")
    with pytest.raises(TypeError, match="family"):
        G.GLM(W, b, "logistic")
    with pytest.raises(ValueError, match="phi"):
        G.Gaussian(-1.0)
    m = G.GLM(W, b, G.Logistic())
    with pytest.raises(ValueError, match="X: expected 3 columns"):
        G.pre_activation(m, np.ones((5, 4)))
    with pytest.raises(TypeError, match="X"):
        G.pre_activation(m, np.ones((5, 3), dtype=int))
    with pytest.raises(ValueError, match="n_samples"):
        G.fisher_monte_carlo(m, np.ones((5, 3)), 1)
    with pytest.raises(ValueError, match="chi"):
        G.chi(m, np.ones((5, 3)))
    with pytest.raises(ValueError, match="delta_g"):
        G.gain_metric(m, np.ones((5, 3)), np.ones(3))


def test_kl_formulas_match_the_textbook_densities():
    rng = np.random.default_rng(3)
    z, z2 = rng.normal(0, 2, (6, 3)), rng.normal(0, 2, (6, 3))
    p, q = 1 / (1 + np.exp(-z)), 1 / (1 + np.exp(-z2))
    kl_b = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).sum(axis=1)
    np.testing.assert_allclose(G.Logistic().kl(z, z2), kl_b, rtol=1e-10)
    phi = 0.3
    np.testing.assert_allclose(G.Gaussian(phi).kl(z, z2), ((z - z2) ** 2 / (2 * phi)).sum(axis=1), rtol=1e-12)
    # sampling: the means and variances the Fisher matrix uses
    zz = np.full((20000, 1), 0.8)
    y = G.Logistic().sample(zz, np.random.default_rng(0))
    assert abs(y.mean() - 1 / (1 + np.exp(-0.8))) < 5 * np.sqrt(0.25 / 20000)
    yg = G.Gaussian(phi).sample(zz, np.random.default_rng(1))
    assert abs(yg.var() - phi) < 5 * phi * np.sqrt(2 / 20000)


# --------------------------------------------------------------------------------------------------
# the Jacobian by backprop, and Eq. (14)


@pytest.mark.parametrize("norm", G.NORMS)
@pytest.mark.parametrize("shape,seed", [((7, 3, 3), 0), ((5, 4, 5), 1)])
def test_jacobian_matches_finite_differences(norm, shape, seed):
    N, D, H = shape
    X = _data(N, D, seed)
    m = G.random_glm(D, H, G.Logistic(), norm, seed=seed + 10)
    J = G.jacobian(m, X)
    R = np.random.default_rng(seed + 20).standard_normal((N, H))
    grad = np.einsum("nk,nkp->p", R, J)  # d(sum R * z)/dtheta
    as_params = m.with_theta(grad)  # the same numbers laid out as W, b, g
    arrays = {"W": m.W, "b": m.b} | ({} if norm is None else {"g": m.g})
    analytic = {"W": as_params.W, "b": as_params.b} | ({} if norm is None else {"g": as_params.g})
    report = check_gradients(lambda: float((G.pre_activation(m, X) * R).sum()), arrays, analytic)
    assert report.max_rel_error < 1e-7, str(report)


@pytest.mark.parametrize("norm", NORMED)
@pytest.mark.parametrize("seed", [0, 1])
def test_chi_of_eq14_is_the_own_unit_block_of_the_jacobian(norm, seed):
    X = _data(9, 4, seed)
    m = G.random_glm(4, 5, G.Gaussian(), norm, seed=seed + 3)
    J = G.jacobian(m, X)
    chi = G.chi(m, X)
    a = X @ m.W
    if norm == "weight":
        sigma = np.broadcast_to(np.linalg.norm(m.W, axis=0), a.shape)
        np.testing.assert_allclose(np.einsum("nhd,dh->nh", chi, m.W), 0, atol=1e-12)  # chi_i is orthogonal to w_i
    elif norm == "layer":
        sigma = np.broadcast_to(a.std(axis=1, keepdims=True), a.shape)
    else:
        sigma = np.broadcast_to(a.std(axis=0), a.shape)
        np.testing.assert_allclose(np.einsum("nhd,dh->nh", chi, m.W), 0, atol=1e-11)
    for i in range(m.H):
        own = J[:, i, G.param_index(m, i, "w")]
        np.testing.assert_allclose(own, (m.g[i] / sigma[:, i])[:, None] * chi[:, i], rtol=1e-10, atol=1e-12)


def test_layer_norm_couples_every_output_to_every_weight_vector():
    """dz_k/dw_i = (g_k/sigma) x [delta_ki - (1 + hat a_k hat a_i)/H]: nonzero for k != i."""
    X = _data(6, 3, 4)
    H = 4
    m = G.random_glm(3, H, G.Logistic(), "layer", seed=5)
    J = G.jacobian(m, X)
    a = X @ m.W
    sigma = a.std(axis=1, keepdims=True)
    ahat = (a - a.mean(axis=1, keepdims=True)) / sigma
    for k in range(H):
        for i in range(H):
            c = (k == i) - (1 + ahat[:, k] * ahat[:, i]) / H
            expected = (m.g[k] / sigma[:, 0] * c)[:, None] * X
            np.testing.assert_allclose(J[:, k, G.param_index(m, i, "w")], expected, rtol=1e-10, atol=1e-12)
    assert np.abs(J[:, 0, G.param_index(m, 1, "w")]).max() > 0.01


# --------------------------------------------------------------------------------------------------
# Eq. (12) and (13) against the exact Fisher matrix


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("norm", [None, "batch", "weight"])
def test_closed_form_fisher_is_exact_for_plain_bn_and_wn(family, norm):
    for seed, (N, D, H) in enumerate([(40, 3, 2), (25, 5, 4)]):
        X = _data(N, D, seed)
        m = G.random_glm(D, H, FAMILIES[family], norm, seed=seed + 7)
        Fa, Fe = G.fisher_analytic(m, X), G.fisher_exact(m, X)
        assert Fa.shape == (m.n_params, m.n_params)
        np.testing.assert_allclose(Fa, Fa.T, atol=1e-14)
        assert np.abs(Fa - Fe).max() <= 1e-12 * np.abs(Fe).max()
        assert np.linalg.eigvalsh(Fe).min() > -1e-12  # positive semi-definite


def test_eq13_misses_layer_norms_cross_unit_terms_which_fade_like_one_over_H():
    X = _data(60, 4, 8)
    diag_err = {}
    for H in (3, 6, 24):
        m = G.random_glm(4, H, G.Logistic(), "layer", seed=9)
        Fa, Fe = G.fisher_analytic(m, X), G.fisher_exact(m, X)
        if H == 3:
            assert np.linalg.norm(Fa - Fe) > 0.3 * np.linalg.norm(Fe)
        # the gain-gain and bias-bias entries have no cross terms: Eq. (13) gets them right
        for i in range(H):
            for which in ("g", "b"):
                np.testing.assert_allclose(G.block(Fa, m, i, which), G.block(Fe, m, i, which), rtol=1e-12)
        blocks = [(G.block(Fa, m, i, "w"), G.block(Fe, m, i, "w")) for i in range(H)]
        diag_err[H] = np.mean([np.linalg.norm(a - e) / np.linalg.norm(e) for a, e in blocks])
    ratio = diag_err[24] / diag_err[6]
    assert 1 / 6 < ratio < 1 / 2.5, diag_err  # about 1/4: the own-unit blocks converge like 1/H


# --------------------------------------------------------------------------------------------------
# Monte Carlo: the definition, Eq. (9)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("norm", G.NORMS)
def test_monte_carlo_fisher_agrees_within_sampling_error(family, norm):
    X = _data(60, 3, 11)
    m = G.random_glm(3, 3, FAMILIES[family], norm, seed=12)
    J = G.jacobian(m, X)
    Fe = G.fisher_exact(m, X, J)
    mc = G.fisher_monte_carlo(m, X, 300, rng=13, J=J)
    z = np.abs(mc.F - Fe) / mc.se
    assert z.max() < 5.0, f"worst entry {z.max():.2f} standard errors away"
    # the standard errors are neither inflated nor too small: the total error matches them
    ratio = np.linalg.norm(mc.F - Fe) / np.sqrt((mc.se**2).sum())
    assert 0.3 < ratio < 3.0, ratio
    if norm in (None, "batch", "weight"):  # and so does the closed form
        assert (np.abs(mc.F - G.fisher_analytic(m, X)) / mc.se).max() < 5.0


def test_monte_carlo_error_shrinks_like_one_over_sqrt_samples():
    X = _data(50, 3, 14)
    m = G.random_glm(3, 2, G.Logistic(), "weight", seed=15)
    J = G.jacobian(m, X)
    Fe = G.fisher_exact(m, X, J)
    small = G.fisher_monte_carlo(m, X, 100, rng=16, J=J)
    large = G.fisher_monte_carlo(m, X, 1600, rng=17, J=J)
    se_ratio = np.sqrt((small.se**2).sum() / (large.se**2).sum())
    assert 3.5 < se_ratio < 4.5, se_ratio
    err_ratio = np.linalg.norm(small.F - Fe) / np.linalg.norm(large.F - Fe)
    assert 2.0 < err_ratio < 8.0, err_ratio


def test_monte_carlo_rejects_eq13_for_layer_norm():
    """The sampling check has power: it tells the exact LN Fisher matrix from Eq. (13)'s at H = 3."""
    X = _data(60, 3, 18)
    m = G.random_glm(3, 3, G.Gaussian(), "layer", seed=19)
    mc = G.fisher_monte_carlo(m, X, 300, rng=20)
    assert (np.abs(mc.F - G.fisher_exact(m, X)) / mc.se).max() < 5.0
    assert (np.abs(mc.F - G.fisher_analytic(m, X)) / mc.se).max() > 10.0


# --------------------------------------------------------------------------------------------------
# ds^2 = KL against (1/2) delta^T F delta, Eq. (8)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("norm", G.NORMS)
def test_kl_matches_the_quadratic_form_to_second_order(family, norm):
    X = _data(30, 3, 21)
    m = G.random_glm(3, 3, FAMILIES[family], norm, seed=22)
    Fe = G.fisher_exact(m, X)
    rng = np.random.default_rng(23)
    for _ in range(2):
        d = _unit(rng, m.n_params)
        rel = []
        for t in (1e-2, 1e-3, 1e-4):
            kl, q = G.kl_divergence(m, X, t * d), G.quadratic_form(Fe, t * d)
            assert q > 0 and kl > 0
            rel.append(abs(kl - q) / q)
        if family == "gaussian" and norm is None:
            assert max(rel) < 1e-9  # z is linear in theta: the quadratic form is exact
        else:
            assert rel[0] < 0.5 and rel[2] < 5e-3, rel
            assert 5 < rel[1] / rel[2] < 20, rel  # the gap is O(|delta|): a factor 10 per decade


# --------------------------------------------------------------------------------------------------
# implicit learning-rate reduction and the "factor of 1/2"


@pytest.mark.parametrize("norm", NORMED)
@pytest.mark.parametrize("family", FAMILIES)
def test_scaling_the_weights_divides_the_curvature_by_c_squared(norm, family):
    X = _data(40, 4, 24)
    m = G.random_glm(4, 3, FAMILIES[family], norm, seed=25)
    teacher = G.random_glm(4, 3, FAMILIES[family], None, seed=26, weight_scale=3.0)
    Y = teacher.family.sample(G.pre_activation(teacher, X), np.random.default_rng(27))
    res = G.curvature_under_weight_scaling(m, X, scales=(1, 2, 4, 8), unit=1, step=1e-4, Y=Y, lr=1e-4)
    c = res.scales
    assert res.output_change.max() < 1e-12  # the model's predictions are the same
    r = res.ratios()
    np.testing.assert_allclose(r["quad_form"], 1 / c**2, rtol=1e-9)  # 1, 1/4, 1/16, 1/64
    np.testing.assert_allclose(r["block_eig"], 1 / c**2, rtol=1e-9)
    np.testing.assert_allclose(r["ds"], 1 / c, rtol=1e-9)  # 1, 1/2, 1/4, 1/8: the paper's "1/2"
    np.testing.assert_allclose(r["kl"], 1 / c**2, rtol=1e-2)
    np.testing.assert_allclose(r["sgd_kl"], 1 / c**4, rtol=1e-2)  # an SGD step: ds falls like 1/c^2


def test_layer_norm_is_not_invariant_to_scaling_one_weight_vector():
    X = _data(20, 3, 26)
    m = G.random_glm(3, 3, G.Logistic(), "layer", seed=27)
    change = np.abs(G.pre_activation(m.scaled(2.0, unit=0), X) - G.pre_activation(m, X)).max()
    assert change > 1e-2


def test_plain_glm_curvature_does_not_shrink_with_the_norm():
    X = _data(40, 3, 28)
    m = G.random_glm(3, 2, G.Gaussian(), None, seed=29)
    res = G.curvature_under_weight_scaling(m, X, scales=(1, 4), unit=0)
    assert res.output_change[1] > 0.1  # scaling changes the plain model's output ...
    np.testing.assert_allclose(res.ratios()["quad_form"], 1.0, rtol=1e-12)  # ... and not its (Gaussian) metric


# --------------------------------------------------------------------------------------------------
# learning the magnitude of the incoming weights, Eq. (32)-(35)


@pytest.mark.parametrize("family", FAMILIES)
def test_gain_metric_ignores_input_scale_for_bn_and_ln_only(family):
    X = _data(40, 4, 30, offset=0.2)
    scales = [0.25, 1.0, 4.0]
    vals = {}
    for norm in G.NORMS:
        m = G.random_glm(4, 3, FAMILIES[family], norm, seed=31)
        dg = np.random.default_rng(32).uniform(0.5, 1.5, 3)
        vals[norm] = G.gain_metric_vs_input_scale(m, X, scales, dg)
        assert (vals[norm] > 0).all()
    for norm in ("batch", "layer"):
        np.testing.assert_allclose(vals[norm], vals[norm][1], rtol=1e-10)
    for norm in (None, "weight"):
        if family == "gaussian":  # Cov is constant: the metric grows exactly like s^2
            np.testing.assert_allclose(vals[norm] / vals[norm][1], np.square(scales), rtol=1e-10)
        else:
            assert abs(vals[norm][2] / vals[norm][0] - 1) > 0.5


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("norm", G.NORMS)
def test_gain_metric_paper_forms(family, norm):
    X = _data(30, 3, 33)
    m = G.random_glm(3, 3, FAMILIES[family], norm, seed=34)
    dg = np.random.default_rng(35).uniform(-1.5, 1.5, 3)
    ours, paper = G.gain_metric(m, X, dg), G.gain_metric_paper(m, X, dg)
    if norm == "batch" and family == "logistic":
        # Eq. (32) drops the factor hat a_i^2 next to Cov[y|x]: right only on average, not here
        assert abs(paper / ours - 1) > 1e-3
    else:
        np.testing.assert_allclose(paper, ours, rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# the training run


def _teacher_data(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((128, 6))
    Wt = rng.standard_normal((6, 3))
    Y = (rng.random((128, 3)) < 1 / (1 + np.exp(-X @ Wt))).astype(np.float64)
    return X, Y


@pytest.mark.parametrize("norm", NORMED)
def test_training_a_normalized_model_grows_the_norm_and_shrinks_the_effective_lr(norm):
    X, Y = _teacher_data(36)
    h = G.train_geometry(X, Y, norm, lr=1.0, steps=120, batch_size=16, seed=37)
    assert np.abs(h.cos_grad_weight).max() < 1e-8  # the gradient is orthogonal to W
    assert (np.diff(h.weight_norm) > 0).all()  # so every step lengthens W
    assert h.weight_norm[-1] > 1.5 * h.weight_norm[0]
    # lr/||W||^2 is the first-order (small step) value; a step that turns W by a large angle falls short of it
    dev = np.abs(h.effective_lr / (h.lr / h.weight_norm**2) - 1)
    assert np.median(dev) < 0.01 and dev.max() < 0.15, (np.median(dev), dev.max())
    assert h.effective_lr[-10:].mean() < 0.5 * h.effective_lr[:10].mean()


def test_training_the_plain_model_has_no_orthogonality():
    X, Y = _teacher_data(36)
    h = G.train_geometry(X, Y, None, lr=1.0, steps=120, batch_size=16, seed=37)
    assert np.abs(h.cos_grad_weight).max() > 0.1
    assert np.isfinite(h.loss).all() and h.loss[-20:].mean() < h.loss[:20].mean()
    with pytest.raises(ValueError, match="batch_size"):
        G.train_geometry(X, Y, "batch", batch_size=1)


# --------------------------------------------------------------------------------------------------
# the plots (drawn off-screen; the numbers behind them are tested above)


def test_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lnedu.viz import geometry as V

    X = _data(20, 3, 40)
    m = G.random_glm(3, 3, G.Gaussian(), "weight", seed=41)
    Fe = G.fisher_exact(m, X)
    mc = G.fisher_monte_carlo(m, X, 20, rng=42)
    figs = [
        V.plot_fisher_agreement(Fe, {"Monte Carlo": mc.F, "Eq. 13": G.fisher_analytic(m, X)}, se=mc.se),
        V.plot_curvature_scaling({"weight": G.curvature_under_weight_scaling(m, X, scales=(1, 2))}),
        V.plot_gain_metric([1, 2], {"gaussian": {None: [1.0, 4.0], "layer": [1.0, 1.0]}}),
        V.plot_training_geometry([G.train_geometry(*_teacher_data(43), "layer", steps=10, batch_size=8)]),
    ]
    assert [len(f.axes) for f in figs] == [2, 2, 1, 3]
    for f in figs:
        plt.close(f)


# --------------------------------------------------------------------------------------------------
# the same numbers on every backend (the cupy case runs where a GPU is available)


@pytest.mark.parametrize("norm", G.NORMS)
def test_geometry_runs_on_every_backend(xp, norm):
    from lnedu.backend import to_numpy

    X = _data(12, 3, 44)
    m = G.random_glm(3, 3, G.Logistic(), norm, seed=45)
    on = G.GLM(xp.asarray(m.W), xp.asarray(m.b), m.family, None if norm is None else xp.asarray(m.g), norm)
    Xd = xp.asarray(X)
    for f in (G.fisher_analytic, G.fisher_exact):
        np.testing.assert_allclose(to_numpy(f(on, Xd)), f(m, X), rtol=1e-10, atol=1e-14)
    d = _unit(np.random.default_rng(46), m.n_params)
    assert abs(G.kl_divergence(on, Xd, xp.asarray(1e-2 * d)) / G.kl_divergence(m, X, 1e-2 * d) - 1) < 1e-10
    mc, mc_host = G.fisher_monte_carlo(on, Xd, 8, rng=47), G.fisher_monte_carlo(m, X, 8, rng=47)
    np.testing.assert_allclose(to_numpy(mc.F), mc_host.F, rtol=1e-10, atol=1e-14)  # host draws: same y
