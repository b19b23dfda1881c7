// Static int8 QDQ for ONNX Runtime's integer kernels (see static_qdq.h).
#include "quantize/static_qdq.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <tuple>

#include "graph/errors.h"
#include "graph/opset_convert.h"

namespace oc::quant {
namespace {

// ORT's QLinear* replacements (Unary/Binary/Variadic selectors) and the ops it runs on uint8 when
// the DQ before and the Q after carry the same parameters (DropQDQNodes).
const std::set<std::string> kUnary = {"AveragePool", "GlobalAveragePool", "Sigmoid", "LeakyRelu"};
const std::set<std::string> kBinary = {"Add", "Mul"};
const std::set<std::string> kVariadic = {"Concat"};
const std::set<std::string> kPassThrough = {"MaxPool",   "Resize",  "Reshape", "Transpose", "Flatten", "Squeeze",
                                            "Unsqueeze", "Slice",   "Gather",  "Expand",    "Tile"};

// An initializer, or a DequantizeLinear of one (an exported weight).
bool is_constant(const Graph& g, const std::string& v) {
  if (g.is_initializer(v)) return true;
  const int p = g.producer(v);
  return p >= 0 && g.nodes[p].op_type == "DequantizeLinear" && g.is_initializer(g.nodes[p].input(0));
}

// The weight is int8 symmetric: a float initializer still to be exported, or a DQ of int8 codes.
bool int8_weight(const Graph& g, const std::string& w) {
  if (const Tensor* t = g.initializer(w)) return t->dtype == DType::Float;
  const int p = g.producer(w);
  if (p < 0 || g.nodes[p].op_type != "DequantizeLinear") return false;
  const Tensor* codes = g.initializer(g.nodes[p].input(0));
  return codes && codes->dtype == DType::Int8 && g.nodes[p].inputs.size() < 3 && !g.nodes[p].has_attr("block_size");
}

// A Relu, or a Clip whose lower bound is the constant 0: ORT removes it before a Q with z = 0.
bool is_zero_floor_activation(const Graph& g, const Node& n) {
  if (!n.is_default_domain()) return false;
  if (n.op_type == "Relu") return true;
  if (n.op_type != "Clip") return false;
  if (n.has_attr("min")) return n.attr_float("min", -1) == 0.f;
  if (n.inputs.size() < 2 || n.inputs[1].empty()) return false;
  auto lo = g.constant_value(n.inputs[1]);
  return lo && lo->numel() == 1 && lo->to_float()[0] == 0.f;
}

std::vector<std::string> activation_inputs(const Graph& g, const Node& n) {
  std::vector<std::string> out;
  for (const auto& in : n.inputs)
    if (!in.empty() && !is_constant(g, in)) out.push_back(in);
  return out;
}

// Elements a value had over the calibration samples (0 when it was not observed).
uint64_t observed_elements(const CalibrationStats& stats, const std::string& v) {
  if (auto h = stats.histograms.find(v); h != stats.histograms.end()) return h->second.total();
  if (auto mm = stats.minmax.find(v); mm != stats.minmax.end()) return static_cast<uint64_t>(mm->second.count);
  return 0;
}

// Calibration saw one value only: min = max, or every count in one histogram bin (a constant's
// histogram spans 1e-6 of it, engine/observers.cpp; real data of any magnitude spreads over the bins).
bool observed_single_value(const CalibrationStats& stats, const std::string& v) {
  if (auto h = stats.histograms.find(v); h != stats.histograms.end())
    return std::count_if(h->second.bins.begin(), h->second.bins.end(), [](uint64_t c) { return c > 0; }) <= 1;
  if (auto mm = stats.minmax.find(v); mm != stats.minmax.end()) return mm->second.min == mm->second.max;
  return false;
}

// The int8 codes of a weight DequantizeLinear, dequantized to float (s · (q − z) along `axis`).
std::optional<Tensor> dequantized_weight(const Graph& g, const Node& dq, const std::string& name) {
  const Tensor* q = g.initializer(dq.input(0));
  const Tensor* s = dq.inputs.size() > 1 ? g.initializer(dq.inputs[1]) : nullptr;
  if (!q || !s || q->dtype != DType::Int8 || q->dims.empty()) return std::nullopt;
  const Tensor* z = dq.inputs.size() > 2 && !dq.inputs[2].empty() ? g.initializer(dq.inputs[2]) : nullptr;
  const auto codes = q->to_float(), scale = s->to_float();
  const std::vector<float> zero = z ? z->to_float() : std::vector<float>();
  int64_t axis = dq.attr_int("axis", 1);
  if (axis < 0) axis += static_cast<int64_t>(q->dims.size());
  if (axis < 0 || axis >= static_cast<int64_t>(q->dims.size())) return std::nullopt;
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis) + 1; d < q->dims.size(); ++d) inner *= q->dims[d];
  const int64_t channels = q->dims[static_cast<size_t>(axis)];
  if (scale.size() != 1 && static_cast<int64_t>(scale.size()) != channels) return std::nullopt;
  std::vector<float> out(codes.size());
  for (size_t k = 0; k < codes.size(); ++k) {
    const size_t c = scale.size() == 1 ? 0 : static_cast<size_t>((static_cast<int64_t>(k) / inner) % channels);
    const float zp = zero.empty() ? 0.f : zero[zero.size() == 1 ? 0 : c];
    out[k] = scale[c] * (codes[k] - zp);
  }
  return Tensor::from_float(name, q->dims, out);
}

