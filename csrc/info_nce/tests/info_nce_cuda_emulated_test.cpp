// The CUDA kernels of csrc/info_nce/core_cuda.cu, run on the host through cuda_emulation/,
// against the CPU core (which info_nce_cpu_test checks against a plain reference): the
// kernels' tiling, indexing, barriers, warp reductions, masks and dtype conversions are
// checked without a GPU.  Run by ctest; exits non-zero on the first mismatching case.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../core_cpu.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "../core_cuda.h"

namespace {

namespace cpu = igrsr::info_nce::cpu;
namespace gpu = igrsr::info_nce::cuda;

struct Case {
  int64_t batch;
  int64_t dim;
  bool normalize;
  bool symmetric;
  bool groups;
  bool mask;

  std::string name() const {
    return "B=" + std::to_string(batch) + " d=" + std::to_string(dim) + (normalize ? " normalize" : "") +
           (symmetric ? " symmetric" : " one-way") + (groups ? " groups" : "") + (mask ? " mask" : "");
  }
  double temperature() const { return normalize ? 0.1 : 1.0; }
};

struct Inputs {
  std::vector<double> z1, z2, upstream;
  std::vector<int64_t> group_ids;
  std::unique_ptr<bool[]> row_mask;
};

struct Results {
  std::vector<double> loss, lse_rows, lse_cols, grad_z1, grad_z2;
};

Inputs random_inputs(const Case& c, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  Inputs inputs;
  const double scale = c.normalize ? 1.0 : 1.0 / std::sqrt(double(c.dim));
  for (int64_t i = 0; i < c.batch * c.dim; ++i) {
    inputs.z1.push_back(scale * normal(rng));
    inputs.z2.push_back(scale * normal(rng));
  }
  inputs.row_mask.reset(new bool[c.batch]);
  for (int64_t i = 0; i < c.batch; ++i) {
    inputs.upstream.push_back(normal(rng));
    inputs.group_ids.push_back(i % 3);
    inputs.row_mask[i] = i % 4 != 1;
  }
  return inputs;
}

Results run_cpu_core(const Case& c, const Inputs& in) {
  const cpu::Problem<double> problem{in.z1.data(),
                                     in.z2.data(),
                                     c.batch,
                                     c.dim,
                                     c.temperature(),
                                     c.normalize,
                                     c.symmetric,
                                     c.groups ? in.group_ids.data() : nullptr,
                                     c.mask ? in.row_mask.get() : nullptr};
  auto serial = [](int64_t count, int64_t, const cpu::RangeBody& body) { body(0, count); };
  std::vector<double> workspace(cpu::workspace_size(c.batch, c.dim));
  Results out{std::vector<double>(c.batch), std::vector<double>(c.batch), std::vector<double>(c.batch),
              std::vector<double>(in.z1.size()), std::vector<double>(in.z2.size())};
  cpu::forward(problem, workspace.data(), out.loss.data(), out.lse_rows.data(), out.lse_cols.data(), serial);
  cpu::backward(problem, in.upstream.data(), out.lse_rows.data(), out.lse_cols.data(), workspace.data(),
                out.grad_z1.data(), out.grad_z2.data(), serial);
  if (!c.symmetric) out.lse_cols.assign(c.batch, 0.0);
  return out;
}

template <typename Input>
Input from_double(double x) {
  return static_cast<Input>(x);
}
template <>
__half from_double<__half>(double x) {
  return __float2half_rn(static_cast<float>(x));
}
template <>
__nv_bfloat16 from_double<__nv_bfloat16>(double x) {
  return __float2bfloat16_rn(static_cast<float>(x));
}

template <typename Input>
double to_double(Input x) {
  return static_cast<double>(x);
}
template <>
double to_double<__half>(__half x) {
  return __half2float(x);
}
template <>
double to_double<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <typename From, typename To, typename Convert>
std::vector<To> convert(const std::vector<From>& values, Convert convert_one) {
  std::vector<To> out;
  for (const From& value : values) out.push_back(convert_one(value));
  return out;
}

// The inputs as the kernels see them in type Input, back in double (the CPU core's input).
template <typename Input>
Inputs rounded(const Inputs& in, int64_t batch) {
  Inputs out{convert<double, double>(in.z1, [](double x) { return to_double(from_double<Input>(x)); }),
             convert<double, double>(in.z2, [](double x) { return to_double(from_double<Input>(x)); }), in.upstream,
             in.group_ids, std::unique_ptr<bool[]>(new bool[batch])};
  std::copy_n(in.row_mask.get(), batch, out.row_mask.get());
  return out;
}

// Real: the kernels' compute type (double for double inputs, float otherwise).
template <typename Input, typename Real>
Results run_emulated_cuda(const Case& c, const Inputs& in, gpu::InputType type) {
  const std::vector<Input> z1 = convert<double, Input>(in.z1, from_double<Input>);
  const std::vector<Input> z2 = convert<double, Input>(in.z2, from_double<Input>);
  const std::vector<Real> upstream(in.upstream.begin(), in.upstream.end());
  const gpu::Problem problem{z1.data(),
                             z2.data(),
                             type,
                             c.batch,
                             c.dim,
                             c.temperature(),
                             c.normalize,
                             c.symmetric,
                             c.groups ? in.group_ids.data() : nullptr,
                             c.mask ? in.row_mask.get() : nullptr};
  std::vector<double> workspace(
      std::max(gpu::forward_workspace_bytes(problem), gpu::backward_workspace_bytes(problem)) / sizeof(double) + 1);
  std::vector<Real> loss(c.batch), lse_rows(c.batch), lse_cols(c.batch, Real(0));
  std::vector<Input> grad_z1(z1.size()), grad_z2(z2.size());
  if (gpu::forward(problem, workspace.data(), loss.data(), lse_rows.data(), lse_cols.data(), nullptr) != cudaSuccess ||
      gpu::backward(problem, upstream.data(), lse_rows.data(), lse_cols.data(), workspace.data(), grad_z1.data(),
                    grad_z2.data(), nullptr) != cudaSuccess) {
    std::printf("FAIL %s: launch error\n", c.name().c_str());
    std::exit(1);
  }
  auto widen = [](auto x) { return to_double(x); };
  return {convert<Real, double>(loss, widen), convert<Real, double>(lse_rows, widen),
          convert<Real, double>(lse_cols, widen), convert<Input, double>(grad_z1, widen),
          convert<Input, double>(grad_z2, widen)};
}

// max |got - want| <= tolerance · max |want|, equal infinities (rows that take no part) allowed.
bool close(const std::string& what, const std::vector<double>& got, const std::vector<double>& want, double tolerance) {
  double scale = 1e-300, worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (std::isfinite(want[i])) scale = std::max(scale, std::fabs(want[i]));
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i]) && got[i] == want[i]) continue;
    const double error = std::fabs(got[i] - want[i]);
    if (!(error <= worst)) worst = error;  // NaN propagates
  }
  if (worst <= tolerance * scale) return true;
  std::printf("FAIL %s: max error %.3g > %.3g\n", what.c_str(), worst, tolerance * scale);
  return false;
}

