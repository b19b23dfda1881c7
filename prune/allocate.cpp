// Allocation of removals to groups (see allocate.h).
#include "prune/allocate.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace oc {

int64_t rounded_keep(int64_t n, int64_t min_keep, double want, int round_to) {
  int64_t rt = std::max(1, round_to);
  int64_t k = std::llround(want / static_cast<double>(rt)) * rt;
  k = std::max<int64_t>(k, rt);
  while (k < min_keep) k += rt;
  return k >= n ? n : k;
}

std::vector<char> remove_in_order(const ChannelDeps& d, int g, const std::vector<int>& order, int64_t count) {
  const ChannelGroup& gr = d.groups[g];
  // Channels each unit holds in each member value: a Concat input or Split output may be only a
  // part of the group, and no value may end up with zero channels.
  std::vector<std::vector<std::pair<int, int64_t>>> held(gr.num_units);
  std::vector<int64_t> left;
  for (size_t vi = 0; vi < gr.values.size(); ++vi) {
    const ChannelSpace& s = d.spaces.at(gr.values[vi]);
    left.push_back(s.channels);
    std::map<int, int64_t> per;
    for (int64_t c = 0; c < s.channels; ++c) ++per[d.elem_unit[s.first_elem + c]];
    for (auto [u, n] : per) held[u].push_back({static_cast<int>(vi), n});
  }
  std::vector<char> out(gr.num_units, 0);
  for (int u : order) {
    if (count <= 0) break;
    if (d.unit_locked(g, u) || out[u]) continue;
    bool ok = true;
    for (auto [vi, n] : held[u]) ok = ok && left[vi] - n >= 1;
    if (!ok) continue;
    for (auto [vi, n] : held[u]) left[vi] -= n;
    out[u] = 1;
    --count;
  }
  return out;
}

// Rounding is about the widths of the weights a group slices. A unit that holds w channels of every
// weight it touches (a head: Dh columns of Q/K/V, Dh rows of O) already keeps widths in steps of w,
// so its unit count rounds to round_to / gcd(round_to, w).
int unit_round_to(const ChannelDeps& d, int g, int round_to) {
  const ChannelGroup& gr = d.groups[g];
  int64_t width = 0;
  for (const auto& p : gr.params) {
    if (p.role != ParamSlice::Role::Producer && p.role != ParamSlice::Role::Consumer) continue;
    const ChannelSpace& s = d.spaces.at(p.value);
    std::map<int, int64_t> per;
    for (int64_t c = 0; c < s.channels; ++c) ++per[d.elem_unit[s.first_elem + c]];
    for (auto [u, k] : per) width = width == 0 ? k : std::min(width, k);
  }
  int64_t rt = std::max(1, round_to);
  return static_cast<int>(rt / std::gcd(rt, std::max<int64_t>(1, width)));
}

namespace {

// Removes the `remove` lowest-scoring unlocked units of group g.
std::vector<char> lowest(const ChannelDeps& d, int g, const std::vector<double>& s, int64_t remove) {
  std::vector<int> idx;
  for (int u = 0; u < d.groups[g].num_units; ++u) if (!d.unit_locked(g, u)) idx.push_back(u);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return s[a] < s[b]; });
  return remove_in_order(d, g, idx, remove);
}

// Fewest units the group may keep: the locked ones, max_layer_ratio, and at least one.
int64_t min_keep(const ChannelGroup& gr, const AllocationRules& r) {
  int64_t n = gr.num_units;
  int64_t cap = static_cast<int64_t>(std::floor(r.max_layer_ratio * static_cast<double>(n)));
  return std::max<int64_t>({1, gr.locked_units, n - cap});
}

std::vector<std::vector<char>> finish(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                      const std::vector<double>& want_remove, const AllocationRules& r) {
  std::vector<std::vector<char>> plan(d.groups.size());
  for (size_t g = 0; g < d.groups.size(); ++g) {
    const auto& gr = d.groups[g];
    plan[g].assign(gr.num_units, 0);
    if (!gr.prunable() || (g < r.skip.size() && r.skip[g]) || want_remove[g] <= 0) continue;
    int64_t n = gr.num_units;
    int64_t keep = rounded_keep(n, min_keep(gr, r), static_cast<double>(n) - want_remove[g],
                                unit_round_to(d, static_cast<int>(g), r.round_to));
    plan[g] = lowest(d, static_cast<int>(g), scores[g], n - keep);
  }
  return plan;
}

}  // namespace

std::vector<std::vector<char>> allocate_local(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                              double ratio, const AllocationRules& r) {
  std::vector<double> want(d.groups.size());
  for (size_t g = 0; g < d.groups.size(); ++g) want[g] = ratio * d.groups[g].num_units;
  return finish(d, scores, want, r);
}

std::vector<std::vector<char>> allocate_per_group(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                                  const std::vector<double>& ratio, const AllocationRules& r) {
  std::vector<double> want(d.groups.size());
  for (size_t g = 0; g < d.groups.size(); ++g) want[g] = ratio.at(g) * d.groups[g].num_units;
  return finish(d, scores, want, r);
}

std::vector<std::vector<char>> allocate_sensitivity(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                                    const std::vector<double>& ratios,
                                                    const std::vector<std::vector<double>>& loss,
                                                    const std::vector<double>& saving, double lambda,
                                                    const AllocationRules& r) {
  std::vector<double> want(d.groups.size(), 0.0);
  for (size_t g = 0; g < d.groups.size(); ++g) {
    const int n = d.groups[g].num_units;
    if (n <= 0 || g >= loss.size() || loss[g].size() != ratios.size() || ratios.empty()) continue;
    if (!std::isfinite(lambda)) { want[g] = r.max_layer_ratio; continue; }
    auto S = [&](double x) {
      double x0 = 0, y0 = 0;
      for (size_t i = 0; i < ratios.size(); ++i) {
        if (x <= ratios[i]) return y0 + (loss[g][i] - y0) * (x - x0) / std::max(1e-12, ratios[i] - x0);
        x0 = ratios[i], y0 = loss[g][i];
      }
      const size_t k = ratios.size();
      const double slope = k >= 2 ? (loss[g][k - 1] - loss[g][k - 2]) / std::max(1e-12, ratios[k - 1] - ratios[k - 2])
                                  : loss[g][0] / std::max(1e-12, ratios[0]);
      return y0 + std::max(0.0, slope) * (x - x0);
    };
    double best = 0, best_v = 0;
    for (int k = 1; k <= n; ++k) {
      const double x = static_cast<double>(k) / n;
      if (x > r.max_layer_ratio + 1e-12) break;
      const double v = S(x) - lambda * saving[g] * x;
      if (v < best_v) best_v = v, best = x;
    }
    want[g] = best;
  }
  return allocate_per_group(d, scores, want, r);
}

std::vector<std::vector<char>> allocate_global(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                               double threshold, const AllocationRules& r) {
  std::vector<double> want(d.groups.size(), 0);
  for (size_t g = 0; g < d.groups.size(); ++g)
    for (int u = 0; u < d.groups[g].num_units; ++u)
      if (!d.unit_locked(static_cast<int>(g), u) && scores[g][u] < threshold) want[g] += 1;
  return finish(d, scores, want, r);
}

}  // namespace oc
