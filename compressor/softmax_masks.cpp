#include "compressor/softmax_masks.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "graph/softmax_mask.h"

namespace oc {

namespace {

struct Range {
  float lo = std::numeric_limits<float>::infinity(), hi = -std::numeric_limits<float>::infinity();
};

// d = x − (largest unmasked x of the row) over the masked entries, rows along the last axis; an
// entry is masked where the Add's output is below x by more than half the mask threshold.
void observe(const Tensor& x, const Tensor& s, Range& r) {
  if (x.dims.empty() || x.dims != s.dims) return;
  const std::vector<float> xv = x.to_float(), sv = s.to_float();
  const int64_t n = x.dims.back(), rows = static_cast<int64_t>(xv.size()) / std::max<int64_t>(n, 1);
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = &xv[i * n];
    const float* sr = &sv[i * n];
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j)
      if (!(sr[j] - xr[j] < kDenormalExp / 2)) top = std::max(top, xr[j]);
    if (!std::isfinite(top)) continue;  // a fully masked row: any mask value gives softmax(x)
    for (int64_t j = 0; j < n; ++j)
      if (sr[j] - xr[j] < kDenormalExp / 2) r.lo = std::min(r.lo, xr[j] - top), r.hi = std::max(r.hi, xr[j] - top);
  }
}

}  // namespace

std::string relax_softmax_masks(Model& m, CalibrationSource& calib, const ExecutorOptions& exec) {
  const auto masks = find_softmax_masks(m.graph);
  if (masks.empty()) return "";
  std::set<std::string> watch;
  for (const auto& s : masks) watch.insert(s.scores), watch.insert(s.sum);
  std::map<std::string, Range> by_scores;
  {
    Executor ex(m, exec);
    std::map<std::string, Tensor> batch, seen;
    calib.rewind();
    while (calib.next(batch)) {
      seen.clear();
      ex.run(batch, [&](const std::string& name, const Tensor& v) { seen[name] = v; }, watch);
      for (const auto& s : masks)
        if (seen.count(s.scores) && seen.count(s.sum)) observe(seen.at(s.scores), seen.at(s.sum), by_scores[s.scores]);
    }
    calib.rewind();
  }
  // A mask shared by several Softmaxes takes one value for their union; where the union cannot keep
  // every site off denormals but a site alone can, that site gets its own copy of a Where mask.
  std::map<std::string, Range> by_values;
  for (const auto& s : masks) {
    const Range& r = by_scores[s.scores];
    Range& u = by_values[s.values];
    u.lo = std::min(u.lo, r.lo), u.hi = std::max(u.hi, r.hi);
  }
  int64_t entries = 0;
  int changed = 0;
  float lowest = 0;
  auto apply = [&](const std::string& values, float v, int n_sites) {
    entries += set_mask_entries(m.graph, values, v);
    changed += n_sites;
    lowest = std::min(lowest, v);
  };
  for (const auto& [values, r] : by_values) {
    if (!std::isfinite(r.lo)) continue;  // never saw a masked entry
    if (const float v = mask_value(r.lo, r.hi); !std::isnan(v)) {
      apply(values, v, static_cast<int>(std::count_if(masks.begin(), masks.end(), [&](const SoftmaxMask& s) { return s.values == values; })));
      continue;
    }
    for (const auto& s : masks) {
      const Range& own = by_scores[s.scores];
      if (s.values != values || !std::isfinite(own.lo)) continue;
      const float v = mask_value(own.lo, own.hi);
      if (std::isnan(v)) continue;
      const std::string copy = own_where_mask(m.graph, s);
      if (!copy.empty()) apply(copy, v, 1);
    }
  }
  const size_t sites = masks.size();
  m.graph.invalidate();
  if (entries == 0) return "";
  std::ostringstream note;
  note << changed << " of " << sites << " Softmax mask(s): masked entries set to " << lowest
       << " or above (graph/softmax_mask.h): ONNX Runtime's Softmax took their exp as denormals, 7x slower; "
       << "on the calibration data each masked weight stays below e^-22 of its row's largest";
  return note.str();
}

}  // namespace oc
