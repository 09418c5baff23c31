"""Convolution by im2col and the normalizations over feature maps: gradient checks and reference values."""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.functional as F
from lnedu import nn
from lnedu.gradcheck import check_function, check_module


def _naive_conv(x, W, b, stride, pad):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    C, kh, kw, K = W.shape
    N, _, H, Wd = xp.shape
    Ho, Wo = (H - kh) // stride + 1, (Wd - kw) // stride + 1
    y = np.zeros((N, K, Ho, Wo))
    for n in range(N):
        for k in range(K):
            for h in range(Ho):
                for w in range(Wo):
                    y[n, k, h, w] = (xp[n, :, h * stride: h * stride + kh, w * stride: w * stride + kw]
                                     * W[..., k]).sum() + b[k]
    return y


@pytest.mark.parametrize("stride,pad,shape", [(1, 0, (2, 3, 5, 6)), (1, 1, (3, 2, 4, 4)), (2, 1, (2, 2, 7, 5))])
def test_conv2d_matches_the_definition_and_gradcheck(stride, pad, shape):
    rng = np.random.default_rng(sum(shape) + stride)
    x = rng.normal(0.5, 1.5, shape)
    W = rng.normal(size=(shape[1], 3, 3, 4))
    b = rng.normal(size=4)
    y, _ = F.conv2d(x, W, b, stride=stride, padding=pad)
    np.testing.assert_allclose(y, _naive_conv(x, W, b, stride, pad), rtol=1e-12, atol=1e-12)
    rep = check_function(lambda x, W, b: F.conv2d(x, W, b, stride=stride, padding=pad), F.conv2d_backward,
                         dict(x=x, W=W, b=b), seed=stride)
    assert rep.max_rel_error < 1e-7, rep


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 6, 5))
    cols = F.im2col(x, 3, 2, 2, 1)
    r = rng.normal(size=cols.shape)
    # <im2col(x), r> == <x, col2im(r)>
    im = F.col2im(r, x.shape, 3, 2, 2, 1)
    assert np.isclose((cols * r).sum(), (x * im).sum(), rtol=1e-12)


@pytest.mark.parametrize("fwd,bwd", [(F.layer_norm_2d, F.layer_norm_2d_backward),
                                     (F.batch_norm_2d, F.batch_norm_2d_backward)])
def test_feature_map_norms_gradcheck(fwd, bwd):
    rng = np.random.default_rng(11)
    x = rng.normal(2.0, 3.0, (3, 4, 3, 2))
    g, b = rng.normal(1, 0.3, 4), rng.normal(size=4)
    rep = check_function(fwd, bwd, dict(x=x, gain=g, bias=b), seed=2)
    assert rep.max_rel_error < 1e-7, rep


def test_layer_norm_2d_normalizes_each_example_and_batch_norm_2d_each_channel():
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, (4, 3, 5, 5))
    ones, zeros = np.ones(3), np.zeros(3)
    y, _ = F.layer_norm_2d(x, ones, zeros, eps=1e-12)
    np.testing.assert_allclose(y.reshape(4, -1).mean(1), 0, atol=1e-12)
    np.testing.assert_allclose(y.reshape(4, -1).std(1), 1, atol=1e-9)
    y, _ = F.batch_norm_2d(x, ones, zeros, eps=1e-12)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-9)


def test_conv_modules_gradcheck_in_a_small_convnet():
    rng = np.random.default_rng(4)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, rng=rng, dtype=np.float64), nn.LayerNorm2d(3, dtype=np.float64), nn.ReLU(),
        nn.Conv2d(3, 4, 3, stride=2, rng=rng, dtype=np.float64), nn.BatchNorm2d(4, dtype=np.float64), nn.Tanh(),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 3, rng=rng, dtype=np.float64),
    )
    x = rng.normal(size=(3, 1, 6, 6))
    rep = check_module(net, x, seed=1)
    assert rep.max_rel_error < 1e-7, rep


def test_conv_bad_input():
    x = np.zeros((2, 3, 5, 5))
    with pytest.raises(ValueError, match="W: expected 3 input channels"):
        F.conv2d(x, np.zeros((2, 3, 3, 4)))
    with pytest.raises(ValueError, match="x: expected a 4-d array"):
        F.conv2d(x[0], np.zeros((3, 3, 3, 4)))
    with pytest.raises(ValueError, match="smaller than the 7x7 kernel"):
        F.conv2d(x, np.zeros((3, 7, 7, 4)))
    with pytest.raises(ValueError, match="stride, padding"):
        F.conv2d(x, np.zeros((3, 3, 3, 4)), stride=0)
    with pytest.raises(ValueError, match="kernel_size: expected a positive integer"):
        nn.Conv2d(1, 2, 0)


def test_linear_and_conv_refuse_mixed_dtypes():
    x = np.ones((2, 3), np.float32) * np.float32(0.5)
    with pytest.raises(TypeError, match="W: expected dtype float32"):
        F.linear(x, np.full((3, 4), 0.1))
    with pytest.raises(TypeError, match="b: expected dtype float32"):
        F.linear(x, np.full((3, 4), 0.1, np.float32), np.full(4, 0.2))
    img = np.full((1, 1, 4, 4), 0.3, np.float32)
    with pytest.raises(TypeError, match="b: expected dtype float32"):
        F.conv2d(img, np.full((1, 3, 3, 2), 0.1, np.float32), np.full(2, 0.1))


def test_layer_norm_2d_names_a_missing_gain():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    with pytest.raises(TypeError, match="gain: expected a floating-point array"):
        F.layer_norm_2d(x, None, np.zeros(3))


def test_batchnorm2d_momentum_is_checked_like_batchnorm():
    with pytest.raises(ValueError, match=r"momentum: expected a number in \(0, 1\]"):
        nn.BatchNorm2d(3, momentum=5.0)


# ---- the convnet experiment (LN §6.7): what --plan reads (issue 18) -----------------------------------------


def test_convnet_flops_per_update_is_the_hand_count_of_the_im2col_products():
    """tiny: conv3x3(4) on 8x8 (2048 patch rows of 9), conv3x3/2(8) (512 rows of 36), linear 128 -> 10, batch 32;
    each product (m, k) x (k, n) costs 2*m*k*n forward and twice that backward."""
    from lnedu.experiments import convnet

    task = convnet.build(convnet.PRESETS["tiny"], "bn", 0)
    assert task.examples_per_update == 32
    by_hand = 6 * (32 * 8 * 8 * 1 * 9 * 4 + 32 * 4 * 4 * 4 * 9 * 8 + 32 * 8 * 4 * 4 * 10)
    assert task.flops_per_update() == by_hand == 1_572_864


def test_convnet_standin_has_mnists_28x28_images():
    import dataclasses

    from lnedu.experiments import convnet

    cfg = convnet.standin(dataclasses.replace(convnet.PRESETS["paper"], channels=2))
    assert cfg.data == "standin" and cfg.batch_size == 128 and cfg.epochs == 30
    task = convnet.build(cfg, "ln", 0)
    assert task.data.x_train.shape == (60000, 1, 28, 28) and task.steps == 30 * (60000 // 128)
    # conv3x3(2) on 28x28, conv3x3/2(4) to 14x14, linear 4*14*14 -> 10, batch 128
    assert task.flops_per_update() == 6 * 128 * (28 * 28 * 9 * 2 + 14 * 14 * 18 * 4 + 4 * 14 * 14 * 10)
    assert len(convnet.SEEDS["medium"]) >= 3 and convnet.PRESETS["medium"].data == "auto"
