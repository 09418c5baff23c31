// Fused pointwise part of one LN-LSTM and one LN-GRU step, forward and backward (see common.cuh for the
// conventions). The matrix products h_{t-1} W_h stay with cuBLAS (CuPy's matmul): a kernel here starts
// from their result and does everything else of the step in one pass over memory.
//
// LSTM (LN paper, appendix Eq. 20-22; gate order f, i, o, g):
//     a   = LN_h(a_h; g_h, b_h) + a_x                 a_h = h_{t-1} W_h (B, 4H), a_x = the input term
//     f, i, o, g = sigma(a_f), sigma(a_i), sigma(a_o), tanh(a_g)
//     c_t = f c_{t-1} + i g,    h_t = o tanh(LN_c(c_t; g_c, b_c))
// GRU, reset after U (Eq. 23-28; gate order z, r; a_hh = h_{t-1} [W_h | U], (B, 3H)):
//     z, r  = sigma(a_x^{zr} + LN_h(a_hh^{zr}; g_h, b_h)),   u = LN_hc(a_hh^{c}; g_hc, b_hc)
//     h_hat = tanh(a_x^{c} + r u),   h_t = h_{t-1} + z (h_hat - h_{t-1})
// Every LN is optional (groups_h = 0, ln_c / ln_hc = 0: the baseline cells run through the same code), and
// LN_h takes its statistics over all the stacked gates (groups_h = 1, the paper) or per gate (4 / 2).
//
// Layout. One block per row (training case); thread t owns the hidden units j = t, t + blockDim.x, ...
// (ITEMS of them) and, for each, ALL the gates of unit j: a[row, s*H + j] for s = 0..3 (LSTM) or 0..2
// (GRU), the "slots" of the unit. So the cell update and the LN of c need nothing from other threads, the
// loads of a warp stay coalesced (consecutive j in each slot), and the only communication is the LN row
// statistics, through block_sum. Per-gate statistics cost nothing extra: the kernels always sum per slot
// and then pool the slots that share a group (pool_slots), so groups is a run-time argument and one
// instantiation serves every placement of the norms.
//
// What the forward keeps for the backward: the gates, tanh(LN_c(c)), xhat of each LN and one rstd per row
// (and group). xhat of LN_h overwrites the product a_h in place (a fresh array the launch code owns), so
// the cache costs no extra memory for it; the GRU's u = g_hc xhat + b_hc is recomputed, not stored.
//
// The backward writes da_x, da_h (the gradient of the product, for dh_{t-1} = da_h W_h^T and dW_h with
// cuBLAS), dc_{t-1} (LSTM) or the direct part (1 - z) dh of dh_{t-1} (GRU), and the gains' and biases'
// gradients. Those are sums over the rows: each block adds its rows' terms into its own row of `part`
// (gridDim.x rows, the first row of a block writes, the later ones add: a read-modify-write of the block's
// own memory, so no atomics and a fixed order), and sum_columns (layer_norm.cuh) adds the blocks up. The
// partial sums live in memory rather than in registers (as norm_backward keeps them) because a unit has
// ten of them here (gain and bias of four gates and of c): registers would cap ITEMS; and with one row per
// block, the usual case for a recurrent batch, the read-modify-write is a plain write.
//
// Registers. __launch_bounds__(256, 1): at most 256 threads a block, and one resident block per
// multiprocessor is enough (a batch of B rows is B blocks, rarely more than a GPU holds at once). That
// lets ptxas give a thread up to 255 registers: without the 1 it aims at more resident blocks and
// spills a few values to local memory instead (tests/test_cuda_norms.py checks every instantiation for
// spills with ptxas -v). A unit's gates, its xhat and its gradients are what the registers hold.
#pragma once
#include "common.cuh"

// sigma(a) as (1 + tanh(a/2)) / 2, the portable code's form: no overflow for any a.
template <typename A> __device__ __forceinline__ A sigmoid_acc(A a) { return A(0.5) * tanh(A(0.5) * a) + A(0.5); }

