"""Linear maps, pointwise nonlinearities and the softmax cross-entropy loss, as forward/backward pairs.

Convention (the whole library): a forward returns ``(out, cache)``; its backward takes ``(dout, cache)``
and returns the gradient of each differentiable input, in the forward's argument order: a tuple when
there are several, a single array when there is one (``tanh``, ``sigmoid``, ``relu``).
"""

from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float_array, check_same_dtype, check_shape
from ..backend import get_array_module

__all__ = [
    "LinearCache",
    "linear",
    "linear_backward",
    "tanh",
    "tanh_backward",
    "sigmoid",
    "sigmoid_backward",
    "relu",
    "relu_backward",
    "SoftmaxCECache",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
    "log_softmax",
]


class LinearCache(NamedTuple):
    x: object
    W: object
    has_bias: bool


def linear(x, W, b=None):
    r"""Affine map ``y = x W + b`` (the paper's Eq. 1, ``a_i = w_i^T h``, for a batch of rows).

    ``x``: (..., D_in); ``W``: (D_in, D_out), column ``j`` being unit ``j``'s incoming weights;
    ``b``: (D_out,) or ``None``. Returns ``(y, cache)``.
    """
    check_float_array("x", x, min_ndim=1)
    check_float_array("W", W, ndim=2)
    check_same_dtype("W", W, x.dtype)
    if x.shape[-1] != W.shape[0]:
        raise ValueError(f"W: expected {x.shape[-1]} rows (= x.shape[-1]), got shape {tuple(W.shape)}")
    y = x @ W
    if b is not None:
        check_float_array("b", b, ndim=1)
        if b.shape[0] != W.shape[1]:
            raise ValueError(f"b: expected shape ({W.shape[1]},) (= W.shape[1]), got {tuple(b.shape)}")
        check_same_dtype("b", b, x.dtype)
        y += b
    return y, LinearCache(x, W, b is not None)


def linear_backward(dy, cache: LinearCache, *, input_grad: bool = True):
    """Gradients of :func:`linear`: ``(dx, dW, db)`` with ``dx = dy W^T``, ``dW = x^T dy``, ``db = sum dy``.

    Leading axes of ``x`` are flattened into one batch axis, so ``dW`` sums over all of them.
    ``db`` is ``None`` when the forward had no bias. ``input_grad=False``: ``dx`` is ``None``, not computed (the
    first layer's input is the data, whose gradient nothing reads: one product of the three saved).
    """
    x, W, has_bias = cache
    check_shape("dy", dy, x.shape[:-1] + (W.shape[1],))
    dx = dy @ W.T if input_grad else None
    x2 = x.reshape(-1, x.shape[-1])
    dy2 = dy.reshape(-1, dy.shape[-1])
    dW = x2.T @ dy2
    db = dy2.sum(axis=0) if has_bias else None
    return dx, dW, db


def tanh(x):
    """``y = tanh(x)``; the cache is ``y`` itself, since ``tanh' = 1 - y^2``."""
    xp = get_array_module(x)
    y = xp.tanh(x)
    return y, y


def tanh_backward(dy, y):
    """``dx = dy (1 - y^2)``."""
    return dy * (1 - y * y)


def sigmoid(x):
    """Logistic ``y = 1 / (1 + e^{-x})``, computed as ``(1 + tanh(x/2)) / 2``, which never overflows."""
    xp = get_array_module(x)
    y = xp.tanh(x * 0.5)
    y *= 0.5
    y += 0.5
    return y, y


def sigmoid_backward(dy, y):
    """``dx = dy y (1 - y)``."""
    return dy * y * (1 - y)


def relu(x):
    """``y = max(x, 0)``; the cache is the mask ``x > 0``. A NaN input stays NaN (it is not an input below 0)."""
    xp = get_array_module(x)
    return xp.maximum(x, 0), x > 0  # maximum, not where(mask, x, 0): 10x faster on a random mask, same numbers


def relu_backward(dy, mask):
    """``dx = dy`` where the input was positive, 0 elsewhere (the subgradient 0 at x = 0)."""
    return dy * mask


