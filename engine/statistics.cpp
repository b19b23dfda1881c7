// Statistic helpers: histogram percentiles and the KL-entropy clipping threshold.
//
//   percentile(q)  = lo + (i + (q·N − C_i)/n_i)·w   where bin i is the first with C_i + n_i ≥ q·N
//   entropy T      = argmin_{i ≥ levels} KL(P_i ‖ Q_i),  T = i·w   (|x| histogram)
#include "engine/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "graph/errors.h"

namespace oc {

double ChannelStat::l2(size_t c) const { return std::sqrt(sum_sq[c]); }

uint64_t HistogramStat::total() const { return std::accumulate(bins.begin(), bins.end(), uint64_t{0}); }

float histogram_percentile(const HistogramStat& h, double q) {
  const uint64_t n = h.total();
  if (n == 0) throw InvalidArgument("percentile of an empty histogram");
  q = std::clamp(q, 0.0, 1.0);
  const double target = q * static_cast<double>(n), w = h.bin_width();
  double cum = 0;
  for (size_t i = 0; i < h.bins.size(); ++i) {
    const double c = static_cast<double>(h.bins[i]);
    if (c > 0 && cum + c >= target) {
      const double frac = std::clamp((target - cum) / c, 0.0, 1.0);
      return static_cast<float>(h.lo + (static_cast<double>(i) + frac) * w);
    }
    cum += c;
  }
  return h.hi;
}

HistogramStat histogram_fold_abs(const HistogramStat& h) {
  HistogramStat out;
  out.lo = 0;
  out.hi = std::max(std::fabs(h.lo), std::fabs(h.hi));
  out.bins.assign(h.bins.size(), 0);
  if (h.bins.empty() || out.hi <= 0) {
    if (!out.bins.empty()) out.bins[0] = h.total();
    return out;
  }
  const double w = h.bin_width(), wa = static_cast<double>(out.hi) / static_cast<double>(h.bins.size());
  const int64_t last = static_cast<int64_t>(h.bins.size()) - 1;
  for (size_t i = 0; i < h.bins.size(); ++i) {
    const double centre = std::fabs(h.lo + (static_cast<double>(i) + 0.5) * w);
    const int64_t j = std::clamp(static_cast<int64_t>(centre / wa), int64_t{0}, last);
    out.bins[static_cast<size_t>(j)] += h.bins[i];
  }
  return out;
}

float histogram_entropy_threshold(const HistogramStat& h, int levels) {
  if (levels < 2) throw InvalidArgument("entropy threshold needs at least 2 levels");
  const HistogramStat a = h.lo == 0 ? h : histogram_fold_abs(h);
  const size_t nb = a.bins.size();
  if (nb == 0 || a.total() == 0) throw InvalidArgument("entropy threshold of an empty histogram");
  const size_t L = static_cast<size_t>(levels);
  if (nb <= L) return a.hi;
  const double w = a.bin_width();
  std::vector<double> suffix(nb + 1, 0.0);  // Σ bins[i..nb)
  for (size_t i = nb; i-- > 0;) suffix[i] = suffix[i + 1] + static_cast<double>(a.bins[i]);

  double best_kl = std::numeric_limits<double>::infinity();
  size_t best_i = nb;
  std::vector<double> p, q;
  for (size_t i = L; i <= nb; ++i) {
    p.assign(a.bins.begin(), a.bins.begin() + static_cast<std::ptrdiff_t>(i));
    p[i - 1] += suffix[i];  // clipped outliers land in the last kept bin
    q.assign(i, 0.0);
    // Merge the i unclipped bins into L buckets; spread each bucket over its non-empty bins.
    for (size_t k = 0; k < L; ++k) {
      const size_t b0 = k * i / L, b1 = (k + 1) * i / L;
      double sum = 0;
      size_t nonzero = 0;
      for (size_t b = b0; b < b1; ++b) {
        sum += static_cast<double>(a.bins[b]);
        nonzero += a.bins[b] != 0;
      }
      if (nonzero == 0) continue;
      for (size_t b = b0; b < b1; ++b)
        if (a.bins[b] != 0) q[b] = sum / static_cast<double>(nonzero);
    }
    const double ps = std::accumulate(p.begin(), p.end(), 0.0), qs = std::accumulate(q.begin(), q.end(), 0.0);
    if (ps <= 0 || qs <= 0) continue;
    double kl = 0;
    for (size_t b = 0; b < i; ++b) {
      if (p[b] <= 0) continue;
      const double pb = p[b] / ps, qb = std::max(q[b] / qs, 1e-12);  // Q = 0 where P > 0: heavy but finite
      kl += pb * std::log(pb / qb);
    }
    if (kl < best_kl) { best_kl = kl; best_i = i; }
  }
  return static_cast<float>(static_cast<double>(best_i) * w);
}

namespace {
template <typename T> size_t vec_bytes(const std::vector<T>& v) { return v.capacity() * sizeof(T); }
template <typename M, typename F> size_t map_bytes(const M& m, F inner) {
  size_t n = 0;
  for (const auto& [k, v] : m) n += k.capacity() + sizeof(v) + inner(v);
  return n;
}
}  // namespace

size_t stats_bytes(const CalibrationStats& s) {
  return sizeof(s) + map_bytes(s.minmax, [](const MinMaxStat&) { return size_t{0}; }) +
         map_bytes(s.histograms, [](const HistogramStat& h) { return vec_bytes(h.bins); }) +
         map_bytes(s.channels, [](const ChannelStat& c) { return vec_bytes(c.sum) + vec_bytes(c.sum_abs) + vec_bytes(c.sum_sq); }) +
         map_bytes(s.grams, [](const GramStat& g) { return vec_bytes(g.xtx) + vec_bytes(g.col_sum); }) +
         map_bytes(s.columns, [](const ColumnStat& c) { return vec_bytes(c.sum_sq); }) +
         map_bytes(s.blocks, [](const BlockAngleStat&) { return size_t{0}; });
}

}  // namespace oc