// x[s] <- the sum of x[s'] over the slots s' of the same group as s (grp[s'] == grp[s]).
template <int NS, typename A> __device__ __forceinline__ void pool_slots(A (&x)[NS], const int (&grp)[NS]) {
    A out[NS];
#pragma unroll
    for (int a = 0; a < NS; ++a) {
        out[a] = A(0);
#pragma unroll
        for (int b = 0; b < NS; ++b)
            if (grp[b] == grp[a]) out[a] += x[b];
    }
#pragma unroll
    for (int a = 0; a < NS; ++a) x[a] = out[a];
}

// How many units the statistics of slot s run over: H times the number of slots in its group.
template <int NS> __device__ __forceinline__ int group_units(const int (&grp)[NS], int s, int H) {
    int n = 0;
#pragma unroll
    for (int b = 0; b < NS; ++b) n += grp[b] == grp[s];
    return n * H;
}

// Layer norm statistics of the slots, in place: v[s][k] (slot s of unit threadIdx.x + k blockDim.x) becomes
// xhat = (v - mean) / sqrt(var + eps) over the slot's group, for every slot with grp[s] >= 0 (the others
// are left as they are); rstd[s] = 1 / sqrt(var + eps). The corrected two-pass method of row_moments
// (common.cuh): the mean, then the centred values, whose mean d (the first mean's rounding error) is
// taken out again. Items at or past H must hold 0. Every thread of the block must call this.
template <int NS, int ITEMS, typename A>
__device__ __forceinline__ void standardize_slots(A (&v)[NS][ITEMS], const int (&grp)[NS], const A (&eps)[NS],
                                                  int H, A* scratch, A (&rstd)[NS]) {
    const int stride = blockDim.x;
    A s[NS];
#pragma unroll
    for (int q = 0; q < NS; ++q) {
        s[q] = A(0);
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) s[q] += v[q][k];
    }
    block_sum(s, scratch);
    pool_slots(s, grp);
    A dq[2 * NS];  // per slot: sum of the centred values, then of their squares
#pragma unroll
    for (int q = 0; q < NS; ++q) {
        const A mean = s[q] / A(group_units(grp, q, H));
        dq[q] = dq[NS + q] = A(0);
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            if (grp[q] >= 0 && threadIdx.x + k * stride < H) {
                v[q][k] -= mean;
                dq[q] += v[q][k];
                dq[NS + q] += v[q][k] * v[q][k];
            }
        }
    }
    block_sum(dq, scratch);
    A d[NS], sq[NS];
#pragma unroll
    for (int q = 0; q < NS; ++q) d[q] = dq[q], sq[q] = dq[NS + q];
    pool_slots(d, grp);
    pool_slots(sq, grp);
#pragma unroll
    for (int q = 0; q < NS; ++q) {
        const A n = A(group_units(grp, q, H)), dm = d[q] / n;
        A var = sq[q] / n - dm * dm;
        var = var < A(0) ? A(0) : var;  // a NaN stays NaN
        rstd[q] = A(1) / sqrt(var + eps[q]);
#pragma unroll
        for (int k = 0; k < ITEMS; ++k)
            if (grp[q] >= 0 && threadIdx.x + k * stride < H) v[q][k] = (v[q][k] - dm) * rstd[q];
    }
}

// The two row means of the layer norm backward, da = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), per
// slot: sum_d[s] and sum_dx[s] come in as this thread's sums of dxhat and dxhat * xhat over slot s, and
// leave as the means over the slot's group, the block's sums over H times the group's size units. (The
// kernels then read xhat again rather than keep it in registers across the reduction: it is in the cache,
// and the registers it would hold are what keeps 8 units a thread of float64 from spilling.)
template <int NS, typename A>
__device__ __forceinline__ void slot_means(A (&sum_d)[NS], A (&sum_dx)[NS], const int (&grp)[NS], int H, A* scratch) {
    A m[2 * NS];
#pragma unroll
    for (int q = 0; q < NS; ++q) m[q] = sum_d[q], m[NS + q] = sum_dx[q];
    block_sum(m, scratch);
#pragma unroll
    for (int q = 0; q < NS; ++q) sum_d[q] = m[q], sum_dx[q] = m[NS + q];
    pool_slots(sum_d, grp);
    pool_slots(sum_dx, grp);
#pragma unroll
    for (int q = 0; q < NS; ++q) {
        const A n = A(group_units(grp, q, H));
        sum_d[q] /= n;
        sum_dx[q] /= n;
    }
}