def log_softmax(logits):
    """``log softmax`` over the last axis, shifted by the row maximum so that ``exp`` never overflows."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    xp = get_array_module(logits)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


class SoftmaxCECache(NamedTuple):
    probs: object  # (N, C) softmax probabilities (float32 for half-precision logits)
    targets: object  # (N,) integer class indices
    weights: object  # (N,) per-row weight (mask / count), summing to 1
    shape: tuple  # the logits' shape
    dtype: object = None  # the logits' dtype, which the gradient is returned in (None: the probs' dtype)


def _check_mask(name, mask, shape):
    """A padding mask: an array of ``shape`` holding bool or only the numbers 0 and 1; returned as bool.

    Anything else (a negative, fractional or NaN weight) would silently turn the mean into a different
    weighted mean, so it is refused, as :meth:`lnedu.nn.LSTM.forward` refuses it.
    """
    if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
        raise TypeError(f"{name}: expected an array of 0/1 or bool, got {type(mask).__name__}")
    check_shape(name, mask, shape)
    if mask.dtype.kind == "b":
        return mask
    if mask.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected bool or 0/1 numbers, got dtype {mask.dtype}")
    bad = (mask != 0) & (mask != 1)  # NaN is != 0 and != 1
    if bool(bad.any()):
        xp = get_array_module(mask)
        first = mask.reshape(-1)[int(xp.argmax(bad.reshape(-1)))].item()
        raise ValueError(
            f"{name}: expected only 0 and 1 (or bool), got {int(bad.sum())} other value(s), e.g. {first!r}"
        )
    return mask != 0


def softmax_cross_entropy(logits, targets, mask=None):
    r"""Mean negative log-likelihood of integer ``targets`` under ``softmax(logits)``.

    ``logits``: (..., C); ``targets``: integer array of shape ``logits.shape[:-1]`` with values in
    ``[0, C)``; ``mask`` (optional, same shape as ``targets``, bool or 0/1): rows with mask 0 (padding)
    do not count. An empty batch, or a mask with no 1, is an error (the mean over no rows is 0/0).
    Returns ``(loss, cache)`` where ``loss = -sum_n m_n log p_n[t_n] / sum_n m_n`` is a Python float.
    Half-precision logits (float16, bfloat16) are computed in float32, as the normalizations do: in float16
    the shifted logits of a wide row would overflow to -inf and the loss become inf.
    """
    check_float_array("logits", logits, min_ndim=1)
    xp = get_array_module(logits)
    C = logits.shape[-1]
    if C == 0:
        raise ValueError(f"logits: expected at least one class on the last axis, got shape {tuple(logits.shape)}")
    if not hasattr(targets, "dtype") or targets.dtype.kind not in "iu":
        raise TypeError(
            f"targets: expected an integer array of class indices, got "
            f"{getattr(targets, 'dtype', type(targets).__name__)}"
        )
    check_shape("targets", targets, logits.shape[:-1])
    t = targets.reshape(-1)
    if t.size == 0:  # a mean over no rows is 0/0, not a loss of 0
        raise ValueError(f"logits: expected at least one row to average over, got shape {tuple(logits.shape)}")
    if int(t.min()) < 0 or int(t.max()) >= C:
        raise ValueError(f"targets: expected class indices in [0, {C}), got values in [{int(t.min())}, {int(t.max())}]")
    work = logits.reshape(-1, C)
    if work.dtype.itemsize < 4:
        work = work.astype(xp.float32)
    logp = log_softmax(work)
    rows = xp.arange(t.shape[0])
    nll = -logp[rows, t]
    if mask is None:
        w = xp.full(t.shape[0], 1.0 / t.shape[0], dtype=work.dtype)
    else:
        m = _check_mask("mask", mask, targets.shape).reshape(-1).astype(work.dtype)
        total = float(m.sum())
        if total == 0:
            raise ValueError("mask: expected at least one non-zero entry, got none")
        w = m / total
    loss = float((nll * w).sum())
    return loss, SoftmaxCECache(xp.exp(logp), t, w, tuple(logits.shape), logits.dtype)


def softmax_cross_entropy_backward(dloss, cache: SoftmaxCECache):
    """Gradient of the loss with respect to the logits: ``dloss * w_n (softmax - onehot(t))``.

    ``dloss`` is the upstream gradient of the scalar loss (1.0 when the loss is the objective).
    Returns an array of the logits' shape.
    """
    probs, t, w, shape, dtype = cache
    xp = get_array_module(probs)
    d = probs.copy()
    d[xp.arange(t.shape[0]), t] -= 1
    d *= (dloss * w)[:, None]
    return d.reshape(shape).astype(dtype or probs.dtype, copy=False)
