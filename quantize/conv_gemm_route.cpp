#include "quantize/conv_gemm_route.h"

#include <algorithm>
#include <cstdlib>

#include "quantize/deploy_check.h"
#include "quantize/layout.h"

namespace oc::quant {

namespace {

// Every pair of nonzero codes of one sign that ORT's AVX2 kernels add into one int16 (layout.h
// pair_partner; a Conv's columns are c·taps + tap) within |q1| + |q2| <= 128, after adding z.
bool pairs_fit(const int8_t* q, int64_t rows, int64_t cols, const std::vector<int64_t>& partner, int z) {
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* row = q + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t p = partner[static_cast<size_t>(c)];
      if (p <= c) continue;
      const int a = row[c] + z, b = row[p] + z;
      if (a != 0 && b != 0 && (a > 0) == (b > 0) && std::abs(a) + std::abs(b) > 128) return false;
    }
  }
  return true;
}

bool all_zero(const Tensor& t) {
  const std::vector<int64_t> v = t.to_int64();
  return std::all_of(v.begin(), v.end(), [](int64_t x) { return x == 0; });
}

}  // namespace

ConvGemmRoute route_convs_to_qgemm(Model& m, int64_t min_reduction, int64_t min_outputs) {
  Graph& g = m.graph;
  ConvGemmRoute r;
  for (const Node& conv : g.nodes) {
    if (conv.op_type != "Conv" || !conv.is_default_domain() || conv.attr_int("group", 1) != 1 || conv.inputs.size() < 2 ||
        !dq_of(g, conv.input(0)))
      continue;
    const Node* dq = dq_of(g, conv.input(1));
    if (!dq || dq->inputs.size() < 2 || g.consumers(dq->outputs[0]).size() != 1) continue;
    Tensor* w = g.initializer(dq->input(0));
    const Tensor* scale = g.initializer(dq->input(1));
    if (!w || !scale || w->dtype != DType::Int8 || w->dims.size() != 4 || g.consumers(w->name).size() != 1 ||
        g.is_graph_output(w->name))
      continue;
    if (!dq->input(2).empty()) {
      const Tensor* zp = g.initializer(dq->input(2));
      if (!zp || !all_zero(*zp)) continue;
    }
    if (w->dims[1] * w->dims[2] * w->dims[3] < min_reduction || w->dims[0] < min_outputs) continue;
    int8_t* q = w->data<int8_t>();
    const auto [lo, hi] = std::minmax_element(q, q + w->numel());
    // Codes that kept ORT's AVX2 pair limit keep it after the shift (the quantize step leaves the
    // headroom: QuantizeOptions::pair_limit 126), so the file stays exact on every CPU.
    const int64_t rows = w->dims[0], cols = w->numel() / rows;
    const std::vector<int64_t> partner = pair_partners(cols, w->dims[2] * w->dims[3]);
    const bool exact = pairs_fit(q, rows, cols, partner, 0);
    auto fits = [&](int s) { return !exact || pairs_fit(q, rows, cols, partner, s); };
    const int z = *lo >= -127 && fits(-1) ? -1 : *hi <= 126 && fits(1) ? 1 : 0;
    if (z == 0) {
      r.kept.push_back(conv.name);
      continue;
    }
    for (int64_t i = 0; i < w->numel(); ++i) q[i] = static_cast<int8_t>(q[i] + z);
    // The zero point has the scale's shape (per channel: one per output channel, all equal: ORT's
    // QLinearConv requires one value).
    Tensor zp;
    zp.name = g.unique_name(w->name + "_zero_point");
    zp.dtype = DType::Int8;
    zp.dims = scale->dims;
    zp.bytes = Bytes(static_cast<size_t>(std::max<int64_t>(1, scale->numel())), static_cast<uint8_t>(static_cast<int8_t>(z)));
    const std::string zp_name = zp.name;
    const size_t dq_index = static_cast<size_t>(g.producer(dq->outputs[0]));
    g.add_initializer(std::move(zp));
    Node& d = g.nodes[dq_index];
    if (d.inputs.size() < 3) d.inputs.resize(3);
    const std::string old_zp = d.inputs[2];
    d.inputs[2] = zp_name;
    g.invalidate();
    if (!old_zp.empty() && g.consumers(old_zp).empty() && !g.is_graph_output(old_zp)) g.remove_initializer(old_zp);
    r.routed.push_back(conv.name);
  }
  return r;
}

}  // namespace oc::quant