// Add `value` into this block's partial sums at column `col` (the block's first row writes).
template <typename A> __device__ __forceinline__ void add_part(A* mine, bool first, int col, A value) {
    mine[col] = first ? value : mine[col] + value;
}

// The group of each stacked gate under LN_h: -1 without LN_h, 0 for all with one group, the gate itself per gate.
__device__ __forceinline__ int gate_group(int groups_h, int s) { return groups_h == 0 ? -1 : (groups_h == 1 ? 0 : s); }

// ---- LSTM -------------------------------------------------------------------------------------------------

// a_x (B, 4H): the input term; a_h (B, 4H): in, h_{t-1} W_h; out, xhat of LN_h (untouched without LN_h);
// c_prev (B, H); gains and biases nullable (1 and 0). Out: h, c, tanh_c (B, H), gates (B, 4H) =
// sigma f, i, o | tanh g, xhat_c (B, H) and rstd_c (B,) with ln_c, rstd_h (B, groups_h) with LN_h.
template <typename T, int ITEMS>
__global__ void __launch_bounds__(256, 1)
lstm_forward(const T* __restrict__ a_x, T* a_h, const T* __restrict__ c_prev, const T* __restrict__ g_h,
             const T* __restrict__ b_h, const T* __restrict__ g_c, const T* __restrict__ b_c, T* __restrict__ h,
             T* __restrict__ c, T* __restrict__ gates, T* __restrict__ tanh_c, T* __restrict__ xhat_c,
             typename Acc<T>::type* __restrict__ rstd_h, typename Acc<T>::type* __restrict__ rstd_c,
             long long rows, int H, int groups_h, int ln_c, double eps_h, double eps_c) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[8 * 32];
    const int stride = blockDim.x;
    int grp[4];
    A eps[4];
#pragma unroll
    for (int s = 0; s < 4; ++s) grp[s] = gate_group(groups_h, s), eps[s] = A(eps_h);
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long r4 = row * 4 * H, r1 = row * H;
        A v[4][ITEMS];  // the recurrent term of unit j's four gates
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
#pragma unroll
            for (int s = 0; s < 4; ++s) v[s][k] = j < H ? to_acc(a_h[r4 + s * H + j]) : A(0);
        }
        if (groups_h) {  // uniform over the block: every thread takes the same branch (block_sum needs all)
            A rs[4];
            standardize_slots(v, grp, eps, H, scratch, rs);
            if (threadIdx.x == 0) {
#pragma unroll
                for (int s = 0; s < 4; ++s)
                    if (s < groups_h) rstd_h[row * groups_h + s] = rs[s];
            }
        }
        A cv[ITEMS], o[ITEMS];  // c_t and the output gate, for the LN of c
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
            cv[k] = o[k] = A(0);
            if (j < H) {
                A a[4];
#pragma unroll
                for (int s = 0; s < 4; ++s) {
                    const int col = s * H + j;
                    A pre = v[s][k];
                    if (groups_h) {
                        a_h[r4 + col] = from_acc<T>(pre);  // xhat, for the backward
                        pre = pre * param_or(g_h, col, A(1)) + param_or(b_h, col, A(0));
                    }
                    a[s] = pre + to_acc(a_x[r4 + col]);
                }
                const A f = sigmoid_acc(a[0]), i = sigmoid_acc(a[1]), g = tanh(a[3]);
                o[k] = sigmoid_acc(a[2]);
                gates[r4 + j] = from_acc<T>(f);
                gates[r4 + H + j] = from_acc<T>(i);
                gates[r4 + 2 * H + j] = from_acc<T>(o[k]);
                gates[r4 + 3 * H + j] = from_acc<T>(g);
                cv[k] = f * to_acc(c_prev[r1 + j]) + i * g;  // c_t = f c_{t-1} + i g: carried un-normalized
                c[r1 + j] = from_acc<T>(cv[k]);
            }
        }
        if (ln_c) {  // c_hat = LN(c_t; g_c, b_c): only the output path sees it
            A mean;
            const A rs = row_moments(cv, H, stride, A(eps_c), scratch, &mean);
            if (threadIdx.x == 0) rstd_c[row] = rs;
#pragma unroll
            for (int k = 0; k < ITEMS; ++k) {
                const int j = threadIdx.x + k * stride;
                if (j < H) {
                    const A xh = cv[k] * rs;
                    xhat_c[r1 + j] = from_acc<T>(xh);
                    cv[k] = xh * param_or(g_c, j, A(1)) + param_or(b_c, j, A(0));
                }
            }
        }
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
            if (j < H) {
                const A tc = tanh(cv[k]);
                tanh_c[r1 + j] = from_acc<T>(tc);
                h[r1 + j] = from_acc<T>(o[k] * tc);
            }
        }
    }
}

