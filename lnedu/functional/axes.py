r"""Which axes make which normalization: group norm and instance norm (forward and backward), and
:func:`which_normalization`, the pure function behind notebook 15's axes explorer.

Every normalization in this package is one standardization, :math:`\hat x = (x-\mu)/\sqrt{\sigma^2+\epsilon}`,
with :math:`\mu, \sigma^2` the mean and biased variance over a set of *reduction axes*; the axes are what
differ. For an image batch ``x`` (N, C, H, W):

* batch norm (Ioffe & Szegedy 2015): over (N, H, W), one mean per channel;
* layer norm (Ba, Kiros & Hinton 2016): over (C, H, W), one mean per example;
* instance norm (Ulyanov et al. 2016): over (H, W), one mean per example and channel;
* group norm (Wu & He 2018): the C channels split into G groups of C/G, over (C/G, H, W): G = 1 is layer
  norm, G = C instance norm. (Group norm is the one that is not a set of axes: it splits an axis.)

The gain and bias are per channel (C,) in all four. The backward of a standardization over any axes is the
layer-norm backward with the means taken over those axes:
:math:`dx = \frac{1}{\sigma}\big(d\hat x - \overline{d\hat x} - \hat x\,\overline{d\hat x\odot\hat x}\big)`.
"""

from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float_array, check_int, check_positive
from ..backend import get_array_module

__all__ = [
    "GroupNormCache",
    "group_norm",
    "group_norm_backward",
    "instance_norm",
    "instance_norm_backward",
    "NormChoice",
    "LAYOUTS",
    "which_normalization",
]


class GroupNormCache(NamedTuple):
    xhat: object  # (N, G, C/G * spatial): the standardized groups
    rstd: object  # (N, G, 1)
    gain: object  # (C,) or None
    shape: tuple  # x's shape
    has_bias: bool


def _check(x, gain, bias, groups, eps):
    check_float_array("x", x, min_ndim=2)
    C = x.shape[1]
    groups = check_int("groups", groups, minimum=1)
    if C % groups:
        raise ValueError(f"groups: expected a divisor of the {C} channels (x.shape[1]), got {groups}")
    for name, p in (("gain", gain), ("bias", bias)):
        if p is not None and tuple(p.shape) != (C,):
            raise ValueError(f"{name}: expected shape ({C},) (one per channel, x.shape[1]), got {tuple(p.shape)}")
    return groups, check_positive("eps", eps)


def _per_channel(p, ndim):
    """A (C,) gain or bias shaped to broadcast over (N, C, *spatial)."""
    return p.reshape((1, -1) + (1,) * (ndim - 2))


def group_norm(x, gain, bias, groups: int, eps: float = 1e-5):
    r"""Group normalization (Wu & He 2018, Eq. 1-3 with :math:`S_i` a group of C/G channels of one example):
    ``x`` (N, C, *spatial) with C divisible by ``groups``; statistics over each group's channels and all
    positions; ``y = gain * xhat + bias`` per channel (``None``: 1 and 0). Returns ``(y, cache)``."""
    groups, eps = _check(x, gain, bias, groups, eps)
    xp = get_array_module(x)
    N = x.shape[0]
    r = x.reshape(N, groups, -1)
    mu = r.mean(axis=-1, keepdims=True)
    d = r - mu
    rstd = 1.0 / xp.sqrt((d * d).mean(axis=-1, keepdims=True) + eps)
    xhat = d * rstd
    y = xhat.reshape(x.shape)
    y = y * _per_channel(gain, x.ndim) if gain is not None else y.copy()
    if bias is not None:
        y += _per_channel(bias, x.ndim)
    return y, GroupNormCache(xhat, rstd, gain, x.shape, bias is not None)


