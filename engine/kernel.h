// Kernel interface of the executor: one function per operator, registered in a table.
//
// Runtime values are oc::Tensor (dtype + dims + little-endian bytes), the same type that holds
// initializers, so weights feed kernels without conversion. A kernel reads ctx.input(i), writes
// ctx.outputs[k] (sized to node.outputs), and throws UnsupportedError naming the node for any
// attribute/dtype combination it does not implement — never computes a wrong answer silently.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc {

class Executor;

// What the executor fused into the Conv or MatMul that produces a value (engine/fusion.h): the
// producer adds `bias` (MatMul only: a constant [N] the following Add added) and applies the
// activation to its output, and the fused nodes pass that value on unchanged.
//   None v   Relu max(v, 0)   LeakyRelu v>0 ? v : αv   Clip min(max(v, lo), hi)   Sigmoid 1/(1+e^-v)
//   HardSigmoid clamp(αv+β, 0, 1)   Swish v·Sigmoid(v)   HardSwish v·HardSigmoid(v)
//   GeluErf ½v(1 + erf(v/√2))   GeluTanh ½v(1 + tanh(√(2/π)(v + 0.044715v³)))   Linear αv + β
struct FusedActivation {
  enum class Kind { None, Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, Swish, HardSwish, GeluErf, GeluTanh, Linear };
  Kind kind = Kind::None;
  float alpha = 0;  // LeakyRelu slope; HardSigmoid/HardSwish slope; Linear scale
  float beta = 0;   // HardSigmoid/HardSwish/Linear offset
  float lo = 0, hi = 0;  // Clip bounds
  const Tensor* bias = nullptr;  // MatMul: the constant [N] added before the activation
  bool residual = false;  // Conv: adds KernelContext::residual (what the following Add adds) before the activation
  float operator()(float v) const {
    switch (kind) {
      case Kind::None: return v;
      case Kind::Relu: return v > 0 ? v : 0;
      case Kind::LeakyRelu: return v > 0 ? v : alpha * v;
      case Kind::Clip: return v < lo ? lo : v > hi ? hi : v;
      case Kind::Sigmoid: return 1.f / (1.f + std::exp(-v));
      case Kind::HardSigmoid: return std::min(1.f, std::max(0.f, alpha * v + beta));
      case Kind::Swish: return v / (1.f + std::exp(-v));
      case Kind::HardSwish: return v * std::min(1.f, std::max(0.f, alpha * v + beta));
      case Kind::GeluErf: return 0.5f * v * (1.f + std::erf(v * 0.70710678f));
      case Kind::GeluTanh: return 0.5f * v * (1.f + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
      case Kind::Linear: return alpha * v + beta;
    }
    return v;
  }
};

// What kernels derive once from a model's constants (weights reordered into a primitive's layout),
// kept as long as the executor that owns it: keyed by the constant's address and the derivation.
class ConstantCache {
 public:
  // The bytes cached under (t, what), filled by make() on first use. Thread-safe; the reference
  // stays valid while the cache lives.
  const std::vector<uint8_t>& get(const Tensor* t, const std::string& what,
                                  const std::function<void(std::vector<uint8_t>&)>& make);
  size_t bytes() const { return bytes_; }

 private:
  std::mutex mu_;
  std::map<std::pair<const Tensor*, std::string>, std::vector<uint8_t>> items_;
  size_t bytes_ = 0;
};

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
  // Channels-last values (engine/channels_last.h), for kernels whose layout_use is Aware: per
  // input, whether its bytes are N,H,W,C; per output, set by the kernel when it wrote N,H,W,C,
  // which it may do only when allow_channels_last.
  std::vector<uint8_t> in_channels_last = {};
  std::vector<uint8_t> out_channels_last = {};
  bool allow_channels_last = false;
  // Set for a Conv/MatMul whose activation (and MatMul bias) the executor fused (engine/fusion.h):
  // apply it to output 0.
  const FusedActivation* fused = nullptr;
  // With fused->residual: the value to add to output 0 before the activation (its bytes N,H,W,C
  // when residual_channels_last), and the executor's own copy when nothing reads it after this
  // node but the fused Add (the kernel may take its storage). A kernel that cannot add it (other
  // dims, a layout its path does not take) sets residual_declined and applies no activation:
  // the executor then runs the Add and the activation as nodes of their own.
  const Tensor* residual = nullptr;
  bool residual_channels_last = false;
  Tensor* residual_movable = nullptr;
  bool residual_declined = false;
  // Per input: whether it is an initializer of the model (its storage lives as long as the
  // executor), so what the kernel derives from it may go into `constants`.
  std::vector<uint8_t> in_constant = {};
  ConstantCache* constants = nullptr;

  size_t num_inputs() const { return inputs.size(); }
  bool has_input(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  const Tensor& input(size_t i) const;  // throws naming the node if absent
  Tensor& output(size_t k) { return outputs.at(k); }
  Tensor* movable_input(size_t i) const { return i < movable.size() ? movable[i] : nullptr; }
  bool channels_last(size_t i) const { return i < in_channels_last.size() && in_channels_last[i]; }
  bool constant(size_t i) const { return constants && i < in_constant.size() && in_constant[i]; }
  void set_channels_last(size_t k) {
    if (out_channels_last.size() <= k) out_channels_last.resize(k + 1, 0);
    out_channels_last[k] = 1;
  }
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
