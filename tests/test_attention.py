"""DRAW's Gaussian-filterbank attention: reference values and float64 gradient checks."""

from __future__ import annotations

import numpy as np
import pytest

from lnedu.functional import attention as att
from lnedu.gradcheck import check_gradients


def _params(rng, batch):
    return np.column_stack([rng.uniform(-0.5, 0.5, batch), rng.uniform(-0.5, 0.5, batch),
                            rng.normal(0.3, 0.3, batch), rng.normal(0, 0.3, batch), rng.normal(0, 0.3, batch)])


def test_filterbank_rows_are_normalized_gaussians_at_the_paper_positions():
    rng = np.random.default_rng(0)
    p = _params(rng, 3)
    (Fx, Fy, gamma), cache = att.filterbank(p, N=4, A=9, B=7)
    np.testing.assert_allclose(Fx.sum(-1), 1, atol=1e-12)
    np.testing.assert_allclose(Fy.sum(-1), 1, atol=1e-12)
    # explicit formula for one row
    gx = (9 + 1) / 2 * (p[1, 0] + 1)
    delta = (9 - 1) / 3 * np.exp(p[1, 3])
    mu = gx + (2 - 4 / 2 - 0.5) * delta  # filter i = 2
    e = np.exp(-(np.arange(1, 10) - mu) ** 2 / (2 * np.exp(p[1, 2])))
    np.testing.assert_allclose(Fx[1, 1], e / e.sum(), rtol=1e-12)
    np.testing.assert_allclose(gamma, np.exp(p[:, 4]))


def test_read_of_a_full_resolution_grid_recovers_the_image():
    # N = A = B, centred grid, stride 1 and tiny variance: F is the identity, the glimpse the image
    x = np.random.default_rng(1).random((2, 5, 5))
    p = np.tile([0.0, 0.0, np.log(1e-3), 0.0, 0.0], (2, 1))
    (Fx, Fy, gamma), _ = att.filterbank(p, N=5, A=5, B=5)
    g, _ = att.read_attention(x, Fx, Fy, gamma)
    np.testing.assert_allclose(g, x, atol=1e-12)


@pytest.mark.parametrize("N,A,B", [(2, 6, 5), (3, 4, 4), (1, 5, 3)])
def test_read_and_write_gradients_through_the_filterbank(N, A, B):
    rng = np.random.default_rng(N + A)
    p = _params(rng, 2)
    x = rng.random((2, B, A))
    w = rng.normal(size=(2, N, N))
    R1, R2 = rng.normal(size=(2, N, N)), rng.normal(size=(2, B, A))

    def loss():
        (Fx, Fy, gamma), _ = att.filterbank(p, N, A, B)
        g, _ = att.read_attention(x, Fx, Fy, gamma)
        patch, _ = att.write_attention(w, Fx, Fy, gamma)
        return float((g * R1).sum() + (patch * R2).sum())

    (Fx, Fy, gamma), fcache = att.filterbank(p, N, A, B)
    _, rcache = att.read_attention(x, Fx, Fy, gamma)
    _, wcache = att.write_attention(w, Fx, Fy, gamma)
    dx, dFx1, dFy1, dg1 = att.read_attention_backward(R1, rcache)
    dw, dFx2, dFy2, dg2 = att.write_attention_backward(R2, wcache)
    dp = att.filterbank_backward((dFx1 + dFx2, dFy1 + dFy2, dg1 + dg2), fcache)
    rep = check_gradients(loss, {"params": p, "x": x, "w": w}, {"params": dp, "x": dx, "w": dw})
    assert rep.max_rel_error < 1e-7, rep


def test_attention_bad_input():
    with pytest.raises(ValueError, match=r"params: expected shape \(batch, 5\)"):
        att.filterbank(np.zeros((2, 4)), 2, 3, 3)
    (Fx, Fy, gamma), _ = att.filterbank(np.zeros((1, 5)), 2, 4, 3)
    with pytest.raises(ValueError, match=r"x: expected images of shape \(B, A\) = \(3, 4\)"):
        att.read_attention(np.zeros((1, 4, 3)), Fx, Fy, gamma)
    with pytest.raises(ValueError, match="w: expected patches"):
        att.write_attention(np.zeros((1, 3, 3)), Fx, Fy, gamma)