def group_norm_backward(dy, cache: GroupNormCache):
    r"""Gradients of :func:`group_norm`: ``(dx, dgain, dbias)``; the layer-norm backward per group,
    ``dgain = sum over N and positions of dy * xhat`` per channel, ``dbias`` the same of ``dy``."""
    xhat, rstd, gain, shape, has_bias = cache
    N, G, _ = xhat.shape
    axes = (0,) + tuple(range(2, len(shape)))  # every axis but the channels
    xh = xhat.reshape(shape)
    dgain = (dy * xh).sum(axis=axes) if gain is not None else None
    dbias = dy.sum(axis=axes) if has_bias else None
    g = (dy * _per_channel(gain, len(shape)) if gain is not None else dy).reshape(N, G, -1)
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx.reshape(shape), dgain, dbias


def instance_norm(x, gain, bias, eps: float = 1e-5):
    r"""Instance normalization (Ulyanov, Vedaldi & Lempitsky 2016): statistics over the positions of each
    example and channel, :func:`group_norm` with one channel per group. ``x`` (N, C, *spatial)."""
    check_float_array("x", x, min_ndim=3)
    return group_norm(x, gain, bias, x.shape[1], eps)


def instance_norm_backward(dy, cache: GroupNormCache):
    """Gradients of :func:`instance_norm`: ``(dx, dgain, dbias)``."""
    return group_norm_backward(dy, cache)


# --------------------------------------------------------------------------------------------------
# which axes make which normalization


class NormChoice(NamedTuple):
    """What a choice of reduction axes is, and how three frameworks spell it (None: no built-in)."""

    name: str
    meaning: str  # one line: what shares a mean and a variance
    pytorch: str | None
    keras: str | None
    chainer: str | None


LAYOUTS = {"NCHW": "NCHW", "NHWC": "NHWC", "TNH": "TNH"}

