// Measured per-group sensitivity (see sensitivity.h).
#include "prune/sensitivity.h"

#include <cmath>
#include <map>

#include "prune/rewrite.h"

namespace oc {

std::vector<std::vector<double>> measure_group_sensitivity(const Model& m, const ChannelDeps& d,
                                                           const std::vector<std::vector<double>>& scores,
                                                           const AllocationRules& rules, CalibrationSource& source,
                                                           const SensitivityOptions& opt) {
  const size_t G = d.groups.size(), R = opt.ratios.size();
  std::vector<std::vector<double>> out(G, std::vector<double>(R, 0.0));
  // The first calibration batches and the original model's outputs on them.
  std::vector<std::map<std::string, Tensor>> batches;
  std::vector<std::map<std::string, Tensor>> ref;
  {
    Executor ex(m, opt.exec);
    source.rewind();
    int64_t n = 0;
    std::map<std::string, Tensor> b;
    while (n < opt.max_samples && source.next(b)) {
      n += source.last_batch_samples();
      ref.push_back(ex.run(b));
      batches.push_back(b);
    }
  }
  double energy = 0;
  for (const auto& r : ref)
    for (const auto& [name, t] : r) {
      if (t.dtype != DType::Float) continue;
      for (float v : t.to_float()) energy += static_cast<double>(v) * v;
    }
  if (!(energy > 0)) energy = 1;
  CompensationOptions comp;
  comp.stats = opt.stats;
  comp.damping = opt.damping;
  for (size_t g = 0; g < G; ++g) {
    if (!d.groups[g].prunable() || (g < rules.skip.size() && rules.skip[g])) continue;
    for (size_t ri = 0; ri < R; ++ri) {
      std::vector<double> ratio(G, 0.0);
      ratio[g] = opt.ratios[ri];
      const auto plan = allocate_per_group(d, scores, ratio, rules);
      bool any = false;
      for (char c : plan[g]) any = any || c;
      if (!any) continue;
      Model c = m;
      apply_prune(c, d, plan, comp);
      Executor ex(c, opt.exec);
      double err = 0;
      for (size_t bi = 0; bi < batches.size(); ++bi) {
        const auto y = ex.run(batches[bi]);
        for (const auto& [name, t0] : ref[bi]) {
          auto it = y.find(name);
          if (t0.dtype != DType::Float || it == y.end() || it->second.numel() != t0.numel()) continue;
          const auto a = t0.to_float(), b = it->second.to_float();
          for (size_t i = 0; i < a.size(); ++i) err += (static_cast<double>(b[i]) - a[i]) * (static_cast<double>(b[i]) - a[i]);
        }
      }
      out[g][ri] = err / energy;
    }
  }
  source.rewind();
  return out;
}

}  // namespace oc