// dh (B, H); dc (B, H) or null (zero); the forward's gates, tanh_c, c_prev, and xhat_c / rstd_c (with ln_c),
// xhat_h / rstd_h (with LN_h), gains nullable. Out: da_x (B, 4H); da_h (B, 4H), the gradient of h_{t-1} W_h
// (with LN_h; without, it is da_x); dc_prev (B, H); part (gridDim.x, width) with width = 8H with LN_h
// (sum da xhat_h | sum da) plus 2H with ln_c (sum dc_hat xhat_c | sum dc_hat), in that order.
template <typename T, int ITEMS>
__global__ void __launch_bounds__(256, 1)
lstm_backward(const T* __restrict__ dh, const T* __restrict__ dc, const T* __restrict__ gates,
              const T* __restrict__ tanh_c, const T* __restrict__ c_prev, const T* __restrict__ xhat_c,
              const typename Acc<T>::type* __restrict__ rstd_c, const T* __restrict__ g_c,
              const T* __restrict__ xhat_h, const typename Acc<T>::type* __restrict__ rstd_h,
              const T* __restrict__ g_h, T* __restrict__ da_x, T* __restrict__ da_h, T* __restrict__ dc_prev,
              typename Acc<T>::type* __restrict__ part, long long rows, int H, int groups_h, int ln_c) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[8 * 32];
    const int stride = blockDim.x;
    const int base_c = groups_h ? 8 * H : 0, width = base_c + (ln_c ? 2 * H : 0);
    A* mine = part ? part + (long long)blockIdx.x * width : nullptr;
    int grp[4];
#pragma unroll
    for (int s = 0; s < 4; ++s) grp[s] = gate_group(groups_h, s);
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long r4 = row * 4 * H, r1 = row * H;
        const bool first = row == blockIdx.x;
        // 1. back through h = o tanh(c_hat): dc_hat = dh o (1 - tanh^2), then through LN_c
        A dct[ITEMS], xc[ITEMS];
        A m[2] = {A(0), A(0)};  // sum(dxhat_c), sum(dxhat_c * xhat_c)
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
            dct[k] = xc[k] = A(0);
            if (j < H) {
                const A tc = to_acc(tanh_c[r1 + j]);
                A dch = to_acc(dh[r1 + j]) * to_acc(gates[r4 + 2 * H + j]);
                dch -= tc * tc * dch;
                dct[k] = dch;
                if (ln_c) {
                    xc[k] = to_acc(xhat_c[r1 + j]);
                    add_part(mine, first, base_c + j, dch * xc[k]);  // dg_c
                    add_part(mine, first, base_c + H + j, dch);      // db_c
                    dct[k] = dch * param_or(g_c, j, A(1));           // dxhat_c
                    m[0] += dct[k];
                    m[1] += dct[k] * xc[k];
                }
            }
        }
        if (ln_c) {
            block_sum(m, scratch);
            const A rs = rstd_c[row], mean_d = m[0] / A(H), proj = m[1] / A(H);
#pragma unroll
            for (int k = 0; k < ITEMS; ++k) dct[k] = (dct[k] - mean_d - xc[k] * proj) * rs;
        }
        // 2. the cell update and the gate nonlinearities, unit by unit; with LN_h, dxhat = da g_h and its sums
        A d[4][ITEMS];
        A sum_d[4], sum_dx[4];  // this thread's sums of dxhat and dxhat * xhat_h, per gate
