"""Bad input: every error is a ValueError or TypeError whose message names the argument, says what was
expected and what came."""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.functional as F
from lnedu import nn

X = np.linspace(-1.0, 2.0, 12).reshape(3, 4) ** 2  # small fixed data: these tests are about the checks
G = np.linspace(0.5, 1.5, 4)
B = np.linspace(-0.2, 0.2, 4)


# --------------------------------------------------------------------------------------------------
# arrays: rank, shape, dtype


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.layer_norm(np.float64(1.0), None, None), ValueError, r"x: expected an array with at least 1 dim"),
    (lambda: F.rms_norm(np.float64(1.0), None), ValueError, r"x: expected an array with at least 1 dim"),
    (lambda: F.batch_norm(X[0], None, None), ValueError, r"x: expected an array with at least 2 dim.*ndim=1"),
    (lambda: F.weight_norm(G, G), ValueError, r"v: expected a 2-d array, got ndim=1"),
    (lambda: F.weight_norm(X, X), ValueError, r"g: expected a 1-d array, got ndim=2"),
    (lambda: F.linear(X, G), ValueError, r"W: expected a 2-d array, got ndim=1"),
    (lambda: F.linear(X, X.T, X), ValueError, r"b: expected a 1-d array, got ndim=2"),
], ids=["ln", "rms", "bn", "wn-v", "wn-g", "linear-W", "linear-b"])
def test_wrong_ndim(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("call,match", [
    (lambda: F.layer_norm(X, np.ones(5), None), r"gain: expected shape \(4,\) \(= x.shape\[-1\]\), got \(5,\)"),
    (lambda: F.layer_norm(X, None, np.ones(3)), r"bias: expected shape \(4,\) \(= x.shape\[-1\]\), got \(3,\)"),
    (lambda: F.layer_norm(X, np.ones((1, 4)), None), r"gain: expected shape \(4,\)"),
    (lambda: F.layer_norm_staged(X, np.ones(5), B), r"gain: expected shape \(4,\)"),
    (lambda: F.rms_norm(X, np.ones(2)), r"gain: expected shape \(4,\)"),
    (lambda: F.batch_norm(X, np.ones(3), B), r"gain: expected shape \(4,\) \(= x.shape\[1:\]\), got \(3,\)"),
    (lambda: F.batch_norm_inference(X, G, np.ones(2), B, G), r"bias: expected shape \(4,\)"),
    (lambda: F.weight_norm(X, np.ones(3)), r"g: expected shape \(4,\) \(= v.shape\[1\]\), got \(3,\)"),
    (lambda: F.linear(X, np.ones((5, 2))), r"W: expected 4 rows \(= x.shape\[-1\]\), got shape \(5, 2\)"),
    (lambda: F.linear(X, np.ones((4, 2)), np.ones(3)), r"b: expected shape \(2,\) \(= W.shape\[1\]\), got \(3,\)"),
    (lambda: nn.LayerNorm(5, dtype=np.float64).forward(X), r"gain: expected shape \(4,\)"),
])
def test_mismatched_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call,match", [
    (lambda: F.layer_norm(X.astype(np.float32), G, None), r"gain: expected dtype float32 \(the input's\), got float64"),
    (lambda: F.layer_norm(X, None, B.astype(np.float32)), r"bias: expected dtype float64 \(the input's\), got float32"),
    (lambda: F.rms_norm(X.astype(np.float32), G), r"gain: expected dtype float32"),
    (lambda: F.batch_norm(X, G.astype(np.float32), B), r"gain: expected dtype float64"),
    (lambda: F.weight_norm(X, G.astype(np.float32)), r"g: expected dtype float64"),
    (lambda: nn.LayerNorm(4).forward(X), r"gain: expected dtype float64 \(the input's\), got float32"),
])
def test_gain_or_bias_of_another_dtype(call, match):
    with pytest.raises(TypeError, match=match):
        call()


