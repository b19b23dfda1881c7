// Models built for the quantization tests (declared where used: this folder has no headers of ours).
#include <random>

#include "support.h"

namespace oc::test {

// A MatMul-heavy stack: x [4, 32] -> MatMul+Add+Relu (256) -> MatMul+Add+Relu (256)
// -> Gemm transB=1 +bias (128) -> Relu -> Gemm transB=0 beta=0.5 (256 -> ... 64) -> MatMul (16) -> y.
// Gaussian weights scaled 1/sqrt(K) keep activations O(1) through the stack.
Model quant_mlp(uint64_t seed) {
  Model m = new_model(13);
  Graph& g = m.graph;
  std::mt19937_64 rng(seed);
  auto w = [&](const std::string& name, std::vector<int64_t> dims, float scale) { add_gaussian_initializer(g, rng, name, std::move(dims), scale); };
  g.inputs.push_back(tensor_value("x", {4, 32}));
  w("w1", {32, 256}, 0.18f); w("b1", {256}, 0.1f);
  w("w2", {256, 256}, 0.09f); w("b2", {256}, 0.1f);
  w("w3", {128, 256}, 0.09f); w("b3", {128}, 0.1f);
  w("w4", {128, 64}, 0.12f); w("b4", {64}, 0.1f);
  w("w5", {64, 16}, 0.18f);
  g.add_node(make_node("MatMul", {"x", "w1"}, {"m1"}, "fc1"));
  g.add_node(make_node("Add", {"m1", "b1"}, {"a1"}));
  g.add_node(make_node("Relu", {"a1"}, {"r1"}));
  g.add_node(make_node("MatMul", {"r1", "w2"}, {"m2"}, "fc2"));
  g.add_node(make_node("Add", {"m2", "b2"}, {"a2"}));
  g.add_node(make_node("Relu", {"a2"}, {"r2"}));
  Node g3 = make_node("Gemm", {"r2", "w3", "b3"}, {"a3"}, "fc3");
  g3.set_attr_int("transB", 1);
  g.add_node(g3);
  g.add_node(make_node("Relu", {"a3"}, {"r3"}));
  Node g4 = make_node("Gemm", {"r3", "w4", "b4"}, {"a4"}, "fc4");
  g4.set_attr_float("beta", 0.5f);
  g.add_node(g4);
  g.add_node(make_node("Relu", {"a4"}, {"r4"}));
  g.add_node(make_node("MatMul", {"r4", "w5"}, {"y"}, "fc5"));
  g.outputs.push_back(tensor_value("y", {4, 16}));
  return m;
}

}  // namespace oc::test
