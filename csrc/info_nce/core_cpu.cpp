#include "core_cpu.h"

#include <algorithm>
#include <array>
#include <vector>

#include "core_math.h"

// The hot loops are compiled for baseline x86-64 and for AVX2 and AVX-512 machines, the
// right one picked at load time, so that one build runs everywhere at full vector width.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IGRSR_VECTOR_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define IGRSR_VECTOR_CLONES
#endif

namespace igrsr {
namespace info_nce {
namespace cpu {
namespace {

// Register block of the tile products: kRowBlock rows × kColBlock columns of accumulators.
constexpr int64_t kRowBlock = 4;
constexpr int64_t kColBlock = 16;
// One task owns kAnchorTile anchor rows and sweeps the keys kKeyTile at a time; a logit tile
// (32 × 128 floats, 16 KiB) stays in L1.
constexpr int64_t kAnchorTile = 32;
constexpr int64_t kKeyTile = 128;
static_assert(kAnchorTile % kRowBlock == 0 && kKeyTile % kColBlock == 0, "tiles hold whole blocks");
static_assert(kKeyTile % kAnchorTile == 0, "one padding serves anchors and keys");

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Items per task so that a task does at least ~64k multiply-adds: below that, waking another
// thread costs more than it saves.
int64_t grain_for(int64_t work_per_item) {
  constexpr int64_t kMinTaskWork = int64_t(1) << 16;
  return std::max<int64_t>(1, kMinTaskWork / std::max<int64_t>(1, work_per_item));
}

// Views are stored padded with zeros to whole tiles and blocks, so that the tile products
// never need a ragged edge; padded keys are excluded by index, padded anchors never stored.
struct Layout {
  explicit Layout(int64_t batch_, int64_t dim_)
      : batch(batch_), dim(dim_), padded_batch(round_up(batch_, kKeyTile)), padded_dim(round_up(dim_, kColBlock)) {}
  int64_t batch, dim, padded_batch, padded_dim;
  int64_t view_size() const { return padded_batch * padded_dim; }
  int64_t transposed_size() const { return dim * padded_batch; }
  int64_t anchor_tiles() const { return (batch + kAnchorTile - 1) / kAnchorTile; }
  int64_t tile_work() const { return kAnchorTile * batch * dim; }  // one anchor tile against all keys
};

// The workspace, carved into a and b (padded_batch × padded_dim, row-major), their transposes
// (dim × padded_batch) and the positive logits.
template <typename Real>
struct Prepared {
  Prepared(const Layout& layout, Real* workspace)
      : a(workspace),
        b(a + layout.view_size()),
        a_transposed(b + layout.view_size()),
        b_transposed(a_transposed + layout.transposed_size()),
        positives(b_transposed + layout.transposed_size()) {}
  Real* a;
  Real* b;
  Real* a_transposed;
  Real* b_transposed;
  Real* positives;
};

// What one pass ("these anchors against those keys") reads.
template <typename Real>
struct PassView {
  const Real* anchors;
  const Real* keys;
  const Real* keys_transposed;
  Layout layout;
  Real inv_temperature;
  PairRule rule;
};

template <typename Real>
Real squared_norm(const Real* row, int64_t dim) {
  Real sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < dim; ++k) sum += row[k] * row[k];
  return sum;
}

// view = z, or z / max(|z|, eps) row by row, padded with zeros.
template <typename Real>
void prepare_view(const Real* z, bool normalize, const Layout& layout, Real* view, const ParallelFor& parallel_for) {
  parallel_for(layout.padded_batch, grain_for(layout.padded_dim), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      Real* out = view + row * layout.padded_dim;
      std::fill(out, out + layout.padded_dim, Real(0));
      if (row >= layout.batch) continue;
      const Real* in = z + row * layout.dim;
      const Real scale = normalize ? inverse_norm(squared_norm(in, layout.dim)) : Real(1);
      for (int64_t k = 0; k < layout.dim; ++k) out[k] = in[k] * scale;
    }
  });
}

template <typename Real>
void transpose_view(const Real* view, const Layout& layout, Real* transposed, const ParallelFor& parallel_for) {
  parallel_for(layout.dim, grain_for(layout.padded_batch), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k)
      for (int64_t row = 0; row < layout.padded_batch; ++row)
        transposed[k * layout.padded_batch + row] = view[row * layout.padded_dim + k];
  });
}

