// The torch-free CPU InfoNCE core against a plain, B×B reference written here, in double:
// loss rows for every option, gradients against central finite differences of the reference.
// Run by ctest (CMakeLists.txt); exits non-zero on the first mismatch.
#include "../core_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

namespace core = igrsr::info_nce::cpu;

struct Case {
  int64_t batch;
  int64_t dim;
  double temperature;
  bool normalize;
  bool symmetric;
  std::vector<int64_t> group_ids;  // empty: none
  std::vector<char> row_mask;      // empty: none
  bool tiny_first_row = false;     // z1's row 0 below the normalization epsilon

  std::string name() const {
    return "B=" + std::to_string(batch) + " d=" + std::to_string(dim) + " tau=" + std::to_string(temperature) +
           (normalize ? " normalize" : "") + (symmetric ? " symmetric" : " one-way") +
           (group_ids.empty() ? "" : " groups") + (row_mask.empty() ? "" : " mask");
  }
  bool takes_part(int64_t row) const { return row_mask.empty() || row_mask[row]; }
  bool counts(int64_t i, int64_t j) const {
    if (!takes_part(i) || !takes_part(j)) return false;
    return i == j || group_ids.empty() || group_ids[i] != group_ids[j];
  }
};

// Per-row losses straight from the definition: the whole similarity matrix, then log-sum-exp.
std::vector<double> reference_losses(const Case& c, const std::vector<double>& z1, const std::vector<double>& z2) {
  auto view = [&](const std::vector<double>& z) {
    std::vector<double> v(z);
    if (!c.normalize) return v;
    for (int64_t i = 0; i < c.batch; ++i) {
      double sum = 0;
      for (int64_t k = 0; k < c.dim; ++k) sum += z[i * c.dim + k] * z[i * c.dim + k];
      const double norm = std::max(std::sqrt(sum), 1e-12);
      for (int64_t k = 0; k < c.dim; ++k) v[i * c.dim + k] /= norm;
    }
    return v;
  };
  const std::vector<double> a = view(z1), b = view(z2);
  std::vector<double> logits(c.batch * c.batch);
  for (int64_t i = 0; i < c.batch; ++i)
    for (int64_t j = 0; j < c.batch; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < c.dim; ++k) dot += a[i * c.dim + k] * b[j * c.dim + k];
      logits[i * c.batch + j] = dot / c.temperature;
    }
  auto lse = [&](int64_t anchor, bool by_column) {
    double max = -INFINITY, sum = 0;
    for (int64_t other = 0; other < c.batch; ++other)
      if (c.counts(anchor, other))
        max = std::max(max, by_column ? logits[other * c.batch + anchor] : logits[anchor * c.batch + other]);
    for (int64_t other = 0; other < c.batch; ++other)
      if (c.counts(anchor, other))
        sum += std::exp((by_column ? logits[other * c.batch + anchor] : logits[anchor * c.batch + other]) - max);
    return max + std::log(sum);
  };
  std::vector<double> losses(c.batch, 0.0);
  for (int64_t i = 0; i < c.batch; ++i) {
    if (!c.takes_part(i)) continue;
    const double positive = logits[i * c.batch + i];
    losses[i] = lse(i, false) - positive;
    if (c.symmetric) losses[i] = 0.5 * (losses[i] + lse(i, true) - positive);
  }
  return losses;
}

double weighted_sum(const std::vector<double>& values, const std::vector<double>& weights) {
  double total = 0;
  for (size_t i = 0; i < values.size(); ++i) total += values[i] * weights[i];
  return total;
}

// Serial, in chunks of 3 whatever the grain, so that range boundaries are exercised.
void chunked_for(int64_t count, int64_t /*grain*/, const core::RangeBody& body) {
  for (int64_t begin = 0; begin < count; begin += 3) body(begin, std::min(count, begin + 3));
}

struct Outputs {
  std::vector<double> loss, grad_z1, grad_z2;
};

template <typename Real>
Outputs run_core(const Case& c, const std::vector<double>& z1_in, const std::vector<double>& z2_in,
                 const std::vector<double>& upstream_in) {
  const std::vector<Real> z1(z1_in.begin(), z1_in.end()), z2(z2_in.begin(), z2_in.end());
  const std::vector<Real> upstream(upstream_in.begin(), upstream_in.end());
  std::unique_ptr<bool[]> mask(new bool[c.batch]);
  for (int64_t i = 0; i < c.batch; ++i) mask[i] = c.takes_part(i);
  const core::Problem<Real> problem{z1.data(),
                                    z2.data(),
                                    c.batch,
                                    c.dim,
                                    Real(c.temperature),
                                    c.normalize,
                                    c.symmetric,
                                    c.group_ids.empty() ? nullptr : c.group_ids.data(),
                                    c.row_mask.empty() ? nullptr : mask.get()};
  std::vector<Real> workspace(core::workspace_size(c.batch, c.dim));
  std::vector<Real> loss(c.batch), lse_rows(c.batch), lse_cols(c.batch), grad_z1(z1.size()), grad_z2(z2.size());
  core::forward(problem, workspace.data(), loss.data(), lse_rows.data(), lse_cols.data(), chunked_for);
  core::backward(problem, upstream.data(), lse_rows.data(), lse_cols.data(), workspace.data(), grad_z1.data(),
                 grad_z2.data(), chunked_for);
  return {{loss.begin(), loss.end()}, {grad_z1.begin(), grad_z1.end()}, {grad_z2.begin(), grad_z2.end()}};
}

