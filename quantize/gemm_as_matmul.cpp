// Gemm → MatMul + Add (see gemm_as_matmul.h).
#include "quantize/gemm_as_matmul.h"

namespace oc::quant {

std::vector<std::string> gemm_as_matmul(Model& m) {
  Graph& g = m.graph;
  std::vector<std::string> done;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    g.invalidate();
    const Node n = g.nodes[i];
    if (n.op_type != "Gemm" || !n.is_default_domain() || n.inputs.size() < 2 || n.outputs.size() != 1) continue;
    if (n.attr_float("alpha", 1.f) != 1.f || n.attr_int("transA", 0) != 0) continue;
    const bool trans_b = n.attr_int("transB", 0) != 0;
    const Tensor* b = g.initializer(n.input(1));
    if (!b || b->dtype != DType::Float || b->dims.size() != 2 || g.consumers(n.input(1)).size() != 1 ||
        g.is_graph_output(n.input(1)))
      continue;
    const int64_t N = trans_b ? b->dims[0] : b->dims[1], K = trans_b ? b->dims[1] : b->dims[0];
    const bool has_c = n.inputs.size() > 2 && !n.inputs[2].empty();
    const float beta = n.attr_float("beta", 1.f);
    if (has_c) {
      const Tensor* c = g.initializer(n.input(2));
      // C of N values broadcast over the rows: an Add of it after the MatMul is the same sum.
      if (!c || c->dtype != DType::Float || c->numel() != N || c->dims.empty() || c->dims.back() != N || c->dims.size() > 2 ||
          beta != 1.f)
        continue;
    }
    if (trans_b) {  // the weight as [K, N], which MatMul reads
      const std::vector<float> w = b->to_float();
      std::vector<float> t(w.size());
      for (int64_t r = 0; r < N; ++r)
        for (int64_t k = 0; k < K; ++k) t[static_cast<size_t>(k * N + r)] = w[static_cast<size_t>(r * K + k)];
      g.add_initializer(Tensor::from_float(n.input(1), {K, N}, t));
    }
    Node mm;
    mm.op_type = "MatMul";
    mm.name = n.name;
    mm.inputs = {n.input(0), n.input(1)};
    const std::string y = n.outputs[0];
    if (!has_c) {
      mm.outputs = {y};
      g.nodes[i] = mm;
    } else {
      mm.outputs = {g.unique_name(y + "_matmul")};
      Node add;
      add.op_type = "Add";
      add.name = g.unique_name(n.name.empty() ? y + "_bias" : n.name + "_bias");
      add.inputs = {mm.outputs[0], n.input(2)};
      add.outputs = {y};
      g.nodes[i] = mm;
      g.insert_node(i + 1, add);
      ++i;
    }
    done.push_back(n.name);
  }
  g.invalidate();
  return done;
}

}  // namespace oc::quant