template <typename Real>
Prepared<Real> prepare(const Problem<Real>& problem, const Layout& layout, Real* workspace,
                       const ParallelFor& parallel_for) {
  Prepared<Real> prepared(layout, workspace);
  prepare_view(problem.z1, problem.normalize, layout, prepared.a, parallel_for);
  prepare_view(problem.z2, problem.normalize, layout, prepared.b, parallel_for);
  transpose_view(prepared.a, layout, prepared.a_transposed, parallel_for);
  transpose_view(prepared.b, layout, prepared.b_transposed, parallel_for);
  return prepared;
}

// The anchors-against-keys pass: rows pass (a against b) or columns pass (b against a).
template <typename Real>
PassView<Real> pass_view(const Problem<Real>& problem, const Layout& layout, const Prepared<Real>& prepared,
                         bool columns_pass) {
  const PairRule rule{problem.group_ids, problem.row_mask};
  const Real inv_temperature = Real(1) / problem.temperature;
  if (columns_pass) return {prepared.b, prepared.a, prepared.a_transposed, layout, inv_temperature, rule};
  return {prepared.a, prepared.b, prepared.b_transposed, layout, inv_temperature, rule};
}

// out[r][c] (+)= scale · Σ_k lhs[r][k] · rhs[k][c] for rows % kRowBlock == 0 and
// cols % kColBlock == 0; each block of out is summed in registers over the whole of k.
template <typename Real>
IGRSR_VECTOR_CLONES void multiply_tile(const Real* lhs, int64_t lhs_stride, const Real* rhs, int64_t rhs_stride,
                                       int64_t inner, Real scale, Real* out, int64_t out_stride, int64_t rows,
                                       int64_t cols, bool accumulate) {
  for (int64_t row0 = 0; row0 < rows; row0 += kRowBlock) {
    for (int64_t col0 = 0; col0 < cols; col0 += kColBlock) {
      Real sums[kRowBlock][kColBlock] = {};
      for (int64_t k = 0; k < inner; ++k) {
        const Real* rhs_row = rhs + k * rhs_stride + col0;
        for (int64_t r = 0; r < kRowBlock; ++r) {
          const Real left = lhs[(row0 + r) * lhs_stride + k];
#pragma omp simd
          for (int64_t c = 0; c < kColBlock; ++c) sums[r][c] += left * rhs_row[c];
        }
      }
      for (int64_t r = 0; r < kRowBlock; ++r) {
        Real* out_row = out + (row0 + r) * out_stride + col0;
#pragma omp simd
        for (int64_t c = 0; c < kColBlock; ++c) out_row[c] = (accumulate ? out_row[c] : Real(0)) + scale * sums[r][c];
      }
    }
  }
}

// logits[r][c] = s(anchor_begin + r, key_begin + c), a kAnchorTile × kKeyTile tile.
template <typename Real>
void compute_logit_tile(const PassView<Real>& pass, int64_t anchor_begin, int64_t key_begin, Real* logits) {
  const Layout& layout = pass.layout;
  multiply_tile(pass.anchors + anchor_begin * layout.padded_dim, layout.padded_dim, pass.keys_transposed + key_begin,
                layout.padded_batch, layout.dim, pass.inv_temperature, logits, kKeyTile, kAnchorTile, kKeyTile,
                /*accumulate=*/false);
}

