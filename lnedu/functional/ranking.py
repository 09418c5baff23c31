r"""Ranking losses for joint image-sentence embeddings, as forward/backward pairs (LN paper §6.1).

Order-embeddings (Vendrov, Kiros, Fidler & Urtasun, ICLR 2016) place captions and images in the non-negative
orthant and read "caption ``c`` describes image ``i``" as the partial order ``i <= c``: every coordinate of the
image at least as large as the caption's. How badly a pair breaks that order is the *order violation*
(Vendrov et al. Eq. 2)

.. math:: E(s, i) = \lVert \max(0,\ s - i) \rVert^2 ,

zero when the order holds. The symmetric baseline of the same paper scores a pair by the cosine of the two
embeddings instead. Either score feeds the same contrastive margin loss over a batch of matching pairs
(Vendrov et al. Eq. 3): every other image in the batch is a contrastive image for a caption, and every other
caption a contrastive caption for an image.

A model computes the embeddings, the score matrix ``S`` (captions x images, larger is better: ``S = -E`` for
order-embeddings, the cosine for the baseline) and then :func:`contrastive_loss`; the backward runs the same
chain in reverse. :func:`retrieval_ranks` turns a score matrix into the ranks behind R@K and mean rank.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float_array, check_positive, check_shape
from ..backend import get_array_module, to_numpy

__all__ = [
    "L2NormCache",
    "l2_normalize",
    "l2_normalize_backward",
    "OrderViolationCache",
    "order_violation",
    "order_violation_backward",
    "CosineCache",
    "cosine_similarity",
    "cosine_similarity_backward",
    "ContrastiveCache",
    "contrastive_loss",
    "contrastive_loss_backward",
    "retrieval_ranks",
    "recall_at_k",
]


def _check_pair(s, im):
    check_float_array("s", s, ndim=2)
    check_float_array("im", im, ndim=2)
    if s.shape[1] != im.shape[1]:
        raise ValueError(f"im: expected shape (N_im, {s.shape[1]}) (the captions' dimension), got {tuple(im.shape)}")
    if im.dtype != s.dtype:
        raise TypeError(f"im: expected dtype {s.dtype} (the captions'), got {im.dtype}")


# ---------------------------------------------------------------------------------------------------------
# unit-length rows


class L2NormCache(NamedTuple):
    y: object  # the normalized rows
    norm: object  # (N, 1)


def l2_normalize(x, eps: float = 1e-12):
    r"""Rows scaled to unit length: ``y = x / n`` with ``n = sqrt(sum_k x_k^2 + eps)``.

    Both embeddings of Vendrov et al. are normalized like this before ``abs`` (and before the cosine).
    ``x``: (N, K). Returns ``(y, cache)``.

    Backward: ``dn/dx = x / n``, so ``dx = dy / n - x (x . dy) / n^3 = (dy - y (y . dy)) / n``: the part of
    ``dy`` along ``y`` is removed (moving along the ray does not change ``y``), the rest scaled by ``1/n``.
    """
    check_float_array("x", x, ndim=2)
    xp = get_array_module(x)
    norm = xp.sqrt((x * x).sum(axis=1, keepdims=True) + eps)
    y = x / norm
    return y, L2NormCache(y, norm)


def l2_normalize_backward(dy, cache: L2NormCache):
    """Gradient of :func:`l2_normalize`: ``dx = (dy - y (y . dy)) / n``."""
    check_shape("dy", dy, cache.y.shape)
    y, norm = cache
    return (dy - y * (y * dy).sum(axis=1, keepdims=True)) / norm


# ---------------------------------------------------------------------------------------------------------
# the two scores


class OrderViolationCache(NamedTuple):
    s: object
    im: object


def order_violation(s, im):
    r"""Order violations of every caption-image pair, Vendrov et al. Eq. 2.

    ``E[a, b] = sum_k max(0, s[a, k] - im[b, k])^2``: caption ``a`` (row of ``s``, (N_s, K)) against image ``b``
    (row of ``im``, (N_im, K)). Returns ``(E (N_s, N_im), cache)``; the score of a pair is ``-E``.

    Backward: with ``R[a, b, k] = max(0, s[a, k] - im[b, k])``, ``dE[a, b]/ds[a, k] = 2 R[a, b, k]`` and
    ``dE[a, b]/dim[b, k] = -2 R[a, b, k]``, so ``ds = 2 sum_b dE[a, b] R[a, b, :]`` and
    ``dim = -2 sum_a dE[a, b] R[a, b, :]``. ``R`` is recomputed rather than cached.
    """
    _check_pair(s, im)
    xp = get_array_module(s)
    R = xp.maximum(s[:, None, :] - im[None, :, :], 0)
    return (R * R).sum(axis=2), OrderViolationCache(s, im)


def order_violation_backward(dE, cache: OrderViolationCache):
    """Gradients of :func:`order_violation`: ``(ds, dim)``."""
    s, im = cache
    check_shape("dE", dE, (s.shape[0], im.shape[0]))
    xp = get_array_module(s)
    R = xp.maximum(s[:, None, :] - im[None, :, :], 0)
    G = 2 * dE[:, :, None] * R
    return G.sum(axis=1), -G.sum(axis=0)


class CosineCache(NamedTuple):
    s_hat: object
    im_hat: object
    s_cache: L2NormCache
    im_cache: L2NormCache


def cosine_similarity(s, im, eps: float = 1e-12):
    r"""Cosines of every caption-image pair, the symmetric baseline's score: ``S = s_hat im_hat^T``.

    ``s_hat``, ``im_hat`` are the rows of ``s`` (N_s, K) and ``im`` (N_im, K) made unit-length by
    :func:`l2_normalize`. Returns ``(S (N_s, N_im), cache)``.

    Backward: a product ``S = A B^T`` gives ``dA = dS B`` and ``dB = dS^T A``; then each factor goes back
    through :func:`l2_normalize_backward`.
    """
    _check_pair(s, im)
    s_hat, sc = l2_normalize(s, eps)
    im_hat, ic = l2_normalize(im, eps)
    return s_hat @ im_hat.T, CosineCache(s_hat, im_hat, sc, ic)


def cosine_similarity_backward(dS, cache: CosineCache):
    """Gradients of :func:`cosine_similarity`: ``(ds, dim)``."""
    check_shape("dS", dS, (cache.s_hat.shape[0], cache.im_hat.shape[0]))
    ds_hat = dS @ cache.im_hat
    dim_hat = dS.T @ cache.s_hat
    return l2_normalize_backward(ds_hat, cache.s_cache), l2_normalize_backward(dim_hat, cache.im_cache)


# ---------------------------------------------------------------------------------------------------------
# the contrastive margin loss


class ContrastiveCache(NamedTuple):
    active_im: object  # (B, B) bool: caption a's hinge against contrastive image b is active
    active_cap: object  # (B, B) bool: image b's hinge against contrastive caption a is active
    dtype: object  # the scores' dtype, for the gradient


def contrastive_loss(S, margin: float):
    r"""The contrastive margin loss of a batch of matching pairs, Vendrov et al. Eq. 3.

    ``S`` (B, B): the score of caption ``a`` (row) with image ``b`` (column), larger is better; the diagonal
    holds the matching pairs. With ``m`` the margin,

    .. math:: L = \sum_a \sum_{b \ne a} \max(0,\ m - S_{aa} + S_{ab}) + \max(0,\ m - S_{bb} + S_{ab}),

    the first hinge asking caption ``a`` to score its own image ``m`` above contrastive image ``b``, the second
    asking image ``b`` to score its own caption above contrastive caption ``a``. Summed, not averaged, over the
    batch, as in Vendrov et al.'s code. Returns ``(loss (a float), cache)``.

    Backward: an active hinge adds +1 to its off-diagonal ``S_ab`` and -1 to the matching pair's score:
    ``dS_ab = A_ab + C_ab`` off the diagonal, ``dS_aa = -sum_b A_ab - sum_b C_ba`` (``A``, ``C``: the
    active first and second hinges), all times ``dloss``.
    """
    check_float_array("S", S, ndim=2)
    if S.shape[0] != S.shape[1]:
        raise ValueError(f"S: expected a square (B, B) score matrix of matching pairs, got shape {tuple(S.shape)}")
    margin = check_positive("margin", margin)
    xp = get_array_module(S)
    diag = xp.diagonal(S)
    off = ~xp.eye(S.shape[0], dtype=bool)
    h_im = xp.maximum(margin - diag[:, None] + S, 0) * off  # caption a vs contrastive image b
    h_cap = xp.maximum(margin - diag[None, :] + S, 0) * off  # image b vs contrastive caption a
    loss = float(to_numpy(h_im.sum() + h_cap.sum()))
    return loss, ContrastiveCache(h_im > 0, h_cap > 0, S.dtype)


def contrastive_loss_backward(dloss, cache: ContrastiveCache):
    """Gradient of :func:`contrastive_loss` with respect to ``S``."""
    A, C, dtype = cache
    xp = get_array_module(A)
    dS = A.astype(dtype) + C
    idx = xp.arange(A.shape[0])
    dS[idx, idx] = -A.sum(axis=1) - C.sum(axis=0)
    return dloss * dS


# ---------------------------------------------------------------------------------------------------------
# retrieval metrics


def retrieval_ranks(S, caption_image):
    """Ranks for both retrieval directions from a score matrix ``S`` (N_captions, N_images), larger is better.

    ``caption_image[c]`` is the image that caption ``c`` describes. Returns host arrays
    ``(image_ranks (N_captions,), caption_ranks (N_images,))``, 1 being the best:

    * image retrieval: for caption ``c``, the rank of its image among all images ranked by ``S[c, :]``;
    * caption retrieval: for image ``i``, the best rank of any of its captions among all captions ranked by
      ``S[:, i]`` (the protocol of Karpathy & Fei-Fei and Vendrov et al.).

    Ties count against the model (rank = 1 + the number of *other* candidates scoring at least as high), so an
    untrained model that scores everything alike gets the worst ranks, not the best.
    """
    S = np.asarray(to_numpy(S), dtype=np.float64)
    cap_img = np.asarray(to_numpy(caption_image)).astype(np.int64)
    n_cap, n_img = S.shape
    if cap_img.shape != (n_cap,) or (n_cap and (cap_img.min() < 0 or cap_img.max() >= n_img)):
        raise ValueError(f"caption_image: expected {n_cap} image indices in [0, {n_img}), got shape {cap_img.shape}")
    own = S[np.arange(n_cap), cap_img]
    image_ranks = (S >= own[:, None]).sum(axis=1)  # counts the own image once: 1 + others at least as high
    cap_ranks = np.empty(n_cap, dtype=np.int64)
    for i in range(n_img):
        mine = np.flatnonzero(cap_img == i)
        if not len(mine):
            continue
        col = S[:, i]
        cap_ranks[mine] = (col[None, :] >= col[mine, None]).sum(axis=1)
    caption_ranks = np.full(n_img, n_cap, dtype=np.int64)
    np.minimum.at(caption_ranks, cap_img, cap_ranks)
    return image_ranks, caption_ranks


def recall_at_k(ranks, ks=(1, 5, 10)) -> dict:
    """``{"r1": ..., "r5": ..., "r10": ..., "mean_rank": ...}``: R@K in percent and the mean rank."""
    ranks = np.asarray(ranks)
    out = {f"r{k}": float(100.0 * (ranks <= k).mean()) for k in ks}
    out["mean_rank"] = float(ranks.mean())
    return out
