// Greedy choice of the activations stored at 16 bits (see act16.h).
#include "quantize/act16.h"

#include <algorithm>

#include "graph/errors.h"

namespace oc::quant {

int parse_act16(const std::string& s) {
  if (s == "none") return 0;
  size_t used = 0;
  int n = -1;
  try {
    n = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty() || n < 0)
    throw InvalidArgument("quantize: --act16 expects none or a count of activations to keep at 16 bits (0, 1, 2, ...), got '" +
                          s + "'");
  return n;
}

namespace {

// Σ‖y − r‖² and Σ‖r‖² over the float outputs of one batch.
void accumulate_error(const std::map<std::string, Tensor>& y, const std::map<std::string, Tensor>& ref, double& num,
                      double& den) {
  for (const auto& [name, r] : ref) {
    if (!dtype_is_float(r.dtype)) continue;
    const auto a = y.at(name).to_float(), b = r.to_float();
    for (size_t i = 0; i < b.size(); ++i) num += double(a[i] - b[i]) * (a[i] - b[i]), den += double(b[i]) * b[i];
  }
}

}  // namespace

Act16Choice choose_act16(const Model& m, const StaticQdqPlan& plan, const CalibrationStats& stats, CalibMethod method,
                         double min_macs_per_element, CalibrationSource& src, int count, int max_samples,
                         const ExecutorOptions& exec) {
  Act16Choice res;
  if (count <= 0) return res;
  std::vector<std::map<std::string, Tensor>> inputs, reference;
  src.rewind();
  {
    Executor ex(m, exec);
    std::map<std::string, Tensor> batch;
    while (res.samples < max_samples && src.next(batch)) {
      reference.push_back(ex.run(batch));
      inputs.push_back(batch);
      res.samples += static_cast<int>(src.last_batch_samples());
    }
  }
  src.rewind();
  // e(S): the W8A8 model with the activations of S at uint16.
  auto error_with = [&](const std::set<std::string>& wide) {
    Model q = m;
    apply_static_qdq(q, plan, stats, method, 0.9999, min_macs_per_element, wide);
    Executor ex(q, exec);
    double num = 0, den = 0;
    for (size_t b = 0; b < inputs.size(); ++b) accumulate_error(ex.run(inputs[b]), reference[b], num, den);
    return den > 0 ? num / den : num;
  };
  res.error_all8 = error_with({});
  std::set<std::string> hardsigmoid_outputs;  // their range is the HardSigmoid's [0, 1/α], not calibrated
  for (const auto& [node, out] : plan.hardsigmoids) hardsigmoid_outputs.insert(out);
  for (const auto& v : plan.values)
    if (!hardsigmoid_outputs.count(v)) res.ranked.push_back({v, error_with({v})});
  std::stable_sort(res.ranked.begin(), res.ranked.end(),
                   [](const Act16Candidate& a, const Act16Candidate& b) { return a.error < b.error; });
  std::set<std::string> chosen;
  res.error_chosen = res.error_all8;
  const size_t tries = std::min(res.ranked.size(), static_cast<size_t>(2 * count + 4));
  for (size_t i = 0; i < tries && static_cast<int>(chosen.size()) < count; ++i) {
    const Act16Candidate& c = res.ranked[i];
    if (!(c.error < res.error_all8)) break;  // nothing further down gains alone
    std::set<std::string> with = chosen;
    with.insert(c.value);
    const double e = chosen.empty() ? c.error : error_with(with);
    if (e < res.error_chosen) {
      chosen = std::move(with);
      res.chosen.push_back(c.value);
      res.error_chosen = e;
    }
  }
  return res;
}

}  // namespace oc::quant
