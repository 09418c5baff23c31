"""The Numba kernels behind :mod:`lnedu.functional._numba` (importing this module imports Numba).

Each works on 2-d C-contiguous rows ``(n, H)`` and writes into arrays the caller allocated. Sums are
accumulated in float64; a layer norm's write loop (``xhat`` and ``y``, and the norm kernel's ``dx``) then runs in
the storage type, with the row's mean and ``1/sigma`` rounded to it, as the reference's NumPy arithmetic does.
``fastmath`` allows only re-association (so that a row sum vectorizes) and fused multiply-adds: no assumption
that values are finite, so NaN and inf are still seen.

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
    rstd[i] = 1.0 / math.sqrt(v + eps)
    xhat[0] = m  # (xhat never aliases x): m and 1/sigma read back in the storage type, as _layer_norm_rows does
    mi, r = xhat[0], rstd[i]
    for j in range(H):
        xh = (x[j] - k - mi) * r
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


def _layer_norm_rows(x, gain, bias, eps, y, xhat, rstd, mean):
    """Shifted two-pass layer norm of each row of ``x`` into ``y``, ``xhat``, ``rstd``; returns the number of
    rows whose variance is not finite (their outputs are not to be used).

    The statistics are summed in float64 (as :func:`_ln_row`); the write loop then runs in the storage type, as
    the reference's ``(x - k - m) * rstd`` does: the row's shifted mean and ``1/sigma`` are rounded to it by
    storing them in ``mean`` and ``rstd`` (arrays of that type) and reading them back. In float32 that loop moves
    16 values per vector instruction instead of 8 (forward 1.8x faster on rows in cache); in float64 nothing
    changes. The loops index the 2-d arrays directly rather than calling :func:`_ln_row` on row views: the
    compiler then knows the rows do not overlap (``_ln_row`` allows ``y`` to be ``x``)."""
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
        if math.isfinite(v):
            mean[i] = m
            rstd[i] = 1.0 / math.sqrt(v + eps)
            mi, r = mean[i], rstd[i]  # in the storage type
            for j in range(H):
                xh = (x[i, j] - k - mi) * r
                xhat[i, j] = xh
                y[i, j] = xh * gain[j] + bias[j]
        else:
            bad += 1
    return bad


def _layer_norm_backward_rows(dy, xhat, rstd, gain, dx, pg, pb, per, means):
    """``dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))`` of each row, ``dxhat = dy * gain``; chunk
    ``c`` of ``per`` rows adds its rows' ``dy * xhat`` and ``dy`` into the float64 rows ``pg[c]`` and ``pb[c]``.

    The two row means are summed in float64 (as :func:`_ln_row_backward`), then rounded to the storage type
    through ``means`` (n, 2), so that the loop writing ``dx`` runs in that type, as the reference's does."""
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
            means[i, 0] = s1 / H
            means[i, 1] = s2 / H
            m1, m2, r = means[i, 0], means[i, 1], rstd[i]  # in the storage type
            for j in range(H):
                dx[i, j] = r * (dy[i, j] * gain[j] - m1 - xhat[i, j] * m2)


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
def layer_norm_rows_serial(x, gain, bias, eps, y, xhat, rstd, mean):
    return _layer_norm_rows_1(x, gain, bias, eps, y, xhat, rstd, mean)


layer_norm_backward_rows = nb.njit(parallel=True, cache=True, fastmath=_FAST)(_layer_norm_backward_rows)
_layer_norm_backward_rows_1 = nb.njit(fastmath=_FAST)(_layer_norm_backward_rows)


@nb.njit(cache=True)
def layer_norm_backward_rows_serial(dy, xhat, rstd, gain, dx, pg, pb, per, means):
    _layer_norm_backward_rows_1(dy, xhat, rstd, gain, dx, pg, pb, per, means)


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
def gate_preactivation_rows(a_x, a_h, norm_h, gh, bh, eps_h, pre, xhat_h, rstd_h, halve):
    """``pre = a_x[:, :n] + N_h(a_h)`` per row (``a_h = h_prev @ W_h``, from BLAS, ``n`` its width; normalized in
    place), its first ``halve`` columns (the sigmoid gates) halved: the caller takes ``tanh`` of all of ``pre`` in
    one vectorized NumPy call, and ``sigma(a) = (1 + tanh(a/2)) / 2``. The LSTM's 3H of 4H, the GRU's 2H, the
    MGU's H. Returns the number of rows whose statistics were not finite."""
    B, n = a_h.shape
    bad = 0
    for b in range(B):
        if norm_h and not _ln_row(a_h[b], gh, bh, eps_h, xhat_h[b], a_h[b], rstd_h, b):
            bad += 1
            continue
        for j in range(n):
            a = a_x[b, j] + a_h[b, j]
            pre[b, j] = 0.5 * a if j < halve else a
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


# ---- the GRU and MGU steps' pointwise parts (lnedu.functional._numba_gru) -------------------------------------
# As the LSTM's: BLAS for the products, NumPy for tanh, the rest a loop over the batch's rows. ``gates`` holds
# tanh(a/2) of the sigmoid gates until a kernel here makes them sigma(a) in place. In the GRU the gates are
# (z, r); in the MGU the one gate f is both (the update and the reset).