#pragma unroll
        for (int s = 0; s < 4; ++s) sum_d[s] = sum_dx[s] = A(0);
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
#pragma unroll
            for (int s = 0; s < 4; ++s) d[s][k] = A(0);
            if (j < H) {
                A d_c = dct[k];  // dc_t: through the output path, plus the next step's
                if (dc) d_c += to_acc(dc[r1 + j]);
                const A f = to_acc(gates[r4 + j]), i = to_acc(gates[r4 + H + j]);
                const A o = to_acc(gates[r4 + 2 * H + j]), g = to_acc(gates[r4 + 3 * H + j]);
                const A tc = to_acc(tanh_c[r1 + j]);
                d[0][k] = d_c * to_acc(c_prev[r1 + j]) * ((A(1) - f) * f);  // df sigma'
                d[1][k] = d_c * g * ((A(1) - i) * i);                        // di sigma'
                d[2][k] = to_acc(dh[r1 + j]) * tc * ((A(1) - o) * o);        // do sigma'
                A dg = d_c * i;
                dg -= g * g * dg;
                d[3][k] = dg;                                                // dg tanh'
                dc_prev[r1 + j] = from_acc<T>(d_c * f);
#pragma unroll
                for (int s = 0; s < 4; ++s) {
                    const int col = s * H + j;
                    da_x[r4 + col] = from_acc<T>(d[s][k]);
                    if (groups_h) {
                        const A xh = to_acc(xhat_h[r4 + col]);
                        add_part(mine, first, col, d[s][k] * xh);     // dg_h
                        add_part(mine, first, 4 * H + col, d[s][k]);  // db_h
                        d[s][k] *= param_or(g_h, col, A(1));          // dxhat_h
                        sum_d[s] += d[s][k];
                        sum_dx[s] += d[s][k] * xh;
                    }
                }
            }
        }
        // 3. through LN_h, back to the product h_{t-1} W_h
        if (groups_h) {  // uniform over the block
            slot_means(sum_d, sum_dx, grp, H, scratch);
            A rs[4];
#pragma unroll
            for (int s = 0; s < 4; ++s) rs[s] = rstd_h[row * groups_h + (groups_h == 1 ? 0 : s)];
#pragma unroll
            for (int k = 0; k < ITEMS; ++k) {
                const int j = threadIdx.x + k * stride;
                if (j < H) {
#pragma unroll
                    for (int s = 0; s < 4; ++s) {
                        const int col = s * H + j;
                        const A xh = to_acc(xhat_h[r4 + col]);
                        da_h[r4 + col] = from_acc<T>((d[s][k] - sum_d[s] - xh * sum_dx[s]) * rs[s]);
                    }
                }
            }
        }
    }
}

// ---- GRU (reset after U) ------------------------------------------------------------------------------

