"""2-d convolution by im2col, and layer/batch norm over convolutional feature maps.

Convolution is a linear map applied to every patch: unfold the input into a matrix whose rows are the
patches (im2col), multiply by the weights with one GEMM, fold the result back into feature maps. The
backward is the same three steps in reverse: the weight gradient is ``patches^T dy``, the patch gradient
``dy W^T``, and col2im adds each patch gradient back where the patch came from (overlapping patches add).

Layout: feature maps are (N, C, H, W). Weights are (C, kh, kw, K): the input side first and the K output
channels last, matching lnedu's ``x @ W`` convention (``W.reshape(C*kh*kw, K)`` maps a patch to K outputs).
"""

from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float_array, check_same_dtype, check_shape
from ..backend import get_array_module
from .norms import batch_norm, batch_norm_backward, layer_norm, layer_norm_backward

__all__ = [
    "im2col",
    "col2im",
    "Conv2dCache",
    "conv2d",
    "conv2d_backward",
    "layer_norm_2d",
    "layer_norm_2d_backward",
    "batch_norm_2d",
    "batch_norm_2d_backward",
]


def _out_size(n, k, stride, pad):
    return (n + 2 * pad - k) // stride + 1


def im2col(x, kh: int, kw: int, stride: int = 1, padding: int = 0):
    """Patches of ``x`` (N, C, H, W) as a (N*Ho*Wo, C*kh*kw) matrix, one row per output position.

    A loop over the kh*kw kernel offsets copies strided slices: kh*kw array operations, whatever the
    image size, and nothing beyond basic slicing, so it runs on NumPy and CuPy alike.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    Ho, Wo = _out_size(H, kh, stride, padding), _out_size(W, kw, stride, padding)
    if padding:
        x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = xp.empty((N, Ho, Wo, C, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i: i + stride * Ho: stride, j: j + stride * Wo: stride]  # (N, C, Ho, Wo)
            cols[..., i, j] = patch.transpose(0, 2, 3, 1)
    return cols.reshape(N * Ho * Wo, C * kh * kw)


def col2im(cols, x_shape, kh: int, kw: int, stride: int = 1, padding: int = 0):
    """The adjoint of :func:`im2col`: add each patch row back onto the positions it was read from."""
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    Ho, Wo = _out_size(H, kh, stride, padding), _out_size(W, kw, stride, padding)
    dx = xp.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    c6 = cols.reshape(N, Ho, Wo, C, kh, kw)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i: i + stride * Ho: stride, j: j + stride * Wo: stride] += c6[..., i, j].transpose(0, 3, 1, 2)
    if padding:
        dx = dx[:, :, padding:-padding, padding:-padding]
    return dx


class Conv2dCache(NamedTuple):
    cols: object  # (N*Ho*Wo, C*kh*kw) the unfolded input
    x_shape: tuple
    W: object  # (C, kh, kw, K)
    stride: int
    padding: int
    has_bias: bool


def conv2d(x, W, b=None, *, stride: int = 1, padding: int = 0):
    r"""2-d cross-correlation ``y[n, k] = sum_{c,i,j} x[n, c, s*h + i, s*w + j] W[c, i, j, k] + b[k]``.

    ``x``: (N, C, H, W); ``W``: (C, kh, kw, K); ``b``: (K,) or ``None``. Returns ``(y, cache)`` with
    ``y`` of shape (N, K, Ho, Wo), ``Ho = (H + 2 padding - kh) // stride + 1``.
    """
    check_float_array("x", x, ndim=4)
    check_float_array("W", W, ndim=4)
    check_same_dtype("W", W, x.dtype)
    if W.shape[0] != x.shape[1]:
        raise ValueError(f"W: expected {x.shape[1]} input channels (= x.shape[1]) in W.shape[0], got {W.shape}")
    if int(stride) < 1 or int(padding) < 0:
        raise ValueError(f"stride, padding: expected stride >= 1 and padding >= 0, got {stride}, {padding}")
    C, kh, kw, K = W.shape
    N, _, H, Wd = x.shape
    Ho, Wo = _out_size(H, kh, stride, padding), _out_size(Wd, kw, stride, padding)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"x: a {H}x{Wd} image is smaller than the {kh}x{kw} kernel with padding {padding}")
    cols = im2col(x, kh, kw, stride, padding)
    y = cols @ W.reshape(C * kh * kw, K)
    if b is not None:
        check_float_array("b", b, ndim=1)
        check_shape("b", b, (K,))
        check_same_dtype("b", b, x.dtype)
        y += b
    y = y.reshape(N, Ho, Wo, K).transpose(0, 3, 1, 2)
    return y, Conv2dCache(cols, tuple(x.shape), W, int(stride), int(padding), b is not None)


def conv2d_backward(dy, cache: Conv2dCache):
    """Gradients of :func:`conv2d`: ``(dx, dW, db)``; ``db`` is ``None`` without a bias."""
    cols, x_shape, W, stride, padding, has_bias = cache
    C, kh, kw, K = W.shape
    N = x_shape[0]
    if dy.ndim != 4 or dy.shape[:2] != (N, K):
        raise ValueError(f"dy: expected shape ({N}, {K}, Ho, Wo), got {tuple(dy.shape)}")
    dy2 = dy.transpose(0, 2, 3, 1).reshape(-1, K)
    dW = (cols.T @ dy2).reshape(W.shape)
    db = dy2.sum(axis=0) if has_bias else None
    dcols = dy2 @ W.reshape(C * kh * kw, K).T
    dx = col2im(dcols, x_shape, kh, kw, stride, padding)
    return dx, dW, db


class _Norm2dCache(NamedTuple):
    inner: object  # the cache of the underlying layer/batch norm (no affine)
    xhat: object  # (N, C, H, W) normalized maps
    gain: object  # (C,)
    shape: tuple


def layer_norm_2d(x, gain, bias, eps: float = 1e-5):
    """Layer norm of feature maps: each example normalized over all of its C*H*W units, then a
    per-channel gain and bias. Returns ``(y, cache)``."""
    check_float_array("x", x, ndim=4)
    N, C, H, W = x.shape
    for name, p in (("gain", gain), ("bias", bias)):
        check_float_array(name, p, ndim=1)
        check_shape(name, p, (C,))
        check_same_dtype(name, p, x.dtype)
    xhat, inner = layer_norm(x.reshape(N, C * H * W), None, None, eps)
    xhat = xhat.reshape(x.shape)
    y = xhat * gain[:, None, None] + bias[:, None, None]
    return y, _Norm2dCache(inner, xhat, gain, tuple(x.shape))


def layer_norm_2d_backward(dy, cache):
    """``(dx, dgain, dbias)``: the per-channel affine's gradients, then layer norm's backward."""
    inner, xhat, gain, shape = cache
    check_shape("dy", dy, shape)
    dgain = (dy * xhat).sum(axis=(0, 2, 3))
    dbias = dy.sum(axis=(0, 2, 3))
    dxhat = dy * gain[:, None, None]
    dx, _, _ = layer_norm_backward(dxhat.reshape(shape[0], -1), inner)
    return dx.reshape(shape), dgain, dbias


def batch_norm_2d(x, gain, bias, eps: float = 1e-5):
    """Spatial batch norm: each channel normalized over the batch and all positions (N*H*W values).
    Returns ``(y, cache)``; the cache's inner batch-norm cache holds the batch mean and variance."""
    check_float_array("x", x, ndim=4)
    N, C, H, W = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(-1, C)
    y, inner = batch_norm(rows, gain, bias, eps)
    return y.reshape(N, H, W, C).transpose(0, 3, 1, 2), inner


def batch_norm_2d_backward(dy, cache):
    """``(dx, dgain, dbias)`` of :func:`batch_norm_2d`."""
    N, C, H, W = dy.shape
    dx, dgain, dbias = batch_norm_backward(dy.transpose(0, 2, 3, 1).reshape(-1, C), cache)
    return dx.reshape(N, H, W, C).transpose(0, 3, 1, 2), dgain, dbias