@pytest.mark.parametrize("bad", [
    np.arange(12).reshape(3, 4),
    np.ones((3, 4), dtype=bool),
    np.ones((3, 4), dtype=object),
    np.ones((3, 4), dtype=np.complex128),
], ids=["int", "bool", "object", "complex"])
@pytest.mark.parametrize("fn", [
    lambda x: F.layer_norm(x, None, None),
    lambda x: F.rms_norm(x, None),
    lambda x: F.batch_norm(x, None, None),
    lambda x: F.linear(x, np.ones((4, 2))),
], ids=["layer_norm", "rms_norm", "batch_norm", "linear"])
def test_non_float_input(bad, fn):
    expected = rf"x: expected a floating-point array \(float32 or float64\), got dtype {bad.dtype}"
    with pytest.raises(TypeError, match=expected):
        fn(bad)


def test_non_array_input():
    with pytest.raises(TypeError, match="x: expected a floating-point array, got list"):
        F.layer_norm([[1.0, 2.0]], None, None)
    with pytest.raises(TypeError, match="gain: expected a floating-point array, got tuple"):
        F.layer_norm(X, (1.0, 1.0, 1.0, 1.0), None)


# --------------------------------------------------------------------------------------------------
# values: NaN/inf, eps


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fn", [
    lambda x, **kw: F.layer_norm(x, G, B, **kw),
    lambda x, **kw: F.rms_norm(x, G, **kw),
    lambda x, **kw: F.batch_norm(x, G, B, **kw),
], ids=["layer_norm", "rms_norm", "batch_norm"])
def test_nan_and_inf_are_caught_only_when_asked(fn, value):
    x = X.copy()
    x[1, 2] = value
    with pytest.raises(ValueError, match="x: expected finite values, got 1 NaN/inf entry"):
        fn(x, check_finite=True)
    with np.errstate(invalid="ignore"):
        y, _ = fn(x)  # by default the data are not read for checking: NaN flows through, no error
    assert not np.isfinite(y).all()
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values, got 2 NaN/inf entries"):
        fn(x, check_finite=True)


@pytest.mark.parametrize("eps,exc,match", [
    (0.0, ValueError, r"eps: expected a finite number > 0, got 0.0"),
    (-1e-5, ValueError, r"eps: expected a finite number > 0, got -1e-05"),
    (float("nan"), ValueError, r"eps: expected a finite number > 0, got nan"),
    (float("inf"), ValueError, r"eps: expected a finite number > 0"),
    ("1e-5", TypeError, r"eps: expected a positive real number, got str"),
    (None, TypeError, r"eps: expected a positive real number, got NoneType"),
    (True, TypeError, r"eps: expected a positive real number, got bool"),
])
def test_bad_eps(eps, exc, match):
    for call in (
        lambda: F.layer_norm(X, G, B, eps),
        lambda: F.layer_norm_staged(X, G, B, eps),
        lambda: F.rms_norm(X, G, eps),
        lambda: F.batch_norm(X, G, B, eps),
        lambda: F.batch_norm_inference(X, G, B, B, G, eps),
        lambda: nn.LayerNorm(4, eps),
        lambda: nn.BatchNorm(4, eps),
    ):
        with pytest.raises(exc, match=match):
            call()


def test_batch_of_one_for_batch_norm():
    with pytest.raises(ValueError, match="x: batch norm needs a batch of at least 2 along axis 0, got 1"):
        F.batch_norm(X[:1], G, B)
    with pytest.raises(ValueError, match="x: batch norm needs a batch of at least 2"):
        nn.BatchNorm(4, dtype=np.float64).forward(X[:1])
    F.layer_norm(X[:1], G, B)  # layer norm has no such limit: each case has its own statistics


# --------------------------------------------------------------------------------------------------
# backward: the upstream gradient's shape