// a_x (B, 3H) = [W_x x + b | W_xc x + b_c]; a_hh (B, 3H): in, h_{t-1} [W_h | U]; out, xhat of LN_h over its
// first 2H columns and of LN_hc over the last H (each untouched without its LN); h_prev (B, H); gains and
// biases nullable. Out: h, h_hat (B, H), gates (B, 2H) = z | r, rstd_h (B, groups_h), rstd_hc (B,).
template <typename T, int ITEMS>
__global__ void __launch_bounds__(256, 1)
gru_forward(const T* __restrict__ a_x, T* a_hh, const T* __restrict__ h_prev, const T* __restrict__ g_h,
            const T* __restrict__ b_h, const T* __restrict__ g_hc, const T* __restrict__ b_hc, T* __restrict__ h,
            T* __restrict__ gates, T* __restrict__ h_hat, typename Acc<T>::type* __restrict__ rstd_h,
            typename Acc<T>::type* __restrict__ rstd_hc, long long rows, int H, int groups_h, int ln_hc,
            double eps_h, double eps_hc) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[6 * 32];
    const int stride = blockDim.x;
    // slots z, r (LN_h) and the candidate's U h (LN_hc): both LNs share one pair of block reductions
    const int grp[3] = {gate_group(groups_h, 0), gate_group(groups_h, 1), ln_hc ? 2 : -1};
    const A eps[3] = {A(eps_h), A(eps_h), A(eps_hc)};
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long r3 = row * 3 * H, r1 = row * H, r2 = row * 2 * H;
        A v[3][ITEMS];
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
#pragma unroll
            for (int s = 0; s < 3; ++s) v[s][k] = j < H ? to_acc(a_hh[r3 + s * H + j]) : A(0);
        }
        if (groups_h || ln_hc) {  // uniform over the block
            A rs[3];
            standardize_slots(v, grp, eps, H, scratch, rs);
            if (threadIdx.x == 0) {
#pragma unroll
                for (int s = 0; s < 2; ++s)
                    if (s < groups_h) rstd_h[row * groups_h + s] = rs[s];
                if (ln_hc) rstd_hc[row] = rs[2];
            }
        }
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
            if (j < H) {
                A rec[2];
#pragma unroll
                for (int s = 0; s < 2; ++s) {
                    const int col = s * H + j;
                    rec[s] = v[s][k];
                    if (groups_h) {
                        a_hh[r3 + col] = from_acc<T>(rec[s]);
                        rec[s] = rec[s] * param_or(g_h, col, A(1)) + param_or(b_h, col, A(0));
                    }
                }
                A u = v[2][k];
                if (ln_hc) {
                    a_hh[r3 + 2 * H + j] = from_acc<T>(u);
                    u = u * param_or(g_hc, j, A(1)) + param_or(b_hc, j, A(0));
                }
                const A z = sigmoid_acc(to_acc(a_x[r3 + j]) + rec[0]);
                const A r = sigmoid_acc(to_acc(a_x[r3 + H + j]) + rec[1]);
                const A hh = tanh(r * u + to_acc(a_x[r3 + 2 * H + j]));  // the reset after U: r * LN(U h)
                const A hp = to_acc(h_prev[r1 + j]);
                gates[r2 + j] = from_acc<T>(z);
                gates[r2 + H + j] = from_acc<T>(r);
                h_hat[r1 + j] = from_acc<T>(hh);
                h[r1 + j] = from_acc<T>((hh - hp) * z + hp);  // (1 - z) h_{t-1} + z h_hat
            }
        }
    }
}

