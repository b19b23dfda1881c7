// The CUDA runner: executes the main graph node by node like the CPU executor, with each value
// held on the host, on the device, or both, and moved only when a node needs it elsewhere.
// A node runs on the device when its operator has a device op (ops.h) that accepts it; otherwise
// (no device op, int64 shape arithmetic, an attribute the device op does not cover) the CPU
// kernel runs on host copies, and the runner counts it in RunStats::cpu_fallbacks with the
// reason and the bytes it moved. Weights are uploaded once and kept for later runs.
#include <chrono>
#include <unordered_map>
#include <unordered_set>

#include "engine/cuda/ops.h"
#include "engine/cuda_backend.h"
#include "graph/errors.h"

namespace oc {
namespace {

using cuda::DeviceBuffer;
using cuda::DeviceContext;

struct Value {
  DType dtype = DType::Float;
  std::vector<int64_t> dims;
  const Tensor* host_ref = nullptr;  // graph input or initializer (not owned)
  std::unique_ptr<Tensor> host;      // owned host copy
  DeviceBuffer dev_owned;
  const float* dev = nullptr;        // dev_owned or a cached weight
  bool has_host() const { return host_ref || host; }
  const Tensor& host_tensor() const { return host ? *host : *host_ref; }
  size_t bytes() const { return dtype_storage_bytes(dtype, static_cast<int64_t>(numel())); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

class CudaRunner;

class RunnerOpContext : public cuda::CudaOpContext {
 public:
  RunnerOpContext(CudaRunner& r, const Node& n, int64_t opset, std::vector<Value*> in);
  size_t num_inputs() const override { return in_.size(); }
  bool has_input(size_t i) const override { return i < in_.size() && in_[i]; }
  const std::vector<int64_t>& dims(size_t i) const override { return need(i).dims; }
  DType dtype(size_t i) const override { return need(i).dtype; }
  const float* dev(size_t i) override;
  const Tensor& host(size_t i) override;
  float* output(size_t k, const std::vector<int64_t>& dims) override;
  void host_output(size_t k, Tensor t) override;
  cuda::NodeCache& cache() override;
  int cpu_threads() const override;
  std::vector<Value> outputs;

 private:
  Value& need(size_t i) const {
    if (!has_input(i)) throw InvalidArgument("node '" + node.name + "': required input " + std::to_string(i) + " is missing");
    return *in_[i];
  }
  CudaRunner& r_;
  std::vector<Value*> in_;
};

class CudaRunner : public DeviceRunner {
 public:
  explicit CudaRunner(Executor& ex) : ex_(ex), g_(ex.model().graph), plan_(plan_graph(ex.model(), g_)) {}

  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs, const ValueHook& hook,
                                    const std::set<std::string>& watch, const DeviceValueHook& device_hook,
                                    Executor::RunStats& stats) override {
    stats_ = &stats;
    values_.clear();
    auto watched = [&](const std::string& n) { return (hook || device_hook) && (watch.empty() || watch.count(n)); };
    for (const auto& [name, t] : inputs) {
      Value v;
      v.dtype = t.dtype;
      v.dims = t.dims;
      v.host_ref = &t;
      values_.emplace(name, std::move(v));
      if (hook && watched(name)) hook(name, t);
    }
    hook_ = &hook;
    device_hook_ = &device_hook;
    watch_ = &watch;
    run_plan<Value>(g_, plan_, *this, stats);
    std::map<std::string, Tensor> result;
    for (const auto& o : g_.outputs) {
      Value* v = find(o.name);
      if (!v) throw Error("graph output '" + o.name + "' was not produced");
      Tensor t = host_of(*v);
      t.name = o.name;
      result[o.name] = std::move(t);
    }
    values_.clear();
    stats.device_peak_bytes = dc_.pool().peak_bytes();
    return result;
  }

  // ---- used by RunnerOpContext
  DeviceContext& dc() { return dc_; }
  const float* device_of(Value& v, const std::string& why_node) {
    if (v.dev) return v.dev;
    if (v.dtype != DType::Float) throw cuda::NotOnDevice(dtype_name(v.dtype) + " value for " + why_node);
    const Tensor& t = v.host_tensor();
    if (v.host_ref && g_.initializer(t.name) == v.host_ref) {  // weights: once, kept across runs
      auto it = weights_.find(t.name);
      if (it == weights_.end()) {
        DeviceBuffer b(dc_.pool(), t.bytes.size());
        dc_.upload(b.get(), t.bytes.data(), t.bytes.size());
        it = weights_.emplace(t.name, std::move(b)).first;
      }
      v.dev = it->second.get<float>();
      return v.dev;
    }
    v.dev_owned = DeviceBuffer(dc_.pool(), t.bytes.size());
    dc_.upload(v.dev_owned.get(), t.bytes.data(), t.bytes.size());
    stats_->transfer_bytes += t.bytes.size();
    v.dev = v.dev_owned.get<float>();
    return v.dev;
  }
  const Tensor& host_of(Value& v) {
    if (v.has_host()) return v.host_tensor();
    auto t = std::make_unique<Tensor>();
    t->dtype = v.dtype;
    t->dims = v.dims;
    t->bytes.resize(v.bytes());
    dc_.download(t->bytes.data(), v.dev, t->bytes.size());
    stats_->transfer_bytes += t->bytes.size();
    v.host = std::move(t);
    return *v.host;
  }
  cuda::NodeCache& cache_of(const Node& n) { return caches_[&n]; }

  // ---- the value store run_plan (executor.h) drives
  Value* find(const std::string& name) {
    if (auto it = values_.find(name); it != values_.end()) return &it->second;
    if (const Tensor* t = g_.initializer(name)) {
      Value v;
      v.dtype = t->dtype;
      v.dims = t->dims;
      v.host_ref = t;
      return &values_.emplace(name, std::move(v)).first->second;
    }
    return nullptr;
  }
  std::vector<Value> compute(size_t i, const Node& node, const std::vector<Value*>& in,
                         const std::unordered_map<std::string, int>& /*uses*/) {
    return run_node(node, plan_.opsets[i], plan_.kernels[i], in, lookup_);
  }
  void produced(const Node& /*node*/, const std::string& name, Value& v) {
    if ((*hook_ || *device_hook_) && (watch_->empty() || watch_->count(name))) offer(name, v, *hook_, *device_hook_);
  }
  size_t keep(const std::string& name, Value&& v) {
    const size_t b = v.bytes();
    values_.insert_or_assign(name, std::move(v));
    return b;
  }
  size_t release(const std::string& name) {
    auto v = values_.find(name);
    if (v == values_.end() || v->second.host_ref) return 0;
    const size_t b = v->second.bytes();
    values_.erase(v);
    return b;
  }
  size_t live_values() const { return values_.size(); }
  int threads() const { return ex_.num_threads(); }

 private:
  std::vector<Value> run_node(const Node& node, int64_t opset, const KernelFn* fn, const std::vector<Value*>& in,
                              const std::function<const Tensor*(const std::string&)>& lookup) {
    std::string reason = "no device kernel";
    if (const cuda::CudaOpFn* op = cuda::find_cuda_op(node)) {
      RunnerOpContext ctx(*this, node, opset, in);
      try {
        (*op)(ctx);
        return std::move(ctx.outputs);
      } catch (const cuda::NotOnDevice& e) {
        reason = e.what();
      }
    }
    // CPU kernel on host copies.
    bool float_data = false;
    std::vector<const Tensor*> host_in;
    for (Value* v : in) {
      if (!v) {
        host_in.push_back(nullptr);
        continue;
      }
      float_data |= v->dtype == DType::Float;
      host_in.push_back(&host_of(*v));
    }
    std::vector<Tensor> outs(node.outputs.size());
    if (!fn) throw UnsupportedError("node '" + node.name + "': no kernel for " + node.op_type);
    KernelContext kc{node, host_in, outs, ex_.num_threads(), opset, &ex_, &lookup};
    try {
      (*fn)(kc);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("node '" + node.name + "' (" + node.op_type + "): " + e.what());
    }
    std::vector<Value> result(outs.size());
    for (size_t k = 0; k < outs.size(); ++k) {
      float_data |= outs[k].dtype == DType::Float && !node.outputs[k].empty();
      result[k].dtype = outs[k].dtype;
      result[k].dims = outs[k].dims;
      result[k].host = std::make_unique<Tensor>(std::move(outs[k]));
    }
    // Shape arithmetic on int64 belongs on the host (ConstantOfShape makes its float tensor from a
    // shape); a fallback is float work that left the GPU.
    if (float_data && node.op_type != "ConstantOfShape") ++stats_->cpu_fallbacks[node.op_type + ": " + reason];
    return result;
  }

  void offer(const std::string& name, Value& v, const ValueHook& hook, const DeviceValueHook& device_hook) {
    if (v.dev && device_hook) {
      DeviceTensorView view{v.dev, v.dims, dc_.stream()};
      if (device_hook(name, view)) return;
    }
    if (hook) {
      const Tensor& t = host_of(v);
      hook(name, t);
    }
  }

  Executor& ex_;
  const Graph& g_;
  DeviceContext dc_;
  const GraphPlan plan_;
  std::unordered_map<std::string, DeviceBuffer> weights_;
  std::unordered_map<const Node*, cuda::NodeCache> caches_;
  std::unordered_map<std::string, Value> values_;
  Executor::RunStats* stats_ = nullptr;
  const ValueHook* hook_ = nullptr;
  const DeviceValueHook* device_hook_ = nullptr;
  const std::set<std::string>* watch_ = nullptr;
  const std::function<const Tensor*(const std::string&)> lookup_ = [this](const std::string& n) -> const Tensor* {
    Value* v = find(n);
    return v ? &host_of(*v) : nullptr;
  };
};

RunnerOpContext::RunnerOpContext(CudaRunner& r, const Node& n, int64_t opset, std::vector<Value*> in)
    : CudaOpContext(n, opset, r.dc()), r_(r), in_(std::move(in)) {}

const float* RunnerOpContext::dev(size_t i) { return r_.device_of(need(i), "node '" + node.name + "'"); }
const Tensor& RunnerOpContext::host(size_t i) { return r_.host_of(need(i)); }
cuda::NodeCache& RunnerOpContext::cache() { return r_.cache_of(node); }
int RunnerOpContext::cpu_threads() const { return r_.threads(); }

float* RunnerOpContext::output(size_t k, const std::vector<int64_t>& dims) {
  if (outputs.size() < node.outputs.size()) outputs.resize(node.outputs.size());
  Value& v = outputs.at(k);
  v.dtype = DType::Float;
  v.dims = dims;
  v.dev_owned = DeviceBuffer(dc.pool(), v.bytes());
  v.dev = v.dev_owned.get<float>();
  return v.dev_owned.get<float>();
}

void RunnerOpContext::host_output(size_t k, Tensor t) {
  if (outputs.size() < node.outputs.size()) outputs.resize(node.outputs.size());
  Value& v = outputs.at(k);
  v.dtype = t.dtype;
  v.dims = t.dims;
  v.host = std::make_unique<Tensor>(std::move(t));
}

}  // namespace

bool cuda_usable(std::string* why) {
  if (!cuda::device_usable(why)) return false;
  try {
    cuda::Blas::get();
  } catch (const Error& e) {
    if (why) *why = e.what();
    return false;
  }
  return true;
}

std::unique_ptr<DeviceRunner> make_cuda_runner(Executor& executor) { return std::make_unique<CudaRunner>(executor); }

}  // namespace oc