int failures = 0;

void expect_close(const std::string& what, double got, double want, double tolerance) {
  if (std::isfinite(got) && std::fabs(got - want) <= tolerance * (1.0 + std::fabs(want))) return;
  if (++failures <= 20) std::printf("FAIL %s: got %.10g, want %.10g\n", what.c_str(), got, want);
}

// Loss rows of the float and double cores against the reference; gradients of the double core
// against central differences of Σ upstream·loss at a sample of coordinates.
void check(const Case& c, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  std::vector<double> z1(c.batch * c.dim), z2(c.batch * c.dim), upstream(c.batch);
  for (double& x : z1) x = normal(rng);
  for (double& x : z2) x = normal(rng);
  for (double& x : upstream) x = normal(rng);
  if (c.tiny_first_row)
    for (int64_t k = 0; k < c.dim; ++k) z1[k] *= 1e-14;
  const std::vector<double> want = reference_losses(c, z1, z2);
  const Outputs exact = run_core<double>(c, z1, z2, upstream);
  const Outputs single = run_core<float>(c, z1, z2, upstream);
  for (int64_t i = 0; i < c.batch; ++i) {
    expect_close(c.name() + " loss[" + std::to_string(i) + "] double", exact.loss[i], want[i], 1e-10);
    expect_close(c.name() + " loss[" + std::to_string(i) + "] float", single.loss[i], want[i], 2e-4);
  }
  std::uniform_int_distribution<int64_t> coordinate(0, c.batch * c.dim - 1);
  for (int sample = 0; sample < 12; ++sample) {
    const int64_t index = c.tiny_first_row ? sample % c.dim : coordinate(rng);
    for (int view = 0; view < 2; ++view) {
      const double step = c.tiny_first_row && view == 0 ? 1e-20 : 1e-6;
      std::vector<double> plus_1(z1), plus_2(z2), minus_1(z1), minus_2(z2);
      (view == 0 ? plus_1 : plus_2)[index] += step;
      (view == 0 ? minus_1 : minus_2)[index] -= step;
      const double numeric = (weighted_sum(reference_losses(c, plus_1, plus_2), upstream) -
                              weighted_sum(reference_losses(c, minus_1, minus_2), upstream)) /
                             (2 * step);
      const double analytic = (view == 0 ? exact.grad_z1 : exact.grad_z2)[index];
      const double single_analytic = (view == 0 ? single.grad_z1 : single.grad_z2)[index];
      const std::string where = c.name() + " grad_z" + std::to_string(view + 1) + "[" + std::to_string(index) + "]";
      expect_close(where + " double", analytic, numeric, 1e-5);
      expect_close(where + " float", single_analytic, numeric, 2e-3);
    }
  }
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  int cases = 0;
  // Sizes around the CPU tiles (32 anchors × 128 keys) and register blocks (16 features).
  const std::vector<std::pair<int64_t, int64_t>> shapes{{1, 1}, {5, 3}, {33, 17}, {130, 20}};
  for (const auto& [batch, dim] : shapes)
    for (const bool normalize : {false, true})
      for (const bool symmetric : {false, true})
        for (int options = 0; options < 4; ++options) {
          Case c{batch, dim, normalize ? 0.1 : 1.0, normalize, symmetric, {}, {}};
          if (options & 1)
            for (int64_t i = 0; i < batch; ++i) c.group_ids.push_back(i % 3);
          if (options & 2)
            for (int64_t i = 0; i < batch; ++i) c.row_mask.push_back(i % 4 != 1);
          check(c, rng);
          ++cases;
        }
  Case all_masked{7, 4, 0.5, true, true, {}, std::vector<char>(7, 0)};
  check(all_masked, rng);
  Case one_group{9, 5, 0.5, true, true, std::vector<int64_t>(9, 42), {}};
  check(one_group, rng);
  for (const double temperature : {0.01, 10.0}) {
    Case extreme{40, 8, temperature, true, true, {}, {}};
    check(extreme, rng);
  }
  Case tiny_row{6, 4, 0.5, true, true, {}, {}, /*tiny_first_row=*/true};
  check(tiny_row, rng);
  cases += 5;
  if (failures > 0) {
    std::printf("%d mismatches in %d cases\n", failures, cases);
    return 1;
  }
  std::printf("info_nce CPU core: %d cases passed\n", cases);
  return 0;
}