// dh (B, H); the forward's h_prev, gates, h_hat, xhat (its a_hh), rstd_h / rstd_hc, gains and g_hc, b_hc
// (to recompute u) nullable. Out: da_x (B, 3H); da_hh (B, 3H), the gradient of h_{t-1} [W_h | U];
// dh_prev (B, H): the direct part (1 - z) dh only (the launch code adds da_hh [W_h | U]^T);
// part (gridDim.x, width): 4H with LN_h (sum dy xhat_h | sum dy), then 2H with LN_hc (the same for LN_hc).
template <typename T, int ITEMS>
__global__ void __launch_bounds__(256, 1)
gru_backward(const T* __restrict__ dh, const T* __restrict__ h_prev, const T* __restrict__ gates,
             const T* __restrict__ h_hat, const T* __restrict__ xhat,
             const typename Acc<T>::type* __restrict__ rstd_h, const typename Acc<T>::type* __restrict__ rstd_hc,
             const T* __restrict__ g_h, const T* __restrict__ g_hc, const T* __restrict__ b_hc,
             T* __restrict__ da_x, T* __restrict__ da_hh, T* __restrict__ dh_prev,
             typename Acc<T>::type* __restrict__ part, long long rows, int H, int groups_h, int ln_hc) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[6 * 32];
    const int stride = blockDim.x;
    const int base_hc = groups_h ? 4 * H : 0, width = base_hc + (ln_hc ? 2 * H : 0);
    A* mine = part ? part + (long long)blockIdx.x * width : nullptr;
    const int grp[3] = {gate_group(groups_h, 0), gate_group(groups_h, 1), ln_hc ? 2 : -1};
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long r3 = row * 3 * H, r1 = row * H, r2 = row * 2 * H;
        const bool first = row == blockIdx.x;
        A d[3][ITEMS];  // per slot z, r, U h: dy of its LN, then dxhat (normalized slots), then da
        A sum_d[3] = {A(0), A(0), A(0)}, sum_dx[3] = {A(0), A(0), A(0)};
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
#pragma unroll
            for (int s = 0; s < 3; ++s) d[s][k] = A(0);
            if (j < H) {
                const A g = to_acc(dh[r1 + j]), z = to_acc(gates[r2 + j]), r = to_acc(gates[r2 + H + j]);
                const A hh = to_acc(h_hat[r1 + j]), hp = to_acc(h_prev[r1 + j]);
                dh_prev[r1 + j] = from_acc<T>(g - g * z);  // h = h_{t-1} + z (h_hat - h_{t-1})
                A ds = g * z;                               // d h_hat, then through tanh:
                ds -= hh * hh * ds;                         //   ds = dh z (1 - h_hat^2)
                da_x[r3 + 2 * H + j] = from_acc<T>(ds);
                const A xc = to_acc(xhat[r3 + 2 * H + j]);
                const A u = ln_hc ? xc * param_or(g_hc, j, A(1)) + param_or(b_hc, j, A(0)) : xc;
                d[0][k] = (hh - hp) * g * ((A(1) - z) * z);  // dz sigma'
                d[1][k] = ds * u * ((A(1) - r) * r);         // dr sigma'
                d[2][k] = ds * r;                            // du
                da_x[r3 + j] = from_acc<T>(d[0][k]);
                da_x[r3 + H + j] = from_acc<T>(d[1][k]);
#pragma unroll
                for (int s = 0; s < 3; ++s) {
                    if (grp[s] < 0) continue;  // no LN: da_hh = dy as it is
                    const int col = s * H + j;
                    const A xh = s < 2 ? to_acc(xhat[r3 + col]) : xc;
                    const int p = s < 2 ? col : base_hc + j;  // this slot's column in the partial sums
                    const int nb = s < 2 ? 2 * H : H;       // the bias sums follow the gain sums
                    add_part(mine, first, p, d[s][k] * xh);
                    add_part(mine, first, p + nb, d[s][k]);
                    d[s][k] *= s < 2 ? param_or(g_h, col, A(1)) : param_or(g_hc, j, A(1));  // dxhat
                    sum_d[s] += d[s][k];
                    sum_dx[s] += d[s][k] * xh;
                }
            }
        }
        if (groups_h || ln_hc) slot_means(sum_d, sum_dx, grp, H, scratch);  // uniform over the block
        A rs[3];
        rs[0] = groups_h ? rstd_h[row * groups_h] : A(1);
        rs[1] = groups_h ? rstd_h[row * groups_h + (groups_h == 1 ? 0 : 1)] : A(1);
        rs[2] = ln_hc ? rstd_hc[row] : A(1);
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
            if (j < H) {
#pragma unroll
                for (int s = 0; s < 3; ++s) {
                    const int col = s * H + j;
                    A da = d[s][k];
                    if (grp[s] >= 0) da = (da - sum_d[s] - to_acc(xhat[r3 + col]) * sum_dx[s]) * rs[s];
                    da_hh[r3 + col] = from_acc<T>(da);
                }
            }
        }
    }
}