// Layers in `nodes` whose weight is an int8 DequantizeLinear read the dequantized values as a float
// initializer instead (the DequantizeLinear goes once nothing reads it). Returns how many.
int restore_float_weights(Graph& g, const std::set<std::string>& nodes) {
  int restored = 0;
  for (auto& n : g.nodes) {
    if (!nodes.count(n.name) || n.inputs.size() < 2) continue;
    const int p = g.producer(n.input(1));
    if (p < 0 || g.nodes[p].op_type != "DequantizeLinear") continue;
    auto w = dequantized_weight(g, g.nodes[p], g.unique_name(g.nodes[p].input(0) + "_float"));
    if (!w) continue;
    n.inputs[1] = w->name;
    g.add_initializer(std::move(*w));
    ++restored;
  }
  g.invalidate();
  return restored;
}

}  // namespace

StaticQdqPlan plan_static_qdq(const Model& m, const std::set<std::string>& layers, bool hardsigmoid) {
  const Graph& g = m.graph;
  enum class Role { Float, Compute, Elementwise, PassThrough };
  std::vector<Role> role(g.nodes.size(), Role::Float);
  std::map<std::string, std::string> avail;  // value an integer node writes (after a fused Relu) -> its root
  std::set<std::string> required;           // outputs whose Q the integer kernel needs (Conv, QLinear*)
  std::set<std::string> needed;             // activations integer nodes read
  std::set<size_t> absorbed;                // Relu/Clip nodes ORT folds into the Q before them
  std::map<std::string, int> constants;     // elementwise node -> its constant input
  std::map<std::string, std::string> hardsigmoids;  // HardSigmoid node -> its quantized output

  // The value an integer node's output is quantized as, or "" when it stays float.
  auto offer = [&](size_t i, bool req) {
    const std::string& out = g.nodes[i].outputs[0];
    if (g.is_graph_output(out)) return std::string();
    std::string v = out;
    const auto& cons = g.consumers(out);
    // A Clip only after a Conv: ORT 1.30 fails to load QLinearAdd/Mul groups that swallow a Clip
    // ("two nodes with same node name"), while a Relu there is fine (ResNet's residual Add → Relu).
    const Node* act_node = cons.size() == 1 ? &g.nodes[cons[0]] : nullptr;
    if (act_node && act_node->op_type == "Clip" && g.nodes[i].op_type != "Conv") act_node = nullptr;
    if (act_node && is_zero_floor_activation(g, *act_node)) {
      const std::string& act = g.nodes[cons[0]].outputs[0];
      if (g.is_graph_output(act)) return std::string();
      absorbed.insert(static_cast<size_t>(cons[0]));
      v = act;
    }
    avail[v] = v;
    if (req) required.insert(v);
    return v;
  };

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!n.is_default_domain() || n.outputs.empty() || absorbed.count(i)) continue;
    const std::string& op = n.op_type;
    if ((op == "Conv" || op == "MatMul" || op == "Gemm") && layers.count(n.name) && n.inputs.size() >= 2 &&
        !is_constant(g, n.input(0)) && int8_weight(g, n.input(1))) {
      // QLinearConv writes uint8 only. ORT 1.30's CPU EP left every QDQ Gemm we wrote a float Gemm
      // with its weight dequantized on every run, with or without a QuantizeLinear after it
      // (mobilenet_v3_large's two classifier Gemms, fashion_cnn's and bert_tiny's heads, in ORT's
      // optimized graph): Gemms stay float, with float weights (apply_static_qdq).
      if (op == "Gemm" || (op == "Conv" && g.is_graph_output(n.outputs[0]))) continue;
      role[i] = Role::Compute;
      needed.insert(n.input(0));
      offer(i, op == "Conv");
    } else if (hardsigmoid && op == "HardSigmoid" && n.inputs.size() == 1 && n.outputs.size() == 1 && n.attr_float("alpha", 0.2f) > 0.f &&
               avail.count(n.input(0)) && required.count(avail.at(n.input(0))) && !g.is_graph_output(n.outputs[0])) {
      role[i] = Role::Elementwise;
      needed.insert(n.input(0));
      hardsigmoids[n.name] = offer(i, true);
    } else if (kUnary.count(op) || kBinary.count(op) || kVariadic.count(op) || op == "Div" || op == "Clip") {
      auto acts = activation_inputs(g, n);
      const size_t given = std::count_if(n.inputs.begin(), n.inputs.end(), [](const std::string& s) { return !s.empty(); });
      // Add/Mul with one float constant (HardSwish's x + 3, a scale): the constant gets its own
      // uint8 DequantizeLinear. Div by a constant becomes Mul by its reciprocal (no QLinearDiv).
      int const_input = -1;
      if ((kBinary.count(op) || op == "Div") && given == 2 && acts.size() == 1) {
        const int k = n.inputs[0] == acts[0] ? 1 : 0;
        const Tensor* c = g.initializer(n.inputs[k]);
        bool ok = c && c->dtype == DType::Float && !is_dataless(*c) && c->numel() <= 4096 && (op != "Div" || k == 1);
        if (ok && op == "Div")
          for (float v : c->to_float()) ok = ok && v != 0.f && std::isfinite(1.f / v);
        // Only behind an output that is quantized anyway (Conv, QLinear*): a MatMul's bias Add must
        // not make the MatMul write uint8 (transformers keep MatMulIntegerToFloat and a float residual).
        auto root = avail.find(acts[0]);
        if (!ok || root == avail.end() || !required.count(root->second)) continue;
        const_input = k;
      } else if (op == "Div") {
        continue;
      } else if (op == "Clip") {
        // Its own range on the output Q; ORT drops the Clip in front of it (ClipQuantFusion).
        if (acts.size() != 1 || n.input(0) != acts[0]) continue;
      } else if (acts.empty() || acts.size() != given) {
        continue;
      }
      if (n.outputs.size() != 1) continue;
      if (!std::all_of(acts.begin(), acts.end(), [&](const std::string& v) { return avail.count(v) > 0; })) continue;
      if (g.is_graph_output(n.outputs[0])) continue;
      role[i] = Role::Elementwise;
      for (const auto& v : acts) needed.insert(v);
      if (const_input >= 0) constants[n.name] = const_input;
      offer(i, true);
    } else if (kPassThrough.count(op) && n.outputs.size() == 1 && avail.count(n.input(0)) &&
               !g.is_graph_output(n.outputs[0])) {
      role[i] = Role::PassThrough;
      avail[n.outputs[0]] = avail.at(n.input(0));
    }
  }

  // Optional outputs (MatMul, Gemm, pass-through) stay quantized only when an integer node reads
  // them; walking backwards, a kept pass-through keeps its input.
  std::set<std::string> keep = needed;
  keep.insert(required.begin(), required.end());
  for (size_t k = g.nodes.size(); k-- > 0;) {
    if (role[k] != Role::PassThrough) continue;
    if (keep.count(g.nodes[k].outputs[0])) keep.insert(g.nodes[k].input(0));
    else role[k] = Role::Float;
  }

  StaticQdqPlan plan;
  plan.constants = constants;
  plan.hardsigmoids = hardsigmoids;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (role[i] == Role::Float) continue;
    plan.integer_nodes.push_back(g.nodes[i].name);
    const Node& n = g.nodes[i];
    if (role[i] == Role::Compute && n.op_type != "MatMul" && n.inputs.size() > 2 && !n.inputs[2].empty())
      plan.biases[n.name] = n.inputs[2];
  }
  // Roots in node order: graph inputs and float producers first reached, then integer outputs.
  std::set<std::string> seen;
  auto add_root = [&](const std::string& v) {
    if (seen.insert(v).second) plan.values.push_back(v);
  };
  for (const auto& in : g.inputs)
    if (needed.count(in.name) && !avail.count(in.name)) add_root(in.name);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const auto& in : g.nodes[i].inputs)
      if (role[i] != Role::Float && role[i] != Role::PassThrough && needed.count(in) && !avail.count(in)) add_root(in);
    for (const auto& out : g.nodes[i].outputs) {
      auto a = avail.find(out);
      if (a == avail.end() || !keep.count(out)) continue;
      if (a->second == out) add_root(out);
      else plan.tied[out] = a->second;
    }
    // An absorbed Relu's output is its integer producer's value.
    if (absorbed.count(i)) {
      const std::string& out = g.nodes[i].outputs[0];
      if (keep.count(out)) add_root(out);
    }
  }
  return plan;
}

