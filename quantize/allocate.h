// Bit allocation: a multiple-choice knapsack over the layers.
//   choose b_l ∈ widths   minimizing   Σ_l w_l · err_l(b_l)   subject to   Σ_l cost_l(b_l) ≤ budget
// with w_l = exp((s_l − mean s) / std s) from the importance scores s (higher = more important),
// err_l(b) the layer's relative weight error at width b, and cost_l(b) its bits·params (--avg-bits)
// or bytes (--max-bytes).
// Greedy on marginal gains: start every free layer at the widest width; while over budget, take the
// one-step narrowing with the least added loss per unit of cost saved; then spend any slack on the
// widenings with the most loss removed per unit of cost.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace oc::quant {

struct AllocItem {
  std::string name;
  double score = 0;                // importance, higher = more important
  std::map<int, double> error;     // width -> error (the widths this item may take)
  std::map<int, double> cost;      // width -> budget units (same widths, plus fixed_bits)
  int fixed_bits = 0;              // > 0: decided elsewhere (protected, --bits-for)
};

// Returns the width of each item. Throws InvalidArgument when even the narrowest widths exceed
// the budget.
std::vector<int> allocate_bits(const std::vector<AllocItem>& items, std::vector<int> widths, double budget);

// w_l of the objective (exposed for reports and tests).
std::vector<double> importance_weights(const std::vector<double>& scores);

}  // namespace oc::quant