// Group and participation of the keys of one tile, read once per tile rather than per pair.
struct KeyTile {
  KeyTile(const PairRule& rule, int64_t begin_, int64_t batch)
      : begin(begin_), count(std::min(kKeyTile, batch - begin_)) {
    for (int64_t c = 0; c < count; ++c) {
      group[c] = group_of(rule, begin + c);
      takes_part[c] = info_nce::takes_part(rule, begin + c);
    }
  }
  int64_t begin;
  int64_t count;
  int64_t group[kKeyTile];
  uint8_t takes_part[kKeyTile];  // not bool: compilers do not vectorize loads of bool
};

// Log-sum-exp of one anchor row over one key tile, merged into `running`.
template <typename Real>
IGRSR_VECTOR_CLONES LogSumExp<Real> merge_row_tile(LogSumExp<Real> running, Real* logits, const KeyTile& keys,
                                                   int64_t anchor, int64_t anchor_group) {
  Real tile_max = minus_infinity<Real>();
#pragma omp simd reduction(max : tile_max)
  for (int64_t c = 0; c < keys.count; ++c) {
    const bool counts = pair_counts(true, keys.takes_part[c], keys.begin + c == anchor, keys.group[c] == anchor_group);
    logits[c] = counts ? logits[c] : minus_infinity<Real>();
    tile_max = std::max(tile_max, logits[c]);
  }
  if (tile_max == minus_infinity<Real>()) return running;
  Real tile_sum = 0;
#pragma omp simd reduction(+ : tile_sum)
  for (int64_t c = 0; c < keys.count; ++c) tile_sum += exp_of(logits[c] - tile_max);
  return merge(running, LogSumExp<Real>{tile_max, tile_sum});
}

// lse[anchor] for the anchors of tiles [tile_begin, tile_end); positives[anchor] = s(anchor, anchor)
// when positives is not null.
template <typename Real>
void logsumexp_tiles(const PassView<Real>& pass, int64_t tile_begin, int64_t tile_end, Real* lse, Real* positives) {
  const int64_t batch = pass.layout.batch;
  std::vector<Real> logits(kAnchorTile * kKeyTile);
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const int64_t anchor_begin = tile * kAnchorTile;
    const int64_t anchor_count = std::min(kAnchorTile, batch - anchor_begin);
    std::array<LogSumExp<Real>, kAnchorTile> running;
    running.fill(empty_log_sum_exp<Real>());
    for (int64_t key_begin = 0; key_begin < batch; key_begin += kKeyTile) {
      compute_logit_tile(pass, anchor_begin, key_begin, logits.data());
      const KeyTile keys(pass.rule, key_begin, batch);
      for (int64_t r = 0; r < anchor_count; ++r) {
        const int64_t anchor = anchor_begin + r;
        Real* row = logits.data() + r * kKeyTile;
        const bool positive_in_tile = anchor >= key_begin && anchor < key_begin + keys.count;
        if (positives != nullptr && positive_in_tile) positives[anchor] = row[anchor - key_begin];
        if (!takes_part(pass.rule, anchor)) continue;
        running[r] = merge_row_tile(running[r], row, keys, anchor, group_of(pass.rule, anchor));
      }
    }
    for (int64_t r = 0; r < anchor_count; ++r) lse[anchor_begin + r] = finish(running[r]);
  }
}

template <typename Real>
void logsumexp_rows(const PassView<Real>& pass, Real* lse, Real* positives, const ParallelFor& parallel_for) {
  parallel_for(pass.layout.anchor_tiles(), grain_for(pass.layout.tile_work()),
               [&](int64_t begin, int64_t end) { logsumexp_tiles(pass, begin, end, lse, positives); });
}

// Per-key factors of dL/ds for one key tile.
template <typename Real>
struct KeyGradTile {
  KeyGradTile(const GradPass<Real>& grad, const KeyTile& keys) {
    const Direction<Real>& direction = grad.key_direction;
    for (int64_t c = 0; c < keys.count; ++c) {
      const int64_t key = keys.begin + c;
      weight[c] = direction_weight(grad, direction, keys.takes_part[c], key);
      lse[c] = direction.lse != nullptr ? direction.lse[key] : Real(0);
    }
  }
  Real weight[kKeyTile];
  Real lse[kKeyTile];
};

