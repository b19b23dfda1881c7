// SmoothQuant migration (see smoothquant.h).
#include "quantize/smoothquant.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "quantize/layers.h"
#include "quantize/quantizers.h"

namespace oc::quant {

namespace {

// A float initializer only node `reader` reads.
Tensor* own_float(Graph& g, const std::string& name, int reader) {
  Tensor* t = name.empty() ? nullptr : g.initializer(name);
  if (!t || t->dtype != DType::Float || g.is_graph_output(name)) return nullptr;
  for (int c : g.consumers(name))
    if (c != reader) return nullptr;
  return t;
}

// What one calibration batch leaves of X [rows, K]: per-channel min/max (the batch's range of X/s
// follows from them for any s) and evenly spaced rows.
struct BatchRows {
  std::vector<float> lo, hi, rows;
  int64_t n = 0;
};

// Simulated W8A8 error Σ_l ‖X W_lᵀ − Q(X/s) Q(W_l s)ᵀ‖² on the kept rows.
double w8a8_error(const std::vector<BatchRows>& batches, const std::vector<std::vector<float>>& w,
                  const std::vector<int64_t>& n_rows, const std::vector<std::vector<float>>& y_ref, int64_t K,
                  const std::vector<double>& s) {
  QuantLayout lay;
  lay.bits = 8;
  lay.scheme = Scheme::Sym;
  lay.granularity = Granularity::Channel;
  std::vector<std::vector<float>> wq(w.size());
  for (size_t l = 0; l < w.size(); ++l) {
    std::vector<float> ws(w[l].size());
    for (int64_t i = 0; i < n_rows[l]; ++i)
      for (int64_t j = 0; j < K; ++j) ws[i * K + j] = static_cast<float>(w[l][i * K + j] * s[j]);
    wq[l] = quantize_rtn(ws.data(), n_rows[l], K, lay).dequantize();
  }
  double err = 0;
  size_t row0 = 0;
  std::vector<float> xq(static_cast<size_t>(K));
  for (const BatchRows& b : batches) {
    float lo = 0, hi = 0;
    for (int64_t j = 0; j < K; ++j)
      lo = std::min(lo, static_cast<float>(b.lo[j] / s[j])), hi = std::max(hi, static_cast<float>(b.hi[j] / s[j]));
    const float scale = hi > lo ? (hi - lo) / 255.f : 1.f;
    const float z = std::nearbyint(-lo / scale);
    for (int64_t r = 0; r < b.n; ++r, ++row0) {
      for (int64_t j = 0; j < K; ++j) {
        const float q = std::clamp(std::nearbyint(static_cast<float>(b.rows[r * K + j] / s[j]) / scale) + z, 0.f, 255.f);
        xq[j] = (q - z) * scale;
      }
      for (size_t l = 0; l < w.size(); ++l)
        for (int64_t i = 0; i < n_rows[l]; ++i) {
          const float* wr = wq[l].data() + i * K;
          double acc = 0;
          for (int64_t j = 0; j < K; ++j) acc += static_cast<double>(xq[j]) * wr[j];
          const double d = acc - y_ref[l][row0 * n_rows[l] + i];
          err += d * d;
        }
    }
  }
  return err;
}

}  // namespace

std::vector<SmoothGroup> smooth_groups(const Model& m) {
  const Graph& g = m.graph;
  std::map<std::string, SmoothGroup> by_input;
  std::map<std::string, int64_t> cols;
  std::set<std::string> bad;
  for (const WeightLayer& l : find_weight_layers(g)) {
    if (!l.graph.empty() || (l.op != "MatMul" && l.op != "Gemm")) continue;
    const Node& n = g.nodes[g.node_index(l.node)];
    const std::string& x = n.input(0);
    SmoothGroup& sg = by_input[x];
    sg.input = x;
    sg.layers.push_back(l.node);
    // Each weight must be this layer's alone (a tied weight would be scaled for two inputs).
    if (g.consumers(l.weight).size() != 1) bad.insert(x);
    auto [it, fresh] = cols.emplace(x, l.cols);
    if (!fresh && it->second != l.cols) bad.insert(x);
  }
  std::vector<SmoothGroup> out;
  for (auto& [x, sg] : by_input) {
    if (bad.count(x) || g.is_initializer(x) || g.is_graph_output(x) || g.producer(x) < 0) continue;
    // Every reader of X must be a layer of the group (another reader would see X / s).
    std::set<std::string> names(sg.layers.begin(), sg.layers.end());
    bool only = true;
    for (int c : g.consumers(x)) only = only && names.count(g.nodes[c].name);
    if (only) out.push_back(sg);
  }
  return out;
}

SmoothQuantResult smooth_quant(Model& m, CalibrationSource& src, const SmoothQuantOptions& opt, const ExecutorOptions& exec) {
  SmoothQuantResult res;
  std::vector<SmoothGroup> groups = smooth_groups(m);
  if (groups.empty()) return res;
  Graph& g = m.graph;
  std::map<std::string, WeightLayer> layer_of;
  for (const WeightLayer& l : find_weight_layers(g))
    if (l.graph.empty()) layer_of[l.node] = l;
  std::map<std::string, size_t> gi;
  std::set<std::string> watch;
  for (size_t i = 0; i < groups.size(); ++i) gi[groups[i].input] = i, watch.insert(groups[i].input);
  std::vector<int64_t> K(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) K[i] = layer_of.at(groups[i].layers[0]).cols;

  // Observe X per batch.
  std::vector<std::vector<BatchRows>> obs(groups.size());
  const int64_t per_batch = std::max<int64_t>(1, opt.max_rows / std::max(1, opt.max_batches));
  {
    Executor ex(m, exec);
    src.rewind();
    std::map<std::string, Tensor> batch;
    int nb = 0;
    while (nb < opt.max_batches && src.next(batch)) {
      ex.run(batch, [&](const std::string& name, const Tensor& v) {
        auto it = gi.find(name);
        if (it == gi.end() || !dtype_is_float(v.dtype)) return;
        const int64_t k = K[it->second];
        const std::vector<float> x = v.to_float();
        const int64_t rows = static_cast<int64_t>(x.size()) / k;
        if (rows <= 0 || rows * k != static_cast<int64_t>(x.size())) return;
        BatchRows b;
        b.lo.assign(k, 0.f), b.hi.assign(k, 0.f);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < k; ++j) b.lo[j] = std::min(b.lo[j], x[r * k + j]), b.hi[j] = std::max(b.hi[j], x[r * k + j]);
        const int64_t step = std::max<int64_t>(1, rows / per_batch);
        for (int64_t r = 0; r < rows && b.n < per_batch; r += step, ++b.n)
          b.rows.insert(b.rows.end(), x.begin() + r * k, x.begin() + (r + 1) * k);
        obs[it->second].push_back(std::move(b));
      }, watch);
      ++nb;
    }
    src.rewind();
  }