std::vector<std::vector<std::string>> slow_int8_regions(const Model& m, const StaticQdqPlan& plan,
                                                        const CalibrationStats& stats, double min_macs_per_element) {
  const Graph& g = m.graph;
  std::set<std::string> quantized(plan.values.begin(), plan.values.end());
  for (const auto& [v, root] : plan.tied) quantized.insert(v);
  const std::set<std::string> integer(plan.integer_nodes.begin(), plan.integer_nodes.end());
  // Union-find over value names and "node:" keys: an integer node joins the quantized values it reads
  // and everything it writes; a Relu/Clip ORT absorbs joins its input to its quantized output.
  std::map<std::string, std::string> parent;
  std::function<std::string(const std::string&)> find = [&](const std::string& x) -> std::string {
    auto it = parent.find(x);
    if (it == parent.end() || it->second == x) return parent[x] = x;
    return it->second = find(it->second);
  };
  auto join = [&](const std::string& a, const std::string& b) { parent[find(a)] = find(b); };
  for (const auto& n : g.nodes) {
    if (integer.count(n.name)) {
      const std::string key = "node:" + n.name;
      find(key);
      for (const auto& in : n.inputs)
        if (quantized.count(in)) join(key, in);
      for (const auto& out : n.outputs) join(key, out);
    } else if (!n.outputs.empty() && quantized.count(n.outputs[0]) && !n.inputs.empty() && !n.input(0).empty()) {
      join(n.input(0), n.outputs[0]);
    }
  }
  struct Region {
    double macs = 0, elements = 0;
    std::vector<std::string> layers;  // Conv/MatMul/Gemm nodes
  };
  std::map<std::string, Region> regions;
  for (const auto& n : g.nodes) {
    if (!integer.count(n.name) || (n.op_type != "Conv" && n.op_type != "MatMul" && n.op_type != "Gemm")) continue;
    Region& r = regions[find("node:" + n.name)];
    r.layers.push_back(n.name);
    if (n.op_type != "Conv") continue;
    // MACs per output element: the kernel's Cin/group · kh · kw; output elements as calibration saw them
    // (the Conv's output, or the Relu/Clip after it that carries the Q).
    const int p = g.producer(n.input(1));
    const Tensor* w = p >= 0 ? g.initializer(g.nodes[p].input(0)) : g.initializer(n.input(1));
    if (!w || w->dims.size() < 2) continue;
    double k = 1;
    for (size_t d = 1; d < w->dims.size(); ++d) k *= static_cast<double>(w->dims[d]);
    std::string out = n.outputs[0];
    if (!quantized.count(out)) {
      const auto& c = g.consumers(out);
      if (c.size() == 1 && !g.nodes[c[0]].outputs.empty()) out = g.nodes[c[0]].outputs[0];
    }
    const double e = static_cast<double>(observed_elements(stats, out));
    r.macs += k * e;
    r.elements += e;
  }
  std::vector<std::vector<std::string>> slow;
  for (auto& [root, r] : regions)
    if (r.elements > 0 && r.macs / r.elements < min_macs_per_element) slow.push_back(r.layers);
  return slow;
}

