"""The Numba kernels behind :mod:`lnedu.functional._numba` (importing this module imports Numba).

Each works on 2-d C-contiguous rows ``(n, H)`` and writes into arrays the caller allocated. Sums are
accumulated in float64. ``fastmath`` allows only re-association (so that a row sum vectorizes) and
fused multiply-adds: no assumption that values are finite, so NaN and inf are still seen.

Every kernel comes twice: ``NAME`` runs its ``prange`` loop on all of Numba's threads, ``NAME_serial`` on the
calling thread only. Starting the threads costs microseconds on a quiet machine, but on a loaded one a
descheduled thread stalls the whole call for a scheduler tick (milliseconds), so mid-sized arrays take the
serial kernels (see ``_numba.PARALLEL_SIZE``). Both are cached on disk (``cache=True``); the serial one is a
cached wrapper around an uncached compile of the same loop, so that the two never share a cache entry.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_FAST = {"reassoc", "contract"}

threads = nb.get_num_threads  # how many threads a parallel kernel would use now


def _layer_norm_rows(x, gain, bias, eps, y, xhat, rstd):
    """Shifted two-pass layer norm of each row of ``x`` into ``y``, ``xhat``, ``rstd``; returns the number of
    rows whose variance is not finite (their outputs are not to be used)."""
    n, H = x.shape
    bad = 0
    for i in nb.prange(n):
        k = x[i, 0]
        s = 0.0
        for j in range(H):
            s += np.float64(x[i, j] - k)  # shifted by the row's first value, as the reference
        m = s / H
        v = 0.0
        for j in range(H):
            d = np.float64(x[i, j] - k) - m
            v += d * d
        v /= H
        if not math.isfinite(v):
            bad += 1
            continue
        r = 1.0 / math.sqrt(v + eps)
        rstd[i] = r
        for j in range(H):
            xh = (np.float64(x[i, j] - k) - m) * r
            xhat[i, j] = xh
            y[i, j] = xh * gain[j] + bias[j]
    return bad


def _layer_norm_backward_rows(dy, xhat, rstd, gain, dx, pg, pb, per):
    """``dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))`` per row, ``dxhat = dy * gain``;
    chunk ``c`` of ``per`` rows adds its rows' ``dy * xhat`` and ``dy`` into ``pg[c]`` and ``pb[c]``."""
    n, H = dy.shape
    for c in nb.prange(pg.shape[0]):
        for i in range(c * per, min(n, (c + 1) * per)):
            s1 = 0.0
            s2 = 0.0
            for j in range(H):
                t = np.float64(dy[i, j])
                u = np.float64(xhat[i, j])
                d = t * gain[j]
                s1 += d
                s2 += d * u
                pg[c, j] += t * u
                pb[c, j] += t
            m1 = s1 / H
            m2 = s2 / H
            r = np.float64(rstd[i])
            for j in range(H):
                dx[i, j] = r * (np.float64(dy[i, j]) * gain[j] - m1 - np.float64(xhat[i, j]) * m2)


def _rms_norm_rows(x, gain, eps, y, xhat, rstd):
    """RMSNorm of each row of ``x`` into ``y``, ``xhat``, ``rstd``; returns the number of rows whose mean
    square is not finite."""
    n, H = x.shape
    bad = 0
    for i in nb.prange(n):
        q = 0.0
        for j in range(H):
            t = np.float64(x[i, j])
            q += t * t
        q /= H
        if not math.isfinite(q):
            bad += 1
            continue
        r = 1.0 / math.sqrt(q + eps)
        rstd[i] = r
        for j in range(H):
            xh = np.float64(x[i, j]) * r
            xhat[i, j] = xh
            y[i, j] = xh * gain[j]
    return bad


def _rms_norm_backward_rows(dy, xhat, rstd, gain, dx, pg, per):
    """``dx = rstd * (dxhat - xhat * mean(dxhat * xhat))`` per row; chunk ``c`` adds ``dy * xhat`` into ``pg[c]``."""
    n, H = dy.shape
    for c in nb.prange(pg.shape[0]):
        for i in range(c * per, min(n, (c + 1) * per)):
            s2 = 0.0
            for j in range(H):
                t = np.float64(dy[i, j])
                u = np.float64(xhat[i, j])
                s2 += t * gain[j] * u
                pg[c, j] += t * u
            m2 = s2 / H
            r = np.float64(rstd[i])
            for j in range(H):
                dx[i, j] = r * (np.float64(dy[i, j]) * gain[j] - np.float64(xhat[i, j]) * m2)


layer_norm_rows = nb.njit(parallel=True, cache=True, fastmath=_FAST)(_layer_norm_rows)
_layer_norm_rows_1 = nb.njit(fastmath=_FAST)(_layer_norm_rows)


@nb.njit(cache=True)
def layer_norm_rows_serial(x, gain, bias, eps, y, xhat, rstd):
    return _layer_norm_rows_1(x, gain, bias, eps, y, xhat, rstd)


layer_norm_backward_rows = nb.njit(parallel=True, cache=True, fastmath=_FAST)(_layer_norm_backward_rows)
_layer_norm_backward_rows_1 = nb.njit(fastmath=_FAST)(_layer_norm_backward_rows)


@nb.njit(cache=True)
def layer_norm_backward_rows_serial(dy, xhat, rstd, gain, dx, pg, pb, per):
    _layer_norm_backward_rows_1(dy, xhat, rstd, gain, dx, pg, pb, per)


rms_norm_rows = nb.njit(parallel=True, cache=True, fastmath=_FAST)(_rms_norm_rows)
_rms_norm_rows_1 = nb.njit(fastmath=_FAST)(_rms_norm_rows)


@nb.njit(cache=True)
def rms_norm_rows_serial(x, gain, eps, y, xhat, rstd):
    return _rms_norm_rows_1(x, gain, eps, y, xhat, rstd)


rms_norm_backward_rows = nb.njit(parallel=True, cache=True, fastmath=_FAST)(_rms_norm_backward_rows)
_rms_norm_backward_rows_1 = nb.njit(fastmath=_FAST)(_rms_norm_backward_rows)


@nb.njit(cache=True)
def rms_norm_backward_rows_serial(dy, xhat, rstd, gain, dx, pg, per):
    _rms_norm_backward_rows_1(dy, xhat, rstd, gain, dx, pg, per)
