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


@nb.njit(cache=True, fastmath=_FAST)
def _ln_row(x, gain, bias, eps, xhat, y, rstd, i):
    """Shifted two-pass layer norm of the 1-d row ``x`` into ``xhat`` and ``y`` (``y`` may be ``x``), ``1/sigma``
    into ``rstd[i]``; returns False (and writes nothing) when the variance is not finite."""
    H = x.shape[0]
    k = x[0]
    s = 0.0
    for j in range(H):
        s += np.float64(x[j] - k)  # shifted by the row's first value, as the reference
    m = s / H
    v = 0.0
    for j in range(H):
        d = np.float64(x[j] - k) - m
        v += d * d
    v /= H
    if not math.isfinite(v):
        return False
    r = 1.0 / math.sqrt(v + eps)
    rstd[i] = r
    for j in range(H):
        xh = (np.float64(x[j] - k) - m) * r
        xhat[j] = xh
        y[j] = xh * gain[j] + bias[j]
    return True


@nb.njit(cache=True, fastmath=_FAST)
def _ln_row_backward(dy, xhat, rstd, gain, dx, pg, pb):
    """``dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))`` of one row, ``dxhat = dy * gain`` (``dx``
    may be ``dy``); adds ``dy * xhat`` and ``dy`` into the float64 rows ``pg`` and ``pb``."""
    H = dy.shape[0]
    s1 = 0.0
    s2 = 0.0
    for j in range(H):
        t = np.float64(dy[j])
        u = np.float64(xhat[j])
        d = t * gain[j]
        s1 += d
        s2 += d * u
        pg[j] += t * u
        pb[j] += t
    m1 = s1 / H
    m2 = s2 / H
    r = np.float64(rstd)
    for j in range(H):
        dx[j] = r * (np.float64(dy[j]) * gain[j] - m1 - np.float64(xhat[j]) * m2)


def _layer_norm_rows(x, gain, bias, eps, y, xhat, rstd):
    """Shifted two-pass layer norm of each row of ``x`` into ``y``, ``xhat``, ``rstd``; returns the number of
    rows whose variance is not finite (their outputs are not to be used)."""
    bad = 0
    for i in nb.prange(x.shape[0]):
        if not _ln_row(x[i], gain, bias, eps, xhat[i], y[i], rstd, i):
            bad += 1
    return bad


def _layer_norm_backward_rows(dy, xhat, rstd, gain, dx, pg, pb, per):
    """:func:`_ln_row_backward` of each row; chunk ``c`` of ``per`` rows adds its rows' ``dy * xhat`` and ``dy``
    into ``pg[c]`` and ``pb[c]``."""
    n = dy.shape[0]
    for c in nb.prange(pg.shape[0]):
        for i in range(c * per, min(n, (c + 1) * per)):
            _ln_row_backward(dy[i], xhat[i], rstd[i], gain, dx[i], pg[c], pb[c])


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


# ---- the LSTM step's pointwise part (lnedu.functional._numba_lstm) ---------------------------------------------
# One row of the batch at a time, on the calling thread: at the sizes a CPU trains recurrent networks on (a batch
# of tens, a few hundred units) the work per step is microseconds, and the cost the kernels remove is the ~20
# NumPy calls per step and their temporaries. The row's layer norm is the shifted two-pass one above. ``tanh``
# stays with NumPy, whose loop is vectorized (a scalar ``math.tanh`` per element here was 3x slower than the
# whole NumPy step at a batch of 64 x 64 units).


@nb.njit(cache=True, fastmath=_FAST)
def lstm_preactivation_rows(a_x, a_h, norm_h, gh, bh, eps_h, pre, xhat_h, rstd_h):
    """``pre = a_x + N_h(a_h)`` per row (``a_h = h_prev @ W_h``, from BLAS), the first three gates' halved (the
    caller takes ``tanh`` of all of ``pre`` in one vectorized NumPy call: ``sigma(a) = (1 + tanh(a/2)) / 2``).
    Returns the number of rows whose statistics were not finite."""
    B, H4 = a_x.shape
    H3 = 3 * (H4 // 4)
    bad = 0
    for b in range(B):
        if norm_h and not _ln_row(a_h[b], gh, bh, eps_h, xhat_h[b], a_h[b], rstd_h, b):
            bad += 1
            continue
        for j in range(H4):
            a = a_x[b, j] + a_h[b, j]
            pre[b, j] = 0.5 * a if j < H3 else a
    return bad


@nb.njit(cache=True, fastmath=_FAST)
def lstm_cell_rows(gates, c_prev, norm_c, gc, bc, eps_c, c, c_hat, xhat_c, rstd_c):
    """From ``tanh`` of the preactivations: the gates (in place), ``c = f c_prev + i g`` and ``c_hat = N_c(c)``
    per row. Returns the number of rows whose statistics were not finite."""
    B, H = c_prev.shape
    bad = 0
    for b in range(B):
        for j in range(3 * H):
            gates[b, j] = 0.5 * gates[b, j] + 0.5
        for j in range(H):
            c[b, j] = gates[b, j] * c_prev[b, j] + gates[b, H + j] * gates[b, 3 * H + j]
        if not norm_c:
            c_hat[b, :] = c[b, :]
        elif not _ln_row(c[b], gc, bc, eps_c, xhat_c[b], c_hat[b], rstd_c, b):
            bad += 1
    return bad


@nb.njit(cache=True, fastmath=_FAST)
def lstm_step_backward_rows(dh, dc, has_dc, c_prev, gates, tanh_c, scale, norm_c, xhat_c, rstd_c, gc,
                            norm_h, xhat_h, rstd_h, gh, da_x, da_h, dc_prev, pgc, pbc, pgh, pbh):
    """The backward of :func:`lstm_step_rows` per row: ``da_x`` (the gates' gradient), ``da_h`` (through
    ``norm_h``), ``dc_prev``; the norms' gain and bias gradients summed into float64 rows."""
    B, H = c_prev.shape
    dchat = np.empty(H)
    for b in range(B):
        for j in range(H):
            t = tanh_c[b, j]
            dchat[j] = scale * dh[b, j] * gates[b, 2 * H + j] * (1.0 - t * t)
        if norm_c:
            _ln_row_backward(dchat, xhat_c[b], rstd_c[b], gc, dchat, pgc, pbc)
        for j in range(H):
            f = gates[b, j]
            i = gates[b, H + j]
            o = gates[b, 2 * H + j]
            g = gates[b, 3 * H + j]
            dct = dchat[j] + dc[b, j] if has_dc else dchat[j]
            da_x[b, j] = dct * c_prev[b, j] * f * (1.0 - f)
            da_x[b, H + j] = dct * g * i * (1.0 - i)
            da_x[b, 2 * H + j] = scale * dh[b, j] * tanh_c[b, j] * o * (1.0 - o)
            da_x[b, 3 * H + j] = dct * i * (1.0 - g * g)
            dc_prev[b, j] = dct * f
        if norm_h:
            _ln_row_backward(da_x[b], xhat_h[b], rstd_h[b], gh, da_h[b], pgh, pbh)
        else:
            da_h[b, :] = da_x[b, :]
