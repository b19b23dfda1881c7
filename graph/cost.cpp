// Parameter and MAC counting (formulas in cost.h).
#include "graph/cost.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <unordered_map>

namespace oc {
namespace {

// Shapes visible from a graph: its own values, then the enclosing graphs'.
struct ShapeScope {
  std::unordered_map<std::string, std::vector<int64_t>> known;  // concrete shapes only
  std::unordered_map<std::string, const Tensor*> inits;
  const ShapeScope* parent = nullptr;

  const std::vector<int64_t>* shape(const std::string& v) const {
    for (const ShapeScope* s = this; s; s = s->parent) {
      auto it = s->known.find(v);
      if (it != s->known.end()) return &it->second;
    }
    return nullptr;
  }
  const Tensor* init(const std::string& v) const {
    for (const ShapeScope* s = this; s; s = s->parent) {
      auto it = s->inits.find(v);
      if (it != s->inits.end()) return it->second;
    }
    return nullptr;
  }
};

int64_t prod(const std::vector<int64_t>& d, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < d.size(); ++i) p *= d[i];
  return p;
}

struct MacCtx {
  const Node& n;
  const ShapeScope& s;
  std::string why;
  // Concrete shape of input i (or output i when `out`), else nullptr with `why` set.
  const std::vector<int64_t>* in(size_t i) { return get(i < n.inputs.size() ? n.inputs[i] : std::string()); }
  const std::vector<int64_t>* out(size_t i) { return get(i < n.outputs.size() ? n.outputs[i] : std::string()); }
  const std::vector<int64_t>* get(const std::string& v) {
    const std::vector<int64_t>* p = v.empty() ? nullptr : s.shape(v);
    if (!p && why.empty()) why = v.empty() ? "a required input is missing" : "'" + v + "' has no concrete shape";
    return p;
  }
};
using MacRule = std::function<std::optional<int64_t>(MacCtx&)>;

std::optional<int64_t> conv_macs(MacCtx& c, size_t wi) {
  auto *y = c.out(0), *w = c.in(wi);
  if (!y || !w) return std::nullopt;
  return prod(*y) * prod(*w, 1);
}
std::optional<int64_t> conv_transpose_macs(MacCtx& c) {
  auto *x = c.in(0), *w = c.in(1);
  if (!x || !w) return std::nullopt;
  return prod(*x) * prod(*w, 1);
}
// numel(Y) * K, K = last dim of A (A is input `ai`).
std::optional<int64_t> matmul_macs(MacCtx& c, size_t ai, bool trans_a) {
  auto *y = c.out(0), *a = c.in(ai);
  if (!y || !a) return std::nullopt;
  if (a->empty()) return 0;
  int64_t k = trans_a && a->size() >= 2 ? (*a)[a->size() - 2] : a->back();
  return prod(*y) * k;
}
std::optional<int64_t> rnn_macs(MacCtx& c) {
  auto *x = c.in(0), *w = c.in(1), *r = c.in(2);
  if (!x || !w || !r || x->size() != 3) return std::nullopt;
  int64_t seq_batch = (*x)[0] * (*x)[1];  // [seq, batch, I] or [batch, seq, I]: the product is the same
  return seq_batch * (prod(*w) + prod(*r));
}

const std::unordered_map<std::string, MacRule>& mac_rules() {
  static const std::unordered_map<std::string, MacRule> t = {
      {"Conv", [](MacCtx& c) { return conv_macs(c, 1); }},
      {"ConvInteger", [](MacCtx& c) { return conv_macs(c, 1); }},
      {"QLinearConv", [](MacCtx& c) { return conv_macs(c, 3); }},
      {"com.microsoft:FusedConv", [](MacCtx& c) { return conv_macs(c, 1); }},
      {"ConvTranspose", conv_transpose_macs},
      {"Gemm", [](MacCtx& c) { return matmul_macs(c, 0, c.n.attr_int("transA", 0) != 0); }},
      {"MatMul", [](MacCtx& c) { return matmul_macs(c, 0, false); }},
      {"MatMulInteger", [](MacCtx& c) { return matmul_macs(c, 0, false); }},
      {"QLinearMatMul", [](MacCtx& c) { return matmul_macs(c, 0, false); }},
      {"com.microsoft:FusedMatMul", [](MacCtx& c) { return matmul_macs(c, 0, c.n.attr_int("transA", 0) != 0); }},
      {"com.microsoft:MatMulNBits",
       [](MacCtx& c) -> std::optional<int64_t> {
         auto* y = c.out(0);
         if (!y) return std::nullopt;
         return prod(*y) * c.n.attr_int("K", 0);
       }},
      {"LSTM", rnn_macs},
      {"GRU", rnn_macs},
      {"RNN", rnn_macs},
  };
  return t;
}

// Inputs that hold quantization metadata or shape/index data, not weights: (op, input index).
bool is_metadata_input(const Node& n, size_t i) {
  static const std::set<std::pair<std::string, size_t>> meta = {
      {"QuantizeLinear", 1}, {"QuantizeLinear", 2}, {"DequantizeLinear", 1}, {"DequantizeLinear", 2},
      {"com.microsoft:QuantizeLinear", 1}, {"com.microsoft:QuantizeLinear", 2},
      {"com.microsoft:DequantizeLinear", 1}, {"com.microsoft:DequantizeLinear", 2},
      {"com.microsoft:MatMulNBits", 2}, {"com.microsoft:MatMulNBits", 3},
      {"com.microsoft:GatherBlockQuantized", 1}, {"com.microsoft:GatherBlockQuantized", 2}, {"com.microsoft:GatherBlockQuantized", 3},
      {"BitShift", 1}, {"Mod", 1},  // shift amounts and modulus of codes unpacked at load (quantize/embeddings.h)
      {"QLinearConv", 1}, {"QLinearConv", 2}, {"QLinearConv", 4}, {"QLinearConv", 5}, {"QLinearConv", 6}, {"QLinearConv", 7},
      {"QLinearMatMul", 1}, {"QLinearMatMul", 2}, {"QLinearMatMul", 4}, {"QLinearMatMul", 5}, {"QLinearMatMul", 6}, {"QLinearMatMul", 7},
  };
  return meta.count({n.key(), i}) > 0;
}

bool is_weight_type(DType t) {
  return dtype_is_float(t) || t == DType::Int8 || t == DType::UInt8 || t == DType::Int4 || t == DType::UInt4;
}

// Logical parameter count of initializer `t` as input `i` of `n` (packed MatMulNBits weights hold K*N).
int64_t param_elems(const Node& n, size_t i, const Tensor& t) {
  if (n.key() == "com.microsoft:MatMulNBits" && i == 1) return n.attr_int("K", 0) * n.attr_int("N", 0);
  // packed codes: 8/bits table entries per byte
  if (n.key() == "com.microsoft:GatherBlockQuantized" && i == 0 && t.dtype == DType::UInt8) return t.numel() * (8 / std::max<int64_t>(1, n.attr_int("bits", 4)));
  if (t.dtype == DType::Int32 && n.key() == "DequantizeLinear" && i == 0) return t.numel();  // int32 bias
  return is_weight_type(t.dtype) ? t.numel() : 0;
}

void add_shape(ShapeScope& s, const ValueInfo& v) {
  if (!v.has_shape || !shape_known(v.shape)) return;
  s.known[v.name] = shape_values(v.shape);
}

class Counter {
 public:
  CostReport count(const Graph& g, const ShapeScope* parent) {
    CostReport r;
    ShapeScope s;
    s.parent = parent;
    for (const auto& v : g.inputs) add_shape(s, v);
    for (const auto& v : g.outputs) add_shape(s, v);
    for (const auto& v : g.value_info) add_shape(s, v);
    for (const auto& t : g.initializers) { s.known[t.name] = t.dims; s.inits[t.name] = &t; }

    std::set<std::string> attributed;
    // Every graph's own initializers count, used or not; attributed to the first reader.
    std::unordered_map<std::string, int64_t> own;
    for (const auto& t : g.initializers) own[t.name] = is_weight_type(t.dtype) ? t.numel() : 0;

    for (const Node& n : g.nodes) {
      NodeCost nc;
      nc.node = n.name;
      nc.op_type = n.key();
      bool row = false;
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const std::string& v = n.inputs[i];
        if (v.empty() || !own.count(v)) continue;
        if (is_metadata_input(n, i)) { own[v] = 0; continue; }
        if (attributed.count(v)) continue;
        attributed.insert(v);
        own[v] = param_elems(n, i, *s.init(v));
        // codes packed 8/b to a byte, unpacked by BitShift with one shift per code (quantize/embeddings.h)
        if (n.key() == "BitShift" && i == 0 && n.inputs.size() > 1 && s.init(n.inputs[1]) && s.init(v)->dtype == DType::UInt8)
          own[v] *= s.init(n.inputs[1])->numel();
        nc.params += own[v];
      }
      auto rule = mac_rules().find(nc.op_type);
      if (rule != mac_rules().end()) {
        MacCtx c{n, s, {}};
        std::optional<int64_t> macs = rule->second(c);
        row = true;
        if (macs) nc.macs = *macs;
        else { nc.macs = -1; nc.why = c.why; }
      }
      std::vector<CostReport> subs;
      for (const auto& sg : n.subgraphs()) subs.push_back(count(*sg, &s));
      merge_subgraphs(n, s, subs, r, nc);
      if (row || nc.params > 0) {
        r.per_node.push_back(nc);
        add_node(r, nc);
      }
    }
    for (const auto& [name, p] : own) if (!attributed.count(name)) r.params += p;  // unused weights
    return r;
  }