// coefficients[c] = dL/ds(anchor, key c) for one anchor row of a logit tile.
template <typename Real>
IGRSR_VECTOR_CLONES void logit_grad_row(const Real* logits, const KeyTile& keys, const KeyGradTile<Real>& key_grad,
                                        int64_t anchor, int64_t anchor_group, bool anchor_takes_part,
                                        Real anchor_weight, Real anchor_lse, Real* coefficients) {
#pragma omp simd
  for (int64_t c = 0; c < keys.count; ++c) {
    const bool is_positive = keys.begin + c == anchor;
    const bool counts = pair_counts(anchor_takes_part, keys.takes_part[c], is_positive, keys.group[c] == anchor_group);
    coefficients[c] =
        logit_grad(logits[c], counts, is_positive, anchor_weight, anchor_lse, key_grad.weight[c], key_grad.lse[c]);
  }
}

// grad_anchors[anchor] = (1/τ) Σ_key dL/ds(anchor, key) · keys[key] for the anchors of
// tiles [tile_begin, tile_end).
template <typename Real>
void anchor_grad_tiles(const PassView<Real>& pass, const GradPass<Real>& grad, int64_t tile_begin, int64_t tile_end,
                       Real* grad_anchors) {
  const Layout& layout = pass.layout;
  const Direction<Real>& anchor_direction = grad.anchor_direction;
  std::vector<Real> logits(kAnchorTile * kKeyTile);
  std::vector<Real> coefficients(kAnchorTile * kKeyTile);
  std::vector<Real> sums(kAnchorTile * layout.padded_dim);
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const int64_t anchor_begin = tile * kAnchorTile;
    const int64_t anchor_count = std::min(kAnchorTile, layout.batch - anchor_begin);
    std::fill(coefficients.begin(), coefficients.end(), Real(0));
    std::fill(sums.begin(), sums.end(), Real(0));
    for (int64_t key_begin = 0; key_begin < layout.batch; key_begin += kKeyTile) {
      compute_logit_tile(pass, anchor_begin, key_begin, logits.data());
      const KeyTile keys(pass.rule, key_begin, layout.batch);
      const KeyGradTile<Real> key_grad(grad, keys);
      for (int64_t r = 0; r < anchor_count; ++r) {
        const int64_t anchor = anchor_begin + r;
        const bool anchor_takes_part = takes_part(pass.rule, anchor);
        const Real anchor_weight = direction_weight(grad, anchor_direction, anchor_takes_part, anchor);
        const Real anchor_lse = anchor_direction.lse != nullptr ? anchor_direction.lse[anchor] : Real(0);
        logit_grad_row(logits.data() + r * kKeyTile, keys, key_grad, anchor, group_of(pass.rule, anchor),
                       anchor_takes_part, anchor_weight, anchor_lse, coefficients.data() + r * kKeyTile);
      }
      multiply_tile(coefficients.data(), kKeyTile, pass.keys + key_begin * layout.padded_dim, layout.padded_dim,
                    keys.count, pass.inv_temperature, sums.data(), layout.padded_dim, kAnchorTile, layout.padded_dim,
                    /*accumulate=*/true);
    }
    for (int64_t r = 0; r < anchor_count; ++r)
      std::copy_n(sums.data() + r * layout.padded_dim, layout.dim, grad_anchors + (anchor_begin + r) * layout.dim);
  }
}

template <typename Real>
void anchor_grads(const PassView<Real>& pass, const GradPass<Real>& grad, Real* grad_anchors,
                  const ParallelFor& parallel_for) {
  parallel_for(pass.layout.anchor_tiles(), grain_for(pass.layout.tile_work()),
               [&](int64_t begin, int64_t end) { anchor_grad_tiles(pass, grad, begin, end, grad_anchors); });
}

