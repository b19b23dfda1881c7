// Measured per-group sensitivity (see sensitivity.h).
#include "prune/sensitivity.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <map>
#include <set>

#include "prune/rewrite.h"
#include "prune/sequential.h"

namespace oc {

namespace {

bool same_attr(const Attribute& a, const Attribute& b) {
  if (a.name != b.name || a.kind != b.kind) return false;
  switch (a.kind) {
    case Attribute::Kind::Int: return a.i == b.i;
    case Attribute::Kind::Float: return std::memcmp(&a.f, &b.f, sizeof(float)) == 0;
    case Attribute::Kind::String: return a.s == b.s;
    case Attribute::Kind::Ints: return a.ints == b.ints;
    case Attribute::Kind::Floats:
      return a.floats.size() == b.floats.size() &&
             (a.floats.empty() || std::memcmp(a.floats.data(), b.floats.data(), a.floats.size() * sizeof(float)) == 0);
    case Attribute::Kind::Strings: return a.strings == b.strings;
    default: return false;  // tensors, graphs: taken as changed
  }
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  if (a.dtype != b.dtype || a.dims != b.dims || a.bytes.size() != b.bytes.size()) return false;
  if (a.bytes.size() == 0) return a.numel() == 0;  // data not held: taken as changed
  return std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()) == 0;
}

// Index of the first node of `c` that is not the same as `m`'s at that index (fields, attributes,
// the initializers it reads): nodes before it compute the same values in both models.
size_t first_change(const Model& m, const Model& c) {
  const Graph &g0 = m.graph, &g1 = c.graph;
  const size_t n = std::min(g0.nodes.size(), g1.nodes.size());
  for (size_t i = 0; i < n; ++i) {
    const Node &a = g0.nodes[i], &b = g1.nodes[i];
    if (a.name != b.name || a.op_type != b.op_type || a.domain != b.domain || a.inputs != b.inputs ||
        a.outputs != b.outputs || a.attributes.size() != b.attributes.size())
      return i;
    for (size_t k = 0; k < a.attributes.size(); ++k)
      if (!same_attr(a.attributes[k], b.attributes[k])) return i;
    for (const auto& v : b.inputs) {
      if (v.empty()) continue;
      const Tensor *t0 = g0.initializer(v), *t1 = g1.initializer(v);
      if (static_cast<bool>(t0) != static_cast<bool>(t1) || (t1 && !same_tensor(*t0, *t1))) return i;
    }
  }
  return n;
}

// Keeps the first `keep` of the batch's `samples` samples (axis 0 of every input holds the same
// number of rows per sample), so a probe runs exactly max_samples samples, not whole batches.
void keep_first_samples(std::map<std::string, Tensor>& batch, int64_t samples, int64_t keep) {
  for (auto& [name, t] : batch) {
    if (t.dims.empty() || samples <= 0 || t.dims[0] % samples != 0 || t.bytes.empty()) continue;
    const int64_t rows = t.dims[0] / samples * keep;
    const size_t bytes = t.bytes.size() / static_cast<size_t>(t.dims[0]) * static_cast<size_t>(rows);
    t.bytes = Bytes(t.bytes.begin(), t.bytes.begin() + bytes);
    t.dims[0] = rows;
  }
}

}  // namespace

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
      const int64_t got = source.last_batch_samples();
      if (n + got > opt.max_samples) keep_first_samples(b, got, opt.max_samples - n);
      n += std::min(got, opt.max_samples - n);
      ref.push_back(ex.run(b));
      batches.push_back(b);
    }
  }
  if (batches.empty()) return out;
  // KL applies to float outputs of rank >= 2 whose last axis has at least 2 entries (logits).
  auto kl_output = [&](const Tensor& t) {
    return opt.loss == SensitivityLoss::KL && t.dims.size() >= 2 && t.dims.back() >= 2;
  };
  double energy = 0, rows = 0;
  for (const auto& r : ref)
    for (const auto& [name, t] : r) {
      if (t.dtype != DType::Float) continue;
      if (kl_output(t)) { rows += static_cast<double>(t.numel() / t.dims.back()); continue; }
      for (float v : t.to_float()) energy += static_cast<double>(v) * v;
    }
  if (!(energy > 0)) energy = 1;
  if (!(rows > 0)) rows = 1;
  // Σ over rows of KL(softmax(a) ‖ softmax(b)) along the last axis.
  auto kl_sum = [](const std::vector<float>& a, const std::vector<float>& b, int64_t L) {
    double s = 0;
    for (size_t r0 = 0; r0 + static_cast<size_t>(L) <= a.size(); r0 += static_cast<size_t>(L)) {
      double ma = -1e300, mb = -1e300;
      for (int64_t i = 0; i < L; ++i) ma = std::max(ma, static_cast<double>(a[r0 + i])), mb = std::max(mb, static_cast<double>(b[r0 + i]));
      double za = 0, zb = 0;
      for (int64_t i = 0; i < L; ++i) za += std::exp(a[r0 + i] - ma), zb += std::exp(b[r0 + i] - mb);
      const double lza = std::log(za), lzb = std::log(zb);
      for (int64_t i = 0; i < L; ++i) {
        const double pa = a[r0 + i] - ma - lza, pb = b[r0 + i] - mb - lzb;
        s += std::exp(pa) * (pa - pb);
      }
    }
    return std::isfinite(s) ? std::max(0.0, s) : 1e30;
  };
  CompensationOptions comp;
  comp.stats = opt.stats;
  comp.damping = opt.damping;
  // Probes run only the nodes from the group's first changed node on, fed from the original
  // model's values at that cut (cached per batch; groups go in order of their first member node,
  // so the cached cut only moves forward). A probe whose model changes before the cut, or reads a
  // value the cut does not hold, runs from the calibration batches instead.
  std::vector<int> order;
  std::vector<size_t> first(G, 0);
  for (size_t g = 0; g < G; ++g) {
    if (!d.groups[g].prunable() || (g < rules.skip.size() && rules.skip[g])) continue;
    size_t f = m.graph.nodes.size();
    for (const auto& p : d.groups[g].params) f = std::min(f, static_cast<size_t>(std::max(0, p.node)));
    first[g] = f;
    order.push_back(static_cast<int>(g));
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return first[a] < first[b]; });
  size_t cut = 0;                                     // the cached cut of the original model
  std::vector<std::map<std::string, Tensor>> cached;  // its values per batch (cut > 0)
  bool caching = opt.cache_bytes > 0;
  for (int gi : order) {
    const size_t g = static_cast<size_t>(gi);
    if (caching && first[g] > cut) {  // move the cached cut forward to this group's first node
      const std::set<std::string> carry = cut_values(m.graph, first[g]);
      auto seg = make_segment(m, cut, carry, opt.exec);
      std::vector<std::map<std::string, Tensor>> next(batches.size());
      size_t bytes = 0;
      for (size_t bi = 0; bi < batches.size(); ++bi) {
        run_segment(*seg, cut == 0 ? batches[bi] : cached[bi], nullptr, {}, carry, &next[bi]);
        for (const auto& [n, t] : next[bi]) bytes += t.bytes.size();
        if (bytes > opt.cache_bytes) break;
      }
      if (bytes > opt.cache_bytes) {
        caching = false;  // over budget: the probes from here on run from the batches
        cut = 0;
        cached.clear();
      } else {
        cached = std::move(next);
        cut = first[g];
      }
    }
    std::vector<std::vector<char>> probed;  // the last plan probed for this group
    for (size_t ri = 0; ri < R; ++ri) {
      std::vector<double> ratio(G, 0.0);
      ratio[g] = opt.ratios[ri];
      auto plan = allocate_per_group(d, scores, ratio, rules);
      bool any = false;
      for (char c : plan[g]) any = any || c;
      if (!any) continue;
      // Ratios that round to the same units (a group of 2 units of 8 channels at eighths) remove the
      // same channels: the same model, the same loss.
      if (ri > 0 && plan == probed) {
        out[g][ri] = out[g][ri - 1];
        continue;
      }
      probed = plan;
      Model c = m;
      apply_prune(c, d, plan, comp);
      size_t from = cut > 0 && first_change(m, c) >= cut ? cut : 0;
      std::set<std::string> need;
      for (const auto& v : c.graph.outputs) need.insert(v.name);
      auto seg = make_segment(c, from, need, opt.exec);
      bool missing = false;
      if (from > 0)
        for (const auto& v : seg->inputs) missing = missing || !cached.front().count(v);
      if (missing) {
        from = 0;
        seg = make_segment(c, 0, need, opt.exec);
      }
      c = Model();  // the segment holds what it runs: one copy of the weights, not two
      double err = 0, kl = 0;
      for (size_t bi = 0; bi < batches.size(); ++bi) {
        std::map<std::string, Tensor> y;
        run_segment(*seg, from == 0 ? batches[bi] : cached[bi], nullptr, {}, need, &y);
        for (const auto& [name, t0] : ref[bi]) {
          auto it = y.find(name);
          if (t0.dtype != DType::Float || it == y.end() || it->second.numel() != t0.numel()) continue;
          const auto a = t0.to_float(), b = it->second.to_float();
          if (kl_output(t0)) { kl += kl_sum(a, b, t0.dims.back()); continue; }
          for (size_t i = 0; i < a.size(); ++i) err += (static_cast<double>(b[i]) - a[i]) * (static_cast<double>(b[i]) - a[i]);
        }
      }
      out[g][ri] = err / energy + kl / rows;
    }
  }
  source.rewind();
  return out;
}

}  // namespace oc
