"""Which axes make which normalization (issue 16 item 4): group and instance norm against float64 finite
differences on random shapes and against a reduce-over-axes reference, and the pure function behind the axes
explorer of notebook 15."""

from __future__ import annotations

import numpy as np
import pytest

from lnedu.functional.axes import (
    group_norm,
    group_norm_backward,
    instance_norm,
    instance_norm_backward,
    which_normalization,
)
from lnedu.gradcheck import check_function


def standardize_over(x, axes, eps=1e-5):
    """The reference: (x - mean) / sqrt(var + eps) over ``axes``, nothing else."""
    mu = x.mean(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)


@pytest.mark.parametrize("shape,groups", [((2, 4, 3, 3), 2), ((3, 6, 5), 3), ((2, 4, 2, 3, 2), 4), ((4, 3, 7), 1)])
def test_group_norm_backward(shape, groups):
    rng = np.random.default_rng(sum(shape) + groups)
    C = shape[1]
    for gain, bias in ((rng.uniform(0.5, 1.5, C), rng.normal(size=C)), (None, None)):
        rep = check_function(lambda x, gain, bias: group_norm(x, gain, bias, groups), group_norm_backward,
                             {"x": rng.normal(1.0, 2.0, shape), "gain": gain, "bias": bias}, seed=groups)
        assert rep.max_rel_error < 1e-7, rep


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (3, 2, 6), (1, 4, 3, 2)])
def test_instance_norm_backward(shape):
    rng = np.random.default_rng(sum(shape))
    C = shape[1]
    rep = check_function(lambda x, gain, bias: instance_norm(x, gain, bias), instance_norm_backward,
                         {"x": rng.normal(0, 3, shape), "gain": rng.uniform(0.5, 1.5, C), "bias": rng.normal(size=C)})
    assert rep.max_rel_error < 1e-7, rep


def test_a_planted_slip_in_the_backward_is_caught():
    rng = np.random.default_rng(0)

    def slipped(dy, cache):
        dx, dg, db = group_norm_backward(dy, cache)
        return dx * 1.01, dg, db

    rep = check_function(lambda x: group_norm(x, None, None, 2), lambda dy, c: slipped(dy, c)[0],
                         {"x": rng.normal(size=(2, 4, 3))})
    assert rep.max_rel_error > 1e-3


def test_group_norm_is_layer_norm_at_one_group_and_instance_norm_at_c_groups():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, (3, 4, 5, 2))
    np.testing.assert_allclose(group_norm(x, None, None, 1)[0], standardize_over(x, (1, 2, 3)), atol=1e-13)
    np.testing.assert_allclose(group_norm(x, None, None, 4)[0], standardize_over(x, (2, 3)), atol=1e-13)
    np.testing.assert_allclose(instance_norm(x, None, None)[0], standardize_over(x, (2, 3)), atol=1e-13)
    g, b = rng.uniform(0.5, 1.5, 4), rng.normal(size=4)
    two = group_norm(x, g, b, 2)[0]
    ref = standardize_over(x.reshape(3, 2, 2, 5, 2), (2, 3, 4)).reshape(x.shape) * g[:, None, None] + b[:, None, None]
    np.testing.assert_allclose(two, ref, atol=1e-13)


def test_group_norm_refuses_bad_arguments():
    x = np.ones((2, 6, 3))
    with pytest.raises(ValueError, match="groups: expected a divisor of the 6 channels"):
        group_norm(x, None, None, 4)
    with pytest.raises(ValueError, match=r"gain: expected shape \(6,\)"):
        group_norm(x, np.ones(3), None, 2)
    with pytest.raises(ValueError, match="eps"):
        group_norm(x, None, None, 2, eps=0.0)
    with pytest.raises((TypeError, ValueError), match="x"):
        instance_norm(np.ones((2, 3)), None, None)


@pytest.mark.parametrize("layout,axes,name", [
    ("NCHW", "NHW", "batch norm"), ("NCHW", (0, 2, 3), "batch norm"), ("NCHW", "CHW", "layer norm"),
    ("NCHW", [-3, -2, -1], "layer norm"), ("NCHW", "HW", "instance norm"), ("NHWC", "HW", "instance norm"),
    ("NHWC", "NHW", "batch norm"), ("NHWC", "HWC", "layer norm"), ("TNH", "H", "layer norm"),
    ("TNH", -1, "layer norm"), ("TNH", "N", "batch norm per time step"),
])
def test_which_normalization_names_the_standard_methods(layout, axes, name):
    assert which_normalization(layout, axes).name.startswith(name)


def test_axis_minus_one_in_a_conv_net_is_not_layer_norm():
    """The most common confusion: Keras' LayerNormalization(axis=-1) reduces over the last axis only, which
    is W in channels-first data and C in channels-last data; neither is the LN paper's layer norm."""
    first, last = which_normalization("NCHW", -1), which_normalization("NHWC", -1)
    assert not first.name.startswith("layer norm") and "W columns" in first.meaning
    assert not last.name.startswith("layer norm") and "over the channels" in last.meaning
    assert "axis=-1" in first.keras and "axis=-1" in last.keras
    assert which_normalization("NCHW", "NCHW").name == "whole-tensor standardization"
    odd = which_normalization("NCHW", "NC")
    assert odd.name == "no standard name" and odd.pytorch is None and "H, W" in odd.meaning


def test_which_normalization_refuses_bad_arguments():
    with pytest.raises(ValueError, match="layout"):
        which_normalization("NCH", "H")
    with pytest.raises(ValueError, match="axes: expected letters"):
        which_normalization("NCHW", "Z")
    with pytest.raises(ValueError, match="axes: expected integers"):
        which_normalization("TNH", 3)
    with pytest.raises(ValueError, match="at least one"):
        which_normalization("TNH", [])
