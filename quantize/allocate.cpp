// Greedy multiple-choice knapsack (see allocate.h):
//   narrowing step l: b -> b⁻,  ratio = w_l·(err(b⁻) − err(b)) / (cost(b) − cost(b⁻))  (take the smallest)
//   widening  step l: b -> b⁺,  ratio = w_l·(err(b) − err(b⁺)) / (cost(b⁺) − cost(b))  (take the largest that fits)
#include "quantize/allocate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "graph/errors.h"

namespace oc::quant {

std::vector<double> importance_weights(const std::vector<double>& scores) {
  std::vector<double> w(scores.size(), 1.0);
  if (scores.size() < 2) return w;
  double mean = 0, sq = 0;
  for (double s : scores) mean += s;
  mean /= static_cast<double>(scores.size());
  for (double s : scores) sq += (s - mean) * (s - mean);
  const double sd = std::sqrt(sq / static_cast<double>(scores.size()));
  if (sd == 0) return w;
  for (size_t i = 0; i < scores.size(); ++i) w[i] = std::exp((scores[i] - mean) / sd);
  return w;
}

std::vector<int> allocate_bits(const std::vector<AllocItem>& items, std::vector<int> widths, double budget) {
  if (widths.empty()) throw InvalidArgument("no bit widths to choose from");
  std::sort(widths.begin(), widths.end());
  widths.erase(std::unique(widths.begin(), widths.end()), widths.end());
  std::vector<double> scores;
  for (const auto& it : items) scores.push_back(it.score);
  const std::vector<double> w = importance_weights(scores);
  // Each free item chooses among the widths of `widths` it has an error and a cost for (a Conv
  // under matmulnbits has no 2-bit container); fixed items keep their width.
  std::vector<std::vector<int>> own(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].fixed_bits > 0) continue;
    for (int b : widths)
      if (items[i].error.count(b) && items[i].cost.count(b)) own[i].push_back(b);
    if (own[i].empty()) throw InvalidArgument("layer " + items[i].name + " has none of the allowed widths");
  }
  std::vector<int> pos(items.size(), 0);
  std::vector<int> bits(items.size());
  double total = 0, floor_cost = 0;
  auto cost = [&](size_t i, int b) { return items[i].cost.at(b); };
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].fixed_bits > 0) {
      bits[i] = items[i].fixed_bits;
      floor_cost += cost(i, bits[i]);
    } else {
      pos[i] = static_cast<int>(own[i].size()) - 1;
      bits[i] = own[i].back();
      floor_cost += cost(i, own[i].front());
    }
    total += cost(i, bits[i]);
  }
  if (floor_cost > budget * (1 + 1e-12)) {
    std::ostringstream o;
    o << "budget cannot be met: even the narrowest widths need " << floor_cost << " (budget " << budget << ")";
    throw InvalidArgument(o.str());
  }
  auto set = [&](size_t i, int p) {
    total += cost(i, own[i][p]) - cost(i, bits[i]);
    pos[i] = p;
    bits[i] = own[i][p];
  };
  while (total > budget) {
    double best = std::numeric_limits<double>::infinity();
    int pick = -1;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].fixed_bits > 0 || pos[i] == 0) continue;
      int lo = own[i][pos[i] - 1];
      double saved = cost(i, bits[i]) - cost(i, lo);
      double loss = w[i] * (items[i].error.at(lo) - items[i].error.at(bits[i]));
      // A narrowing that saves nothing is never worth taking while over budget.
      double r = saved > 0 ? loss / saved : std::numeric_limits<double>::infinity();
      if (r < best || pick < 0) best = r, pick = static_cast<int>(i);
    }
    if (pick < 0) break;
    set(static_cast<size_t>(pick), pos[pick] - 1);
  }
  for (;;) {
    double best = 0;
    int pick = -1;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].fixed_bits > 0 || pos[i] + 1 >= static_cast<int>(own[i].size())) continue;
      int hi = own[i][pos[i] + 1];
      double extra = cost(i, hi) - cost(i, bits[i]);
      if (total + extra > budget) continue;
      double gain = w[i] * (items[i].error.at(bits[i]) - items[i].error.at(hi));
      double r = extra > 0 ? gain / extra : std::numeric_limits<double>::infinity();
      if (gain > 0 && r > best) best = r, pick = static_cast<int>(i);
    }
    if (pick < 0) break;
    set(static_cast<size_t>(pick), pos[pick] + 1);
  }
  return bits;
}

}  // namespace oc::quant