@nb.njit(cache=True, fastmath=_FAST)
def gru_after_rows(a_x, a_hh, norm_h, gh, bh, eps_h, xhat_h, rstd_h, norm_hc, gc, bc, eps_c, xhat_c, rstd_c, pre):
    """The GRU with the reset after ``U`` (the LN paper's Eq. 27): of ``a_hh = h_prev @ [W_h | U]`` per row, the
    gates' part normalized by ``N_h`` and the candidate's by ``N_hc`` (both in place: the latter is ``u``), and
    ``pre = (a_x^zr + N_h(W_h h)) / 2``. Returns the number of rows whose statistics were not finite."""
    B, H3 = a_hh.shape
    H2 = 2 * (H3 // 3)
    bad = 0
    for b in range(B):
        row = a_hh[b]
        if ((norm_h and not _ln_row(row[:H2], gh, bh, eps_h, xhat_h[b], row[:H2], rstd_h, b))
                or (norm_hc and not _ln_row(row[H2:], gc, bc, eps_c, xhat_c[b], row[H2:], rstd_c, b))):
            bad += 1
            continue
        for j in range(H2):
            pre[b, j] = 0.5 * (a_x[b, j] + row[j])
    return bad


@nb.njit(cache=True, fastmath=_FAST)
def gru_after_candidate_rows(gates, a_x, u, s):
    """From ``tanh`` of the halved gate preactivations: the gates (in place), and the candidate's preactivation
    ``s = a_x^c + r * u``."""
    B, H2 = gates.shape
    H = H2 // 2
    for b in range(B):
        for j in range(H2):
            gates[b, j] = 0.5 * gates[b, j] + 0.5
        for j in range(H):
            s[b, j] = a_x[b, H2 + j] + gates[b, H + j] * u[b, j]


@nb.njit(cache=True, fastmath=_FAST)
def reset_rows(gates, h_prev, r0, rh):
    """From ``tanh`` of the halved gate preactivations: the gates (in place), and the candidate product's input
    ``rh = gate * h_prev`` with the gate at column ``r0`` (the GRU's r at H, the MGU's f at 0)."""
    B, G = gates.shape
    H = h_prev.shape[1]
    for b in range(B):
        for j in range(G):
            gates[b, j] = 0.5 * gates[b, j] + 0.5
        for j in range(H):
            rh[b, j] = gates[b, r0 + j] * h_prev[b, j]


@nb.njit(cache=True, fastmath=_FAST)
def update_rows(h_prev, gates, h_hat, h):
    """``h = h_prev + z * (h_hat - h_prev)`` (Eq. 28), ``z`` the first H columns of ``gates``."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            h[b, j] = h_prev[b, j] + gates[b, j] * (h_hat[b, j] - h_prev[b, j])


@nb.njit(cache=True, fastmath=_FAST)
def gru_after_backward_rows(dh, h_prev, gates, u, h_hat, norm_hc, xhat_c, rstd_c, gc, norm_h, xhat_h, rstd_h, gh,
                            da_x, da_hh, dh_prev, pgc, pbc, pgh, pbh):
    """The backward of the reset-after GRU step per row: ``da_x`` (B, 3H), ``da_hh`` (the gradient of
    ``h_prev @ [W_h | U]``, through both norms), and ``dh_prev``'s direct path ``dh * (1 - z)`` (the caller adds
    ``da_hh @ W_hh.T``); the norms' gain and bias gradients summed into float64 rows."""
    B, H = h_prev.shape
    H2 = 2 * H
    for b in range(B):
        for j in range(H):
            z = gates[b, j]
            r = gates[b, H + j]
            hh = h_hat[b, j]
            d = dh[b, j]
            ds = d * z * (1.0 - hh * hh)  # through tanh
            da_x[b, H2 + j] = ds
            da_x[b, j] = d * (hh - h_prev[b, j]) * z * (1.0 - z)  # dz, through sigma
            da_x[b, H + j] = ds * u[b, j] * r * (1.0 - r)  # dr = ds u, through sigma
            da_hh[b, H2 + j] = ds * r  # du = ds r
            dh_prev[b, j] = d * (1.0 - z)
        if norm_hc:
            _ln_row_backward(da_hh[b, H2:], xhat_c[b], rstd_c[b], gc, da_hh[b, H2:], pgc, pbc)
        if norm_h:
            _ln_row_backward(da_x[b, :H2], xhat_h[b], rstd_h[b], gh, da_hh[b, :H2], pgh, pbh)
        else:
            da_hh[b, :H2] = da_x[b, :H2]


