// The quantization plan and its execution (see quantize.h):
//   fixed widths (protected ends, --bits-for) -> widths for the rest (uniform, or the knapsack of
//   allocate.h under --avg-bits / --max-bytes) -> quantize each layer -> export.
#include "quantize/quantize.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <set>

#include "graph/errors.h"
#include "graph/onnx_io.h"
#include "quantize/allocate.h"

namespace oc::quant {

namespace {

std::regex compile(const std::string& re, const std::string& flag) {
  try {
    return std::regex(re, std::regex::ECMAScript);
  } catch (const std::regex_error&) {
    throw InvalidArgument(flag + ": invalid regular expression '" + re + "'");
  }
}

bool matches(const std::regex& re, const WeightLayer& l) {
  return std::regex_search(l.node, re) || std::regex_search(l.weight, re);
}

QuantizedMatrix quantize_with(Method m, const std::vector<float>& w, const WeightLayer& l, const QuantLayout& lay,
                              const std::vector<double>* gram, const GptqOptions& gopt) {
  switch (m) {
    case Method::RTN: return quantize_rtn(w.data(), l.rows, l.cols, lay);
    case Method::MSE: return quantize_mse(w.data(), l.rows, l.cols, lay);
    case Method::GPTQ: return quantize_gptq(w.data(), l.rows, l.cols, lay, *gram, gopt);
  }
  throw InvalidArgument("unknown method");
}

int64_t pow2_ceil(int64_t v) {
  int64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

double layer_bytes(const WeightLayer& l, const QuantLayout& layout, Format f) {
  const bool asym = layout.scheme == Scheme::Asym;
  if (f == Format::MatMulNBits && l.op != "Conv") {
    const int cb = matmulnbits_container_bits(layout.bits);
    const int64_t bs = layout.granularity == Granularity::Block ? layout.block_size : std::max<int64_t>(16, pow2_ceil(l.cols));
    const double nb = std::ceil(static_cast<double>(l.cols) / static_cast<double>(bs));
    return static_cast<double>(l.rows) * (nb * static_cast<double>(bs * cb) / 8 + nb * 4 + (asym ? std::ceil(nb * cb / 8) : 0));
  }
  // QDQ (and fake, planned as if it were QDQ: it is the simulation of that form).
  QuantLayout eff = effective_layout(l, f == Format::Fake ? Format::QDQ : f, layout);
  const int cb = qdq_container_bits(layout.bits);
  double groups = eff.granularity == Granularity::Tensor    ? 1
                  : eff.granularity == Granularity::Channel ? static_cast<double>(l.rows)
                                                            : static_cast<double>(l.rows) * std::ceil(static_cast<double>(l.cols) / static_cast<double>(eff.block_size));
  return std::ceil(static_cast<double>(l.params()) * cb / 8) + groups * 4 + (asym ? std::ceil(groups * cb / 8) : 0);
}

QuantizeReport quantize_model(Model& m, const QuantizeOptions& opt) {
  for (int b : opt.widths)
    if (b < 2 || b > 8) throw InvalidArgument("width " + std::to_string(b) + " outside 2..8");
  if (opt.target == QuantizeOptions::Target::Uniform && (opt.bits < 2 || opt.bits > 8))
    throw InvalidArgument("--bits " + std::to_string(opt.bits) + " outside 2..8");
  Graph& g = m.graph;
  QuantizeReport rep;
  rep.format = format_name(opt.format);
  std::vector<WeightLayer> all = find_weight_layers(g, &rep.skipped);

  // --keep-float removes layers from the plan entirely.
  std::vector<std::regex> keep;
  for (const auto& r : opt.keep_float) keep.push_back(compile(r, "--keep-float"));
  std::vector<WeightLayer> layers;
  for (auto& l : all) {
    bool k = std::any_of(keep.begin(), keep.end(), [&](const std::regex& re) { return matches(re, l); });
    if (k) rep.skipped.push_back({l.node, "--keep-float"});
    else layers.push_back(l);
  }
  if (layers.empty()) throw InvalidArgument("no quantizable Conv/MatMul/Gemm weights in the model");

  // Fixed widths: --bits-for first, then the protected first/last layers.
  std::vector<int> fixed(layers.size(), 0);
  std::vector<std::string> why(layers.size());
  std::vector<std::pair<std::regex, int>> bits_for;
  for (const auto& [re, b] : opt.bits_for) {
    if (b < 2 || b > 8) throw InvalidArgument("--bits-for width " + std::to_string(b) + " outside 2..8");
    bits_for.emplace_back(compile(re, "--bits-for"), b);
  }
  for (size_t i = 0; i < layers.size(); ++i)
    for (const auto& [re, b] : bits_for)
      if (!fixed[i] && matches(re, layers[i])) fixed[i] = b, why[i] = "bits-for";
  // The first layer sees raw inputs and the last one writes the outputs: their errors are not
  // averaged away by later layers, so they hurt most (see docs/QUANTIZATION.md).
  if (opt.protect_ends && all.size() >= 3) {
    for (size_t i = 0; i < layers.size(); ++i) {
      bool end = layers[i].node == all.front().node || layers[i].node == all.back().node;
      if (end && !fixed[i]) fixed[i] = std::max(opt.protect_bits, opt.target == QuantizeOptions::Target::Uniform ? opt.bits : 0), why[i] = "protected";
    }
  }

  std::vector<QuantLayout> lay(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) lay[i] = effective_layout(layers[i], opt.format, opt.layout);

  // GPTQ's Gram matrices, when calibration produced them for the layer.
  std::vector<const std::vector<double>*> grams(layers.size(), nullptr);
  if (opt.method == Method::GPTQ) {
    if (!opt.score_inputs.stats) throw InvalidArgument("method gptq needs calibration data (--calib)");
    for (size_t i = 0; i < layers.size(); ++i) {
      auto it = opt.score_inputs.stats->grams.find(layers[i].node);
      // Grouped/depthwise convs have one Gram per group; GPTQ here solves one matrix per layer,
      // so those layers fall back to the MSE clipping search (said in the report's method).
      if (it != opt.score_inputs.stats->grams.end() && it->second.features == layers[i].cols && it->second.rows > 0 &&
          it->second.groups <= 1)
        grams[i] = &it->second.xtx;
    }
  }

  std::vector<std::vector<float>> weights;
  for (const auto& l : layers) weights.push_back(layer_matrix(g, l));
  std::vector<int> bits(layers.size());
  std::vector<double> scores(layers.size(), 0.0);
  if (opt.target == QuantizeOptions::Target::Uniform) {
    rep.target = "bits=" + std::to_string(opt.bits);
    for (size_t i = 0; i < layers.size(); ++i) {
      bits[i] = fixed[i] ? fixed[i] : opt.bits;
      if (!fixed[i]) why[i] = "uniform";
    }
  } else {
    rep.scorer = opt.scorer;
    scores = score_layers(g, layers, opt.scorer, opt.score_inputs);
    std::set<int> ws(opt.widths.begin(), opt.widths.end());
    for (int f : fixed)
      if (f) ws.insert(f);
    // err_l(b) from RTN/MSE (GPTQ's own error needs the Gram matrix per width; the clipped range is
    // a close proxy for ranking widths).
    const Method proxy = opt.method == Method::GPTQ ? Method::MSE : opt.method;
    std::vector<AllocItem> items(layers.size());
    double budget = 0, params = 0;
    for (size_t i = 0; i < layers.size(); ++i) {
      items[i].name = layers[i].node;
      items[i].score = scores[i];
      items[i].fixed_bits = fixed[i];
      params += static_cast<double>(layers[i].params());
      for (int b : ws) {
        QuantLayout lb = lay[i];
        lb.bits = b;
        if (!fixed[i] || b == fixed[i]) {
          QuantizedMatrix q = quantize_with(proxy, weights[i], layers[i], lb, nullptr, opt.gptq);
          items[i].error[b] = relative_error(weights[i], q.dequantize());
        }
        items[i].cost[b] = opt.target == QuantizeOptions::Target::AvgBits
                               ? static_cast<double>(b) * static_cast<double>(layers[i].params())
                               : layer_bytes(layers[i], lb, opt.format);
      }
    }
    if (opt.target == QuantizeOptions::Target::AvgBits) {
      rep.target = "avg-bits=" + std::to_string(opt.avg_bits);
      budget = opt.avg_bits * params;
    } else {
      rep.target = "max-bytes=" + std::to_string(opt.max_bytes);
      // Weights that stay float count against the budget too.
      double float_bytes = static_cast<double>(model_weight_bytes(m));
      for (const auto& l : layers) float_bytes -= 4.0 * static_cast<double>(l.params());
      budget = static_cast<double>(opt.max_bytes) - float_bytes;
    }
    bits = allocate_bits(items, opt.widths, budget);
    for (size_t i = 0; i < layers.size(); ++i)
      if (!fixed[i]) why[i] = "allocation";
  }

  std::vector<QuantizedLayer> out;
  double bit_sum = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    QuantLayout lb = lay[i];
    lb.bits = bits[i];
    Method meth = opt.method;
    std::string meth_name = method_name(meth);
    if (meth == Method::GPTQ && !grams[i]) meth = Method::MSE, meth_name = "mse (no Gram statistics for gptq)";
    QuantizedMatrix q = quantize_with(meth, weights[i], layers[i], lb, grams[i], opt.gptq);
    if (opt.progress) opt.progress(static_cast<int64_t>(i + 1), static_cast<int64_t>(layers.size()));
    LayerReport r;
    r.node = layers[i].node;
    r.op = layers[i].op;
    r.weight = layers[i].weight;
    r.rows = layers[i].rows;
    r.cols = layers[i].cols;
    r.score = scores[i];
    r.bits = bits[i];
    r.storage_bits = opt.format == Format::Fake ? 32
                     : (opt.format == Format::MatMulNBits && layers[i].op != "Conv") ? matmulnbits_container_bits(bits[i])
                                                                                     : qdq_container_bits(bits[i]);
    r.decided_by = why[i];
    r.method = meth_name;
    r.scheme = scheme_name(lb.scheme);
    r.granularity = granularity_name(lb.granularity);
    r.block_size = lb.granularity == Granularity::Block ? lb.block_size : 0;
    std::vector<float> deq = q.dequantize();
    r.rel_error = relative_error(weights[i], deq);
    r.sqnr_db = sqnr_db(weights[i], deq);
    rep.layers.push_back(r);
    bit_sum += static_cast<double>(bits[i]) * static_cast<double>(layers[i].params());
    rep.quantized_params += layers[i].params();
    out.push_back({layers[i], std::move(q)});
  }
  rep.avg_bits = bit_sum / static_cast<double>(rep.quantized_params);
  ExportInfo info = export_quantized(m, out, opt.format);
  rep.opset = info.opset;
  rep.dequantize_form = info.dequantize_form;
  return rep;
}

nlohmann::json QuantizeReport::to_json() const {
  nlohmann::json j;
  j["format"] = format;
  j["target"] = target;
  if (!scorer.empty()) j["scorer"] = scorer;
  j["avg_bits"] = avg_bits;
  j["opset"] = opset;
  if (!dequantize_form.empty()) j["dequantize_form"] = dequantize_form;
  j["quantized_params"] = quantized_params;
  j["layers"] = nlohmann::json::array();
  for (const auto& l : layers) {
    nlohmann::json e = {{"node", l.node}, {"op", l.op}, {"weight", l.weight}, {"shape", {l.rows, l.cols}},
                        {"score", l.score}, {"bits", l.bits}, {"storage_bits", l.storage_bits},
                        {"decided_by", l.decided_by}, {"method", l.method}, {"scheme", l.scheme},
                        {"granularity", l.granularity}, {"rel_error", l.rel_error}, {"sqnr_db", l.sqnr_db}};
    if (l.block_size) e["block_size"] = l.block_size;
    j["layers"].push_back(e);
  }
  j["skipped"] = nlohmann::json::array();
  for (const auto& s : skipped) j["skipped"].push_back({{"node", s.node}, {"reason", s.reason}});
  return j;
}

}  // namespace oc::quant
