// Schema of the igrsr InfoNCE ops and the argument checks both implementations share.
#include "torch_ops.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>

#include "core_math.h"

namespace igrsr {
namespace {

bool is_float_type(at::ScalarType type) {
  return type == at::kFloat || type == at::kDouble || type == at::kHalf || type == at::kBFloat16;
}

void check_row_vector(const char* name, const at::Tensor& tensor, const at::Tensor& z1) {
  TORCH_CHECK_VALUE(tensor.dim() == 1 && tensor.size(0) == z1.size(0), name, " must have shape (", z1.size(0),
                    ",), got ", tensor.sizes());
  TORCH_CHECK_VALUE(tensor.device() == z1.device(), name, " is on ", tensor.device(), " but z1 is on ", z1.device());
}

void check_rule(const at::Tensor& z1, const std::optional<at::Tensor>& group_ids,
                const std::optional<at::Tensor>& row_mask) {
  if (group_ids.has_value()) {
    check_row_vector("group_ids", *group_ids, z1);
    TORCH_CHECK_TYPE(group_ids->scalar_type() == at::kLong || group_ids->scalar_type() == at::kInt,
                     "group_ids must be int32 or int64, got ", group_ids->scalar_type());
  }
  if (row_mask.has_value()) {
    check_row_vector("row_mask", *row_mask, z1);
    TORCH_CHECK_TYPE(row_mask->scalar_type() == at::kBool, "row_mask must be bool, got ", row_mask->scalar_type());
  }
}

void check_statistic(const char* name, const at::Tensor& tensor, int64_t length, const at::Tensor& z1) {
  TORCH_CHECK_VALUE(tensor.dim() == 1 && tensor.size(0) == length, name, " must have shape (", length, ",), got ",
                    tensor.sizes());
  TORCH_CHECK_VALUE(tensor.device() == z1.device(), name, " is on ", tensor.device(), " but z1 is on ", z1.device());
  TORCH_CHECK_TYPE(tensor.scalar_type() == compute_dtype(z1.scalar_type()), name, " must be ",
                   compute_dtype(z1.scalar_type()), " for ", z1.scalar_type(), " inputs, got ", tensor.scalar_type());
}

}  // namespace

at::ScalarType compute_dtype(at::ScalarType input) { return input == at::kDouble ? at::kDouble : at::kFloat; }

void check_forward_inputs(const at::Tensor& z1, const at::Tensor& z2, double temperature,
                          const std::optional<at::Tensor>& group_ids, const std::optional<at::Tensor>& row_mask) {
  TORCH_CHECK_VALUE(z1.dim() == 2, "z1 must have 2 dimensions (batch, dim), got shape ", z1.sizes());
  TORCH_CHECK_VALUE(z2.sizes() == z1.sizes(), "z2 must have the shape of z1 ", z1.sizes(), ", got ", z2.sizes());
  TORCH_CHECK_TYPE(is_float_type(z1.scalar_type()), "z1 must be float16, bfloat16, float32 or float64, got ",
                   z1.scalar_type());
  TORCH_CHECK_TYPE(z2.scalar_type() == z1.scalar_type(), "z2 has dtype ", z2.scalar_type(), " but z1 has ",
                   z1.scalar_type());
  TORCH_CHECK_VALUE(z2.device() == z1.device(), "z2 is on ", z2.device(), " but z1 is on ", z1.device());
  TORCH_CHECK_VALUE(z1.size(0) >= 1, "z1 must have at least one row, got shape ", z1.sizes());
  TORCH_CHECK_VALUE(z1.size(1) >= 1 && z1.size(1) <= info_nce::kMaxDim, "z1 must have 1 to ", info_nce::kMaxDim,
                    " features, got ", z1.size(1));
  TORCH_CHECK_VALUE(std::isfinite(temperature) && temperature > 0, "temperature must be a finite number > 0, got ",
                    temperature);
  check_rule(z1, group_ids, row_mask);
}

void check_backward_inputs(const at::Tensor& grad_loss_rows, const at::Tensor& z1, const at::Tensor& z2,
                           const at::Tensor& lse_rows, const at::Tensor& lse_cols, double temperature, bool symmetric,
                           const std::optional<at::Tensor>& group_ids, const std::optional<at::Tensor>& row_mask) {
  check_forward_inputs(z1, z2, temperature, group_ids, row_mask);
  const int64_t batch = z1.size(0);
  check_statistic("grad_loss_rows", grad_loss_rows, batch, z1);
  check_statistic("lse_rows", lse_rows, batch, z1);
  check_statistic("lse_cols", lse_cols, symmetric ? batch : 0, z1);
}

at::Tensor int64_group_ids(const std::optional<at::Tensor>& group_ids) {
  return group_ids.has_value() ? group_ids->to(at::kLong).contiguous() : at::Tensor();
}

at::Tensor contiguous_row_mask(const std::optional<at::Tensor>& row_mask) {
  return row_mask.has_value() ? row_mask->contiguous() : at::Tensor();
}

}  // namespace igrsr

// loss_rows: each row's loss (0 where row_mask is False), in float32 (float64 for float64
// inputs); lse_rows / lse_cols: the log-sum-exps the backward recomputes from (lse_cols is
// empty when not symmetric).  Reductions are left to the caller, so autograd composes them.
TORCH_LIBRARY(igrsr, m) {
  m.set_python_module("igrsr.ops.info_nce.compiled");
  m.def(
      "info_nce_forward(Tensor z1, Tensor z2, float temperature, bool normalize, bool symmetric, "
      "Tensor? group_ids, Tensor? row_mask) -> (Tensor loss_rows, Tensor lse_rows, Tensor lse_cols)");
  m.def(
      "info_nce_backward(Tensor grad_loss_rows, Tensor z1, Tensor z2, Tensor lse_rows, Tensor lse_cols, "
      "float temperature, bool normalize, bool symmetric, Tensor? group_ids, Tensor? row_mask) "
      "-> (Tensor grad_z1, Tensor grad_z2)");
}
