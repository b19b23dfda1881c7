// The `quantize` step: layer-wise mixed-bit weight quantization (quantize/quantize.h), its
// calibration pass (GPTQ Grams, LIM angles) and the sensitivity scorer's extra forward passes.
#include <algorithm>
#include <memory>
#include <set>
#include <sstream>

#include "compressor/options.h"
#include "compressor/steps.h"
#include "engine/cpu_features.h"
#include "engine/shape_eval.h"
#include "graph/fold_batchnorm.h"
#include "graph/subgraphs.h"
#include "graph/opset_convert.h"
#include "quantize/act16.h"
#include "quantize/activations.h"
#include "quantize/calib_plan.h"
#include "quantize/gemm_as_matmul.h"
#include "quantize/quantize.h"
#include "quantize/smoothquant.h"
#include "quantize/stem_space_to_depth.h"
#include "quantize/conv_gemm_route.h"
#include "quantize/pad_conv_channels.h"
#include "quantize/static_qdq.h"

namespace oc {
namespace {

std::vector<int> parse_widths(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    try {
      size_t used = 0;
      int b = std::stoi(tok, &used);
      if (used != tok.size()) throw std::invalid_argument(tok);
      out.push_back(b);
    } catch (const std::exception&) {
      throw InvalidArgument("quantize: --widths: '" + tok + "' is not a bit width");
    }
  }
  if (out.empty()) throw InvalidArgument("quantize: --widths is empty");
  return out;
}

std::pair<std::string, int> parse_bits_for(const std::string& s) {
  auto eq = s.rfind('=');
  try {
    if (eq == std::string::npos || eq == 0) throw std::invalid_argument(s);
    return {s.substr(0, eq), std::stoi(s.substr(eq + 1))};
  } catch (const std::exception&) {
    throw InvalidArgument("quantize: --bits-for expects REGEX=BITS, got '" + s + "'");
  }
}

// Sensitivity of a layer: Σ‖y_q − y‖² / Σ‖y‖² over the first calibration batches, where y_q comes
// from the model with only that layer fake-quantized at the narrowest allowed width.
quant::WidthSensitivityFn make_sensitivity(const Model& m, CalibrationSource& src, const quant::QuantizeOptions& o,
                                           int max_batches, const ExecutorOptions& exec) {
  struct Data {
    std::vector<std::map<std::string, Tensor>> inputs, outputs;
  };
  auto d = std::make_shared<Data>();
  src.rewind();
  std::map<std::string, Tensor> batch;
  {
    Executor ex(m, exec);
    while (static_cast<int>(d->inputs.size()) < max_batches && src.next(batch)) {
      d->outputs.push_back(ex.run(batch));
      d->inputs.push_back(batch);
    }
  }
  return [&m, d, o, exec](const quant::WeightLayer& l, int bits) {
    Model mq = m;
    quant::QuantLayout lay = quant::width_layout(quant::effective_layout(l, o.format, o.layout), bits, o);
    std::vector<float> w = quant::layer_matrix(mq.graph, l);
    // The proxy the allocator uses elsewhere: the clipping search (GPTQ's own result needs a solve).
    quant::QuantizedMatrix q = o.method == quant::Method::RTN ? quant::quantize_rtn(w.data(), l.rows, l.cols, lay)
                                                              : quant::quantize_mse(w.data(), l.rows, l.cols, lay);
    quant::set_layer_matrix(mq.graph, l, q.dequantize());
    Executor ex(mq, exec);
    double num = 0, den = 0;
    for (size_t b = 0; b < d->inputs.size(); ++b) {
      auto y = ex.run(d->inputs[b]);
      for (const auto& [name, ref] : d->outputs[b]) {
        if (!dtype_is_float(ref.dtype)) continue;
        auto a = y.at(name).to_float(), r = ref.to_float();
        for (size_t i = 0; i < r.size(); ++i) num += (a[i] - r[i]) * (a[i] - r[i]), den += r[i] * r[i];
      }
    }
    return den > 0 ? num / den : num;
  };
}

// Dry run of a static-int8 step: statistics with the element counts calibration would observe
// (one sample's, from shape inference) and a unit range, so the Q/DQ placement and the thin-region
// rule (static_qdq.h, slow_int8_regions) decide as in the real run and the file's bytes match
// (ranges change scale values, not sizes). A value without a known shape counts one element.
CalibrationStats shape_statistics(const Model& m, const std::vector<std::string>& values,
                                  const std::map<std::string, std::vector<int64_t>>& input_shapes) {
  Model c = copy_without_weight_data(m);
  infer_shapes_evaluated(c, input_shapes);
  CalibrationStats st;
  st.samples = 1;
  for (const auto& v : values) {
    MinMaxStat mm;
    mm.min = -1, mm.max = 1, mm.count = 1;
    const ValueInfo* vi = c.graph.find_value_info(v);
    if (vi && vi->has_shape && shape_known(vi->shape)) {
      int64_t e = 1;
      for (int64_t d : shape_values(vi->shape)) e *= d;
      mm.count = std::max<int64_t>(e, 1);
    }
    st.minmax[v] = mm;
  }
  return st;
}

// W4A8: plan_static_qdq places activation pairs around layers whose weight is int8 (or a float
// initializer still to be exported). The 4-bit layers' int4 DequantizeLinear weights are shown to it
// as float initializers holding their dequantized values while the pairs are placed, then put back:
// ONNX Runtime 1.30's CPU EP has no int4 QLinearConv, so it runs DequantizeLinear + the float layer
// on the quantized activation (the W4A8 numbers; the file keeps int4 weights).
struct Int4Swap {
  std::string node, weight, tmp;
  Node dq;                  // the weight's DequantizeLinear and its initializers, put back if the
  std::vector<Tensor> init; // pass dropped them as unused
};

std::vector<Int4Swap> show_int4_as_float(Graph& g, const std::set<std::string>& layers) {
  std::vector<Int4Swap> out;
  for (auto& n : g.nodes) {
    if (!layers.count(n.name) || n.inputs.size() < 2) continue;
    const int p = g.producer(n.input(1));
    if (p < 0 || g.nodes[p].op_type != "DequantizeLinear") continue;
    const Node& dq = g.nodes[p];
    const Tensor* q = g.initializer(dq.input(0));
    const Tensor* sc = dq.inputs.size() > 1 ? g.initializer(dq.input(1)) : nullptr;
    if (!q || !sc || q->dtype != DType::Int4 || (dq.inputs.size() > 2 && !dq.input(2).empty())) continue;
    const int64_t rank = static_cast<int64_t>(q->dims.size());
    int64_t axis = dq.attr_int("axis", 1);
    if (axis < 0) axis += rank;
    const int64_t bs = dq.attr_int("block_size", 0);
    const std::vector<float> codes = q->to_float(), scale = sc->to_float();
    std::vector<int64_t> stride(rank, 1), sstride(rank, 1), sdims = q->dims;
    if (sc->numel() == 1) sdims.assign(rank, 1);
    else if (bs > 0) sdims = sc->dims;
    else {
      sdims.assign(rank, 1);
      sdims[axis] = q->dims[axis];
    }
    for (int64_t d = rank - 2; d >= 0; --d) stride[d] = stride[d + 1] * q->dims[d + 1], sstride[d] = sstride[d + 1] * sdims[d + 1];
    std::vector<float> w(codes.size());
    for (int64_t i = 0; i < static_cast<int64_t>(codes.size()); ++i) {
      int64_t si = 0;
      for (int64_t d = 0; d < rank; ++d) {
        int64_t c = (i / stride[d]) % q->dims[d];
        if (sdims[d] == 1) c = 0;
        else if (d == axis && bs > 0) c /= bs;
        si += c * sstride[d];
      }
      w[i] = codes[i] * scale[si];
    }
    Int4Swap sw{n.name, n.input(1), g.unique_name(n.input(1) + "_w4a8"), dq, {}};
    for (const auto& in : dq.inputs)
      if (const Tensor* t = in.empty() ? nullptr : g.initializer(in)) sw.init.push_back(*t);
    g.add_initializer(Tensor::from_float(sw.tmp, q->dims, w));
    n.inputs[1] = sw.tmp;
    out.push_back(sw);
  }
  g.invalidate();
  return out;
}

void restore_int4(Graph& g, const std::vector<Int4Swap>& swaps) {
  for (const auto& sw : swaps) {
    int at = -1;
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (g.nodes[i].name == sw.node && g.nodes[i].inputs.size() > 1 && g.nodes[i].inputs[1] == sw.tmp)
        g.nodes[i].inputs[1] = sw.weight, at = static_cast<int>(i);
    g.invalidate();
    if (at < 0) continue;
    if (g.producer(sw.weight) < 0) {
      for (const Tensor& t : sw.init)
        if (!g.initializer(t.name)) g.add_initializer(t);
      g.nodes.insert(g.nodes.begin() + at, sw.dq);
    }
    g.invalidate();
    if (g.consumers(sw.tmp).empty()) g.remove_initializer(sw.tmp);
  }
  g.invalidate();
}

class QuantizeStep : public Step {
 public:
  explicit QuantizeStep(const nlohmann::json& options) : settings_(options) {
    OptionReader r(options, "quantize");
    auto bits = r.integer("bits");
    auto avg = r.number("avg-bits");
    auto max_bytes = r.integer("max-bytes");
    if (!!bits + !!avg + !!max_bytes > 1) throw InvalidArgument("quantize: give only one of --bits, --avg-bits, --max-bytes");
    if (bits) o_.bits = static_cast<int>(*bits);
    if (avg) o_.target = quant::QuantizeOptions::Target::AvgBits, o_.avg_bits = *avg;
    if (max_bytes) o_.target = quant::QuantizeOptions::Target::MaxBytes, o_.max_bytes = *max_bytes;
    if (auto w = r.text("widths")) o_.widths = parse_widths(*w);
    if (auto f = r.text("format")) o_.format = quant::parse_format(*f);
    if (auto s = r.text("scheme")) o_.layout.scheme = quant::parse_scheme(*s);
    else o_.asym_2bit = true;  // sym by default, asym at 2 bits (quantize.h: QuantizeOptions::asym_2bit)
    auto gran = r.text("granularity");
    o_.layout.granularity = gran ? quant::parse_granularity(*gran)
                                 : (o_.format == quant::Format::MatMulNBits ? quant::Granularity::Block
                                                                            : quant::Granularity::Channel);
    if (auto b = r.integer("block-size")) {
      if (*b < 16 || *b > 4096) throw InvalidArgument("quantize: --block-size must be between 16 and 4096");
      o_.layout.block_size = *b;
    } else {
      o_.scale_blocks_to_width = true;  // quantize.h: QuantizeOptions::scale_blocks_to_width
    }
    // Any of these is a method choice; with none, a run with --calib takes the data-aware default.
    method_given_ = r.has("method") || r.has("awq") || r.has("act-order") || r.has("bias-correction");
    smoothquant_ = r.flag("smoothquant");
    if (auto m = r.text("method")) o_.method = quant::parse_method(*m);
    o_.awq = r.flag("awq");
    o_.gptq.act_order = r.flag("act-order");
    o_.bias_correction = r.flag("bias-correction");
    if (o_.gptq.act_order && o_.method != quant::Method::GPTQ) throw InvalidArgument("quantize: --act-order needs --method gptq");
    if (auto s = r.text("scorer")) o_.scorer = *s;
    o_.keep_float = r.texts("keep-float");
    for (const auto& s : r.texts("bits-for")) o_.bits_for.push_back(parse_bits_for(s));
    o_.protect_ends = !r.flag("no-protect");
    o_.tables = !r.flag("float-tables");
    if (auto gb = r.integer("gram-budget-mib")) {
      if (*gb < 1) throw InvalidArgument("quantize: --gram-budget-mib must be at least 1");
      o_.sequential_gram_bytes = *gb << 20;
    }
    if (auto s = r.integer("seed")) o_.score_inputs.seed = static_cast<uint64_t>(*s);
    if (auto a = r.text("activations")) {
      if (*a != "int8") throw InvalidArgument("quantize: --activations supports only int8");
      activations_ = fold_batchnorms_ = true;
      if (o_.format != quant::Format::QDQ) throw InvalidArgument("quantize: --activations int8 needs --format qdq");
    }
    // Weight range (QuantizeOptions::weight_range): static W8A8 multiplies the 8-bit weights with
    // uint8 activations in ORT's integer kernels, so it keeps the AVX2 pair limit unless told otherwise.
    using WR = quant::QuantizeOptions::WeightRange;
    const auto range = r.text("weight-range");
    if (range && *range != "pairs" && *range != "reduced" && *range != "full")
      throw InvalidArgument("quantize: --weight-range must be pairs, reduced or full, not '" + *range + "'");
    if (range) o_.weight_range = *range == "pairs" ? WR::Pairs : *range == "reduced" ? WR::Reduced : WR::Full;
    else if (activations_) o_.weight_range = WR::Pairs;
    if (auto a = r.text("act16")) {
      act16_ = quant::parse_act16(*a);
      if (act16_ > 0 && !activations_)
        throw InvalidArgument("quantize: --act16 needs --activations int8 (it keeps some of the static activations at 16 bits)");
    }
    if (smoothquant_ && !activations_) throw InvalidArgument("quantize: --smoothquant needs --activations int8 (it migrates activation outliers into the weights)");
    // Percentile is the default: the best or level with the best of the four on every model measured
    // (docs/QUANTIZATION.md, "Activation ranges").
    calib_method_ = quant::parse_calib_method(r.text("calib-method").value_or("percentile"));
    // The CPU the int8 model will run on (quantize/conv_gemm_route.h): "host" reads this one.
    const std::string cpu = r.text("deploy-cpu").value_or("host");
    if (cpu != "host" && cpu != "amx" && cpu != "vnni" && cpu != "avx2")
      throw InvalidArgument("quantize: --deploy-cpu must be host, amx, vnni or avx2, not '" + cpu + "'");
    deploy_amx_ = cpu == "amx" || (cpu == "host" && host_cpu_features().amx_int8);
    deploy_cpu_ = cpu == "host" ? std::string(host_cpu_features().amx_int8 ? "amx" : host_cpu_features().avx512_vnni ? "vnni" : "avx2") + " (host)" : cpu;
    r.finish();
  }

