// Shared device helpers of lnedu's fused kernels: storage types, warp and block reductions.
//
// Conventions of every kernel in this folder
// * One thread block owns whole rows (one training case at a time) and walks the rows with a grid-stride
//   loop, so a row's statistics never leave the block. Thread t of a block owns the elements (or the
//   hidden units) t, t + blockDim.x, t + 2 blockDim.x, ... of its row, ITEMS of them, and keeps them in
//   registers: a row is read from memory once, however many passes the arithmetic makes over it.
// * blockDim.x is a multiple of 32 (whole warps), and every thread of a block calls every reduction,
//   including threads whose items lie past the end of the row (they contribute zeros).
// * Storage type T is float, double, lnedu_half (IEEE float16 bits) or lnedu_bf16 (bfloat16 bits: the top
//   half of a float32); arithmetic and statistics run in Acc<T>::type: double for double, else float.
// The same source compiles under NVRTC (what CuPy uses) and, for the tests, as plain C++ on the CPU with
// tests/cuda_emulator/emulate.h standing in for the CUDA built-ins.
#pragma once

struct lnedu_half {  // float16 storage; converted with the PTX cvt instructions, so no CUDA header is needed
    unsigned short bits;
};

struct lnedu_bf16 {  // bfloat16 storage: a float32 with the low 16 bits of its mantissa dropped
    unsigned short bits;
};

template <typename T> struct Acc { typedef float type; };
template <> struct Acc<double> { typedef double type; };

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(lnedu_half v) {
#ifdef LNEDU_EMULATE
    return emu_half_to_float(v.bits);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
#endif
}

// bfloat16 -> float is exact: the 16 bits become the top of a float32. Plain integer code, so it needs no
// CUDA header and runs on every architecture (and in the CPU emulator) alike.
__device__ __forceinline__ float to_acc(lnedu_bf16 v) { return __uint_as_float(static_cast<unsigned>(v.bits) << 16); }

template <typename T> __device__ __forceinline__ T from_acc(typename Acc<T>::type v);
template <> __device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <> __device__ __forceinline__ double from_acc<double>(double v) { return v; }
template <> __device__ __forceinline__ lnedu_half from_acc<lnedu_half>(float v) {
    lnedu_half h;
#ifdef LNEDU_EMULATE
    h.bits = emu_float_to_half(v);
#else
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(v));  // round to nearest even
#endif
    return h;
}
// float -> bfloat16, rounded to nearest even: add half a unit of the 16th bit (plus one when the kept part
// is odd, to break ties to even), then drop the low half. A NaN stays a (quiet) NaN.
template <> __device__ __forceinline__ lnedu_bf16 from_acc<lnedu_bf16>(float v) {
    const unsigned u = __float_as_uint(v);
    lnedu_bf16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u)
        b.bits = static_cast<unsigned short>((u >> 16) | 0x40u);
    else
        b.bits = static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return b;
}

// Element j of an optional per-unit parameter (a gain or a bias); a null pointer means `fallback`.
template <typename T>
__device__ __forceinline__ typename Acc<T>::type param_or(const T* p, int j, typename Acc<T>::type fallback) {
    return p ? to_acc(p[j]) : fallback;
}

// ---- reductions -----------------------------------------------------------------------------------------

// Sum of v over the 32 lanes of a warp; every lane gets the total (butterfly of xor shuffles).
template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Sums of N values over the whole block, in place; every thread gets the totals. `scratch` is a
// __shared__ array of at least 32 * N elements. Safe to call again straight away: the first barrier
// waits until every thread has read the previous call's totals out of `scratch`.
template <int N, typename A> __device__ __forceinline__ void block_sum(A (&v)[N], A* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int n = 0; n < N; ++n) v[n] = warp_sum(v[n]);
    __syncthreads();
    if (lane == 0) {
#pragma unroll
        for (int n = 0; n < N; ++n) scratch[n * 32 + warp] = v[n];
    }
    __syncthreads();
    // every warp adds up the per-warp totals itself, so no third barrier is needed to share the result
#pragma unroll
    for (int n = 0; n < N; ++n) v[n] = warp_sum(lane < warps ? scratch[n * 32 + lane] : A(0));
}

// Row statistics for layer norm from values held in registers, by the corrected two-pass method that the
// portable code uses (lnedu/functional/norms.py): mean first, then the centred values, whose mean `d`
// holds the rounding error of the first mean and is taken out again. On return v[] holds x - mean,
// *mean the mean and the function's value is 1/sqrt(var + eps). Items at or past `n` must hold 0.
template <int ITEMS, typename A>
__device__ __forceinline__ A row_moments(A (&v)[ITEMS], int n, int stride, A eps, A* scratch, A* mean_out) {
    A s[1] = {A(0)};
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) s[0] += v[k];
    block_sum(s, scratch);
    const A mean = s[0] / A(n);
    A dq[2] = {A(0), A(0)};  // sum of the centred values, and of their squares
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
        if (threadIdx.x + k * stride < n) {
            v[k] -= mean;
            dq[0] += v[k];
            dq[1] += v[k] * v[k];
        }
    }
    block_sum(dq, scratch);
    const A d = dq[0] / A(n);
    A var = dq[1] / A(n) - d * d;
    var = var < A(0) ? A(0) : var;  // a rounding-level negative becomes 0; a NaN stays NaN, as in NumPy
#pragma unroll
    for (int k = 0; k < ITEMS; ++k)
        if (threadIdx.x + k * stride < n) v[k] -= d;
    *mean_out = mean + d;
    return A(1) / sqrt(var + eps);
}
