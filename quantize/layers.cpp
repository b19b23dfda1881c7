// Finding weight layers and viewing their weights as [N, K] matrices (table in layers.h).
#include "quantize/layers.h"

#include <set>

#include "graph/errors.h"
#include "graph/subgraphs.h"

namespace oc::quant {

bool WeightLayer::k_is_single_axis() const {
  if (op != "Conv") return true;
  int64_t spatial = 1;
  for (size_t i = 2; i < weight_dims.size(); ++i) spatial *= weight_dims[i];
  return spatial == 1;
}

namespace {

// Per-op check and matrix shape; returns a reason when the node is not quantizable.
std::string describe(const Graph& g, const Node& n, WeightLayer& l) {
  const Tensor* w = g.initializer(n.input(1));
  if (!w) return "weight is not a constant initializer";
  if (w->dtype != DType::Float) return "weight type " + dtype_name(w->dtype) + " (only float32 is quantized)";
  if (g.is_graph_input(w->name)) return "weight is also a graph input (overridable at runtime)";
  l.node = n.name;
  l.op = n.op_type;
  l.weight = w->name;
  l.weight_dims = w->dims;
  if (n.op_type == "Conv") {
    if (w->dims.size() < 3) return "Conv weight of rank " + std::to_string(w->dims.size());
    l.rows = w->dims[0];
    l.cols = w->numel() / std::max<int64_t>(1, w->dims[0]);
    l.group = n.attr_int("group", 1);
    l.bias = n.input(2);
  } else if (n.op_type == "MatMul") {
    if (w->dims.size() != 2) return "MatMul weight of rank " + std::to_string(w->dims.size());
    l.transposed = true;
    l.rows = w->dims[1];
    l.cols = w->dims[0];
  } else {  // Gemm
    if (w->dims.size() != 2) return "Gemm weight of rank " + std::to_string(w->dims.size());
    if (n.attr_int("transA", 0) != 0) return "Gemm with transA=1";
    l.transposed = n.attr_int("transB", 0) == 0;
    l.rows = l.transposed ? w->dims[1] : w->dims[0];
    l.cols = l.transposed ? w->dims[0] : w->dims[1];
    l.bias = n.input(2);
  }
  if (l.rows <= 0 || l.cols <= 0) return "empty weight";
  return "";
}

}  // namespace

Graph& layer_graph(Graph& root, const WeightLayer& l) {
  Graph* g = graph_at(root, l.graph);
  if (!g) throw InvalidArgument("layer " + l.node + ": no subgraph '" + l.graph + "' in the model");
  return *g;
}
const Graph& layer_graph(const Graph& root, const WeightLayer& l) { return layer_graph(const_cast<Graph&>(root), l); }

std::vector<WeightLayer> find_weight_layers(const Graph& root, std::vector<SkippedLayer>* skipped) {
  static const std::set<std::string> ops = {"Conv", "MatMul", "Gemm"};
  std::vector<WeightLayer> out;
  for (const GraphScope& s : all_graphs(root)) {
    const Graph& g = *s.graph;
    std::set<std::string> claimed;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& n = g.nodes[i];
      if (!n.is_default_domain() || !ops.count(n.op_type) || n.input(1).empty()) continue;
      WeightLayer l;
      l.index = static_cast<int>(i);
      l.graph = s.path;
      std::string why = describe(g, n, l);
      if (!why.empty() && !s.path.empty() && !g.initializer(n.input(1))) {
        const std::string at = defining_scope(root, s.path, n.input(1));
        const Graph* outer = at != s.path ? graph_at(root, at) : nullptr;
        if (outer && outer->is_initializer(n.input(1)))
          why = "weight " + n.input(1) + " lives in an enclosing graph that reads it elsewhere too";
      }
      if (why.empty() && claimed.count(l.weight)) why = "weight " + l.weight + " is shared with an earlier layer";
      if (why.empty()) {
        // A weight read by something else (e.g. a Shape op) must stay float there; QDQ keeps the
        // name, but MatMulNBits would drop it, so only layers owning their weight qualify. (Nodes
        // holding subgraphs that read it count as readers too.)
        for (int c : g.consumers(l.weight))
          if (g.nodes[c].input(1) != l.weight || !ops.count(g.nodes[c].op_type)) why = "weight also feeds " + g.nodes[c].name;
      }
      if (!why.empty()) {
        if (skipped) skipped->push_back({n.name, why});
        continue;
      }
      claimed.insert(l.weight);
      out.push_back(std::move(l));
    }
  }
  return out;
}

std::vector<float> layer_matrix(const Graph& root, const WeightLayer& l) {
  const Tensor* w = layer_graph(root, l).initializer(l.weight);
  if (!w) throw InvalidArgument("weight " + l.weight + " of " + l.node + " not found");
  std::vector<float> v = w->to_float();
  if (!l.transposed) return v;
  std::vector<float> nk(v.size());
  for (int64_t k = 0; k < l.cols; ++k)
    for (int64_t n = 0; n < l.rows; ++n) nk[n * l.cols + k] = v[k * l.rows + n];
  return nk;
}

std::vector<float> to_onnx_layout(const WeightLayer& l, const std::vector<float>& nk) {
  if (!l.transposed) return nk;
  std::vector<float> kn(nk.size());
  for (int64_t n = 0; n < l.rows; ++n)
    for (int64_t k = 0; k < l.cols; ++k) kn[k * l.rows + n] = nk[n * l.cols + k];
  return kn;
}

void set_layer_matrix(Graph& root, const WeightLayer& l, const std::vector<float>& nk) {
  layer_graph(root, l).add_initializer(Tensor::from_float(l.weight, l.weight_dims, to_onnx_layout(l, nk)));
}

}  // namespace oc::quant
