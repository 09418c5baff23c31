"""Feed-forward modules: linear maps, the normalization layers and activations.

Each wraps a pair from :mod:`lnedu.functional`; the module adds parameters, their gradients and (for batch
norm) running statistics. Gains start at 1 and biases at 0, as in all of the LN paper's experiments (§6).
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from .. import init as I
from .._checks import check_positive
from ..backend import get_array_module
from .module import Module

__all__ = [
    "Linear",
    "LayerNorm",
    "RMSNorm",
    "BatchNorm",
    "WeightNormLinear",
    "Tanh",
    "Sigmoid",
    "ReLU",
]


def check_momentum(momentum) -> float:
    """A running-statistics momentum: a real number in (0, 1]."""
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 < momentum <= 1:
        raise ValueError(f"momentum: expected a number in (0, 1], got {momentum!r}")
    return float(momentum)


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


class Linear(Module):
    """``y = x W + b``. Params: ``W`` (in_features, out_features), ``b`` (out_features,)."""

    def __init__(self, in_features, out_features, *, bias=True, init="xavier", rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = _check_size("in_features", in_features)
        self.out_features = _check_size("out_features", out_features)
        rng = I.as_rng(rng)
        self.add_param("W", I.get(init)((self.in_features, self.out_features), rng, dtype))
        if bias:
            self.add_param("b", I.zeros((self.out_features,), dtype=dtype))
        self._cache = None

    def forward(self, x):
        y, self._cache = F.linear(x, self.params["W"], self.params.get("b"))
        return y

    #: ``backward(dy, input_grad=False)`` skips the input's gradient (see :meth:`Sequential.backward`)
    skips_input_grad = True

    def backward(self, dy, *, input_grad: bool = True):
        dx, dW, db = F.linear_backward(dy, self._cache, input_grad=input_grad)
        self.grads["W"] += dW
        if db is not None:
            self.grads["b"] += db
        return dx

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={'b' in self.params}"


class _NormBase(Module):
    def __init__(self, num_features, eps, dtype, affine=True, bias=True):
        super().__init__()
        self.num_features = _check_size("num_features", num_features)
        self.eps = check_positive("eps", eps)
        if affine:
            self.add_param("g", I.ones((self.num_features,), dtype=dtype))
            if bias:
                self.add_param("b", I.zeros((self.num_features,), dtype=dtype))
        self._cache = None

    def _accumulate(self, dgain, dbias=None):
        if "g" in self.grads and dgain is not None:
            self.grads["g"] += dgain
        if "b" in self.grads and dbias is not None:
            self.grads["b"] += dbias

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps:g}"


class LayerNorm(_NormBase):
    """Layer norm over the last axis (Eq. 3). Params: gain ``g`` (H,) = 1, bias ``b`` (H,) = 0."""

    def __init__(self, num_features, eps=1e-5, *, affine=True, dtype=np.float32):
        super().__init__(num_features, eps, dtype, affine)

    def forward(self, x):
        y, self._cache = F.layer_norm(x, self.params.get("g"), self.params.get("b"), self.eps)
        return y

    def backward(self, dy):
        dx, dg, db = F.layer_norm_backward(dy, self._cache)
        self._accumulate(dg, db)
        return dx


class RMSNorm(_NormBase):
    """RMSNorm over the last axis (Zhang & Sennrich 2019). Params: gain ``g`` (H,) = 1; no bias."""

    def __init__(self, num_features, eps=1e-5, *, affine=True, dtype=np.float32):
        super().__init__(num_features, eps, dtype, affine, bias=False)

    def forward(self, x):
        y, self._cache = F.rms_norm(x, self.params.get("g"), self.eps)
        return y

    def backward(self, dy):
        dx, dg = F.rms_norm_backward(dy, self._cache)
        self._accumulate(dg)
        return dx


class BatchNorm(_NormBase):
    """Batch norm over axis 0 (Eq. 2) with running statistics for inference.

    In training mode it normalizes with the mini-batch's statistics and updates
    ``running = (1 - momentum) running + momentum batch``; in eval mode it uses the running ones.
    ``unbiased=True`` normalizes with the unbiased batch variance (the LN paper does so at batch 4).
    Params: ``g``, ``b`` of shape (num_features,); buffers ``running_mean``, ``running_var``.
    """

    def __init__(self, num_features, eps=1e-5, *, momentum=0.1, unbiased=False, affine=True, dtype=np.float32):
        super().__init__(num_features, eps, dtype, affine)
        self.momentum = check_momentum(momentum)
        self.unbiased = bool(unbiased)
        self.add_buffer("running_mean", I.zeros((self.num_features,), dtype=dtype))
        self.add_buffer("running_var", I.ones((self.num_features,), dtype=dtype))

    def forward(self, x):
        g, b = self.params.get("g"), self.params.get("b")
        if not self.training:
            self._cache = None
            return F.batch_norm_inference(x, g, b, self.buffers["running_mean"], self.buffers["running_var"], self.eps)
        y, cache = F.batch_norm(x, g, b, self.eps, unbiased=self.unbiased)
        m = self.momentum
        self.buffers["running_mean"] = (1 - m) * self.buffers["running_mean"] + m * cache.mean
        # population variance is estimated without bias whatever the normalization used
        n = x.shape[0]
        unbiased_var = cache.var * (cache.m / (n - 1))
        self.buffers["running_var"] = (1 - m) * self.buffers["running_var"] + m * unbiased_var
        self._cache = cache
        return y

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError("BatchNorm.backward: called after an eval-mode forward; call train() first")
        dx, dg, db = F.batch_norm_backward(dy, self._cache)
        self._accumulate(dg, db)
        return dx


class WeightNormLinear(Module):
    """Linear map with weight normalization: ``y = x (g v / ||v||) + b`` (Salimans & Kingma 2016).

    Params: direction ``v`` (in, out), gain ``g`` (out,) initialized to ``||v||`` so that the starting
    ``W`` equals the initializer's draw, bias ``b`` (out,).
    """

    def __init__(self, in_features, out_features, *, bias=True, init="xavier", rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = _check_size("in_features", in_features)
        self.out_features = _check_size("out_features", out_features)
        v = I.get(init)((self.in_features, self.out_features), I.as_rng(rng), dtype)
        xp = get_array_module(v)
        self.add_param("v", v)
        self.add_param("g", xp.sqrt((v * v).sum(axis=0)))
        if bias:
            self.add_param("b", I.zeros((self.out_features,), dtype=dtype))
        self._wcache = self._lcache = None

    def forward(self, x):
        W, self._wcache = F.weight_norm(self.params["v"], self.params["g"])
        y, self._lcache = F.linear(x, W, self.params.get("b"))
        return y

    def backward(self, dy):
        dx, dW, db = F.linear_backward(dy, self._lcache)
        dv, dg = F.weight_norm_backward(dW, self._wcache)
        self.grads["v"] += dv
        self.grads["g"] += dg
        if db is not None:
            self.grads["b"] += db
        return dx

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}"


class _Activation(Module):
    _fwd = _bwd = None

    def forward(self, x):
        y, self._cache = type(self)._fwd(x)
        return y

    def backward(self, dy):
        return type(self)._bwd(dy, self._cache)


class Tanh(_Activation):
    _fwd, _bwd = staticmethod(F.tanh), staticmethod(F.tanh_backward)


class Sigmoid(_Activation):
    _fwd, _bwd = staticmethod(F.sigmoid), staticmethod(F.sigmoid_backward)


class ReLU(_Activation):
    _fwd, _bwd = staticmethod(F.relu), staticmethod(F.relu_backward)
