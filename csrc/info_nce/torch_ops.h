// Shared by the CPU and CUDA bindings of igrsr::info_nce_forward / info_nce_backward.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace igrsr {

// The floating type the kernels compute in: float64 for float64 inputs, float32 otherwise.
at::ScalarType compute_dtype(at::ScalarType input);

// Argument checks at the op boundary; each failure is a ValueError / TypeError naming the
// argument, as the Python API raises.
void check_forward_inputs(const at::Tensor& z1, const at::Tensor& z2, double temperature,
                          const std::optional<at::Tensor>& group_ids, const std::optional<at::Tensor>& row_mask);
void check_backward_inputs(const at::Tensor& grad_loss_rows, const at::Tensor& z1, const at::Tensor& z2,
                           const at::Tensor& lse_rows, const at::Tensor& lse_cols, double temperature, bool symmetric,
                           const std::optional<at::Tensor>& group_ids, const std::optional<at::Tensor>& row_mask);

// Contiguous int64 group ids (int32 ones are widened), or an undefined tensor.
at::Tensor int64_group_ids(const std::optional<at::Tensor>& group_ids);
// Contiguous row mask, or an undefined tensor.
at::Tensor contiguous_row_mask(const std::optional<at::Tensor>& row_mask);

template <typename T>
const T* data_or_null(const at::Tensor& tensor) {
  return tensor.defined() ? tensor.const_data_ptr<T>() : nullptr;
}

}  // namespace igrsr