@pytest.mark.parametrize("forward,backward,name", [
    (lambda: F.layer_norm(X, G, B), F.layer_norm_backward, "dy"),
    (lambda: F.rms_norm(X, G), F.rms_norm_backward, "dy"),
    (lambda: F.batch_norm(X, G, B), F.batch_norm_backward, "dy"),
    (lambda: F.linear(X, np.ones((4, 4))), F.linear_backward, "dy"),
    (lambda: F.weight_norm(X, G), F.weight_norm_backward, "dw"),
], ids=["layer_norm", "rms_norm", "batch_norm", "linear", "weight_norm"])
def test_wrong_upstream_gradient_shape(forward, backward, name):
    _, cache = forward()
    with pytest.raises(ValueError, match=rf"{name}: expected shape \(3, 4\), got \(3, 5\)"):
        backward(np.ones((3, 5)), cache)
    with pytest.raises(ValueError, match=rf"{name}: expected shape"):
        backward(np.ones((2, 4)), cache)


# --------------------------------------------------------------------------------------------------
# loss: targets and mask


@pytest.mark.parametrize("targets,exc,match", [
    (np.array([0, 1, 4]), ValueError, r"targets: expected class indices in \[0, 4\), got values in \[0, 4\]"),
    (np.array([0, -1, 2]), ValueError, r"targets: expected class indices in \[0, 4\), got values in \[-1, 2\]"),
    (np.array([0.0, 1.0, 2.0]), TypeError, r"targets: expected an integer array of class indices, got float64"),
    ([0, 1, 2], TypeError, r"targets: expected an integer array of class indices, got list"),
    (np.array([0, 1]), ValueError, r"targets: expected shape \(3,\), got \(2,\)"),
])
def test_bad_targets(targets, exc, match):
    with pytest.raises(exc, match=match):
        F.softmax_cross_entropy(X, targets)


def test_bad_mask():
    t = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="mask: expected at least one non-zero entry, got none"):
        F.softmax_cross_entropy(X, t, np.zeros(3))
    with pytest.raises(ValueError, match=r"mask: expected shape \(3,\), got \(4,\)"):
        F.softmax_cross_entropy(X, t, np.ones(4))


def test_zero_column_in_weight_norm():
    v = X.copy()
    v[:, 2] = 0
    with pytest.raises(ValueError, match="v: every column .* must be non-zero, got a zero column"):
        F.weight_norm(v, G)


# --------------------------------------------------------------------------------------------------
# modules: sizes, init names, settings


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Linear(0, 3), "in_features: expected a positive integer, got 0"),
    (lambda: nn.Linear(3, -2), "out_features: expected a positive integer, got -2"),
    (lambda: nn.Linear(3.5, 2), "in_features: expected a positive integer, got 3.5"),
    (lambda: nn.Linear("3", 2), "in_features: expected a positive integer, got '3'"),
    (lambda: nn.WeightNormLinear(3, 0), "out_features: expected a positive integer, got 0"),
    (lambda: nn.LayerNorm(True), "num_features: expected a positive integer, got True"),
    (lambda: nn.RMSNorm(0), "num_features: expected a positive integer, got 0"),
    (lambda: nn.BatchNorm(None), "num_features: expected a positive integer, got None"),
    (lambda: nn.BatchNorm(4, momentum=0.0), r"momentum: expected a number in \(0, 1\], got 0.0"),
    (lambda: nn.BatchNorm(4, momentum=1.5), r"momentum: expected a number in \(0, 1\], got 1.5"),
    (lambda: nn.BatchNorm(4, momentum="fast"), r"momentum: expected a number in \(0, 1\], got 'fast'"),
])
def test_bad_module_settings(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [nn.Linear, nn.WeightNormLinear])
def test_bad_init_names(make):
    with pytest.raises(ValueError, match=r"init: expected a callable or one of \[.*\], got 'kaiming_uniform'"):
        make(3, 2, init="kaiming_uniform")
    with pytest.raises(TypeError, match="rng: expected None, an int seed or a numpy.random.Generator, got str"):
        make(3, 2, rng="seed")


def test_add_module_rejects_non_modules():
    with pytest.raises(TypeError, match="module: expected an lnedu.nn.Module, got function"):
        nn.Sequential(nn.Tanh(), lambda x: x)
