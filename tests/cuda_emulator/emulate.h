// A CPU stand-in for the few CUDA built-ins lnedu's kernels use, so that the kernel source itself can be
// compiled by g++ and run by the tests on a machine with no GPU.
//
// A launch runs the blocks one after another; a block runs as blockDim.x real threads (std::thread), so
// __syncthreads() is a real barrier and a missing one shows up as a wrong answer or a data race. The threads
// are kept from block to block and launch to launch (emu::Pool): starting one cost ~70 us on the test machine,
// which made up most of a launch's time.
// __shared__ variables become function statics (one block at a time uses them). A warp shuffle is an
// exchange through a buffer between two barriers of its own warp: it needs all 32 lanes to take part, as a
// full-mask shuffle does on the GPU. Under ThreadSanitizer (tests/test_cuda_races.py) a data race between
// the threads of a block (a missing __syncthreads) is reported, not just a chance of a wrong answer.
// What this does not model: warp-level timing, memory coalescing, register limits, float rounding modes of the GPU's fused
// multiply-add (g++ may or may not contract a * b + c), and anything faster than a few hundred threads.
#pragma once
#define LNEDU_EMULATE 1

#include <atomic>
#include <barrier>
#include <cmath>
#include <math.h>
#include <cstdint>
#include <functional>
#include <memory>
#include <semaphore>
#include <thread>
#include <vector>

using std::sqrt;
using std::tanh;
using std::exp;
using std::fabs;

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

namespace emu {
inline std::barrier<>* block_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;  // one per warp of the block
inline std::vector<double> exchange;  // one slot per thread of the block, for the shuffles
}  // namespace emu

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }

// A shuffle synchronizes the 32 lanes of its warp and nothing else, as on the GPU: a kernel that relies on
// it to order other warps' work (a missing __syncthreads) races here too, and ThreadSanitizer sees it.
template <typename V> inline V __shfl_xor_sync(unsigned /*mask*/, V v, int lane_mask) {
    const unsigned t = threadIdx.x;
    std::barrier<>& warp = *emu::warp_barriers[t / 32];
    emu::exchange[t] = static_cast<double>(v);  // exact for float and double
    warp.arrive_and_wait();
    V other = static_cast<V>(emu::exchange[t ^ static_cast<unsigned>(lane_mask)]);
    warp.arrive_and_wait();
    return other;
}

inline float __uint_as_float(unsigned u) {
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    __builtin_memcpy(&u, &f, 4);
    return u;
}

inline float emu_half_to_float(unsigned short bits) {
    _Float16 h;
    static_assert(sizeof(h) == sizeof(bits), "float16 is 2 bytes");
    __builtin_memcpy(&h, &bits, 2);
    return static_cast<float>(h);
}
inline unsigned short emu_float_to_half(float f) {
    _Float16 h = static_cast<_Float16>(f);  // round to nearest even, as cvt.rn
    unsigned short bits;
    __builtin_memcpy(&bits, &h, 2);
    return bits;
}

namespace emu {
// The threads that run a block: thread t of every block is always the same thread, started the first time a
// block needs it and then waiting on its own semaphore. The launcher releases the first `block` of them and
// waits until the last one is done; the semaphores and the countdown order one block's work before the next
// (as the end of a launch does on the GPU), so ThreadSanitizer sees only races within a block.
class Pool {
  public:
    void run(unsigned block, unsigned b, const std::function<void()>& body) {
        while (workers_.size() < block) {
            workers_.push_back(std::make_unique<Worker>());
            Worker* w = workers_.back().get();
            w->t = static_cast<unsigned>(workers_.size() - 1);
            std::thread([this, w] { loop(w); }).detach();  // waits for work until the process ends
        }
        body_ = &body;
        block_index_ = b;
        left_.store(block, std::memory_order_relaxed);
        for (unsigned t = 0; t < block; ++t) workers_[t]->go.release();
        done_.acquire();
    }

  private:
    struct Worker {
        std::binary_semaphore go{0};
        unsigned t = 0;
    };
    void loop(Worker* w) {
        threadIdx.x = w->t;
        for (;;) {
            w->go.acquire();
            blockIdx.x = block_index_;
            (*body_)();
            if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.release();
        }
    }
    std::vector<std::unique_ptr<Worker>> workers_;
    const std::function<void()>* body_ = nullptr;
    unsigned block_index_ = 0;
    std::atomic<unsigned> left_{0};
    std::binary_semaphore done_{0};
};
inline Pool& pool() {
    static Pool* p = new Pool;  // never destroyed: its detached threads wait in it until the process exits
    return *p;
}
}  // namespace emu

// Run `body` as the kernel <<<grid, block>>>: blocks in turn, each as `block` threads.
inline void emu_launch(unsigned grid, unsigned block, const std::function<void()>& body) {
    gridDim.x = grid;
    blockDim.x = block;
    emu::exchange.assign(block, 0.0);
    emu::warp_barriers.clear();
    for (unsigned w = 0; w < (block + 31) / 32; ++w)
        emu::warp_barriers.push_back(std::make_unique<std::barrier<>>(block - 32 * w < 32 ? block - 32 * w : 32));
    for (unsigned b = 0; b < grid; ++b) {
        std::barrier<> bar(block);
        emu::block_barrier = &bar;
        emu::pool().run(block, b, body);
    }
    emu::block_barrier = nullptr;
}

// cuLaunchKernel-style call: `args[i]` points at the i-th argument's value.
template <typename... Args, std::size_t... I>
inline void emu_call(void (*f)(Args...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<Args>>*>(args[I])...);
}
template <typename... Args> inline std::function<void(unsigned, unsigned, void**)> emu_kernel(void (*f)(Args...)) {
    return [f](unsigned grid, unsigned block, void** args) {
        emu_launch(grid, block, [&] { emu_call(f, args, std::index_sequence_for<Args...>{}); });
    };
}