 private:
  static void add_node(CostReport& r, const NodeCost& nc) {
    r.params += nc.params;
    if (nc.params) r.params_by_op[nc.op_type] += nc.params;
    if (nc.macs > 0) { r.macs += nc.macs; r.macs_by_op[nc.op_type] += nc.macs; }
    if (nc.macs < 0) { r.macs_complete = false; r.uncounted.push_back(nc.node); }
  }
  // Subgraph params always count (they are stored); MACs: If takes its larger branch, Loop multiplies
  // the body by a constant trip count.
  static void merge_subgraphs(const Node& n, const ShapeScope& s, std::vector<CostReport>& subs, CostReport& r, NodeCost& nc) {
    if (subs.empty()) return;
    size_t pick = 0;
    for (size_t i = 1; i < subs.size(); ++i) if (subs[i].macs > subs[pick].macs) pick = i;
    int64_t trips = 1;
    if (n.op_type == "Loop" || n.op_type == "Scan") {
      const Tensor* t = n.input(0).empty() ? nullptr : s.init(n.input(0));
      if (n.op_type == "Loop" && t && t->numel() == 1) trips = t->to_int64()[0];
      else if (subs[pick].macs > 0) { nc.macs = -1; nc.why = "loop trip count is not a constant"; }
    }
    for (size_t i = 0; i < subs.size(); ++i) {
      CostReport& sub = subs[i];
      for (auto& row : sub.per_node) {
        NodeCost scaled = row;
        if (i != pick) { scaled.macs = 0; scaled.why.clear(); }  // the other branch's weights still count
        else if (scaled.macs > 0) scaled.macs *= trips;
        if (scaled.macs == 0 && scaled.params == 0 && !has_mac_rule(scaled.op_type)) continue;
        r.per_node.push_back(scaled);
        add_node(r, scaled);
      }
      // Params of subgraph initializers nobody read.
      int64_t rows = 0;
      for (const auto& row : sub.per_node) rows += row.params;
      r.params += sub.params - rows;
    }
  }
};

}  // namespace

bool has_mac_rule(const std::string& op) { return mac_rules().count(op) > 0; }

std::vector<std::string> mac_rule_ops() {
  std::vector<std::string> out;
  for (const auto& [k, v] : mac_rules()) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

CostReport count_costs(const Model& m) {
  Counter c;
  return c.count(m.graph, nullptr);
}

}  // namespace oc
