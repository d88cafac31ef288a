// Tiled InfoNCE on the CPU, free of torch: the same algorithm as core_cuda.cu.
//
// The forward computes each row's log-sum-exp over tiles of the similarity matrix with an
// online max and sum, storing only O(B) statistics; the backward recomputes every tile from
// them.  Memory is O(B·d): normalized (or copied) views, their transposes and per-task tiles.
// Real is float (inputs of 16 or 32 bits, converted by the caller) or double.
//
// Parallelism comes from the caller (at::parallel_for in the torch binding, a plain loop in
// the C++ test), so this file links without torch or OpenMP.  Results do not depend on how
// the work is split: each output row is computed by one task in a fixed order.
#pragma once

#include <cstdint>
#include <functional>

namespace igrsr {
namespace info_nce {
namespace cpu {

// Runs body(begin, end) over sub-ranges that together cover [0, count) exactly once; ranges
// shorter than `grain` items are not worth a task of their own (at::parallel_for's grain_size).
using RangeBody = std::function<void(int64_t begin, int64_t end)>;
using ParallelFor = std::function<void(int64_t count, int64_t grain, const RangeBody& body)>;

template <typename Real>
struct Problem {
  const Real* z1;  // (batch, dim), row-major
  const Real* z2;  // (batch, dim), row-major
  int64_t batch;
  int64_t dim;
  Real temperature;
  bool normalize;
  bool symmetric;
  const int64_t* group_ids;  // (batch,) or nullptr
  const bool* row_mask;      // (batch,) or nullptr
};

// Scratch memory, in Reals, that forward and backward need for this shape: O(batch·dim).
int64_t workspace_size(int64_t batch, int64_t dim);

// loss_rows, lse_rows: (batch,).  lse_cols: (batch,) when symmetric, else unused (may be null).
// Rows that do not take part get loss 0 and log-sum-exp -inf.
template <typename Real>
void forward(const Problem<Real>& problem, Real* workspace, Real* loss_rows, Real* lse_rows, Real* lse_cols,
             const ParallelFor& parallel_for);

// grad_loss_rows: dL/dloss_rows (batch,).  grad_z1, grad_z2: (batch, dim) outputs.
template <typename Real>
void backward(const Problem<Real>& problem, const Real* grad_loss_rows, const Real* lse_rows, const Real* lse_cols,
              Real* workspace, Real* grad_z1, Real* grad_z2, const ParallelFor& parallel_for);

extern template void forward<float>(const Problem<float>&, float*, float*, float*, float*, const ParallelFor&);
extern template void forward<double>(const Problem<double>&, double*, double*, double*, double*, const ParallelFor&);
extern template void backward<float>(const Problem<float>&, const float*, const float*, const float*, float*, float*,
                                     float*, const ParallelFor&);
extern template void backward<double>(const Problem<double>&, const double*, const double*, const double*, double*,
                                      double*, double*, const ParallelFor&);

}  // namespace cpu
}  // namespace info_nce
}  // namespace igrsr