// grad (dL/d view, in place) becomes dL/dz through the row normalization.
template <typename Real>
void normalize_backward_rows(const Real* z, const Real* view, const Layout& layout, Real* grad,
                             const ParallelFor& parallel_for) {
  parallel_for(layout.batch, grain_for(layout.dim), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const Real* normalized = view + row * layout.padded_dim;
      Real* grad_row = grad + row * layout.dim;
      const Real sum_squares = squared_norm(z + row * layout.dim, layout.dim);
      const Real inv_norm = inverse_norm(sum_squares);
      const bool clamped = norm_clamped(sum_squares);
      Real projection = 0;
#pragma omp simd reduction(+ : projection)
      for (int64_t k = 0; k < layout.dim; ++k) projection += normalized[k] * grad_row[k];
      for (int64_t k = 0; k < layout.dim; ++k)
        grad_row[k] = normalize_backward(grad_row[k], normalized[k], projection, inv_norm, clamped);
    }
  });
}

}  // namespace

int64_t workspace_size(int64_t batch, int64_t dim) {
  const Layout layout(batch, dim);
  return 2 * layout.view_size() + 2 * layout.transposed_size() + layout.padded_batch;
}

template <typename Real>
void forward(const Problem<Real>& problem, Real* workspace, Real* loss_rows, Real* lse_rows, Real* lse_cols,
             const ParallelFor& parallel_for) {
  const Layout layout(problem.batch, problem.dim);
  const Prepared<Real> prepared = prepare(problem, layout, workspace, parallel_for);
  logsumexp_rows(pass_view(problem, layout, prepared, /*columns_pass=*/false), lse_rows, prepared.positives,
                 parallel_for);
  if (problem.symmetric)
    logsumexp_rows(pass_view(problem, layout, prepared, /*columns_pass=*/true), lse_cols, static_cast<Real*>(nullptr),
                   parallel_for);
  const PairRule rule{problem.group_ids, problem.row_mask};
  for (int64_t row = 0; row < problem.batch; ++row) {
    const Real lse_col = problem.symmetric ? lse_cols[row] : Real(0);
    loss_rows[row] =
        row_loss(takes_part(rule, row), problem.symmetric, prepared.positives[row], lse_rows[row], lse_col);
  }
}

template <typename Real>
void backward(const Problem<Real>& problem, const Real* grad_loss_rows, const Real* lse_rows, const Real* lse_cols,
              Real* workspace, Real* grad_z1, Real* grad_z2, const ParallelFor& parallel_for) {
  const Layout layout(problem.batch, problem.dim);
  const Prepared<Real> prepared = prepare(problem, layout, workspace, parallel_for);
  for (const bool columns_pass : {false, true}) {
    const GradPass<Real> grad = grad_pass(columns_pass, problem.symmetric, grad_loss_rows, lse_rows, lse_cols);
    anchor_grads(pass_view(problem, layout, prepared, columns_pass), grad, columns_pass ? grad_z2 : grad_z1,
                 parallel_for);
  }
  if (!problem.normalize) return;
  normalize_backward_rows(problem.z1, prepared.a, layout, grad_z1, parallel_for);
  normalize_backward_rows(problem.z2, prepared.b, layout, grad_z2, parallel_for);
}

template void forward<float>(const Problem<float>&, float*, float*, float*, float*, const ParallelFor&);
template void forward<double>(const Problem<double>&, double*, double*, double*, double*, const ParallelFor&);
template void backward<float>(const Problem<float>&, const float*, const float*, const float*, float*, float*, float*,
                              const ParallelFor&);
template void backward<double>(const Problem<double>&, const double*, const double*, const double*, double*, double*,
                               double*, const ParallelFor&);

}  // namespace cpu
}  // namespace info_nce
}  // namespace igrsr
