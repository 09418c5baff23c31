// Fused layer norm and RMSNorm, forward and backward (see common.cuh for the conventions).
//
// Layer norm (CENTER = true), Ba, Kiros & Hinton (2016) Eq. 3-5, per row of n units:
//     xhat = (x - mean) / sqrt(var + eps),  y = gain * xhat + bias
//     dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = dy * gain
// RMSNorm (CENTER = false), Zhang & Sennrich (2019): no mean, xhat = x / sqrt(mean(x^2) + eps), and the
// backward loses its mean(dxhat) term. Gains and biases may be null pointers (gain 1, bias 0).
//
// The forward reads x once and writes y, xhat (what the backward needs, the same cache as the portable
// code) and one rstd per row. The backward reads dy and xhat once, writes dx, and adds each row's
// dy * xhat and dy into per-thread registers, so that the gain and bias gradients need no second read of
// dy: each block writes one row of partial sums per column, and sum_columns adds the blocks' rows up.
#pragma once
#include "common.cuh"

template <typename T, int ITEMS, bool CENTER>
__global__ void __launch_bounds__(ITEMS <= 4 ? 1024 : (ITEMS <= 8 ? 512 : 256))
norm_forward(const T* __restrict__ x, const T* __restrict__ gain, const T* __restrict__ bias,
             T* __restrict__ y, T* __restrict__ xhat, typename Acc<T>::type* __restrict__ rstd_out,
             long long rows, int n, double eps) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[2 * 32];
    const int stride = blockDim.x;
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long base = row * n;
        A v[ITEMS];
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
            v[k] = j < n ? to_acc(x[base + j]) : A(0);
        }
        A rstd;
        if (CENTER) {
            A mean;
            rstd = row_moments(v, n, stride, A(eps), scratch, &mean);
        } else {
            A q[1] = {A(0)};
#pragma unroll
            for (int k = 0; k < ITEMS; ++k) q[0] += v[k] * v[k];
            block_sum(q, scratch);
            rstd = A(1) / sqrt(q[0] / A(n) + A(eps));
        }
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
            if (j < n) {
                const A xh = v[k] * rstd;
                xhat[base + j] = from_acc<T>(xh);
                A out = xh * param_or(gain, j, A(1));
                if (CENTER) out += param_or(bias, j, A(0));
                y[base + j] = from_acc<T>(out);
            }
        }
        if (threadIdx.x == 0) rstd_out[row] = rstd;
    }
}

// part: (gridDim.x, w) partial sums in Acc<T>, row b = [sum dy * xhat | sum dy] over the rows that block b
// did; w = 2 n for layer norm, w = n for RMSNorm (no bias, so only the first half).
template <typename T, int ITEMS, bool CENTER>
__global__ void __launch_bounds__(ITEMS <= 4 ? 1024 : (ITEMS <= 8 ? 512 : 256))
norm_backward(const T* __restrict__ dy, const T* __restrict__ xhat, const typename Acc<T>::type* __restrict__ rstd,
              const T* __restrict__ gain, T* __restrict__ dx, typename Acc<T>::type* __restrict__ part,
              long long rows, int n) {
    typedef typename Acc<T>::type A;
    __shared__ A scratch[2 * 32];
    const int stride = blockDim.x;
    A part_g[ITEMS], part_b[ITEMS];
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) part_g[k] = part_b[k] = A(0);
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long base = row * n;
        A d[ITEMS], xh[ITEMS];
        A m[2] = {A(0), A(0)};  // sum(dxhat), sum(dxhat * xhat) over the row
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
            const A g = j < n ? to_acc(dy[base + j]) : A(0);
            xh[k] = j < n ? to_acc(xhat[base + j]) : A(0);
            part_g[k] += g * xh[k];
            part_b[k] += g;
            d[k] = j < n ? g * param_or(gain, j, A(1)) : A(0);  // dxhat
            m[0] += d[k];
            m[1] += d[k] * xh[k];
        }
        block_sum(m, scratch);
        const A r = rstd[row], mean_d = CENTER ? m[0] / A(n) : A(0), proj = m[1] / A(n);
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = threadIdx.x + k * stride;
            if (j < n) dx[base + j] = from_acc<T>(r * (d[k] - mean_d - xh[k] * proj));
        }
    }
    A* mine = part + (long long)blockIdx.x * (CENTER ? 2 : 1) * n;
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
        const int j = threadIdx.x + k * stride;
        if (j < n) {
            mine[j] = part_g[k];
            if (CENTER) mine[n + j] = part_b[k];
        }
    }
}

// out[j] = sum over b < parts of part[b, j], for j < cols, cast to T. One thread per column: the loads of a
// warp are consecutive columns of one row, so they coalesce; the blocks' order is fixed, so the result is
// the same on every run (no atomics).
template <typename T>
__global__ void sum_columns(const typename Acc<T>::type* __restrict__ part, int parts, int cols, T* __restrict__ out) {
    typedef typename Acc<T>::type A;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += gridDim.x * blockDim.x) {
        A s = A(0);
        for (int b = 0; b < parts; ++b) s += part[(long long)b * cols + j];
        out[j] = from_acc<T>(s);
    }
}
