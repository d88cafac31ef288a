// CUDA InfoNCE: tiled similarity, online log-sum-exp, gradients recomputed tile by tile.
//
// Kernels (all torch-free; see core_cuda.h for the host API and core_math.h for the math):
//   prepare_view     one warp per row: z -> a (normalized or converted) in the compute type
//   logsumexp        one block per 32 anchors, sweeping all keys 64 at a time: each thread keeps
//                    an online (max, sum) for its 2 anchors over its 4 keys of every tile, then
//                    the 16 threads of an anchor merge theirs with warp shuffles
//   loss_rows        one thread per row
//   anchor_grad      one block per 32 anchors: recompute the logit tile, turn it into dL/ds in
//                    shared memory, accumulate dL/ds · keys in registers (d up to 512)
//   finish_grad      one warp per row: normalization backward and conversion to the input type
// The column direction (symmetric loss, and dL/dz2 always) is the same kernel with the two
// views swapped, so dL/dz2 is a second pass over columns rather than atomics: deterministic.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core_cuda.h"
#include "core_math.h"

namespace igrsr {
namespace info_nce {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kLanesPerRow = 16;                          // threads sharing an anchor: a half warp
constexpr int kRowGroups = kThreads / kLanesPerRow;       // 16
constexpr int kAnchorTile = 32;                           // anchors per block
constexpr int kKeyTile = 64;                              // keys per step of the sweep
constexpr int kDimChunk = 32;                             // features staged in shared memory at once
constexpr int kRowsPerThread = kAnchorTile / kRowGroups;  // 2 anchors per thread
constexpr int kKeysPerThread = kKeyTile / kLanesPerRow;   // 4 keys per thread and tile
constexpr int kDimsPerThread = kDimChunk / kLanesPerRow;  // 2 features per thread and chunk
constexpr int kRowsPerBlock = kThreads / kWarpSize;       // row-wise kernels: a warp per row
static_assert(kAnchorTile % kRowGroups == 0 && kKeyTile % kLanesPerRow == 0, "tiles split evenly");

template <typename Real>
struct PassArgs {
  const Real* anchors;  // (batch, dim)
  const Real* keys;     // (batch, dim)
  int64_t batch;
  int dim;
  Real inv_temperature;
  PairRule rule;
};

// +1 column: consecutive rows start in different banks.
template <typename Real>
struct Tiles {
  Real anchors[kAnchorTile][kDimChunk + 1];
  Real keys[kKeyTile][kDimChunk + 1];
};

// Thread (row_group, lane) handles anchors row_group + kRowGroups·r and keys lane + kLanesPerRow·c
// of a tile; the 16 lanes of a row group are one half warp.
struct Place {
  int row_group;
  int lane;
};

__device__ __forceinline__ Place thread_place() {
  return {static_cast<int>(threadIdx.x) / kLanesPerRow, static_cast<int>(threadIdx.x) % kLanesPerRow};
}

// rows [row_begin, row_begin + kRows) × features [dim_begin, dim_begin + kDimChunk) of source,
// zero outside the matrix.  Consecutive threads read consecutive features: coalesced.
template <int kRows, typename Real>
__device__ __forceinline__ void load_chunk(const Real* source, int64_t row_begin, int64_t batch, int dim, int dim_begin,
                                           Real (*tile)[kDimChunk + 1]) {
  for (int index = threadIdx.x; index < kRows * kDimChunk; index += kThreads) {
    const int row = index / kDimChunk;
    const int col = index % kDimChunk;
    const int64_t source_row = row_begin + row;
    const int source_col = dim_begin + col;
    tile[row][col] = source_row < batch && source_col < dim ? source[source_row * dim + source_col] : Real(0);
  }
}

// Explicitly rounded multiply and fused multiply-add, which the compiler may not contract with
// their neighbours.  The backward must recompute bitwise the logits whose log-sum-exp the
// forward stored: with plain operators nvcc fuses the backward's s·(1/τ) − lse into one FMA,
// skipping the rounding of s/τ, and every probability exp(s/τ − lse) moves by up to half an
// ulp of s/τ, 0.4% at |s/τ| ~ 1e5 (unnormalized views at τ = 0.01).
__device__ __forceinline__ float multiply(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double multiply(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float multiply_add(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double multiply_add(double a, double b, double c) { return __fma_rn(a, b, c); }

// This thread's logits of the tile (anchor_begin, key_begin): s = anchor·key / τ.
template <typename Real>
__device__ __forceinline__ void compute_logits(const PassArgs<Real>& pass, int64_t anchor_begin, int64_t key_begin,
                                               Tiles<Real>& tiles, Real (&logits)[kRowsPerThread][kKeysPerThread]) {
  const Place place = thread_place();
#pragma unroll
  for (int r = 0; r < kRowsPerThread; ++r)
#pragma unroll
    for (int c = 0; c < kKeysPerThread; ++c) logits[r][c] = Real(0);
  for (int dim_begin = 0; dim_begin < pass.dim; dim_begin += kDimChunk) {
    __syncthreads();  // the previous chunk (or tile) has been read by everyone
    load_chunk<kAnchorTile>(pass.anchors, anchor_begin, pass.batch, pass.dim, dim_begin, tiles.anchors);
    load_chunk<kKeyTile>(pass.keys, key_begin, pass.batch, pass.dim, dim_begin, tiles.keys);
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < kDimChunk; ++k) {
      Real key_values[kKeysPerThread];
#pragma unroll
      for (int c = 0; c < kKeysPerThread; ++c) key_values[c] = tiles.keys[place.lane + kLanesPerRow * c][k];
#pragma unroll
      for (int r = 0; r < kRowsPerThread; ++r) {
        const Real anchor_value = tiles.anchors[place.row_group + kRowGroups * r][k];
#pragma unroll
        for (int c = 0; c < kKeysPerThread; ++c) logits[r][c] = multiply_add(anchor_value, key_values[c], logits[r][c]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerThread; ++r)
#pragma unroll
    for (int c = 0; c < kKeysPerThread; ++c) logits[r][c] = multiply(logits[r][c], pass.inv_temperature);
}

// Where a row sits and whether it takes part; rows past the batch take no part.
struct RowInfo {
  int64_t row;
  bool valid;
  bool takes_part;
  int64_t group;
};

__device__ __forceinline__ RowInfo row_info(const PairRule& rule, int64_t row, int64_t batch) {
  const bool valid = row < batch;
  return {row, valid, valid && takes_part(rule, row), valid ? group_of(rule, row) : 0};
}

__device__ __forceinline__ bool counts(const RowInfo& anchor, const RowInfo& key) {
  return pair_counts(anchor.takes_part, key.takes_part, anchor.row == key.row, anchor.group == key.group);
}

// One more term x in an online log-sum-exp: a single exp per term.
template <typename Real>
__device__ __forceinline__ LogSumExp<Real> add_term(const LogSumExp<Real>& acc, Real x) {
  if (x > acc.max) return {x, acc.sum * exp_of(acc.max - x) + Real(1)};
  return {acc.max, acc.sum + exp_of(x - acc.max)};
}

// Merges the log-sum-exps of the 16 lanes of each half warp.
template <typename Real>
__device__ __forceinline__ LogSumExp<Real> merge_lanes(LogSumExp<Real> acc) {
#pragma unroll
  for (int offset = kLanesPerRow / 2; offset > 0; offset /= 2) {
    const LogSumExp<Real> other{__shfl_xor_sync(0xffffffffu, acc.max, offset),
                                __shfl_xor_sync(0xffffffffu, acc.sum, offset)};
    acc = merge(acc, other);
  }
  return acc;
}

// lse[anchor] over the keys that count; positives[anchor] = s(anchor, anchor) when not null.
template <typename Real>
__global__ void __launch_bounds__(kThreads) logsumexp_kernel(PassArgs<Real> pass, Real* lse, Real* positives) {
  __shared__ Tiles<Real> tiles;
  const Place place = thread_place();
  const int64_t anchor_begin = static_cast<int64_t>(blockIdx.x) * kAnchorTile;
  RowInfo anchors[kRowsPerThread];
  LogSumExp<Real> running[kRowsPerThread];
#pragma unroll
  for (int r = 0; r < kRowsPerThread; ++r) {
    anchors[r] = row_info(pass.rule, anchor_begin + place.row_group + kRowGroups * r, pass.batch);
    running[r] = empty_log_sum_exp<Real>();
  }
  for (int64_t key_begin = 0; key_begin < pass.batch; key_begin += kKeyTile) {
    Real logits[kRowsPerThread][kKeysPerThread];
    compute_logits(pass, anchor_begin, key_begin, tiles, logits);
#pragma unroll
    for (int c = 0; c < kKeysPerThread; ++c) {
      const RowInfo key = row_info(pass.rule, key_begin + place.lane + kLanesPerRow * c, pass.batch);
#pragma unroll
      for (int r = 0; r < kRowsPerThread; ++r) {
        if (positives != nullptr && key.valid && anchors[r].row == key.row) positives[key.row] = logits[r][c];
        if (counts(anchors[r], key)) running[r] = add_term(running[r], logits[r][c]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerThread; ++r) {
    const LogSumExp<Real> total = merge_lanes(running[r]);
    if (place.lane == 0 && anchors[r].valid) lse[anchors[r].row] = finish(total);
  }
}

template <typename Real>
__global__ void loss_rows_kernel(int64_t batch, PairRule rule, bool symmetric, const Real* positives,
                                 const Real* lse_rows, const Real* lse_cols, Real* loss_rows) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= batch) return;
  const Real lse_col = symmetric ? lse_cols[row] : Real(0);
  loss_rows[row] = row_loss(takes_part(rule, row), symmetric, positives[row], lse_rows[row], lse_col);
}

// Weight and log-sum-exp of one row's softmax in one direction.
template <typename Real>
struct RowGrad {
  Real weight;
  Real lse;
};

template <typename Real>
__device__ __forceinline__ RowGrad<Real> row_grad(const GradPass<Real>& grad, const Direction<Real>& direction,
                                                  const RowInfo& row) {
  if (!row.valid) return {Real(0), Real(0)};
  return {direction_weight(grad, direction, row.takes_part, row.row),
          direction.lse != nullptr ? direction.lse[row.row] : Real(0)};
}

// grad_anchors[anchor] = (1/τ) Σ_key dL/ds(anchor, key) · key.  kMaxChunks = ⌈dim / 32⌉ rounded
// up to a power of two: the accumulators of the whole row live in registers.
template <typename Real, int kMaxChunks>
__global__ void __launch_bounds__(kThreads)
    anchor_grad_kernel(PassArgs<Real> pass, GradPass<Real> grad, Real* grad_anchors) {
  __shared__ Tiles<Real> tiles;
  __shared__ Real logit_grads[kAnchorTile][kKeyTile + 1];
  const Place place = thread_place();
  const int64_t anchor_begin = static_cast<int64_t>(blockIdx.x) * kAnchorTile;
  const int chunks = (pass.dim + kDimChunk - 1) / kDimChunk;
  RowInfo anchors[kRowsPerThread];
  RowGrad<Real> anchor_grads[kRowsPerThread];
#pragma unroll
  for (int r = 0; r < kRowsPerThread; ++r) {
    anchors[r] = row_info(pass.rule, anchor_begin + place.row_group + kRowGroups * r, pass.batch);
    anchor_grads[r] = row_grad(grad, grad.anchor_direction, anchors[r]);
  }
  Real sums[kMaxChunks][kRowsPerThread][kDimsPerThread] = {};
  for (int64_t key_begin = 0; key_begin < pass.batch; key_begin += kKeyTile) {
    Real logits[kRowsPerThread][kKeysPerThread];
    // Its barriers also separate the previous tile's reads of logit_grads from the writes below.
    compute_logits(pass, anchor_begin, key_begin, tiles, logits);
#pragma unroll
    for (int c = 0; c < kKeysPerThread; ++c) {
      const RowInfo key = row_info(pass.rule, key_begin + place.lane + kLanesPerRow * c, pass.batch);
      const RowGrad<Real> key_grad = row_grad(grad, grad.key_direction, key);
#pragma unroll
      for (int r = 0; r < kRowsPerThread; ++r) {
        const bool is_positive = key.valid && anchors[r].row == key.row;
        logit_grads[place.row_group + kRowGroups * r][place.lane + kLanesPerRow * c] =
            logit_grad(logits[r][c], counts(anchors[r], key), is_positive, anchor_grads[r].weight, anchor_grads[r].lse,
                       key_grad.weight, key_grad.lse);
      }
    }
#pragma unroll
    for (int chunk = 0; chunk < kMaxChunks; ++chunk) {
      if (chunk >= chunks) break;  // the same for the whole block
      __syncthreads();             // logit_grads written; the previous chunk of keys read
      load_chunk<kKeyTile>(pass.keys, key_begin, pass.batch, pass.dim, chunk * kDimChunk, tiles.keys);
      __syncthreads();
      for (int j = 0; j < kKeyTile; ++j) {
#pragma unroll
        for (int r = 0; r < kRowsPerThread; ++r) {
          const Real weight = logit_grads[place.row_group + kRowGroups * r][j];
#pragma unroll
          for (int e = 0; e < kDimsPerThread; ++e)
            sums[chunk][r][e] += weight * tiles.keys[j][place.lane + kLanesPerRow * e];
        }
      }
    }
  }
#pragma unroll
  for (int chunk = 0; chunk < kMaxChunks; ++chunk)
#pragma unroll
    for (int r = 0; r < kRowsPerThread; ++r)
#pragma unroll
      for (int e = 0; e < kDimsPerThread; ++e) {
        const int col = chunk * kDimChunk + place.lane + kLanesPerRow * e;
        if (anchors[r].valid && col < pass.dim)
          grad_anchors[anchors[r].row * pass.dim + col] = sums[chunk][r][e] * pass.inv_temperature;
      }
}

// Inputs to the compute type and gradients back; 16-bit types convert through float.
template <typename Real, typename Input>
__device__ __forceinline__ Real to_real(Input x) {
  return static_cast<Real>(x);
}
template <>
__device__ __forceinline__ float to_real<float, __half>(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float to_real<float, __nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <typename Output, typename Real>
__device__ __forceinline__ Output from_real(Real x) {
  return static_cast<Output>(x);
}
template <>
__device__ __forceinline__ __half from_real<__half, float>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_real<__nv_bfloat16, float>(float x) {
  return __float2bfloat16_rn(x);
}

template <typename Real>
__device__ __forceinline__ Real warp_sum(Real value) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// The warp of this thread handles row (global thread index / 32); false past the batch
// (uniform per warp, so whole warps return together and shuffles stay complete).
__device__ __forceinline__ bool warp_row(int64_t batch, int64_t& row, int& lane) {
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  row = thread / kWarpSize;
  lane = static_cast<int>(thread % kWarpSize);
  return row < batch;
}

template <typename Input, typename Real>
__device__ __forceinline__ Real row_squared_norm(const Input* row, int dim, int lane) {
  Real sum = 0;
  for (int k = lane; k < dim; k += kWarpSize) {
    const Real x = to_real<Real>(row[k]);
    sum += x * x;
  }
  return warp_sum(sum);
}

template <typename Input, typename Real>
__global__ void __launch_bounds__(kThreads)
    prepare_view_kernel(const Input* z, int64_t batch, int dim, bool normalize, Real* view) {
  int64_t row;
  int lane;
  if (!warp_row(batch, row, lane)) return;
  const Input* in = z + row * dim;
  const Real scale = normalize ? inverse_norm(row_squared_norm<Input, Real>(in, dim, lane)) : Real(1);
  for (int k = lane; k < dim; k += kWarpSize) view[row * dim + k] = to_real<Real>(in[k]) * scale;
}

template <typename Input, typename Real>
__global__ void __launch_bounds__(kThreads) finish_grad_kernel(const Input* z, const Real* view, const Real* grad_view,
                                                               int64_t batch, int dim, bool normalize, Input* grad_z) {
  int64_t row;
  int lane;
  if (!warp_row(batch, row, lane)) return;
  const Real* normalized = view + row * dim;
  const Real* grad_row = grad_view + row * dim;
  Input* out = grad_z + row * dim;
  if (!normalize) {
    for (int k = lane; k < dim; k += kWarpSize) out[k] = from_real<Input>(grad_row[k]);
    return;
  }
  const Real sum_squares = row_squared_norm<Input, Real>(z + row * dim, dim, lane);
  Real projection = 0;
  for (int k = lane; k < dim; k += kWarpSize) projection += normalized[k] * grad_row[k];
  projection = warp_sum(projection);
  const Real inv_norm = inverse_norm(sum_squares);
  const bool clamped = norm_clamped(sum_squares);
  for (int k = lane; k < dim; k += kWarpSize)
    out[k] = from_real<Input>(normalize_backward(grad_row[k], normalized[k], projection, inv_norm, clamped));
}

unsigned int blocks_for(int64_t items, int64_t per_block) {
  return static_cast<unsigned int>((items + per_block - 1) / per_block);
}

// Carves a workspace into 256-byte aligned arrays of the compute type.
template <typename Real>
class Carver {
 public:
  explicit Carver(void* base) : next_(static_cast<char*>(base)) {}
  Real* take(int64_t count) {
    Real* taken = reinterpret_cast<Real*>(next_);
    next_ += aligned_bytes(count);
    return taken;
  }
  static size_t aligned_bytes(int64_t count) { return (count * sizeof(Real) + 255) / 256 * 256; }

 private:
  char* next_;
};

template <typename Real>
size_t forward_bytes(const Problem& problem) {
  return 2 * Carver<Real>::aligned_bytes(problem.batch * problem.dim) + Carver<Real>::aligned_bytes(problem.batch);
}

template <typename Real>
size_t backward_bytes(const Problem& problem) {
  return 4 * Carver<Real>::aligned_bytes(problem.batch * problem.dim);
}

bool is_double(const Problem& problem) { return problem.input_type == InputType::kFloat64; }

template <typename Input, typename Real>
void prepare_views(const Problem& problem, Real* a, Real* b, cudaStream_t stream) {
  const unsigned int grid = blocks_for(problem.batch, kRowsPerBlock);
  const int dim = static_cast<int>(problem.dim);
  prepare_view_kernel<Input, Real>
      <<<grid, kThreads, 0, stream>>>(static_cast<const Input*>(problem.z1), problem.batch, dim, problem.normalize, a);
  prepare_view_kernel<Input, Real>
      <<<grid, kThreads, 0, stream>>>(static_cast<const Input*>(problem.z2), problem.batch, dim, problem.normalize, b);
}

template <typename Real>
PassArgs<Real> pass_args(const Problem& problem, const Real* anchors, const Real* keys) {
  return {anchors,
          keys,
          problem.batch,
          static_cast<int>(problem.dim),
          static_cast<Real>(1.0 / problem.temperature),
          PairRule{problem.group_ids, problem.row_mask}};
}

template <typename Real>
void launch_logsumexp(const PassArgs<Real>& pass, Real* lse, Real* positives, cudaStream_t stream) {
  logsumexp_kernel<Real><<<blocks_for(pass.batch, kAnchorTile), kThreads, 0, stream>>>(pass, lse, positives);
}

template <typename Real>
void launch_anchor_grads(const PassArgs<Real>& pass, const GradPass<Real>& grad, Real* grad_anchors,
                         cudaStream_t stream) {
  const unsigned int grid = blocks_for(pass.batch, kAnchorTile);
  if (pass.dim <= 2 * kDimChunk)
    anchor_grad_kernel<Real, 2><<<grid, kThreads, 0, stream>>>(pass, grad, grad_anchors);
  else if (pass.dim <= 4 * kDimChunk)
    anchor_grad_kernel<Real, 4><<<grid, kThreads, 0, stream>>>(pass, grad, grad_anchors);
  else if (pass.dim <= 8 * kDimChunk)
    anchor_grad_kernel<Real, 8><<<grid, kThreads, 0, stream>>>(pass, grad, grad_anchors);
  else
    anchor_grad_kernel<Real, 16><<<grid, kThreads, 0, stream>>>(pass, grad, grad_anchors);
}
static_assert(16 * kDimChunk >= kMaxDim, "the widest anchor_grad_kernel covers kMaxDim");

template <typename Input, typename Real>
cudaError_t forward_typed(const Problem& problem, void* workspace, Real* loss_rows, Real* lse_rows, Real* lse_cols,
                          cudaStream_t stream) {
  Carver<Real> carver(workspace);
  Real* a = carver.take(problem.batch * problem.dim);
  Real* b = carver.take(problem.batch * problem.dim);
  Real* positives = carver.take(problem.batch);
  prepare_views<Input, Real>(problem, a, b, stream);
  launch_logsumexp(pass_args(problem, a, b), lse_rows, positives, stream);
  if (problem.symmetric) launch_logsumexp(pass_args(problem, b, a), lse_cols, static_cast<Real*>(nullptr), stream);
  loss_rows_kernel<Real><<<blocks_for(problem.batch, kThreads), kThreads, 0, stream>>>(
      problem.batch, PairRule{problem.group_ids, problem.row_mask}, problem.symmetric, positives, lse_rows, lse_cols,
      loss_rows);
  return cudaGetLastError();
}

template <typename Input, typename Real>
cudaError_t backward_typed(const Problem& problem, const Real* grad_loss_rows, const Real* lse_rows,
                           const Real* lse_cols, void* workspace, Input* grad_z1, Input* grad_z2, cudaStream_t stream) {
  Carver<Real> carver(workspace);
  Real* a = carver.take(problem.batch * problem.dim);
  Real* b = carver.take(problem.batch * problem.dim);
  Real* grad_a = carver.take(problem.batch * problem.dim);
  Real* grad_b = carver.take(problem.batch * problem.dim);
  prepare_views<Input, Real>(problem, a, b, stream);
  for (const bool columns_pass : {false, true}) {
    const GradPass<Real> grad = grad_pass(columns_pass, problem.symmetric, grad_loss_rows, lse_rows, lse_cols);
    const PassArgs<Real> pass = columns_pass ? pass_args(problem, b, a) : pass_args(problem, a, b);
    launch_anchor_grads(pass, grad, columns_pass ? grad_b : grad_a, stream);
  }
  const unsigned int grid = blocks_for(problem.batch, kRowsPerBlock);
  const int dim = static_cast<int>(problem.dim);
  finish_grad_kernel<Input, Real><<<grid, kThreads, 0, stream>>>(static_cast<const Input*>(problem.z1), a, grad_a,
                                                                 problem.batch, dim, problem.normalize, grad_z1);
  finish_grad_kernel<Input, Real><<<grid, kThreads, 0, stream>>>(static_cast<const Input*>(problem.z2), b, grad_b,
                                                                 problem.batch, dim, problem.normalize, grad_z2);
  return cudaGetLastError();
}

}  // namespace

size_t forward_workspace_bytes(const Problem& problem) {
  return is_double(problem) ? forward_bytes<double>(problem) : forward_bytes<float>(problem);
}

size_t backward_workspace_bytes(const Problem& problem) {
  return is_double(problem) ? backward_bytes<double>(problem) : backward_bytes<float>(problem);
}

cudaError_t forward(const Problem& problem, void* workspace, void* loss_rows, void* lse_rows, void* lse_cols,
                    cudaStream_t stream) {
  if (problem.dim < 1 || problem.dim > kMaxDim || problem.batch < 1) return cudaErrorInvalidValue;
  auto as_float = [](void* p) { return static_cast<float*>(p); };
  switch (problem.input_type) {
    case InputType::kFloat64:
      return forward_typed<double, double>(problem, workspace, static_cast<double*>(loss_rows),
                                           static_cast<double*>(lse_rows), static_cast<double*>(lse_cols), stream);
    case InputType::kFloat32:
      return forward_typed<float, float>(problem, workspace, as_float(loss_rows), as_float(lse_rows),
                                         as_float(lse_cols), stream);
    case InputType::kFloat16:
      return forward_typed<__half, float>(problem, workspace, as_float(loss_rows), as_float(lse_rows),
                                          as_float(lse_cols), stream);
    case InputType::kBFloat16:
      return forward_typed<__nv_bfloat16, float>(problem, workspace, as_float(loss_rows), as_float(lse_rows),
                                                 as_float(lse_cols), stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t backward(const Problem& problem, const void* grad_loss_rows, const void* lse_rows, const void* lse_cols,
                     void* workspace, void* grad_z1, void* grad_z2, cudaStream_t stream) {
  if (problem.dim < 1 || problem.dim > kMaxDim || problem.batch < 1) return cudaErrorInvalidValue;
  auto as_float = [](const void* p) { return static_cast<const float*>(p); };
  switch (problem.input_type) {
    case InputType::kFloat64:
      return backward_typed<double, double>(problem, static_cast<const double*>(grad_loss_rows),
                                            static_cast<const double*>(lse_rows), static_cast<const double*>(lse_cols),
                                            workspace, static_cast<double*>(grad_z1), static_cast<double*>(grad_z2),
                                            stream);
    case InputType::kFloat32:
      return backward_typed<float, float>(problem, as_float(grad_loss_rows), as_float(lse_rows), as_float(lse_cols),
                                          workspace, static_cast<float*>(grad_z1), static_cast<float*>(grad_z2),
                                          stream);
    case InputType::kFloat16:
      return backward_typed<__half, float>(problem, as_float(grad_loss_rows), as_float(lse_rows), as_float(lse_cols),
                                           workspace, static_cast<__half*>(grad_z1), static_cast<__half*>(grad_z2),
                                           stream);
    case InputType::kBFloat16:
      return backward_typed<__nv_bfloat16, float>(problem, as_float(grad_loss_rows), as_float(lse_rows),
                                                  as_float(lse_cols), workspace, static_cast<__nv_bfloat16*>(grad_z1),
                                                  static_cast<__nv_bfloat16*>(grad_z2), stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace cuda
}  // namespace info_nce
}  // namespace igrsr
