// Host API of the CUDA InfoNCE kernels (core_cuda.cu): raw device pointers, sizes and a stream.
//
// No torch here; torch_cuda.cpp binds these to the igrsr::info_nce_forward/backward
// ops.  The math is in core_math.h: the forward stores each row's log-sum-exp (O(B)) and
// the backward recomputes the similarity tiles from it, so no B×B buffer exists anywhere.
//
// Computation is in float32 (float64 for float64 inputs).  Every output element is written
// by exactly one thread in a fixed order, so results are bitwise reproducible run to run.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace igrsr {
namespace info_nce {
namespace cuda {

enum class InputType { kFloat32, kFloat64, kFloat16, kBFloat16 };

struct Problem {
  const void* z1;  // (batch, dim), row-major, of input_type
  const void* z2;
  InputType input_type;
  int64_t batch;
  int64_t dim;  // 1..kMaxDim
  double temperature;
  bool normalize;
  bool symmetric;
  const int64_t* group_ids;  // (batch,) or nullptr
  const bool* row_mask;      // (batch,) or nullptr
};

// Device scratch memory each direction needs, in bytes: O(batch·dim).
size_t forward_workspace_bytes(const Problem& problem);
size_t backward_workspace_bytes(const Problem& problem);

// loss_rows, lse_rows, lse_cols: (batch,) of the compute type (double for kFloat64 inputs,
// else float); lse_cols is written only when symmetric.  Rows that do not take part get
// loss 0 and log-sum-exp -inf.
cudaError_t forward(const Problem& problem, void* workspace, void* loss_rows, void* lse_rows, void* lse_cols,
                    cudaStream_t stream);

// grad_loss_rows, lse_rows, lse_cols: compute type, as above.  grad_z1, grad_z2: (batch, dim)
// of input_type.
cudaError_t backward(const Problem& problem, const void* grad_loss_rows, const void* lse_rows, const void* lse_cols,
                     void* workspace, void* grad_z1, void* grad_z2, cudaStream_t stream);

}  // namespace cuda
}  // namespace info_nce
}  // namespace igrsr