StaticQdqResult apply_static_qdq(Model& m, const StaticQdqPlan& given, const CalibrationStats& stats, CalibMethod method,
                                 double percentile, double min_macs_per_element, const std::set<std::string>& wide) {
  if (m.opset() < 13) {
    // The weights' export raises the opset where it can, so here it could not: say what blocks it.
    std::string why = "it cannot be raised";
    try {
      Model c = m;
      convert_opset(c, 13);
    } catch (const std::exception& e) {
      why = std::string("it cannot be raised: ") + e.what();
    }
    throw UnsupportedError("static int8 activations need opset 13 and the model has opset " + std::to_string(m.opset()) +
                           "; " + why + " (recipe w8, weight-only 8-bit, runs at this opset)");
  }
  Graph& g = m.graph;
  StaticQdqResult res;
  // Regions too thin for int8 stay float: their weights become float again (no DequantizeLinear left
  // to run on every inference) and the plan is made again without them.
  StaticQdqPlan plan = given;
  std::set<std::string> float_convs;  // layers the speed rules below keep float
  std::vector<std::string> float_notes;
  if (min_macs_per_element > 0) {
    // Grouped convs that are not depthwise (Cin/group > 1) stay float: MLAS's symmetric int8 conv kernel
    // takes group 1 or depthwise only (MlasConvSymPackWSize), so ORT runs them as one small QGEMM per group
    // (N = Cout/group) with an im2col each, slower than its float NCHWc conv. regnet_y_400mf's 16 grouped
    // 3x3 convs (8 channels per group) took 2.7x their float time in ORT's profile; kept float, the model
    // went from 0.93x to 1.10x of float (docs/BENCHMARKS.md, deployment speed). There a squeeze-excite
    // gate (float once its input is) reads each one; where an integer conv reads a grouped conv directly,
    // the QuantizeLinear after it lets ORT's WeightBiasQuantization quantize the float weights back.
    const std::set<std::string> integer(given.integer_nodes.begin(), given.integer_nodes.end());
    for (const auto& n : g.nodes) {
      if (!integer.count(n.name) || n.op_type != "Conv" || n.attr_int("group", 1) == 1) continue;
      const int p = g.producer(n.input(1));
      const Tensor* w = p >= 0 ? g.initializer(g.nodes[p].input(0)) : g.initializer(n.input(1));
      if (w && w->dims.size() >= 2 && w->dims[1] > 1) float_convs.insert(n.name);  // dims[1] = Cin/group
    }
    if (!float_convs.empty())
      float_notes.push_back("int8 kept " + std::to_string(float_convs.size()) +
                            " grouped conv(s) float (weights stored float): ONNX Runtime's integer kernel for a "
                            "grouped conv that is not depthwise is slower than its float conv (docs/BENCHMARKS.md, "
                            "deployment speed)");
    // Thin regions are judged without the HardSigmoid rewrite: it joins every squeeze-excite block into
    // one region, where mobilenet_v3_large's thin first blocks (16-72 channels at 112-56 px) ran
    // 0.4-0.8x of float as int8 while its wide later blocks gained 1.3-1.9x (ORT profile per block).
    const auto slow = slow_int8_regions(m, plan_static_qdq(m, integer, false), stats, min_macs_per_element);
    if (!slow.empty() || !float_convs.empty()) {
      std::set<std::string> thin;
      for (const auto& r : slow)
        for (const auto& l : r)
          if (!float_convs.count(l)) thin.insert(l);
      std::set<std::string> drop = float_convs;
      drop.insert(thin.begin(), thin.end());
      std::set<std::string> keep;
      for (const auto& n : g.nodes)
        if ((n.op_type == "Conv" || n.op_type == "MatMul" || n.op_type == "Gemm") && !drop.count(n.name) &&
            std::find(given.integer_nodes.begin(), given.integer_nodes.end(), n.name) != given.integer_nodes.end())
          keep.insert(n.name);
      restore_float_weights(g, float_convs);
      const int restored = restore_float_weights(g, thin);
      plan = plan_static_qdq(m, keep);
      res.float_layers.assign(drop.begin(), drop.end());
      if (!slow.empty())
        res.notes.push_back("int8 kept float in " + std::to_string(slow.size()) + " region(s) of " +
                            std::to_string(thin.size()) + " layers (" + std::to_string(restored) +
                            " weights stored float again): their Convs average fewer than " +
                            std::to_string(static_cast<int>(min_macs_per_element)) +
                            " MACs per output element, where ONNX Runtime's integer kernels plus the Q/DQ around "
                            "them run slower than float (docs/BENCHMARKS.md, deployment speed)");
      res.notes.insert(res.notes.end(), float_notes.begin(), float_notes.end());
    }
  }
  // Layers with an int8 weight that ORT will not run as integer kernels (Gemm, a Conv writing a
  // graph output): a weight DequantizeLinear there only costs time, so they keep float weights.
  {
    const std::set<std::string> integer(plan.integer_nodes.begin(), plan.integer_nodes.end());
    std::set<std::string> lone;
    for (const auto& n : g.nodes)
      if ((n.op_type == "Conv" || n.op_type == "MatMul" || n.op_type == "Gemm") && n.is_default_domain() &&
          !integer.count(n.name) && n.inputs.size() >= 2 && int8_weight(g, n.input(1)) && !g.is_initializer(n.input(1)) &&
          !std::count(res.float_layers.begin(), res.float_layers.end(), n.name))
        lone.insert(n.name);
    if (const int k = restore_float_weights(g, lone); k > 0) {
      res.float_layers.insert(res.float_layers.end(), lone.begin(), lone.end());
      std::string names;
      for (const auto& l : lone) names += (names.empty() ? "" : ", ") + l;
      res.notes.push_back("int8 kept " + std::to_string(k) + " layer(s) float (weights stored float): " + names +
                          " — ONNX Runtime runs them in float (a Gemm, which its CPU EP does not fuse into QGemm, or a "
                          "Conv writing a graph output), where a weight DequantizeLinear would only add a "
                          "dequantization to every run");
    }
  }
  struct Params {
    std::string scale, zero_point;
    float s = 1;
    int bits = 8;
    std::string dq_scale;  // the DequantizeLinear's, when it differs (a HardSigmoid's Add)
  };
  std::map<std::string, Params> params;  // quantized value -> its Q/DQ parameters
  // HardSigmoid(x) -> Add(x, β/α): Q over [0, 1/α] (z = 0, so it saturates where the clip would), DQ
  // scale α times the Q's.
  std::map<std::string, float> hsig_alpha;  // the Add's output -> α
  for (auto& n : g.nodes) {
    auto h = plan.hardsigmoids.find(n.name);
    if (h == plan.hardsigmoids.end() || n.op_type != "HardSigmoid" || h->second != n.outputs[0]) continue;
    const float alpha = n.attr_float("alpha", 0.2f), beta = n.attr_float("beta", 0.5f);
    const std::string c = g.unique_name(n.name + "_offset");
    g.add_initializer(Tensor::from_float(c, {}, {beta / alpha}));
    n.op_type = "Add";
    n.attributes.clear();
    n.inputs = {n.input(0), c};
    plan.constants[n.name] = 1;
    hsig_alpha[n.outputs[0]] = alpha;
  }
  g.invalidate();
  for (const auto& v : plan.values) {
    if (auto h = hsig_alpha.find(v); h != hsig_alpha.end()) {
      const Uint8Params q = uint8_params(0.f, 1.f / h->second);
      Params p;
      p.s = q.scale;
      std::tie(p.scale, p.zero_point) = add_uint8_params(g, v + "_act", q);
      p.dq_scale = g.unique_name(v + "_act_dq_scale");
      g.add_initializer(Tensor::from_float(p.dq_scale, {}, {q.scale * h->second}));
      params[v] = p;
      continue;
    }
    auto [lo, hi] = activation_range(v, stats, method, percentile);
    // A range that is only rounding noise (an activation constant on the data, e.g. a Relu of a
    // negative constant) would give a scale so small that the int32 biases of the layers reading it
    // overflow (the histogram of a constant spans 1e-6, engine/observers.cpp): it is a constant range.
    // Judged against the values' own size, not 1: activations whose every value is tiny (a network with
    // random weights whose outputs are 1e-8) are a real range, and zeroing them zeroed the output.
    const float size = std::max(std::fabs(lo), std::fabs(hi));
    if (observed_single_value(stats, v) || (hi - lo <= 4e-6f * std::max(1.f, size) && hi - lo <= 1e-3f * size)) {
      const float c = std::fabs(lo) > std::fabs(hi) ? lo : hi;
      lo = hi = std::fabs(c) <= 4e-6f ? 0.f : c;
    }
    const UintParams q = uint_params(lo, hi, wide.count(v) ? 16 : 8);
    if (q.constant) res.notes.push_back("activation " + v + " was constant on the calibration data (range " + std::to_string(lo) + ")");
    Params p;
    p.s = q.scale;
    p.bits = q.bits;
    std::tie(p.scale, p.zero_point) = add_uint_params(g, v + "_act", q);
    params[v] = p;
  }
  for (const auto& [v, root] : plan.tied) params[v] = params.at(root);

  // int32 biases: b_q = round(b / (s_x·s_w[c])), stored with scale s_x·s_w[c] along axis 0.
  std::map<std::string, Node> bias_dq;  // node name -> the DequantizeLinear to place before it
  for (const auto& [node_name, bias] : plan.biases) {
    auto it = std::find_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.name == node_name; });
    if (it == g.nodes.end()) continue;
    const Node& n = *it;
    auto px = params.find(n.input(0));
    const Tensor* b = g.initializer(bias);
    const int wp = g.producer(n.input(1));
    if (px == params.end() || !b || b->dtype != DType::Float || b->dims.size() != 1 || wp < 0) continue;
    // A 16-bit input: ORT runs the layer in float, and b / (s_x·s_w) with s_x 256 times finer would
    // overflow int32 for ordinary biases, so the bias stays float.
    if (px->second.bits != 8) continue;
    if (n.op_type == "Gemm" && (n.attr_float("alpha", 1) != 1.f || n.attr_float("beta", 1) != 1.f)) continue;
    const Tensor* ws = g.initializer(g.nodes[wp].input(1));
    if (!ws) continue;
    const auto wscale = ws->to_float(), bv = b->to_float();
    const int64_t c = b->dims[0];
    if (wscale.size() != 1 && static_cast<int64_t>(wscale.size()) != c) continue;
    std::vector<int32_t> codes(c);
    std::vector<float> scales(c);
    for (int64_t k = 0; k < c; ++k) {
      float s = px->second.s * wscale[wscale.size() == 1 ? 0 : k];
      if (!(s > 1e-30f)) s = 1e-30f;
      const double q = std::round(static_cast<double>(bv[k]) / s);
      codes[k] = static_cast<int32_t>(std::clamp(q, -2147483647.0, 2147483647.0));
      scales[k] = s;
    }
    const std::string qn = g.unique_name(bias + "_int32"), sn = g.unique_name(bias + "_int32_scale");
    g.add_initializer(Tensor::from_int32(qn, {c}, codes));
    g.add_initializer(Tensor::from_float(sn, {c}, scales));
    Node dq;
    dq.op_type = "DequantizeLinear";
    dq.name = g.unique_name(bias + "_DequantizeLinear");
    dq.inputs = {qn, sn};
    dq.outputs = {g.unique_name(bias + "_dequantized")};
    dq.set_attr_int("axis", 0);
    bias_dq[node_name] = dq;
    ++res.int32_biases;
  }

  // Constant operands of integer Add/Mul (and Div, rewritten as Mul by 1/c): uint8 per tensor over
  // their own [min, max] ∪ {0}, behind a DequantizeLinear.
  std::map<std::string, Node> const_dq;  // node name -> the DequantizeLinear to place before it
  for (auto& n : g.nodes) {
    auto c = plan.constants.find(n.name);
    if (c == plan.constants.end()) continue;
    const Tensor* t = g.initializer(n.inputs[c->second]);
    if (!t) continue;
    const std::string old_name = t->name;  // `t` dangles once initializers are added
    const std::vector<int64_t> dims = t->dims;
    std::vector<float> v = t->to_float();
    if (n.op_type == "Div") {
      for (auto& x : v) x = 1.f / x;
      n.op_type = "Mul";
    }
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    const Uint8Params q = uint8_params(*lo, *hi);
    Tensor codes;
    codes.name = g.unique_name(old_name + "_uint8");
    codes.dtype = DType::UInt8;
    codes.dims = dims;
    codes.bytes.resize(v.size());
    for (size_t k = 0; k < v.size(); ++k)
      codes.bytes[k] = static_cast<uint8_t>(std::clamp(std::round(v[k] / q.scale) + q.zero_point, 0.f, 255.f));
    const auto [sn, zn] = add_uint8_params(g, old_name + "_uint8", q);
    g.add_initializer(codes);
    Node dq;
    dq.op_type = "DequantizeLinear";
    dq.name = g.unique_name(old_name + "_DequantizeLinear");
    dq.inputs = {codes.name, sn, zn};
    dq.outputs = {g.unique_name(old_name + "_dequantized")};
    n.inputs[c->second] = dq.outputs[0];
    const_dq[n.name] = dq;
  }

  // Rebuild the node list: each quantized value's pair right after its producer (graph inputs
  // first); every reader takes the dequantized copy.
  std::map<std::string, std::string> dequantized, quantized;
  auto make_pair = [&](const std::string& v, std::vector<Node>& out) {
    const Params& p = params.at(v);
    Node q, d;
    q.op_type = "QuantizeLinear";
    q.name = g.unique_name(v + "_QuantizeLinear");
    q.inputs = {v, p.scale, p.zero_point};
    q.outputs = {g.unique_name(v + "_quantized")};
    d.op_type = "DequantizeLinear";
    d.name = g.unique_name(v + "_DequantizeLinear");
    d.inputs = {q.outputs[0], p.dq_scale.empty() ? p.scale : p.dq_scale, p.zero_point};
    d.outputs = {g.unique_name(v + "_dequantized")};
    dequantized[v] = d.outputs[0];
    quantized[v] = q.outputs[0];
    out.push_back(std::move(q));
    out.push_back(std::move(d));
    ++res.pairs;
  };
  std::vector<Node> nodes;
  nodes.reserve(g.nodes.size() + 2 * params.size() + bias_dq.size() + const_dq.size());
  for (const auto& in : g.inputs)
    if (params.count(in.name)) make_pair(in.name, nodes);
  for (auto& n : g.nodes) {
    // Shape/Size read only the dims: they take the uint8 tensor, so ORT does not dequantize a whole
    // activation for them (ShuffleNet's channel shuffle computes its Reshape targets from Shape).
    const bool dims_only = n.is_default_domain() && (n.op_type == "Shape" || n.op_type == "Size");
    for (auto& in : n.inputs) {
      auto& to = dims_only ? quantized : dequantized;
      auto d = to.find(in);
      if (d != to.end()) in = d->second;
    }
    auto cd = const_dq.find(n.name);
    if (cd != const_dq.end()) nodes.push_back(cd->second);
    auto b = bias_dq.find(n.name);
    if (b != bias_dq.end()) {
      n.inputs[2] = b->second.outputs[0];
      nodes.push_back(b->second);
    }
    nodes.push_back(n);
    for (const auto& out : n.outputs)
      if (params.count(out)) make_pair(out, nodes);
  }
  g.nodes = std::move(nodes);
  g.invalidate();
  g.remove_unused();
  res.integer_nodes = static_cast<int>(plan.integer_nodes.size());
  return res;
}