  std::string kind() const override { return "quantize"; }
  bool needs_calibration() const override {
    if (dry_run_) return false;
    // lim/sensitivity only matter when widths are allocated; gptq always needs data.
    bool scored = o_.target != quant::QuantizeOptions::Target::Uniform &&
                  (o_.scorer == "lim" || o_.scorer == "sensitivity");
    return o_.method == quant::Method::GPTQ || o_.awq || o_.bias_correction || scored || activations_;
  }
  nlohmann::json settings() const override { return settings_; }

  StepResult run(Model& m, StepContext& ctx) override {
    quant::QuantizeOptions o = o_;
    // Headroom for the ±1 code shift of the AMX route, so the routed file stays exact on AVX2 too.
    if (activations_ && deploy_amx_) o.pair_limit = 126;
    CalibrationStats stats;
    // Integer kernels need BatchNormalization folded into the Conv before it (nothing between a
    // Conv and its output Q).
    // Kept in dry runs (which drop the activation pass) so the predicted params match.
    const int folded = fold_batchnorms_ ? fold_batchnorms(m) : 0;
    // Static int8: Gemms as MatMul + Add, which ORT runs as integer kernels (it forms no QGemm), so
    // their weights are quantized and stored in 8 bits too.
    const std::vector<std::string> gemms = activations_ ? quant::gemm_as_matmul(m) : std::vector<std::string>();
    // Static int8: a Conv on the image input with C % 4 != 0 reads it padded to 4 channels, so ORT runs
    // MLAS's direct int8 kernel on it (quantize/pad_conv_channels.h).
    // Static int8: a strided stem conv on the image becomes a stride-1 conv over space-to-depth blocks
    // (quantize/stem_space_to_depth.h: ResNet-50's 7x7 stem 1.10 -> 0.68 ms in ORT).
    const int stems = activations_ ? quant::stem_space_to_depth(m) : 0;
    const int padded = activations_ ? quant::pad_conv_input_channels(m) : 0;
    // Branch/body weights move next to their nodes first (graph/subgraphs.h): calibration, the
    // sensitivity scorer and quantize_model then see the same layers.
    localize_subgraph_weights(m.graph);
    if (needs_calibration() && !ctx.calib)
      throw InvalidArgument(activations_ ? std::string("quantize: --activations int8 needs calibration data (--calib SPEC); "
                                                       "without data, weight-only 8-bit (recipe w8) saves size but not time")
                                         : "quantize: --method " + quant::method_name(o.method) + " / --scorer " +
                                               o.scorer + " need calibration data (--calib SPEC)");
    // W4A8 (4-bit weights with static int8 activations): the 4-bit weights decide the accuracy, so
    // they take the data-aware default too (measured on fashion_cnn, docs/QUANTIZATION.md).
    const bool below8 = o.target != quant::QuantizeOptions::Target::Uniform || o.bits < 8;
    if (ctx.calib && !method_given_ && (!activations_ || below8)) {
      // The best measured data-aware method (docs/QUANTIZATION.md, "Default method"): GPTQ in
      // column order with bias correction (act-order and AWQ measured level or worse on gpt_tiny,
      // and AWQ searched with GPTQ is 3x slower for -0.01 ppl). Static int8 (W8A8) keeps RTN
      // weights: its measured accuracy is the activations', and its recipes' tests pin it.
      o.method = quant::Method::GPTQ;
      o.bias_correction = true;
      // W4A8: act-order measured best there (fashion_cnn 0.9253 against 0.9233 in column order,
      // float 0.9267; docs/QUANTIZATION.md), while weight-only runs keep column order (gpt_tiny).
      if (activations_) o.gptq.act_order = true;
    }
    nlohmann::json smooth;
    if (smoothquant_ && ctx.calib && !dry_run_) {
      // Before the activation ranges are observed: the ranges are those of the smoothed model.
      const quant::SmoothQuantResult sq = quant::smooth_quant(m, *ctx.calib, {}, ctx.exec);
      smooth["smoothed"] = sq.smoothed;
      smooth["groups"] = nlohmann::json::array();
      for (const auto& gr : sq.groups)
        smooth["groups"].push_back({{"input", gr.input}, {"layers", gr.layers}, {"alpha", gr.alpha}, {"applied", gr.applied},
                                    {"error_plain", gr.error_plain}, {"error_smoothed", gr.error_smoothed}});
    }
    if (ctx.calib && (needs_calibration() || !method_given_)) {
      quant::CalibrationNeeds needs;
      needs.grams = o.method == quant::Method::GPTQ || o.awq || o.bias_correction ||
                    o.target != quant::QuantizeOptions::Target::Uniform;
      needs.lim = o.scorer == "lim";
      auto layers = quant::find_weight_layers(m.graph);
      auto plan = quant::quantize_calibration_plan(m, layers, needs);
      if (activations_) {
        // Ranges of every value the int8 graph may quantize: the plan with every layer at 8 bits
        // (and the pass-through outputs, which become roots when their input stays float).
        std::set<std::string> names;
        for (const auto& l : layers) names.insert(l.node);
        const quant::StaticQdqPlan qp = quant::plan_static_qdq(m, names);
        std::vector<std::string> values = qp.values;
        for (const auto& [v, root] : qp.tied) values.push_back(v);
        (calib_method_ == quant::CalibMethod::MinMax ? plan.minmax : plan.histograms) = values;
      }
      ctx.calib->rewind();
      // Models whose Grams would not fit the budget at once (--gram-budget-mib, default 1 GiB;
      // ffn671m's take 6.4 GiB) gather them block by block inside quantize_model
      // (QuantizeOptions::sequential_calib): the same Grams, one segment's at a time. Only for what
      // needs Grams alone: uniform widths, no AWQ, no activation ranges.
      int64_t gram_bytes = 0;
      for (const auto& l : layers) gram_bytes += l.cols * l.cols * int64_t(sizeof(double));
      const bool grams_only = needs.grams && !needs.lim && !activations_ && !o.awq && o.scorer != "sensitivity" &&
                              o.target == quant::QuantizeOptions::Target::Uniform;
      if (grams_only && gram_bytes > o.sequential_gram_bytes) {
        o.sequential_calib = ctx.calib;
        o.sequential_exec = ctx.exec;
      } else {
        stats = calibrate(m, *ctx.calib, plan, ctx.progress, ctx.exec);
        o.score_inputs.stats = &stats;
      }
      if (o.scorer == "sensitivity" && o.target != quant::QuantizeOptions::Target::Uniform)
        o.score_inputs.sensitivity_at = make_sensitivity(m, *ctx.calib, o, 4, ctx.exec);
    }
    o.progress = ctx.work_progress;
    quant::QuantizeReport rep = quant::quantize_model(m, o);
    StepResult r;
    r.details = rep.to_json();
    r.details["method"] = rep.method_summary + (method_given_ || !ctx.calib ? "" : " (default with --calib)");
    if (!smooth.is_null()) {
      r.details["smoothquant"] = smooth;
      r.details["method"] = r.details["method"].get<std::string>() + ", smoothquant on " + std::to_string(smooth["smoothed"].get<int>()) +
                            " of " + std::to_string(smooth["groups"].size()) + " inputs";
    }
    // Uniform widths are not scored: only allocation runs carry importance scores.
    if (!rep.scorer.empty() && o.target != quant::QuantizeOptions::Target::Uniform) {
      r.scorer = rep.scorer;
      for (const auto& l : rep.layers) r.layer_scores.emplace_back(l.node, l.score);
    }
    if (activations_) {
      std::set<std::string> int8_layers;
      for (const auto& l : rep.layers)
        if ((l.storage_bits == 8 || l.storage_bits == 4) && l.scheme == "sym") int8_layers.insert(l.node);  // 4: W4A8
      const std::vector<Int4Swap> swaps = show_int4_as_float(m.graph, int8_layers);
      const quant::StaticQdqPlan qp = quant::plan_static_qdq(m, int8_layers);
      quant::CalibMethod cm = calib_method_;
      if (dry_run_) {
        // Every value the thin-region rule may read: the plan's, and the activations after them.
        std::vector<std::string> values;
        for (const auto& n : m.graph.nodes)
          for (const auto& out : n.outputs) values.push_back(out);
        for (const ValueInfo* in : m.graph.runtime_inputs()) values.push_back(in->name);
        stats = shape_statistics(m, values, ctx.input_shapes);
        cm = quant::CalibMethod::MinMax;
      }
      // --act16 N: the N activations whose 8-bit ranges cost the most output fidelity, measured on the
      // calibration data, are stored as uint16 (quantize/act16.h). Not in dry runs (no data to measure).
      quant::Act16Choice wide;
      if (act16_ > 0 && !dry_run_ && ctx.calib)
        wide = quant::choose_act16(m, qp, stats, cm, quant::kMinInt8MacsPerElement, *ctx.calib, act16_, 8, ctx.exec);
      const std::set<std::string> wide_set(wide.chosen.begin(), wide.chosen.end());
      const quant::StaticQdqResult a =
          quant::apply_static_qdq(m, qp, stats, cm, 0.9999, quant::kMinInt8MacsPerElement, wide_set);
      restore_int4(m.graph, swaps);
      // uint16 QuantizeLinear/DequantizeLinear are ONNX from opset 21.
      if (!wide_set.empty() && m.opset() < 21) convert_opset(m, 21);
      std::set<std::string> from_gemm;
      for (const auto& name : gemms)
        if (!name.empty()) from_gemm.insert(name);
      const int dynamic = quant::dynamic_int8_matmuls(m, from_gemm);
      // An AMX target: long-reduction convs on ORT's QGEMM (AMX tiles) rather than its direct kernel.
      const quant::ConvGemmRoute routed = deploy_amx_ ? quant::route_convs_to_qgemm(m) : quant::ConvGemmRoute{};
      r.details["activation_qdq"] = {{"pairs", a.pairs},
                                     {"dynamic_matmuls", dynamic},
                                     {"conv_inputs_padded", padded},
                                     {"stems_space_to_depth", stems},
                                     {"integer_nodes", a.integer_nodes},
                                     {"int32_biases", a.int32_biases},
                                     {"batchnorms_folded", folded},
                                     {"gemms_as_matmul", gemms.size()},
                                     {"deploy_cpu", deploy_cpu_},
                                     {"convs_on_qgemm", routed.routed.size()},
                                     {"calib_method", settings_.value("calib-method", "percentile")}};
      for (const auto& n : a.notes) r.details["notes"].push_back(n);
      if (!routed.routed.empty() || !routed.kept.empty())
        r.details["notes"].push_back(
            "deploy CPU " + deploy_cpu_ + ": " + std::to_string(routed.routed.size()) + " Conv(s) with C_in*kh*kw >= " +
            std::to_string(quant::kQgemmMinReduction) + " and >= " + std::to_string(quant::kQgemmMinOutputs) + " outputs written with weight zero point -1/+1 (same values) so ONNX Runtime runs them on "
            "QGEMM (AMX) instead of its direct kernel" +
            (routed.kept.empty() ? "" : "; " + std::to_string(routed.kept.size()) + " kept direct (no shift keeps the codes in range and within ORT's AVX2 pair limit)") +
            "; --deploy-cpu vnni|avx2 keeps every conv direct");
      if (act16_ > 0) {
        nlohmann::json ranked = nlohmann::json::array();
        for (const auto& c : wide.ranked) ranked.push_back({{"value", c.value}, {"output_error", c.error}});
        r.details["act16"] = {{"requested", act16_},
                              {"tensors", wide.chosen},
                              {"output_error_all_8bit", wide.error_all8},
                              {"output_error_chosen", wide.error_chosen},
                              {"samples", wide.samples},
                              {"candidates", ranked}};
        r.details["method"] = r.details["method"].get<std::string>() + ", " + std::to_string(wide.chosen.size()) +
                              " activation(s) at 16 bits";
        r.details["notes"].push_back(
            std::to_string(wide.chosen.size()) + " of " + std::to_string(act16_) +
            " requested activations stored as uint16 (opset 21; calibration output error " +
            std::to_string(wide.error_all8) + " at all 8 bits -> " + std::to_string(wide.error_chosen) +
            "): ONNX Runtime's CPU EP runs the nodes reading or writing them in float" +
            (wide.chosen.empty() ? "" : [&] {
              std::string names;
              for (const auto& v : wide.chosen) names += (names.empty() ? ": " : ", ") + v;
              return names;
            }()));
      }
    }
    return r;
  }