# (layout, reduced axes) -> NormChoice; axes as a string of the layout's letters, in layout order
_TABLE = {
    ("NCHW", "NHW"): NormChoice(
        "batch norm", "each channel: over the batch and all positions",
        "nn.BatchNorm2d(C)", "BatchNormalization(axis=1)  # axis = the axis KEPT",
        "L.BatchNormalization(C)  # F.batch_normalization(x, gamma, beta)"),
    ("NCHW", "CHW"): NormChoice(
        "layer norm", "each example: over all its channels and positions",
        "nn.LayerNorm([C, H, W])  # affine per element; nn.GroupNorm(1, C) for a per-channel affine",
        "LayerNormalization(axis=[1, 2, 3])", "L.GroupNormalization(1, C)"),
    ("NCHW", "HW"): NormChoice(
        "instance norm", "each example and channel: over the positions",
        "nn.InstanceNorm2d(C, affine=True)  # = nn.GroupNorm(C, C)",
        "LayerNormalization(axis=[2, 3])  # same statistics; gamma of shape (H, W), not (C,)",
        "L.GroupNormalization(C, C)"),
    ("NCHW", "W"): NormChoice(
        "no standard name (what Keras' LayerNormalization(axis=-1) does to an NCHW tensor)",
        "each example, channel and image row: over the W columns only",
        "nn.LayerNorm(W)", "LayerNormalization(axis=-1)  # in channels_first data", None),
    ("NCHW", "C"): NormChoice(
        "channel norm per position (layer norm of a channels-last tensor)",
        "each example and position: over the channels",
        "x.permute(0, 2, 3, 1) then nn.LayerNorm(C)", "LayerNormalization(axis=1)", None),
    ("NCHW", "N"): NormChoice(
        "batch norm per element (a fully connected layer's batch norm on x.reshape(N, -1))",
        "each channel and position: over the batch",
        "nn.BatchNorm1d(C * H * W) on x.flatten(1)", "BatchNormalization(axis=[1, 2, 3])", None),
    ("NHWC", "NHW"): NormChoice(
        "batch norm", "each channel: over the batch and all positions",
        "nn.BatchNorm2d(C) after x.permute(0, 3, 1, 2)", "BatchNormalization(axis=-1)  # axis = the axis KEPT",
        None),
    ("NHWC", "HWC"): NormChoice(
        "layer norm", "each example: over all its channels and positions",
        "nn.LayerNorm([H, W, C])", "LayerNormalization(axis=[1, 2, 3])", None),
    ("NHWC", "HW"): NormChoice(
        "instance norm", "each example and channel: over the positions",
        "nn.InstanceNorm2d(C) after x.permute(0, 3, 1, 2)", "LayerNormalization(axis=[1, 2])", None),
    ("NHWC", "C"): NormChoice(
        "channel norm per position (what Keras' LayerNormalization(axis=-1) does to an image)",
        "each example and position: over the channels", "nn.LayerNorm(C)", "LayerNormalization(axis=-1)",
        None),
    ("TNH", "H"): NormChoice(
        "layer norm (the LN paper's recurrent case)", "each sequence and time step: over the hidden units",
        "nn.LayerNorm(H)", "LayerNormalization(axis=-1)",
        "F.layer_normalization(x.reshape(T * N, H), gamma, beta)"),
    ("TNH", "N"): NormChoice(
        "batch norm per time step (Cooijmans et al. 2017)", "each time step and unit: over the batch",
        "nn.BatchNorm1d(H) with one module (statistics) per step", None, None),
    ("TNH", "TN"): NormChoice(
        "batch norm shared over time", "each unit: over the batch and all time steps",
        "nn.BatchNorm1d(H) on x.permute(1, 2, 0)", "BatchNormalization(axis=-1) on (N, T, H)",
        "F.batch_normalization(x.reshape(T * N, H), gamma, beta)"),
    ("TNH", "TH"): NormChoice(
        "layer norm over the whole sequence (non-causal: step t sees later steps' statistics)",
        "each sequence: over all its steps and units", "nn.LayerNorm([T, H]) on x.transpose(0, 1)",
        "LayerNormalization(axis=[1, 2]) on (N, T, H)", None),
    ("TNH", "T"): NormChoice(
        "instance norm over time (non-causal)", "each sequence and unit: over the time steps",
        "nn.InstanceNorm1d(H) on x.permute(1, 2, 0)", None, None),
}


def which_normalization(layout: str, axes) -> NormChoice:
    """Which normalization standardizing over ``axes`` of a ``layout`` tensor is.

    ``layout``: ``"NCHW"``, ``"NHWC"`` or ``"TNH"``; ``axes``: the reduced axes as letters (``"HW"``,
    ``["H", "W"]``) or as integers (negative counted from the end, as ``axis=-1``). Returns a
    :class:`NormChoice`; a set with no standard name gets ``name="no standard name"`` and ``None`` spellings.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {sorted(LAYOUTS)}, got {layout!r}")
    if isinstance(axes, (str, int)):
        axes = [axes] if isinstance(axes, int) or len(axes) == 1 else list(axes)
    letters = set()
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, str)):
            raise TypeError(f"axes: expected letters of {layout!r} or integers, got {a!r}")
        if isinstance(a, int):
            if not -len(layout) <= a < len(layout):
                n = len(layout)
                raise ValueError(f"axes: expected integers in [-{n}, {n - 1}] for {layout!r}, got {a}")
            a = layout[a]
        if a not in layout:
            raise ValueError(f"axes: expected letters of {layout!r}, got {a!r}")
        letters.add(a)
    if not letters:
        raise ValueError("axes: expected at least one axis to reduce over, got none")
    key = "".join(c for c in layout if c in letters)
    if key == layout:
        return NormChoice("whole-tensor standardization", "one mean for the whole mini-batch", None, None, None)
    kept = ", ".join(c for c in layout if c not in letters)
    return _TABLE.get((layout, key), NormChoice(
        "no standard name", f"statistics over {', '.join(key)} for each {kept}", None, None, None))