int dynamic_int8_matmuls(Model& m, const std::set<std::string>& always) {
  Graph& g = m.graph;
  int done = 0;
  std::vector<std::string> candidates;  // Q/DQ scales and zero points of the removed nodes
  // Models with integer Convs (PP-OCRv4 rec, ConvNeXt) keep the measured static form: on ppocr4_rec
  // the dynamic one cost 0.1 pt of character accuracy (0.9912 -> 0.9901, float 0.9958). Only the
  // `always` layers (Gemms written as MatMul) take the dynamic form there.
  bool integer_convs = false;
  for (const auto& n : g.nodes)
    if (n.op_type == "Conv" && n.inputs.size() > 1) {
      const int p = g.producer(n.input(1));
      integer_convs |= p >= 0 && g.nodes[p].op_type == "DequantizeLinear";
    }
  if (integer_convs && always.empty()) return 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    g.invalidate();
    const Node n = g.nodes[i];
    if (n.op_type != "MatMul" || !n.is_default_domain() || n.inputs.size() != 2) continue;
    if (integer_convs && !always.count(n.name)) continue;
    const int pw = g.producer(n.input(1)), pa = g.producer(n.input(0));
    if (pw < 0 || pa < 0) continue;
    const Node dqw = g.nodes[pw], dqa = g.nodes[pa];
    if (dqw.op_type != "DequantizeLinear" || dqa.op_type != "DequantizeLinear") continue;
    const Tensor* wq = g.initializer(dqw.input(0));
    const Tensor* ws = g.initializer(dqw.input(1));
    if (!wq || !ws || wq->dtype != DType::Int8 || wq->dims.size() != 2 || dqw.has_attr("block_size")) continue;
    const int64_t N = wq->dims[1];
    if (!(ws->numel() == 1 || (ws->numel() == N && dqw.attr_int("axis", 1) == 1))) continue;
    if (dqw.inputs.size() > 2 && !dqw.inputs[2].empty()) {
      const Tensor* z = g.initializer(dqw.input(2));
      if (!z) continue;
      const auto zv = z->to_int64();
      if (std::any_of(zv.begin(), zv.end(), [](int64_t v) { return v != 0; })) continue;
    }
    // A 16-bit activation pair (--act16) stays: the dynamic form would quantize it to 8 bits.
    if (dqa.inputs.size() > 2) {
      const Tensor* za = g.initializer(dqa.input(2));
      if (za && za->dtype != DType::UInt8) continue;
    }
    const int pq = g.producer(dqa.input(0));
    // The activation's own QuantizeLinear goes with it; a DequantizeLinear of another uint8 value
    // (a pass-through op's output: Flatten after a pool) stays, and its float output is quantized.
    const bool own_pair = pq >= 0 && g.nodes[pq].op_type == "QuantizeLinear";
    if (!own_pair && !always.count(n.name)) continue;
    Node qa;
    if (own_pair) qa = g.nodes[pq];
    else qa.inputs = {dqa.outputs[0]};
    // The output must stay float (a QuantizeLinear after it makes it a QLinearMatMul), and the
    // activation's Q/DQ pair must be this MatMul's alone.
    if (g.is_graph_output(n.outputs[0]) || g.is_graph_output(dqa.outputs[0])) continue;
    bool out_q = false;
    for (int c : g.consumers(n.outputs[0])) out_q |= g.nodes[c].op_type == "QuantizeLinear";
    if (out_q) continue;
    bool all_matmul = true;  // q/k/v share one activation pair: it goes once all three are rewritten
    for (int c : g.consumers(dqa.outputs[0])) all_matmul &= g.nodes[c].op_type == "MatMul";
    if (!all_matmul) continue;
    const bool drop_dqa = own_pair && g.consumers(dqa.outputs[0]).size() == 1;
    const bool drop_qa = drop_dqa && g.consumers(qa.outputs[0]).size() == 1;
    const std::string x = qa.input(0), y = n.outputs[0], w = dqw.input(0), s = dqw.input(1);
    auto name = [&](const std::string& suffix) { return g.unique_name(y + suffix); };
    const std::string xq = name("_xq"), xs = name("_xs"), xz = name("_xz"), acc = name("_int32"),
                      accf = name("_int32_float"), mult = name("_rescale");
    std::vector<Node> nodes(5);
    nodes[0].op_type = "DynamicQuantizeLinear", nodes[0].inputs = {x}, nodes[0].outputs = {xq, xs, xz};
    nodes[1].op_type = "MatMulInteger", nodes[1].inputs = {xq, w, xz}, nodes[1].outputs = {acc};
    nodes[2].op_type = "Cast", nodes[2].inputs = {acc}, nodes[2].outputs = {accf};
    nodes[2].set_attr_int("to", static_cast<int64_t>(DType::Float));
    nodes[3].op_type = "Mul", nodes[3].inputs = {xs, s}, nodes[3].outputs = {mult};
    nodes[4].op_type = "Mul", nodes[4].inputs = {accf, mult}, nodes[4].outputs = {y};
    const char* tags[] = {"_DynamicQuantizeLinear", "", "_Cast", "_scale_Mul", "_Mul"};
    for (int k = 0; k < 5; ++k) nodes[k].name = k == 1 ? n.name : g.unique_name(n.name + tags[k]);
    // Remove the MatMul and, where nothing else reads them, its weight DQ and activation Q/DQ.
    std::vector<std::string> gone = {n.outputs[0]};  // nodes by their first output (names may be empty)
    if (drop_dqa) gone.push_back(dqa.outputs[0]);
    if (drop_qa) gone.push_back(qa.outputs[0]);
    if (g.consumers(dqw.outputs[0]).size() == 1) gone.push_back(dqw.outputs[0]);
    std::vector<const Node*> scaled = {&dqw};
    if (own_pair) scaled = {&qa, &dqa, &dqw};
    for (const Node* d : scaled)
      for (size_t k = 1; k < d->inputs.size(); ++k)
        if (!d->inputs[k].empty() && d->inputs[k] != s) candidates.push_back(d->inputs[k]);
    size_t at = i;
    for (const auto& nm : gone) {
      for (size_t k = 0; k < g.nodes.size(); ++k)
        if (!g.nodes[k].outputs.empty() && g.nodes[k].outputs[0] == nm) {
          if (k < at) --at;
          g.nodes.erase(g.nodes.begin() + static_cast<long>(k));
          break;
        }
    }
    for (size_t k = 0; k < nodes.size(); ++k) g.insert_node(at + k, nodes[k]);
    i = at + nodes.size() - 1;
    ++done;
  }
  g.invalidate();
  // Q/DQ scale and zero-point initializers nothing reads any more.
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  for (const auto& u : candidates) {
    if (!g.is_initializer(u) || !g.consumers(u).empty() || g.is_graph_output(u)) continue;
    g.remove_initializer(u);
    auto& in = g.inputs;
    in.erase(std::remove_if(in.begin(), in.end(), [&](const ValueInfo& v) { return v.name == u; }), in.end());
  }
  g.invalidate();
  return done;
}

}  // namespace oc::quant