@nb.njit(cache=True, fastmath=_FAST)
def candidate_backward_rows(dh, h_prev, gates, h_hat, norm_hc, xhat_c, rstd_c, gc, da_x, off, da_c, dz, dh_prev,
                            pgc, pbc):
    """The first half of the reset-before GRU's (and the MGU's) backward per row: ``ds = dh z (1 - h_hat^2)`` into
    ``da_x[:, off:]``, ``da_c = N_hc'(ds)``, ``dz = dh (h_hat - h_prev)`` (before its sigmoid) and the direct
    ``dh_prev = dh (1 - z)``; ``z`` the first H columns of ``gates``."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            z = gates[b, j]
            hh = h_hat[b, j]
            d = dh[b, j]
            ds = d * z * (1.0 - hh * hh)
            da_x[b, off + j] = ds
            da_c[b, j] = ds
            dz[b, j] = d * (hh - h_prev[b, j])
            dh_prev[b, j] = d * (1.0 - z)
        if norm_hc:
            _ln_row_backward(da_c[b], xhat_c[b], rstd_c[b], gc, da_c[b], pgc, pbc)


@nb.njit(cache=True, fastmath=_FAST)
def gate_backward_rows(drh, h_prev, gates, r0, dz, norm_h, xhat_h, rstd_h, gh, da_x, da_h, dh_prev, pgh, pbh):
    """The second half, from ``drh = da_c @ U.T``: the reset gate (column ``r0``) gets ``drh * h_prev`` and adds
    ``drh * gate`` to ``dh_prev``; the gates' gradients through their sigmoid into ``da_x[:, :G]`` (the MGU's one
    gate, ``r0 = 0``, adds both of its uses), then ``da_h = N_h'(.)``."""
    B, G = gates.shape
    H = h_prev.shape[1]
    for b in range(B):
        for j in range(H):
            g = gates[b, r0 + j]
            dr = drh[b, j] * h_prev[b, j]
            dh_prev[b, j] += drh[b, j] * g
            if r0 == 0:  # the MGU: f is the update and the reset
                da_x[b, j] = (dz[b, j] + dr) * g * (1.0 - g)
            else:
                z = gates[b, j]
                da_x[b, j] = dz[b, j] * z * (1.0 - z)
                da_x[b, r0 + j] = dr * g * (1.0 - g)
        if norm_h:
            _ln_row_backward(da_x[b, :G], xhat_h[b], rstd_h[b], gh, da_h[b], pgh, pbh)
        else:
            da_h[b, :] = da_x[b, :G]


# ---- batch norm (lnedu.functional._numba's batch_norm) ---------------------------------------------------------
# Statistics per column, over the rows of an (N, K) batch, on the calling thread. Compiled without fastmath: the
# column sums then add the rows in the reference's order (NumPy sums axis 0 row after row), so float64 results are
# the reference's bit for bit; float32 values are summed in float64, as everywhere in these kernels.


@nb.njit(cache=True)
def batch_norm_cols(x, gain, bias, eps, y, xhat, rstd, shift, var):
    """Shifted two-pass batch norm of each column of ``x`` (N, K): ``shift`` the mean of ``x - x[0]`` and ``var``
    the biased variance (float64 sums, rounded to the storage type), ``rstd = 1/sqrt(var + eps)``, then
    ``xhat = (x - x[0] - shift) * rstd`` and ``y = gain * xhat + bias`` in the storage type. Returns the number of
    columns whose variance is not finite (then nothing is written but the statistics)."""
    n, K = x.shape
    s, q = np.zeros(K), np.zeros(K)
    for i in range(n):
        for j in range(K):
            s[j] += np.float64(x[i, j] - x[0, j])  # shifted by the column's first value, as the reference
    for j in range(K):
        s[j] /= n
    for i in range(n):
        for j in range(K):
            d = np.float64(x[i, j] - x[0, j]) - s[j]
            q[j] += d * d
    bad = 0
    for j in range(K):
        v = q[j] / n
        if not math.isfinite(v):
            bad += 1
            continue
        var[j] = v
        rstd[j] = 1.0 / math.sqrt(v + eps)
        shift[j] = s[j]
    if bad:
        return bad
    for i in range(n):
        for j in range(K):
            xh = (x[i, j] - x[0, j] - shift[j]) * rstd[j]
            xhat[i, j] = xh
            y[i, j] = xh * gain[j] + bias[j]
    return 0


@nb.njit(cache=True)
def batch_norm_backward_cols(dy, xhat, rstd, gain, m, dx, pg, pb, c):
    """``dx = rstd * (dy gain - sum(dy) gain / N - xhat sum(dy xhat) gain / m)`` per column (``m``: N, or N - 1 for
    the unbiased variance); the column sums ``pb = sum(dy)`` and ``pg = sum(dy xhat)`` in float64, rounded to the
    storage type through ``c`` (2, K) for the loop that writes ``dx``, as the reference computes it. ``pg`` and
    ``pb`` come zeroed."""
    n, K = dy.shape
    for i in range(n):
        for j in range(K):
            t = np.float64(dy[i, j])
            pb[j] += t
            pg[j] += t * np.float64(xhat[i, j])
    for j in range(K):
        c[0, j] = pb[j]
        c[1, j] = pg[j]
    for j in range(K):  # (dbias * g) / N and (dgain * g) / m, in the storage type
        c[0, j] = c[0, j] * gain[j] / n
        c[1, j] = c[1, j] * gain[j] / m
    for i in range(n):
        for j in range(K):
            dx[i, j] = rstd[j] * (dy[i, j] * gain[j] - c[0, j] - xhat[i, j] * c[1, j])