  for (size_t gidx = 0; gidx < groups.size(); ++gidx) {
    SmoothGroup& sg = groups[gidx];
    const int64_t k = K[gidx];
    const auto& batches = obs[gidx];
    // Where 1/s goes: the LayerNormalization that writes X (last axis, own scale and bias), else a Mul.
    const int p = g.producer(sg.input);
    Tensor *gamma = nullptr, *beta = nullptr;
    if (p >= 0 && g.nodes[p].op_type == "LayerNormalization" && g.nodes[p].outputs[0] == sg.input &&
        g.nodes[p].attr_int("axis", -1) == -1) {
      gamma = g.nodes[p].inputs.size() > 1 ? own_float(g, g.nodes[p].input(1), p) : nullptr;
      const bool has_beta = g.nodes[p].inputs.size() > 2 && !g.nodes[p].input(2).empty();
      beta = has_beta ? own_float(g, g.nodes[p].input(2), p) : nullptr;
      if (!gamma || gamma->numel() != k || (has_beta && (!beta || beta->numel() != k))) gamma = beta = nullptr;
    }
    if (batches.empty() || (!gamma && !opt.allow_mul)) {
      res.groups.push_back(sg);
      continue;
    }
    std::vector<std::vector<float>> w;
    std::vector<int64_t> nr;
    for (const auto& name : sg.layers) {
      const WeightLayer& l = layer_of.at(name);
      w.push_back(layer_matrix(g, l));
      nr.push_back(l.rows);
    }
    // Reference outputs on the kept rows, and the two maxima.
    std::vector<double> amax(k, 0.0), wmax(k, 0.0);
    for (const auto& b : batches)
      for (int64_t j = 0; j < k; ++j) amax[j] = std::max({amax[j], std::fabs(static_cast<double>(b.lo[j])), std::fabs(static_cast<double>(b.hi[j]))});
    for (size_t l = 0; l < w.size(); ++l)
      for (int64_t i = 0; i < nr[l]; ++i)
        for (int64_t j = 0; j < k; ++j) wmax[j] = std::max(wmax[j], std::fabs(static_cast<double>(w[l][i * k + j])));
    std::vector<std::vector<float>> y_ref(w.size());
    for (size_t l = 0; l < w.size(); ++l) {
      for (const auto& b : batches)
        for (int64_t r = 0; r < b.n; ++r)
          for (int64_t i = 0; i < nr[l]; ++i) {
            double acc = 0;
            for (int64_t j = 0; j < k; ++j) acc += static_cast<double>(b.rows[r * k + j]) * w[l][i * k + j];
            y_ref[l].push_back(static_cast<float>(acc));
          }
    }
    const std::vector<double> ones(k, 1.0);
    sg.error_plain = w8a8_error(batches, w, nr, y_ref, k, ones);
    double best = sg.error_plain;
    std::vector<double> best_s;
    for (double a : opt.alphas) {
      std::vector<double> s(k, 1.0);
      for (int64_t j = 0; j < k; ++j)
        if (amax[j] > 0 && wmax[j] > 0) s[j] = std::clamp(std::pow(amax[j], a) / std::pow(wmax[j], 1 - a), 1e-5, 1e5);
      const double e = w8a8_error(batches, w, nr, y_ref, k, s);
      if (e < best) best = e, best_s = s, sg.alpha = a;
    }
    sg.error_smoothed = best;
    if (best_s.empty()) {
      res.groups.push_back(sg);
      continue;
    }
    if (gamma) {
      for (Tensor* t : {gamma, beta}) {
        if (!t) continue;
        auto v = t->to_float();
        for (int64_t j = 0; j < k; ++j) v[j] = static_cast<float>(v[j] / best_s[j]);
        *t = Tensor::from_float(t->name, t->dims, v);
      }
      sg.applied = "folded into " + g.nodes[p].name;
    } else {
      std::vector<float> inv(k);
      for (int64_t j = 0; j < k; ++j) inv[j] = static_cast<float>(1.0 / best_s[j]);
      const std::string sn = g.unique_name(sg.input + "_smooth_scale"), out = g.unique_name(sg.input + "_smooth");
      g.add_initializer(Tensor::from_float(sn, {k}, inv));
      Node mul;
      mul.op_type = "Mul";
      mul.name = g.unique_name(sg.layers[0] + "_smooth_Mul");
      mul.inputs = {sg.input, sn};
      mul.outputs = {out};
      int at = static_cast<int>(g.nodes.size());
      for (const auto& name : sg.layers) {
        const int i = g.node_index(name);
        g.nodes[i].inputs[0] = out;
        at = std::min(at, i);
      }
      g.nodes.insert(g.nodes.begin() + at, mul);
      g.invalidate();
      sg.applied = "Mul " + mul.name;
    }
    for (size_t l = 0; l < w.size(); ++l) {
      std::vector<float>& wl = w[l];
      for (int64_t i = 0; i < nr[l]; ++i)
        for (int64_t j = 0; j < k; ++j) wl[i * k + j] = static_cast<float>(wl[i * k + j] * best_s[j]);
      WeightLayer lay = layer_of.at(sg.layers[l]);
      set_layer_matrix(g, lay, wl);
    }
    ++res.smoothed;
    res.groups.push_back(sg);
  }
  return res;
}

}  // namespace oc::quant
