// Round-to-nearest quantization:  s = range/levels,  q = clamp(round(w/s) + z, 0, 2^b − 1)
//   sym:  s = r·max|w| / (2^(b−1) − 1),  z = 2^(b−1)
//   asym: s = r·(max(w,0) − min(w,0)) / (2^b − 1),  z = round(−r·min(w,0)/s)
// and the groups (tensor / channel / block) that share one (s, z).
#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "graph/errors.h"
#include "quantize/quantizers.h"

namespace oc::quant {

std::string method_name(Method m) {
  switch (m) {
    case Method::RTN: return "rtn";
    case Method::MSE: return "mse";
    case Method::GPTQ: return "gptq";
  }
  return "?";
}

Method parse_method(const std::string& s) {
  if (s == "rtn") return Method::RTN;
  if (s == "mse") return Method::MSE;
  if (s == "gptq") return Method::GPTQ;
  throw InvalidArgument("unknown quantization method '" + s + "' (expected rtn, mse or gptq)");
}

GroupParams fit_group(const float* x, size_t n, const QuantLayout& l, float clip) {
  GroupParams p;
  float lo = 0.f, hi = 0.f;
  for (size_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (l.scheme == Scheme::Sym) {
    // 2-bit sym keeps levels {−2,−1,0,1}: the positive side sets the step so max|w| is representable.
    float amax = clip * std::max(-lo, hi);
    int qpos = std::max(1, l.sym_zero() - 1);
    p.scale = amax > 0.f ? amax / static_cast<float>(qpos) : 1.f;
    p.zero = static_cast<uint8_t>(l.sym_zero());
  } else {
    lo *= clip;
    hi *= clip;
    float range = hi - lo;
    p.scale = range > 0.f ? range / static_cast<float>(l.code_max()) : 1.f;
    float z = std::round(-lo / p.scale);
    p.zero = static_cast<uint8_t>(std::clamp(z, 0.f, static_cast<float>(l.code_max())));
  }
  return p;
}

bool pair_limited(const QuantLayout& l) {
  return l.pair_limit > 0 && l.pair_taps > 0 && l.scheme == Scheme::Sym && l.granularity == Granularity::Channel;
}

namespace {
double group_sq_error(const float* x, size_t n, const GroupParams& p, int code_max) {
  double e = 0;
  for (size_t i = 0; i < n; ++i) {
    float d = x[i] - p.scale * (static_cast<float>(quantize_code(x[i], p, code_max)) - static_cast<float>(p.zero));
    e += static_cast<double>(d) * d;
  }
  return e;
}

// Only a pair of one sign can saturate: a₁w₁ + a₂w₂ with a ∈ [0, 255] and opposite signs stays
// within 255·max(|w₁|, |w₂|).
template <typename T>
bool same_sign(T a, T b) {
  return (a > 0 && b > 0) || (a < 0 && b < 0);
}

// QuantLayout::pair_limit on one row (sym, channel granularity). In a pair of one sign whose codes
// exceed the limit, the code rounded up the most (|q| − |w|/s largest) steps toward zero until the pair fits.
// `partner`: pair_partners of the row's columns.
double limit_pairs(const float* x, int64_t cols, const int64_t* partner, const QuantLayout& l, const GroupParams& p,
                   uint8_t* codes) {
  const int z = p.zero;
  double err = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t o = partner[c];
    if (o <= c) continue;
    int qa = codes[c] - z, qb = codes[o] - z;
    while (same_sign(qa, qb) && std::abs(qa) + std::abs(qb) > l.pair_limit) {
      const float ea = static_cast<float>(std::abs(qa)) - std::fabs(x[c]) / p.scale;
      const float eb = static_cast<float>(std::abs(qb)) - std::fabs(x[o]) / p.scale;
      int& q = ea >= eb ? qa : qb;
      q -= q > 0 ? 1 : -1;
    }
    codes[c] = static_cast<uint8_t>(qa + z);
    codes[o] = static_cast<uint8_t>(qb + z);
  }
  for (int64_t c = 0; c < cols; ++c) {
    const double d = x[c] - p.scale * static_cast<float>(codes[c] - z);
    err += d * d;
  }
  return err;
}

// The row's step, between the range fit's (pairs over the limit give up part of their excess)
// and max over pairs of one sign (|w_a| + |w_b|) / limit (every pair fits as rounded): the one with the least
// squared error once the pairs are limited, on a grid of 16 between the two.
void fit_pairs(const float* x, int64_t cols, const int64_t* partner, const QuantLayout& l, GroupParams& p) {
  float pair_max = 0.f;
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t o = partner[c];
    if (o > c && same_sign(x[c], x[o])) pair_max = std::max(pair_max, std::fabs(x[c]) + std::fabs(x[o]));
  }
  const float widest = pair_max / static_cast<float>(l.pair_limit);
  if (!(widest > p.scale)) return;
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  const float base = p.scale;
  double best = -1;
  constexpr int kGrid = 16;
  for (int i = 0; i <= kGrid; ++i) {
    GroupParams t = p;
    t.scale = base + (widest - base) * static_cast<float>(i) / kGrid;
    for (int64_t c = 0; c < cols; ++c) codes[c] = quantize_code(x[c], t, l.code_max());
    const double e = limit_pairs(x, cols, partner, l, t, codes.data());
    if (best < 0 || e < best) best = e, p.scale = t.scale;
  }
}

// Visits every scale group of a [rows, cols] matrix with its values gathered contiguously.
template <typename Fit>
QuantizedMatrix quantize_groups(const float* w, int64_t rows, int64_t cols, const QuantLayout& l, Fit fit) {
  if (l.bits < 2 || l.bits > 8) throw InvalidArgument("bit width " + std::to_string(l.bits) + " outside 2..8");
  if (l.granularity == Granularity::Block && l.block_size <= 0) throw InvalidArgument("block size must be positive");
  QuantizedMatrix m;
  m.layout = l;
  m.rows = rows;
  m.cols = cols;
  m.codes.assign(static_cast<size_t>(rows * cols), 0);
  const int64_t nb = m.nblocks();
  m.scales.assign(static_cast<size_t>(m.scale_rows() * nb), 1.f);
  m.zero_points.assign(m.scales.size(), 0);
  auto store = [&](int64_t g, const GroupParams& p) {
    m.scales[g] = p.scale;
    m.zero_points[g] = p.zero;
  };
  if (l.granularity == Granularity::Tensor) {
    GroupParams p = fit(w, static_cast<size_t>(rows * cols));
    store(0, p);
    for (int64_t i = 0; i < rows * cols; ++i) m.codes[i] = quantize_code(w[i], p, l.code_max());
    return m;
  }
  const int64_t gc = l.group_cols(cols);
  const bool pairs = pair_limited(l);
  const std::vector<int64_t> partner = pairs ? pair_partners(cols, l.pair_taps) : std::vector<int64_t>();
  auto rows_range = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t b = 0; b < nb; ++b) {
        const float* x = w + r * cols + b * gc;
        size_t n = static_cast<size_t>(std::min(gc, cols - b * gc));
        GroupParams p = fit(x, n);
        if (pairs) fit_pairs(x, cols, partner.data(), l, p);
        store(r * nb + b, p);
        for (size_t i = 0; i < n; ++i) m.codes[r * cols + b * gc + i] = quantize_code(x[i], p, l.code_max());
        if (pairs) limit_pairs(x, cols, partner.data(), l, p, &m.codes[r * cols]);
      }
  };
  // Rows are independent: large matrices are split over the cores (the fits are pure functions).
  const int64_t hw = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  const int64_t nt = std::min<int64_t>({hw, rows, std::max<int64_t>(1, rows * cols / (int64_t(1) << 19))});
  if (nt <= 1) {
    rows_range(0, rows);
    return m;
  }
  std::vector<std::thread> th;
  for (int64_t k = 0; k < nt; ++k) th.emplace_back(rows_range, rows * k / nt, rows * (k + 1) / nt);
  for (auto& t : th) t.join();
  return m;
}
}  // namespace

GroupParams fit_group_mse(const float* x, size_t n, const QuantLayout& l, int grid, float min_ratio) {
  GroupParams best = fit_group(x, n, l, 1.f);
  double best_err = group_sq_error(x, n, best, l.code_max());
  for (int i = 1; i <= grid; ++i) {
    float r = 1.f - (1.f - min_ratio) * static_cast<float>(i) / static_cast<float>(grid);
    GroupParams p = fit_group(x, n, l, r);
    double e = group_sq_error(x, n, p, l.code_max());
    if (e < best_err) best_err = e, best = p;
  }
  return best;
}

QuantizedMatrix quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantLayout& l) {
  return quantize_groups(w, rows, cols, l, [&](const float* x, size_t n) { return fit_group(x, n, l, 1.f); });
}

QuantizedMatrix quantize_mse(const float* w, int64_t rows, int64_t cols, const QuantLayout& l, int grid,
                             float min_ratio) {
  return quantize_groups(w, rows, cols, l,
                         [&](const float* x, size_t n) { return fit_group_mse(x, n, l, grid, min_ratio); });
}

}  // namespace oc::quant
