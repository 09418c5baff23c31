"""Convolutional modules: ``Conv2d`` (im2col), layer norm and batch norm over feature maps, ``Flatten``."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import init as I
from .._checks import check_positive
from .layers import _check_size, check_momentum
from .module import Module

__all__ = ["Conv2d", "LayerNorm2d", "BatchNorm2d", "Flatten"]


class Conv2d(Module):
    """2-d convolution. Params: ``W`` (C_in, k, k, C_out), ``b`` (C_out,). Input and output are (N, C, H, W)."""

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0, bias=True, init="he",
                 rng=None, dtype=np.float32):
        super().__init__()
        c, k, o = (_check_size(n, v) for n, v in
                   (("in_channels", in_channels), ("kernel_size", kernel_size), ("out_channels", out_channels)))
        self.stride, self.padding = int(stride), int(padding)
        # fans as for a (c*k*k, o) matrix, so Xavier/He see the real fan-in of a patch
        w = I.get(init)((c * k * k, o), I.as_rng(rng), dtype)
        self.add_param("W", w.reshape(c, k, k, o))
        if bias:
            self.add_param("b", I.zeros((o,), dtype=dtype))
        self._cache = None

    def forward(self, x):
        y, self._cache = F.conv2d(x, self.params["W"], self.params.get("b"), stride=self.stride, padding=self.padding)
        return y

    def backward(self, dy):
        dx, dW, db = F.conv2d_backward(dy, self._cache)
        self.grads["W"] += dW
        if db is not None:
            self.grads["b"] += db
        return dx

    def extra_repr(self):
        c, k, _, o = self.params["W"].shape
        return f"{c}, {o}, kernel_size={k}, stride={self.stride}, padding={self.padding}"


class LayerNorm2d(Module):
    """Layer norm over each example's C*H*W units, with a per-channel gain ``g`` and bias ``b`` (C,)."""

    def __init__(self, channels, eps=1e-5, *, dtype=np.float32):
        super().__init__()
        self.channels = _check_size("channels", channels)
        self.eps = check_positive("eps", eps)
        self.add_param("g", I.ones((self.channels,), dtype=dtype))
        self.add_param("b", I.zeros((self.channels,), dtype=dtype))

    def forward(self, x):
        y, self._cache = F.layer_norm_2d(x, self.params["g"], self.params["b"], self.eps)
        return y

    def backward(self, dy):
        dx, dg, db = F.layer_norm_2d_backward(dy, self._cache)
        self.grads["g"] += dg
        self.grads["b"] += db
        return dx


class BatchNorm2d(Module):
    """Spatial batch norm: per channel over batch and positions; running statistics for eval mode."""

    def __init__(self, channels, eps=1e-5, *, momentum=0.1, dtype=np.float32):
        super().__init__()
        self.channels = _check_size("channels", channels)
        self.eps = check_positive("eps", eps)
        self.momentum = check_momentum(momentum)
        self.add_param("g", I.ones((self.channels,), dtype=dtype))
        self.add_param("b", I.zeros((self.channels,), dtype=dtype))
        self.add_buffer("running_mean", I.zeros((self.channels,), dtype=dtype))
        self.add_buffer("running_var", I.ones((self.channels,), dtype=dtype))
        self._cache = None

    def forward(self, x):
        g, b = self.params["g"], self.params["b"]
        if not self.training:
            self._cache = None
            c = (slice(None), None, None)
            scale = g / (self.buffers["running_var"] + self.eps) ** 0.5
            return (x - self.buffers["running_mean"][c]) * scale[c] + b[c]
        y, cache = F.batch_norm_2d(x, g, b, self.eps)
        m, n = self.momentum, x.shape[0] * x.shape[2] * x.shape[3]
        self.buffers["running_mean"] = (1 - m) * self.buffers["running_mean"] + m * cache.mean
        self.buffers["running_var"] = (1 - m) * self.buffers["running_var"] + m * cache.var * (n / (n - 1))
        self._cache = cache
        return y

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError("BatchNorm2d.backward: called after an eval-mode forward; call train() first")
        dx, dg, db = F.batch_norm_2d_backward(dy, self._cache)
        self.grads["g"] += dg
        self.grads["b"] += db
        return dx


class Flatten(Module):
    """(N, ...) -> (N, prod(...)); backward restores the shape."""

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._shape)
