// CUDA implementation of the igrsr InfoNCE ops: the torch-free kernels of core_cuda.cu on
// the current stream, with their scratch memory from the caching allocator.
#include "core_cuda.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "torch_ops.h"

namespace igrsr {
namespace {

namespace kernels = info_nce::cuda;

kernels::InputType input_type(at::ScalarType type) {
  switch (type) {
    case at::kDouble:
      return kernels::InputType::kFloat64;
    case at::kHalf:
      return kernels::InputType::kFloat16;
    case at::kBFloat16:
      return kernels::InputType::kBFloat16;
    default:
      return kernels::InputType::kFloat32;  // the checks allow nothing else
  }
}

// Inputs as the kernels read them: contiguous, in their own dtype, plus the problem.
struct KernelInputs {
  KernelInputs(const at::Tensor& z1_in, const at::Tensor& z2_in, double temperature, bool normalize, bool symmetric,
               const std::optional<at::Tensor>& group_ids, const std::optional<at::Tensor>& row_mask)
      : z1(z1_in.contiguous()),
        z2(z2_in.contiguous()),
        groups(int64_group_ids(group_ids)),
        mask(contiguous_row_mask(row_mask)),
        problem{z1.const_data_ptr(),
                z2.const_data_ptr(),
                input_type(z1.scalar_type()),
                z1.size(0),
                z1.size(1),
                temperature,
                normalize,
                symmetric,
                data_or_null<int64_t>(groups),
                data_or_null<bool>(mask)} {}

  at::Tensor statistic(int64_t length) const {
    return at::empty({length}, z1.options().dtype(compute_dtype(z1.scalar_type())));
  }
  at::Tensor workspace(size_t bytes) const {
    return at::empty({static_cast<int64_t>(bytes)}, z1.options().dtype(at::kByte));
  }

  at::Tensor z1, z2, groups, mask;
  kernels::Problem problem;
};

void check_launch(cudaError_t status, const char* op) {
  TORCH_CHECK(status == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(status));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cuda(const at::Tensor& z1, const at::Tensor& z2,
                                                            double temperature, bool normalize, bool symmetric,
                                                            const std::optional<at::Tensor>& group_ids,
                                                            const std::optional<at::Tensor>& row_mask) {
  check_forward_inputs(z1, z2, temperature, group_ids, row_mask);
  const c10::cuda::CUDAGuard device_guard(z1.device());
  const KernelInputs inputs(z1, z2, temperature, normalize, symmetric, group_ids, row_mask);
  const int64_t batch = z1.size(0);
  at::Tensor loss_rows = inputs.statistic(batch);
  at::Tensor lse_rows = inputs.statistic(batch);
  at::Tensor lse_cols = inputs.statistic(symmetric ? batch : 0);
  at::Tensor workspace = inputs.workspace(kernels::forward_workspace_bytes(inputs.problem));
  check_launch(kernels::forward(inputs.problem, workspace.data_ptr(), loss_rows.data_ptr(), lse_rows.data_ptr(),
                                symmetric ? lse_cols.data_ptr() : nullptr, c10::cuda::getCurrentCUDAStream()),
               "igrsr::info_nce_forward");
  return {loss_rows, lse_rows, lse_cols};
}

std::tuple<at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad_loss_rows, const at::Tensor& z1,
                                                 const at::Tensor& z2, const at::Tensor& lse_rows,
                                                 const at::Tensor& lse_cols, double temperature, bool normalize,
                                                 bool symmetric, const std::optional<at::Tensor>& group_ids,
                                                 const std::optional<at::Tensor>& row_mask) {
  check_backward_inputs(grad_loss_rows, z1, z2, lse_rows, lse_cols, temperature, symmetric, group_ids, row_mask);
  const c10::cuda::CUDAGuard device_guard(z1.device());
  const KernelInputs inputs(z1, z2, temperature, normalize, symmetric, group_ids, row_mask);
  const at::Tensor upstream = grad_loss_rows.contiguous();  // often an expanded scalar
  const at::Tensor row_statistics = lse_rows.contiguous();
  const at::Tensor col_statistics = lse_cols.contiguous();
  at::Tensor grad_z1 = at::empty_like(inputs.z1);
  at::Tensor grad_z2 = at::empty_like(inputs.z2);
  at::Tensor workspace = inputs.workspace(kernels::backward_workspace_bytes(inputs.problem));
  check_launch(kernels::backward(inputs.problem, upstream.const_data_ptr(), row_statistics.const_data_ptr(),
                                 symmetric ? col_statistics.const_data_ptr() : nullptr, workspace.data_ptr(),
                                 grad_z1.data_ptr(), grad_z2.data_ptr(), c10::cuda::getCurrentCUDAStream()),
               "igrsr::info_nce_backward");
  return {grad_z1, grad_z2};
}

}  // namespace
}  // namespace igrsr

TORCH_LIBRARY_IMPL(igrsr, CUDA, m) {
  m.impl("info_nce_forward", &igrsr::forward_cuda);
  m.impl("info_nce_backward", &igrsr::backward_cuda);
}
