// Allocation of removals to groups (see allocate.h).
#include "prune/allocate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace oc {

int64_t rounded_keep(int64_t n, int64_t min_keep, double want, int round_to) {
  int64_t rt = std::max(1, round_to);
  int64_t k = std::llround(want / static_cast<double>(rt)) * rt;
  k = std::max<int64_t>(k, rt);
  while (k < min_keep) k += rt;
  return k >= n ? n : k;
}

namespace {

// Removes the `remove` lowest-scoring unlocked units of group g.
std::vector<char> lowest(const ChannelDeps& d, int g, const std::vector<double>& s, int64_t remove) {
  std::vector<char> out(d.groups[g].num_units, 0);
  std::vector<int> idx;
  for (int u = 0; u < d.groups[g].num_units; ++u) if (!d.unit_locked(g, u)) idx.push_back(u);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return s[a] < s[b]; });
  for (int64_t i = 0; i < remove && i < static_cast<int64_t>(idx.size()); ++i) out[idx[i]] = 1;
  return out;
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
    int64_t keep = rounded_keep(n, min_keep(gr, r), static_cast<double>(n) - want_remove[g], r.round_to);
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

std::vector<std::vector<char>> allocate_global(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                               double threshold, const AllocationRules& r) {
  std::vector<double> want(d.groups.size(), 0);
  for (size_t g = 0; g < d.groups.size(); ++g)
    for (int u = 0; u < d.groups[g].num_units; ++u)
      if (!d.unit_locked(static_cast<int>(g), u) && scores[g][u] < threshold) want[g] += 1;
  return finish(d, scores, want, r);
}

}  // namespace oc
