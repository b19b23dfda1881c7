// Kernel interface of the executor: one function per operator, registered in a table.
//
// Runtime values are oc::Tensor (dtype + dims + little-endian bytes), the same type that holds
// initializers, so weights feed kernels without conversion. A kernel reads ctx.input(i), writes
// ctx.outputs[k] (sized to node.outputs), and throws UnsupportedError naming the node for any
// attribute/dtype combination it does not implement — never computes a wrong answer silently.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc {

class Executor;

struct KernelContext {
  const Node& node;
  std::vector<const Tensor*> inputs;  // nullptr where an optional input is omitted
  std::vector<Tensor>& outputs;       // one per node output, filled by the kernel
  int num_threads = 1;
  int64_t opset = 0;                  // opset of the node's domain
  Executor* executor = nullptr;       // for If/Loop/Scan bodies
  // Values visible to subgraphs (outer scope), by name.
  const std::function<const Tensor*(const std::string&)>* lookup = nullptr;
  // Per input: the executor's own copy when this node reads it for the last time (an intermediate,
  // not a graph output, not read twice here), else nullptr. A kernel may move from it or write its
  // output into it (Reshape without a copy, in-place Relu); inputs(i) then points at the husk.
  std::vector<Tensor*> movable = {};

  size_t num_inputs() const { return inputs.size(); }
  bool has_input(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  const Tensor& input(size_t i) const;  // throws naming the node if absent
  Tensor& output(size_t k) { return outputs.at(k); }
  Tensor* movable_input(size_t i) const { return i < movable.size() ? movable[i] : nullptr; }
  [[noreturn]] void unsupported(const std::string& what) const;
};

using KernelFn = std::function<void(KernelContext&)>;

// Process-wide allocator setting for programs that run the executor repeatedly: glibc keeps freed
// activations for reuse instead of returning them to the OS, so later runs do not page-fault them
// in again (peak RSS is what the largest run needed anyway). The library never calls it by itself,
// since it changes malloc for the whole host process; the CLI and the benchmarks do.
void keep_freed_activations();

class KernelRegistry {
 public:
  static KernelRegistry& instance();
  void add(const std::string& op, KernelFn fn, const std::string& domain = "");
  const KernelFn* find(const Node& n) const { return find(n.key()); }
  const KernelFn* find(const std::string& key) const;  // key: op_key(domain, op)
  std::vector<std::string> ops() const;  // keys, as Node::key() writes them

 private:
  KernelRegistry();
  std::map<std::string, KernelFn> table_;  // by op_key(domain, op)
};

// Each operator file in engine/kernels/ (elementwise.cpp, tensor.cpp, nn.cpp, ...) defines one of
// these; KernelRegistry's constructor calls them all (explicit calls, because a static library
// drops object files that only hold registrars).
void register_elementwise_kernels(KernelRegistry& r);
void register_tensor_kernels(KernelRegistry& r);      // shape/layout/indexing ops
void register_nn_kernels(KernelRegistry& r);          // conv, matmul, pooling, norms (oneDNN)
void register_reduce_kernels(KernelRegistry& r);
void register_control_kernels(KernelRegistry& r);     // If, Loop, Scan
void register_rnn_kernels(KernelRegistry& r);         // LSTM, GRU
void register_quant_kernels(KernelRegistry& r);       // Q/DQ, MatMulNBits
void register_math_kernels(KernelRegistry& r);        // trigonometry, IsInf/IsNaN, Mish, bitwise
void register_indexing_kernels(KernelRegistry& r);    // GatherND, Scatter*, OneHot, Trilu, DepthToSpace, ...
void register_loss_kernels(KernelRegistry& r);        // NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss
void register_detection_kernels(KernelRegistry& r);   // NonMaxSuppression, GridSample
void register_linalg_kernels(KernelRegistry& r);      // Einsum, Det, MeanVarianceNormalization, windows

}  // namespace oc
