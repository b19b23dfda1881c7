// Deployment check (see deploy_check.h). The predicates mirror ORT 1.30's QDQ node-group
// selectors (qdq_selectors.cc) for the CPU EP on x86, where QDQIsInt8Allowed() is false.
#include "quantize/deploy_check.h"

#include <algorithm>
#include <set>
#include <sstream>

namespace oc::quant {
namespace {

const std::set<std::string> kCompute = {"Conv", "MatMul", "Gemm"};
// Ops that move or reshape data; not worth naming as float regions.
const std::set<std::string> kStructural = {"QuantizeLinear", "DequantizeLinear", "Reshape", "Transpose", "Flatten",
                                           "Squeeze", "Unsqueeze", "Shape", "Gather", "Slice", "Concat", "Constant",
                                           "Identity", "Cast", "Expand"};

// The element type a DequantizeLinear reads (its input 0: an initializer or a Q's output).
DType dq_input_type(const Graph& g, const Node& dq) {
  if (const Tensor* t = g.initializer(dq.input(0))) return t->dtype;
  const int p = g.producer(dq.input(0));
  if (p >= 0 && g.nodes[p].op_type == "QuantizeLinear") {
    const Node& q = g.nodes[p];
    if (q.inputs.size() > 2 && !q.inputs[2].empty())
      if (const Tensor* z = g.initializer(q.inputs[2])) return z->dtype;
    return DType::UInt8;  // QuantizeLinear without a zero point writes uint8
  }
  return DType::Undefined;
}

// The single QuantizeLinear reading node `n`'s output, directly or behind one Relu/Clip (nullptr if none).
const Node* output_quantizer(const Graph& g, const Node& n) {
  const std::string& y = n.outputs[0];
  if (g.is_graph_output(y)) return nullptr;
  const auto& c = g.consumers(y);
  if (c.size() != 1) return nullptr;
  const Node* next = &g.nodes[c[0]];
  if (next->op_type == "Relu" || next->op_type == "Clip") {
    if (g.is_graph_output(next->outputs[0])) return nullptr;
    const auto& c2 = g.consumers(next->outputs[0]);
    if (c2.size() != 1) return nullptr;
    next = &g.nodes[c2[0]];
  }
  return next->op_type == "QuantizeLinear" ? next : nullptr;
}

bool output_quantized(const Graph& g, const Node& n) { return output_quantizer(g, n) != nullptr; }

// The element type a QuantizeLinear writes: its zero point's, uint8 without one.
DType q_output_type(const Graph& g, const Node& q) {
  if (q.inputs.size() > 2 && !q.inputs[2].empty())
    if (const Tensor* z = g.initializer(q.inputs[2])) return z->dtype;
  return DType::UInt8;
}

bool is_16bit(DType t) { return t == DType::UInt16 || t == DType::Int16; }
constexpr const char* kNo16BitKernels = "ORT's CPU EP has no 16-bit QLinear kernels, so it runs the layer in float";

// A node wrapped in DQ → op → Q whose codes are all 8-bit (what ORT's QLinear* kernels take).
bool wrapped_in_8bit(const Graph& g, const Node& n) {
  if (n.outputs.empty() || g.is_graph_output(n.outputs[0])) return false;
  for (const auto& in : n.inputs) {
    if (in.empty() || g.is_initializer(in)) continue;
    const Node* dq = dq_of(g, in);
    if (!dq || is_16bit(dq_input_type(g, *dq))) return false;
  }
  const Node* q = output_quantizer(g, n);
  return q && !is_16bit(q_output_type(g, *q));
}

int64_t weight_dim(const Graph& g, const std::string& w, size_t axis) {
  const Tensor* t = g.initializer(w);
  if (!t) {
    const Node* dq = dq_of(g, w);
    if (dq) t = g.initializer(dq->input(0));
  }
  return t && axis < t->dims.size() ? t->dims[axis] : -1;
}

// How ORT 1.30's MLAS runs a MatMulNBits node on x86 (AVX-512 VNNI), measured on gpt_tiny /
// bert_tiny at 128 tokens, whole model, 1 thread (docs/BENCHMARKS.md, "4-bit in ONNX Runtime"):
// 4-bit at accuracy_level 0/1 dequantizes blocks to fp32 and runs at float speed (1.00-1.02×);
// accuracy_level 4 (int8 activations) is slower there (0.90-0.96×); 2-bit and 8-bit are slower
// than float at any level (0.64-0.96×).
std::string nbits_speed(const Node& n) {
  const int64_t bits = n.attr_int("bits", 4), level = n.attr_int("accuracy_level", 0);
  const std::string at = std::to_string(bits) + "-bit, accuracy_level " + std::to_string(level);
  if (bits == 4 && level <= 1) return at + ": float speed (fp32 compute on dequantized blocks)";
  if (bits == 4) return at + ": slower than float at 128 tokens (int8 activation path, 0.90-0.96x measured)";
  return at + ": slower than float (" + std::string(bits == 2 ? "0.64-0.71x" : "0.71-0.96x") + " measured)";
}

}  // namespace

const Node* dq_of(const Graph& g, const std::string& v) {
  if (v.empty()) return nullptr;
  const int p = g.producer(v);
  return p >= 0 && g.nodes[p].op_type == "DequantizeLinear" ? &g.nodes[p] : nullptr;
}

DeployCheck check_deployment(const Model& m) {
  const Graph& g = m.graph;
  DeployCheck r;
  std::set<size_t> integer_idx;
  for (const auto& n : g.nodes)
    if (n.op_type == "QuantizeLinear" && is_16bit(q_output_type(g, n))) r.wide_activations.push_back(n.input(0));
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type == "MatMulNBits" && n.domain == "com.microsoft") {
      r.nbits.push_back({n.name, n.op_type, nbits_speed(n)});
      continue;
    }
    // DynamicQuantizeLinear → MatMulInteger (→ Cast → Mul): ORT's DynamicQuantizeMatMul.
    if (n.is_default_domain() && n.op_type == "MatMulInteger" && n.inputs.size() >= 2) {
      ++r.compute_layers;
      const int p = g.producer(n.input(0));
      if (p >= 0 && g.nodes[p].op_type == "DynamicQuantizeLinear" && g.is_initializer(n.input(1))) {
        r.integer_layers.push_back(n.name);
        integer_idx.insert(i);
        integer_idx.insert(static_cast<size_t>(p));
        // The Cast and the two scale Muls fold into it too.
        for (int c : g.consumers(n.outputs[0]))
          if (g.nodes[c].op_type == "Cast") {
            integer_idx.insert(static_cast<size_t>(c));
            for (int d : g.consumers(g.nodes[c].outputs[0]))
              if (g.nodes[d].op_type == "Mul") {
                integer_idx.insert(static_cast<size_t>(d));
                for (const auto& in : g.nodes[d].inputs) {
                  const int q = g.producer(in);
                  if (q >= 0 && g.nodes[q].op_type == "Mul") integer_idx.insert(static_cast<size_t>(q));
                }
              }
          }
        ++r.integer_ops["DynamicQuantizeMatMul"];
      }
      continue;
    }
    if (!n.is_default_domain() || !kCompute.count(n.op_type) || n.inputs.size() < 2) continue;
    ++r.compute_layers;
    const Node* a = dq_of(g, n.input(0));
    const Node* w = dq_of(g, n.input(1));
    // Channel alignment: N (output channels) and K (input channels) of the weight.
    {
      int64_t nd = -1, kd = -1;
      if (n.op_type == "Conv") {
        nd = weight_dim(g, n.input(1), 0);
        const int64_t group = n.attr_int("group", 1);
        kd = group == 1 ? weight_dim(g, n.input(1), 1) : -1;  // depthwise/grouped: K per group is the kernel's
      } else {
        const bool tb = n.op_type == "Gemm" && n.attr_int("transB", 0) != 0;
        nd = weight_dim(g, n.input(1), tb ? 0 : 1);
        kd = weight_dim(g, n.input(1), tb ? 1 : 0);
      }
      // K of a layer reading the model input is the data's (image channels): nothing to act on.
      const Node* in_dq = dq_of(g, n.input(0));
      if (g.is_graph_input(in_dq ? in_dq->input(0) : n.input(0)) ||
          (in_dq && g.producer(in_dq->input(0)) >= 0 &&
           g.is_graph_input(g.nodes[g.producer(in_dq->input(0))].input(0))))
        kd = -1;
      std::string bad;
      if (nd > 0 && nd % 8) bad += "N=" + std::to_string(nd);
      if (kd > 0 && kd % 8) bad += std::string(bad.empty() ? "" : ", ") + "K=" + std::to_string(kd);
      if (!bad.empty() && !g.is_graph_output(n.outputs[0])) r.unaligned.push_back({n.name, n.op_type, bad + " not a multiple of 8"});
    }
    if (!w) continue;  // a float layer (or a weight computed at run time)
    if (!a) {
      r.weight_only.push_back({n.name, n.op_type, "weight DequantizeLinear with a float activation: dequantized on every run"});
      continue;
    }
    std::string why;
    const DType at = dq_input_type(g, *a), wt = dq_input_type(g, *w);
    const Node* out_quantizer = output_quantizer(g, n);
    if (is_16bit(at)) why = std::string("16-bit activation input (--act16): ") + kNo16BitKernels;
    else if (out_quantizer && is_16bit(q_output_type(g, *out_quantizer)))
      why = std::string("16-bit output QuantizeLinear (--act16): ") + kNo16BitKernels;
    else if (at == DType::Int8) why = "int8 activations (ORT on x86 fuses uint8 activations only)";
    else if (at != DType::UInt8) why = "activation DequantizeLinear does not read 8-bit codes";
    else if (wt != DType::Int8 && wt != DType::UInt8) why = "weight is not 8-bit (" + dtype_name(wt) + ")";
    else if (w->has_attr("block_size")) why = "blocked weight quantization";
    if (why.empty() && n.op_type != "MatMul" && n.inputs.size() > 2 && !n.inputs[2].empty()) {
      const Node* b = dq_of(g, n.inputs[2]);
      if (!b || dq_input_type(g, *b) != DType::Int32) why = "bias is not an int32 DequantizeLinear";
      else if (n.op_type == "Gemm" && n.attr_float("beta", 1) != 1.f) why = "Gemm beta is not 1";
    }
    const bool out_q = output_quantized(g, n);
    if (why.empty() && n.op_type == "Conv" && !out_q)
      why = g.is_graph_output(n.outputs[0]) ? "output is a graph output (QLinearConv writes uint8)"
                                             : "output is not read by one QuantizeLinear (after at most a Relu/Clip)";
    if (why.empty() && n.op_type == "Gemm")
      why = "ORT 1.30's CPU EP keeps a QDQ Gemm float (no QGemm in its optimized graph), dequantizing the weight "
            "on every run";
    if (!why.empty()) {
      r.unfused.push_back({n.name, n.op_type, why});
      continue;
    }
    r.integer_layers.push_back(n.name);
    integer_idx.insert(i);
    const std::string kernel = n.op_type == "Conv" ? "QLinearConv"
                               : n.op_type == "Gemm" ? "QGemm"
                               : out_q ? "QLinearMatMul" : "MatMulIntegerToFloat";
    ++r.integer_ops[kernel];
  }
  if (!r.integer_layers.empty()) {
    // Float ops of an integer model: everything but the compute layers ORT fuses, their Relu/Clip
    // and the ops that only move data. Nodes computed from initializers alone (a table dequantized
    // at load, float16 scales widened) are constant-folded by ORT at session start: not run either.
    std::set<std::string> folded;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& n = g.nodes[i];
      const bool constant = !n.inputs.empty() && std::all_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& in) {
        return in.empty() || g.is_initializer(in) || folded.count(in);
      });
      if (constant && n.subgraphs().empty()) {
        folded.insert(n.outputs.begin(), n.outputs.end());
        continue;
      }
      if (integer_idx.count(i) || kStructural.count(n.op_type) || n.op_type == "MatMulNBits") continue;
      // Ops with their own QLinear kernel when wrapped in DQ → op → Q.
      if (wrapped_in_8bit(g, n) && (n.op_type == "Add" || n.op_type == "Mul" || n.op_type == "AveragePool" ||
                      n.op_type == "GlobalAveragePool" || n.op_type == "Sigmoid" || n.op_type == "LeakyRelu" ||
                      n.op_type == "MaxPool" || n.op_type == "Resize"))
        continue;
      if (n.op_type == "Relu" || n.op_type == "Clip") {
        // Before a Q whose zero point is the type minimum ORT removes it (ReluQuantFusion).
        const auto& c = g.consumers(n.outputs[0]);
        if (c.size() == 1 && g.nodes[c[0]].op_type == "QuantizeLinear" && !is_16bit(q_output_type(g, g.nodes[c[0]])) &&
            !g.is_graph_output(n.outputs[0]))
          continue;
      }
      ++r.float_ops[n.key()];
    }
  }
  return r;
}

