// InfoNCE math shared by the CUDA kernels (core_cuda.cu) and the CPU core (core_cpu.cpp).
//
// Torch-free and host/device: everything here is either plain data or a short inline
// function, so that the CPU kernel, which the tests check against the PyTorch reference,
// runs exactly the formulas the CUDA kernels run.
//
// Notation.  a = z1 and b = z2 after the optional L2 normalization; s_ij = a_i·b_j / τ.
// A row takes part when row_mask is absent or True.  Row i's denominator holds column j when
// both take part and (i == j or the rows are in different groups).  For anchors i in a,
//   lse_rows[i] = log Σ_j exp(s_ij),  lse_cols[j] = log Σ_i exp(s_ij)   (over the pairs that count)
//   loss[i] = lse_rows[i] - s_ii                          one-way
//   loss[i] = ½ (lse_rows[i] - s_ii) + ½ (lse_cols[i] - s_ii)   symmetric
// and loss[i] = 0 for rows that do not take part.
//
// Every pass runs "anchors against keys": the column direction is the row direction with the
// views swapped (s_ij = b_j·a_i / τ), so one kernel serves both and no pass needs atomics.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define IGRSR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define IGRSR_HOST_DEVICE inline
#endif

namespace igrsr {
namespace info_nce {

// torch.nn.functional.normalize's default: rows are divided by max(|z|, eps).
constexpr double kNormEpsilon = 1e-12;
constexpr int kMaxDim = 512;

// Which rows take part and which pairs count as negatives.
struct PairRule {
  const int64_t* group_ids;  // nullptr: every row is its own group
  const bool* row_mask;      // nullptr: every row takes part
};

IGRSR_HOST_DEVICE bool takes_part(const PairRule& rule, int64_t row) {
  return rule.row_mask == nullptr || rule.row_mask[row];
}

IGRSR_HOST_DEVICE int64_t group_of(const PairRule& rule, int64_t row) {
  return rule.group_ids == nullptr ? row : rule.group_ids[row];
}

// Whether key `key` is in anchor `anchor`'s denominator.  The relation is symmetric, which is
// what lets the column direction reuse the row kernel.  Bitwise operators: no short-circuit
// branches, so that loops over keys vectorize.
IGRSR_HOST_DEVICE bool pair_counts(bool anchor_takes_part, bool key_takes_part, bool is_positive, bool same_group) {
  return anchor_takes_part & key_takes_part & (is_positive | !same_group);
}

// exp for arguments that are <= 0 in every result that is used.  Lanes of a vectorized loop
// that are discarded afterwards may pass anything; the input is clamped so that even those
// stay free of undefined behaviour.
IGRSR_HOST_DEVICE float exp_of(float x) {
#if defined(__CUDA_ARCH__)
  return __expf(x);
#else
  // exp(x) = 2^n · exp(r), n = round(x / ln 2), |r| <= ln 2 / 2, with Cephes' expf polynomial
  // (relative error < 2e-7).  Only selects and bit arithmetic, so loops calling it vectorize.
  const bool underflows = x < -87.3f;
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  // Adding 1.5·2^23 rounds to an integer, which then sits in the low mantissa bits.
  constexpr float kRoundingShift = 12582912.0f;
  const float shifted = x * 1.44269504088896341f + kRoundingShift;
  const float n = shifted - kRoundingShift;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t shifted_bits, shift_bits;
  std::memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
  std::memcpy(&shift_bits, &kRoundingShift, sizeof shift_bits);
  const uint32_t power_bits = (shifted_bits - shift_bits + 127u) << 23;  // 2^n as a float
  float power;
  std::memcpy(&power, &power_bits, sizeof power);
  return underflows ? 0.0f : p * power;
#endif
}

IGRSR_HOST_DEVICE double exp_of(double x) { return exp(x); }

// Log-sum-exp kept as (max, Σ exp(x - max)), merged online so that no row of logits is ever
// stored.  sum == 0 means "empty".
template <typename Real>
struct LogSumExp {
  Real max;
  Real sum;
};

// -inf without std::numeric_limits, whose constexpr members device code may not call.
template <typename Real>
IGRSR_HOST_DEVICE Real minus_infinity() {
  return -static_cast<Real>(INFINITY);
}

template <typename Real>
IGRSR_HOST_DEVICE LogSumExp<Real> empty_log_sum_exp() {
  return {minus_infinity<Real>(), Real(0)};
}

template <typename Real>
IGRSR_HOST_DEVICE LogSumExp<Real> merge(const LogSumExp<Real>& x, const LogSumExp<Real>& y) {
  if (y.sum == Real(0)) return x;
  if (x.sum == Real(0)) return y;
  const Real max = x.max > y.max ? x.max : y.max;
  return {max, x.sum * exp_of(x.max - max) + y.sum * exp_of(y.max - max)};
}

template <typename Real>
IGRSR_HOST_DEVICE Real finish(const LogSumExp<Real>& x) {
  return x.sum == Real(0) ? minus_infinity<Real>() : x.max + log(x.sum);
}

template <typename Real>
IGRSR_HOST_DEVICE Real row_loss(bool row_takes_part, bool symmetric, Real positive_logit, Real lse_row, Real lse_col) {
  if (!row_takes_part) return Real(0);
  const Real row_direction = lse_row - positive_logit;
  if (!symmetric) return row_direction;
  return Real(0.5) * (row_direction + (lse_col - positive_logit));
}

// One direction's share of the loss: its softmax enters each row's loss with this weight.
template <typename Real>
struct Direction {
  Real factor;      // 0: this direction is not part of the loss
  const Real* lse;  // its log-sum-exp per row, from the forward
};

// What the backward of one pass needs: the upstream gradient of each row's loss and the
// two directions seen from this pass's anchors and keys.
template <typename Real>
struct GradPass {
  const Real* upstream;  // dL/dloss[i]
  Direction<Real> anchor_direction;
  Direction<Real> key_direction;
};

// rows pass: anchors = a (row direction), keys = b; columns pass: anchors = b, keys = a.
template <typename Real>
IGRSR_HOST_DEVICE GradPass<Real> grad_pass(bool columns_pass, bool symmetric, const Real* upstream,
                                           const Real* lse_rows, const Real* lse_cols) {
  const Direction<Real> rows{symmetric ? Real(0.5) : Real(1), lse_rows};
  const Direction<Real> cols{symmetric ? Real(0.5) : Real(0), lse_cols};
  return columns_pass ? GradPass<Real>{upstream, cols, rows} : GradPass<Real>{upstream, rows, cols};
}

// Weight of row `row`'s softmax in the loss: upstream gradient × direction factor, 0 for
// rows that do not take part.
template <typename Real>
IGRSR_HOST_DEVICE Real direction_weight(const GradPass<Real>& pass, const Direction<Real>& direction,
                                        bool row_takes_part, int64_t row) {
  return row_takes_part && direction.factor != Real(0) ? pass.upstream[row] * direction.factor : Real(0);
}

// dL/ds for one pair: softmax(anchor row) and softmax(key column) weighted by their rows'
// weights, minus the weights on the positive.  Both exps are always evaluated and then
// selected, not multiplied: branch-free for vectorizing compilers, and the exp of a discarded
// lane (a pair that does not count, a direction with weight 0 and lse ±inf) never becomes 0·inf.
template <typename Real>
IGRSR_HOST_DEVICE Real logit_grad(Real logit, bool counts, bool is_positive, Real anchor_weight, Real anchor_lse,
                                  Real key_weight, Real key_lse) {
  const Real anchor_softmax = exp_of(logit - anchor_lse);
  const Real key_softmax = exp_of(logit - key_lse);
  const Real from_anchor = anchor_weight != Real(0) ? anchor_weight * anchor_softmax : Real(0);
  const Real from_key = key_weight != Real(0) ? key_weight * key_softmax : Real(0);
  const Real softmax_part = counts ? from_anchor + from_key : Real(0);
  return is_positive ? softmax_part - (anchor_weight + key_weight) : softmax_part;
}

// 1 / max(|z|, eps) from Σ z².
template <typename Real>
IGRSR_HOST_DEVICE Real inverse_norm(Real sum_squares) {
  const Real norm = sqrt(sum_squares);
  return Real(1) / (norm > Real(kNormEpsilon) ? norm : Real(kNormEpsilon));
}

template <typename Real>
IGRSR_HOST_DEVICE bool norm_clamped(Real sum_squares) {
  return !(sqrt(sum_squares) > Real(kNormEpsilon));
}

// Backward of a = z / max(|z|, eps) for one element: projection = a·(dL/da) over the row.
// Where the norm is clamped, the denominator is a constant.
template <typename Real>
IGRSR_HOST_DEVICE Real normalize_backward(Real grad_normalized, Real normalized, Real projection, Real inv_norm,
                                          bool clamped) {
  return clamped ? grad_normalized * inv_norm : (grad_normalized - normalized * projection) * inv_norm;
}

}  // namespace info_nce
}  // namespace igrsr