  std::string drop_calibration() override {
    if (!needs_calibration()) return "";
    std::string note = activations_ ? "quantize: activation ranges predicted from shapes (Q/DQ placement and sizes exact, "
                                      "scales not)"
                                    : "quantize: predicted with rtn and zd scores";
    // A static-int8 step keeps its activation pass: the Q/DQ pairs, int32 biases and the regions
    // left float are placed from shapes instead of observed data (shape_statistics).
    dry_run_ = activations_;
    method_given_ = true;
    o_.awq = o_.bias_correction = o_.gptq.act_order = false;
    o_.method = quant::Method::RTN;
    o_.scorer = "zd";
    return note;
  }

 private:
  quant::QuantizeOptions o_;
  bool activations_ = false;
  bool dry_run_ = false;  // static int8 without data (drop_calibration): statistics from shapes
  bool method_given_ = false;
  bool smoothquant_ = false;  // SmoothQuant migration before the activation ranges (quantize/smoothquant.h)
  int act16_ = 0;             // --act16: activations kept at 16 bits (quantize/act16.h)
  bool fold_batchnorms_ = false;
  quant::CalibMethod calib_method_ = quant::CalibMethod::Percentile;
  bool deploy_amx_ = false;   // --deploy-cpu: long-reduction int8 convs on ORT's QGEMM (conv_gemm_route.h)
  std::string deploy_cpu_;
  nlohmann::json settings_;
};

}  // namespace

std::unique_ptr<Step> make_quantize_step(const nlohmann::json& options) {
  return std::make_unique<QuantizeStep>(options);
}

}  // namespace oc
