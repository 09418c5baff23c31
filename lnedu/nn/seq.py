"""What sits around a recurrent layer in a sequence model: token embeddings, dropout and the per-step loss.

A character- or word-level language model in lnedu reads::

    emb = Embedding(V, D)                      # (T, B) integer tokens -> (T, B, D)
    rnn = LSTM(D, H, ln="appendix")            # (T, B, D) -> (T, B, H)
    drop = Dropout(0.1, rng=rng)               # inverted dropout, identity in eval mode
    proj = Linear(H, V)                        # acts on the last axis: (T, B, H) -> (T, B, V)
    loss_fn = SequenceCrossEntropy()           # mean NLL over the unmasked (t, b) steps

and backward runs the same chain in reverse: ``loss_fn.backward()`` gives ``dlogits``, which flows
through ``proj``, ``drop`` and ``rnn`` into ``emb``, whose rows collect the gradients of their tokens.
Everything is time-major, ``(T, B, ...)``, like the recurrent layers.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from .. import functional as F
from .. import init as I
from .._checks import check_float_array, check_shape
from ..backend import get_array_module
from .layers import _check_size
from .module import Module

__all__ = ["Embedding", "Dropout", "SequenceCrossEntropy"]


def _check_indices(name, idx, upper):
    """``idx`` must be an integer array with values in ``[0, upper)``."""
    if not hasattr(idx, "dtype") or not hasattr(idx, "shape"):
        raise TypeError(f"{name}: expected an integer array of indices, got {type(idx).__name__}")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of indices, got dtype {idx.dtype}")
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= upper:
            raise ValueError(f"{name}: expected indices in [0, {upper}), got values in [{lo}, {hi}]")


class Embedding(Module):
    r"""A lookup table: token ``k`` becomes row ``k`` of ``W``, so ``y[..., :] = W[idx[...], :]``.

    Equivalent to ``onehot(idx) @ W`` without building the one-hot matrix. Its gradient is therefore
    ``onehot(idx)^T @ dy``: row ``k`` of ``dW`` is the sum of ``dy`` over every position holding token
    ``k``. Tokens that occur several times in a batch must *add* their gradients, which plain fancy
    assignment (``dW[idx] += dy``) would not do (it keeps one write per repeated index); ``add.at`` does.

    Params: ``W`` (num_embeddings, dim), N(0, 1) by default (as the one-hot-times-matrix view suggests:
    each input unit then has unit variance). Input: integer array of any shape; output: that shape + (dim,).
    ``backward`` returns ``None``: integer indices have no gradient.
    """

    def __init__(self, num_embeddings, dim, *, init=None, rng=None, dtype=np.float32):
        super().__init__()
        self.num_embeddings = _check_size("num_embeddings", num_embeddings)
        self.dim = _check_size("dim", dim)
        rng = I.as_rng(rng)
        shape = (self.num_embeddings, self.dim)
        if init is None:
            W = backend.asarray(rng.standard_normal(shape).astype(dtype))
        else:
            W = I.get(init)(shape, rng, dtype)
        self.add_param("W", W)
        self._idx = None

    def forward(self, idx):
        _check_indices("idx", idx, self.num_embeddings)
        xp = get_array_module(self.params["W"])
        idx = xp.asarray(idx)
        self._idx = idx
        return self.params["W"][idx]

    def backward(self, dy):
        if self._idx is None:
            raise RuntimeError("Embedding.backward: called before forward")
        check_shape("dy", dy, tuple(self._idx.shape) + (self.dim,))
        xp = get_array_module(dy)
        # scatter-add: duplicates accumulate (dW[k] = sum of dy over the positions where idx == k)
        xp.add.at(self.grads["W"], self._idx.reshape(-1), dy.reshape(-1, self.dim))
        return None

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.dim}"


class Dropout(Module):
    r"""Inverted dropout (Srivastava et al., 2014): in training, ``y = x * m / (1 - p)`` with
    ``m ~ Bernoulli(1 - p)`` drawn fresh on every forward; in eval mode, ``y = x``.

    Dividing by ``1 - p`` during training keeps ``E[y] = x``, so nothing needs rescaling at test time.
    The backward multiplies by the same scaled mask. The mask is drawn on the host from this module's own
    NumPy ``Generator`` (``rng``: a seed or a Generator to share, say with a data loader whose state a
    checkpoint saves), so a seed gives the same masks on the CPU and the GPU.
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p < 1:
            raise ValueError(f"p: expected a drop probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = I.as_rng(rng)
        self._mask = None

    def forward(self, x):
        check_float_array("x", x)
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        xp = get_array_module(x)
        keep = self.rng.random(x.shape) >= self.p  # host draw: same masks on numpy and cupy
        mask = xp.asarray(keep, dtype=x.dtype)
        mask *= 1.0 / (1.0 - self.p)
        self._mask = mask
        return x * mask

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask

    def extra_repr(self):
        return f"p={self.p:g}"


class SequenceCrossEntropy(Module):
    r"""Softmax output and cross-entropy over a sequence: the mean negative log-likelihood per step.

    .. math:: L = -\frac{1}{\sum_{t,b} m_{tb}} \sum_{t,b} m_{tb} \log \mathrm{softmax}(z_{tb})[y_{tb}]

    ``logits`` z: (T, B, C) (any leading shape works); ``targets`` y: integers of shape (T, B) in
    ``[0, C)``; ``mask`` m (optional, (T, B), 1 for real steps and 0 for padding; bool or only 0/1, as
    :meth:`LSTM.forward` takes it, anything else is refused): padded steps neither count in the mean nor
    receive gradient. An empty batch or an all-zero mask is an error, not a loss of 0. ``forward`` returns
    the loss (a Python float, in nats; divide by ``ln 2`` for bits per character) and ``backward(dloss=1.0)`` returns
    ``dz = dloss * m / sum(m) * (softmax(z) - onehot(y))``. No parameters.
    """

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, logits, targets, mask=None):
        loss, self._cache = F.softmax_cross_entropy(logits, targets, mask)
        return loss

    def backward(self, dloss=1.0):
        if self._cache is None:
            raise RuntimeError("SequenceCrossEntropy.backward: called before forward")
        return F.softmax_cross_entropy_backward(dloss, self._cache)