nlohmann::json DeployCheck::to_json() const {
  auto findings = [](const std::vector<DeployFinding>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& f : v) a.push_back({{"node", f.node}, {"op", f.op}, {"why", f.why}});
    return a;
  };
  return {{"runtime", "onnxruntime 1.30 CPU (x86)"},
          {"compute_layers", compute_layers},
          {"integer_layers", integer_layers.size()},
          {"integer_ops", integer_ops},
          {"weight_only", findings(weight_only)},
          {"unfused", findings(unfused)},
          {"unaligned", findings(unaligned)},
          {"matmulnbits", findings(nbits)},
          {"float_ops", float_ops},
          {"activations_16bit", wide_activations}};
}

std::string DeployCheck::summary() const {
  std::ostringstream o;
  o << "deployment (ONNX Runtime CPU): " << integer_layers.size() << " of " << compute_layers
    << " Conv/MatMul/Gemm layers run as integer kernels";
  if (!integer_ops.empty()) {
    o << " (";
    bool first = true;
    for (const auto& [k, c] : integer_ops) o << (first ? "" : ", ") << c << " " << k, first = false;
    o << ")";
  }
  auto list = [&](const char* what, const std::vector<DeployFinding>& v) {
    if (v.empty()) return;
    o << "\n  " << v.size() << " " << what << ": " << v[0].node << " (" << v[0].why << ")";
    if (v.size() > 1) o << " and " << v.size() - 1 << " more";
  };
  list("weight-only DequantizeLinear (slower than float)", weight_only);
  list("QDQ layers ORT runs in float", unfused);
  list("layers with channels not a multiple of 8", unaligned);
  int slow = 0;
  for (const auto& f : nbits) slow += f.why.find("slower") != std::string::npos;
  if (!nbits.empty()) {
    o << "\n  " << nbits.size() << " MatMulNBits layers (weight-only";
    if (slow) o << "; " << slow << " slower than float in ORT, e.g. " << [&] {
        for (const auto& f : nbits)
          if (f.why.find("slower") != std::string::npos) return f.node + " (" + f.why + ")";
        return std::string();
      }();
    o << ")";
  }
  if (!wide_activations.empty()) {
    o << "\n  " << wide_activations.size() << " activations at 16 bits (uint16 Q/DQ, float in ORT's CPU EP):";
    for (const auto& v : wide_activations) o << " " << v;
  }
  if (!float_ops.empty()) {
    o << "\n  float ops between integer layers:";
    for (const auto& [k, c] : float_ops) o << " " << k << " " << c;
  }
  return o.str();
}

}  // namespace oc::quant
