// Just enough of the CUDA programming model to run csrc/info_nce/core_cuda.cu on the host, so
// that the C++ tests check the kernels' logic (tiling, indexing, barriers, warp reductions,
// masks, dtype conversions) on machines without a GPU.  Not a simulator of timing or of
// memory-model corner cases.
//
// A launch runs its blocks one after another on one std::thread per CUDA thread;
// __syncthreads is a std::barrier over the block, and a warp shuffle is an exchange through
// a per-warp buffer between two barriers of the warp.  Since blocks do not overlap, a
// function-static variable serves as the block's __shared__ memory.  CMakeLists.txt rewrites
// each `kernel<<<grid, block, shared, stream>>>(args)` into
// `igrsr_emulation::launch(grid, block, shared, stream, kernel)(args)`.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

using cudaStream_t = void*;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }

namespace igrsr_emulation {

constexpr int kWarpSize = 32;

struct Index {
  unsigned int x, y, z;
};

struct Warp {
  std::barrier<> sync{kWarpSize};
  double lanes[kWarpSize];
};

struct Block {
  explicit Block(int threads) : sync(threads) {
    for (int warp = 0; warp < threads / kWarpSize; ++warp) warps.push_back(std::make_unique<Warp>());
  }
  std::barrier<> sync;
  std::vector<std::unique_ptr<Warp>> warps;
};

inline thread_local Index thread_index{};
inline thread_local Index block_index{};
inline thread_local Index block_dim{};
inline thread_local Block* current_block = nullptr;

// One std::thread per CUDA thread, reused for every block of the launch; a barrier after each
// block keeps the next one from touching the static "shared memory" too early.
template <typename Kernel>
struct Launch {
  unsigned int grid;
  int threads;
  Kernel kernel;

  template <typename... Args>
  void operator()(Args... args) const {
    Block block(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        thread_index = {static_cast<unsigned int>(t), 0, 0};
        block_dim = {static_cast<unsigned int>(threads), 1, 1};
        current_block = &block;
        for (unsigned int b = 0; b < grid; ++b) {
          block_index = {b, 0, 0};
          kernel(args...);
          block.sync.arrive_and_wait();
        }
      });
    for (std::thread& worker : workers) worker.join();
  }
};

template <typename Kernel>
Launch<Kernel> launch(unsigned int grid, int threads, int /*shared_bytes*/, cudaStream_t /*stream*/, Kernel kernel) {
  return {grid, threads, kernel};
}

}  // namespace igrsr_emulation

#define threadIdx (igrsr_emulation::thread_index)
#define blockIdx (igrsr_emulation::block_index)
#define blockDim (igrsr_emulation::block_dim)

inline void __syncthreads() { igrsr_emulation::current_block->sync.arrive_and_wait(); }

// Every lane of the warp must call it, as on a GPU with a full mask.
template <typename T>
T __shfl_xor_sync(unsigned int /*mask*/, T value, int lane_mask) {
  using igrsr_emulation::kWarpSize;
  igrsr_emulation::Warp& warp = *igrsr_emulation::current_block->warps[threadIdx.x / kWarpSize];
  const unsigned int lane = threadIdx.x % kWarpSize;
  warp.lanes[lane] = static_cast<double>(value);
  warp.sync.arrive_and_wait();
  const T other = static_cast<T>(warp.lanes[lane ^ static_cast<unsigned int>(lane_mask)]);
  warp.sync.arrive_and_wait();
  return other;
}

inline float __expf(float x) { return std::exp(x); }
// Correctly rounded arithmetic that the device compiler may not contract; std::fma is fused.
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