int failures = 0;

template <typename Input, typename Real>
void check(const Case& c, gpu::InputType type, const char* type_name, double tolerance, double grad_tolerance,
           std::mt19937& rng) {
  const Inputs in = rounded<Input>(random_inputs(c, rng), c.batch);
  const Results want = run_cpu_core(c, in);
  const Results got = run_emulated_cuda<Input, Real>(c, in, type);
  const std::string where = c.name() + " " + type_name + " ";
  const bool ok = close(where + "loss", got.loss, want.loss, tolerance) &
                  close(where + "lse_rows", got.lse_rows, want.lse_rows, tolerance) &
                  close(where + "lse_cols", got.lse_cols, want.lse_cols, tolerance) &
                  close(where + "grad_z1", got.grad_z1, want.grad_z1, grad_tolerance) &
                  close(where + "grad_z2", got.grad_z2, want.grad_z2, grad_tolerance);
  failures += ok ? 0 : 1;
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  int cases = 0;
  // Every option at one shape that is ragged for every tile (32 anchors, 64 keys, 32 features).
  for (int options = 0; options < 16; ++options) {
    const Case c{65, 33, bool(options & 1), bool(options & 2), bool(options & 4), bool(options & 8)};
    check<double, double>(c, gpu::InputType::kFloat64, "float64", 1e-12, 1e-11, rng);
    ++cases;
  }
  // Shapes for each anchor_grad_kernel width (2, 4, 8, 16 feature chunks), and the smallest.
  for (const auto& [batch, dim] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {40, 64}, {70, 128}, {33, 250}, {20, 512}}) {
    const Case c{batch, dim, true, true, true, true};
    check<double, double>(c, gpu::InputType::kFloat64, "float64", 1e-12, 1e-11, rng);
    check<float, float>(c, gpu::InputType::kFloat32, "float32", 1e-5, 1e-4, rng);
    cases += 2;
  }
  // 16-bit inputs: computed in float32, gradients rounded once to the input type.
  const Case small{40, 20, true, true, true, true};
  check<__half, float>(small, gpu::InputType::kFloat16, "float16", 1e-5, 2e-3, rng);
  check<__nv_bfloat16, float>(small, gpu::InputType::kBFloat16, "bfloat16", 1e-5, 1e-2, rng);
  cases += 2;
  if (failures > 0) {
    std::printf("%d of %d cases failed\n", failures, cases);
    return 1;
  }
  std::printf("info_nce CUDA kernels (host emulation): %d cases match the CPU core\n", cases);
  return 0;
}
