// CPU implementation of the igrsr InfoNCE ops: the torch-free tiled core (core_cpu.h)
// on ATen's thread pool.  16-bit inputs are converted once to a float32 copy (O(B·d)).
#include "core_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

#include "torch_ops.h"

namespace igrsr {
namespace {

namespace core = info_nce::cpu;

void aten_parallel_for(int64_t count, int64_t grain, const core::RangeBody& body) {
  at::parallel_for(0, count, grain, [&](int64_t begin, int64_t end) { body(begin, end); });
}

// Tensors as the core reads them: contiguous, in the compute type.
struct CoreInputs {
  CoreInputs(const at::Tensor& z1_in, const at::Tensor& z2_in, const std::optional<at::Tensor>& group_ids,
             const std::optional<at::Tensor>& row_mask)
      : dtype(compute_dtype(z1_in.scalar_type())),
        z1(z1_in.to(dtype).contiguous()),
        z2(z2_in.to(dtype).contiguous()),
        groups(int64_group_ids(group_ids)),
        mask(contiguous_row_mask(row_mask)) {}

  template <typename Real>
  core::Problem<Real> problem(double temperature, bool normalize, bool symmetric) const {
    return {z1.const_data_ptr<Real>(),
            z2.const_data_ptr<Real>(),
            z1.size(0),
            z1.size(1),
            static_cast<Real>(temperature),
            normalize,
            symmetric,
            data_or_null<int64_t>(groups),
            data_or_null<bool>(mask)};
  }

  at::Tensor workspace() const { return at::empty({core::workspace_size(z1.size(0), z1.size(1))}, z1.options()); }

  at::ScalarType dtype;
  at::Tensor z1, z2, groups, mask;
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cpu(const at::Tensor& z1, const at::Tensor& z2,
                                                           double temperature, bool normalize, bool symmetric,
                                                           const std::optional<at::Tensor>& group_ids,
                                                           const std::optional<at::Tensor>& row_mask) {
  check_forward_inputs(z1, z2, temperature, group_ids, row_mask);
  const CoreInputs inputs(z1, z2, group_ids, row_mask);
  const int64_t batch = z1.size(0);
  const auto options = inputs.z1.options();
  at::Tensor loss_rows = at::empty({batch}, options);
  at::Tensor lse_rows = at::empty({batch}, options);
  at::Tensor lse_cols = at::empty({symmetric ? batch : 0}, options);
  at::Tensor workspace = inputs.workspace();
  AT_DISPATCH_FLOATING_TYPES(inputs.dtype, "igrsr::info_nce_forward (CPU)", [&] {
    core::forward(inputs.problem<scalar_t>(temperature, normalize, symmetric), workspace.data_ptr<scalar_t>(),
                  loss_rows.data_ptr<scalar_t>(), lse_rows.data_ptr<scalar_t>(),
                  symmetric ? lse_cols.data_ptr<scalar_t>() : nullptr, aten_parallel_for);
  });
  return {loss_rows, lse_rows, lse_cols};
}

std::tuple<at::Tensor, at::Tensor> backward_cpu(const at::Tensor& grad_loss_rows, const at::Tensor& z1,
                                                const at::Tensor& z2, const at::Tensor& lse_rows,
                                                const at::Tensor& lse_cols, double temperature, bool normalize,
                                                bool symmetric, const std::optional<at::Tensor>& group_ids,
                                                const std::optional<at::Tensor>& row_mask) {
  check_backward_inputs(grad_loss_rows, z1, z2, lse_rows, lse_cols, temperature, symmetric, group_ids, row_mask);
  const CoreInputs inputs(z1, z2, group_ids, row_mask);
  const at::Tensor upstream = grad_loss_rows.contiguous();  // often an expanded scalar
  const at::Tensor row_statistics = lse_rows.contiguous();
  const at::Tensor col_statistics = lse_cols.contiguous();
  at::Tensor grad_z1 = at::empty_like(inputs.z1);
  at::Tensor grad_z2 = at::empty_like(inputs.z2);
  at::Tensor workspace = inputs.workspace();
  AT_DISPATCH_FLOATING_TYPES(inputs.dtype, "igrsr::info_nce_backward (CPU)", [&] {
    core::backward(inputs.problem<scalar_t>(temperature, normalize, symmetric), upstream.const_data_ptr<scalar_t>(),
                   row_statistics.const_data_ptr<scalar_t>(),
                   symmetric ? col_statistics.const_data_ptr<scalar_t>() : nullptr, workspace.data_ptr<scalar_t>(),
                   grad_z1.data_ptr<scalar_t>(), grad_z2.data_ptr<scalar_t>(), aten_parallel_for);
  });
  return {grad_z1.to(z1.scalar_type()), grad_z2.to(z2.scalar_type())};
}

}  // namespace
}  // namespace igrsr

TORCH_LIBRARY_IMPL(igrsr, CPU, m) {
  m.impl("info_nce_forward", &igrsr::forward_cpu);
  m.impl("info_nce_backward", &igrsr::backward_cpu);
}
