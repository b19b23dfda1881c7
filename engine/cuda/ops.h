// Device operators of the CUDA backend: one function per ONNX operator, registered in a table
// (ops.cpp). A device op reads its inputs through CudaOpContext — dev(i) for float32 data in
// device memory, host(i) for small control inputs (shapes, axes, scalars) — and either writes
// device outputs or calls fallback(reason) before writing anything, after which the runner runs
// the CPU kernel instead and logs the transfer. Nothing here decides where a value lives: the
// context moves it on demand.
#pragma once
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/cuda/runtime.h"
#include "graph/ir.h"

namespace oc::cuda {

// Thrown by an op that cannot run this node on the device (the runner uses the CPU kernel).
struct NotOnDevice : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Per-node device data kept across runs (index maps of data-movement ops, keyed by input shapes).
struct NodeCache {
  std::string key;
  std::vector<DeviceBuffer> maps;
  std::vector<std::vector<int64_t>> out_dims;
};

class CudaOpContext {
 public:
  CudaOpContext(const Node& n, int64_t opset_, DeviceContext& d) : node(n), opset(opset_), dc(d) {}
  virtual ~CudaOpContext() = default;
  const Node& node;
  const int64_t opset;
  DeviceContext& dc;

  virtual size_t num_inputs() const = 0;
  virtual bool has_input(size_t i) const = 0;
  virtual const std::vector<int64_t>& dims(size_t i) const = 0;
  virtual DType dtype(size_t i) const = 0;
  virtual const float* dev(size_t i) = 0;     // float32 data on the device (uploaded once if needed)
  virtual const Tensor& host(size_t i) = 0;   // the value on the host (downloaded once if needed)
  virtual float* output(size_t k, const std::vector<int64_t>& dims) = 0;  // a new float32 device output
  virtual void host_output(size_t k, Tensor t) = 0;  // an output computed on the host (shapes)
  virtual NodeCache& cache() = 0;
  virtual int cpu_threads() const = 0;

  DeviceBuffer scratch(size_t bytes) { return DeviceBuffer(dc.pool(), bytes); }
  [[noreturn]] void fallback(const std::string& why) const { throw NotOnDevice(why); }
  // dev(i) after checking the element type (fallback otherwise).
  const float* dev_f32(size_t i) {
    if (!has_input(i)) fallback("input " + std::to_string(i) + " is missing");
    if (dtype(i) != DType::Float) fallback(dtype_name(dtype(i)) + " input");
    return dev(i);
  }
  size_t num_outputs() const { return node.outputs.size(); }
  bool output_used(size_t k) const { return k < node.outputs.size() && !node.outputs[k].empty(); }
};

using CudaOpFn = std::function<void(CudaOpContext&)>;
// The device op for the node's op, or nullptr (the node always runs on the CPU).
const CudaOpFn* find_cuda_op(const Node& n);
std::vector<std::string> cuda_ops();

}  // namespace oc::cuda
