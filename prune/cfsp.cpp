// CFSP per-block allocation (see cfsp.h).
#include "prune/cfsp.h"

#include <algorithm>
#include <cmath>

namespace oc {

std::vector<double> cfsp_keep_fractions(const std::vector<double>& importance, double P, double sharpness,
                                        double max_layer_ratio, const std::vector<char>& active) {
  const size_t L = importance.size();
  std::vector<double> keep(L, 1.0);
  std::vector<size_t> on;
  for (size_t l = 0; l < L; ++l)
    if (active.empty() || active.at(l)) on.push_back(l);
  if (on.empty()) return keep;
  const double n = static_cast<double>(on.size());
  double mean = 0, var = 0;
  for (size_t l : on) mean += importance[l] / n;
  for (size_t l : on) var += (importance[l] - mean) * (importance[l] - mean) / n;
  const double sd = std::sqrt(var);
  std::vector<double> s(L, 0.0);
  double mean_s = 0;
  for (size_t l : on) {
    double z = sd > 1e-12 ? (importance[l] - mean) / sd : 0.0;
    s[l] = 1.0 / (1.0 + std::exp(-sharpness * z));
    mean_s += s[l] / n;
  }
  const double kbar = 1.0 - P, lo = 1.0 - max_layer_ratio;
  double lambda = 1.0;
  for (size_t l : on) {
    keep[l] = kbar * s[l] / mean_s;
    double dev = keep[l] - kbar;
    // Largest λ keeping k̄ + λ·dev inside [lo, 1] (k̄ itself is inside when P ≤ max_layer_ratio).
    if (dev > 1e-15) lambda = std::min(lambda, std::max(0.0, 1.0 - kbar) / dev);
    if (dev < -1e-15) lambda = std::min(lambda, std::max(0.0, kbar - lo) / -dev);
  }
  for (size_t l : on) keep[l] = std::clamp(kbar + lambda * (keep[l] - kbar), 0.0, 1.0);
  return keep;
}

std::vector<double> cfsp_group_ratios(const std::vector<int>& group_block, const std::vector<double>& keep, double P) {
  std::vector<double> r(group_block.size(), P);
  for (size_t g = 0; g < group_block.size(); ++g)
    if (group_block[g] >= 0) r[g] = 1.0 - keep[static_cast<size_t>(group_block[g])];
  return r;
}

}  // namespace oc
