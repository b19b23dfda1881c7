// Executor: runs a normalized graph node by node in its (topological) order.
//
// Memory: each value v gets uses(v) = #(node inputs naming v) + #(nodes whose subgraphs read v
// from the outer scope); after a node runs, each of its inputs loses one use, and an intermediate
// whose count reaches 0 (and that is not a graph output) is freed at once. Live bytes
// = Σ bytes of held intermediates; graph inputs and initializers are read through pointers.
#include "engine/executor.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/device_runner.h"
#include "graph/errors.h"

namespace oc {

namespace {

std::string dtype_shape(DType t, const ValueInfo& v) {
  return dtype_name(t) + (v.has_shape ? shape_str(v.shape) : std::string("[?]"));
}

void collect_missing(const Graph& g, std::set<std::string>& missing, std::vector<std::string>& where) {
  const KernelRegistry& reg = KernelRegistry::instance();
  for (const Node& n : g.nodes) {
    if (!reg.find(n)) {
      std::string op = n.is_default_domain() ? n.op_type : n.domain + "." + n.op_type;
      if (missing.insert(op).second) where.push_back(op + " (node '" + n.name + "')");
    }
    for (const auto& sg : n.subgraphs()) collect_missing(*sg, missing, where);
  }
}

}  // namespace

// Normalized graphs are already in order; this keeps the executor correct on graphs built by
// hand or rewritten without a toposort (depth-first: producers before consumers, stable).
std::vector<size_t> execution_order(const Graph& g) {
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& o : g.nodes[i].outputs)
      if (!o.empty()) producer[o] = i;
  std::vector<int> state(g.nodes.size(), 0);  // 0 new, 1 on stack, 2 done
  std::vector<size_t> order;
  std::function<void(size_t)> visit = [&](size_t i) {
    if (state[i] == 2) return;
    if (state[i] == 1) throw Error("graph '" + g.name + "' has a cycle through node '" + g.nodes[i].name + "'");
    state[i] = 1;
    for (const auto& in : g.nodes[i].inputs)
      if (auto it = producer.find(in); it != producer.end()) visit(it->second);
    state[i] = 2;
    order.push_back(i);
  };
  for (size_t i = 0; i < g.nodes.size(); ++i) visit(i);
  return order;
}

GraphPlan plan_graph(const Model& model, const Graph& g) {
  GraphPlan p;
  const KernelRegistry& reg = KernelRegistry::instance();
  for (const Node& n : g.nodes) {
    p.kernels.push_back(reg.find(n));
    p.opsets.push_back(model.opset(n.is_default_domain() ? "" : n.domain));
    for (const auto& in : n.inputs)
      if (!in.empty()) ++p.uses[in];
    std::vector<std::string> implicit;
    for (const auto& sg : n.subgraphs())
      for (const auto& v : outer_scope_inputs(*sg)) implicit.push_back(v);
    std::sort(implicit.begin(), implicit.end());
    implicit.erase(std::unique(implicit.begin(), implicit.end()), implicit.end());
    for (const auto& v : implicit) ++p.uses[v];
    p.implicit.push_back(std::move(implicit));
  }
  for (const auto& o : g.outputs) p.outputs.insert(o.name);
  p.order = execution_order(g);
  return p;
}

struct Executor::Impl {
  const Model& model;
  std::unordered_map<const Graph*, std::unique_ptr<GraphPlan>> plans;

  explicit Impl(const Model& m) : model(m) {}

  const GraphPlan& plan(const Graph& g) {
    auto it = plans.find(&g);
    if (it != plans.end()) return *it->second;
    return *plans.emplace(&g, std::make_unique<GraphPlan>(plan_graph(model, g))).first->second;
  }
};

Executor::Executor(const Model& model, ExecutorOptions opt) : model_(model), opt_(std::move(opt)) {
  if (opt_.device != "cpu" && opt_.device != "cuda")
    throw InvalidArgument("unknown device '" + opt_.device + "' (expected cpu or cuda)");
  threads_ = opt_.num_threads > 0 ? opt_.num_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::set<std::string> missing;
  std::vector<std::string> where;
  collect_missing(model_.graph, missing, where);
  if (!missing.empty()) {
    std::string msg = "no kernel for " + std::to_string(missing.size()) + " operator(s): ";
    for (size_t i = 0; i < where.size(); ++i) msg += (i ? ", " : "") + where[i];
    throw UnsupportedError(msg);
  }
  impl_ = std::make_unique<Impl>(model_);
  if (opt_.device == "cuda") device_ = make_cuda_runner(*this);
}

Executor::~Executor() = default;

namespace {

// One graph's run: value store with reference counts.
struct GraphRun {
  const Graph& g;
  const GraphPlan& plan;
  const std::function<const Tensor*(const std::string&)>* outer;
  std::unordered_map<std::string, const Tensor*> feeds;
  std::unordered_map<std::string, Tensor> owned;
  std::unordered_map<std::string, size_t> held_bytes;
  bool profile = false;
  Executor::RunStats stats;
  // set by execute()
  Executor* ex = nullptr;
  int threads = 1;
  ValueHook hook;
  const std::set<std::string>* watch = nullptr;
  const std::function<const Tensor*(const std::string&)> lookup = [this](const std::string& n) { return find(n); };

  GraphRun(const Graph& graph, const GraphPlan& p, const std::function<const Tensor*(const std::string&)>* o)
      : g(graph), plan(p), outer(o) {}
  GraphRun(const GraphRun&) = delete;  // `lookup` holds `this`

  const Tensor* find(const std::string& name) const {
    if (auto it = owned.find(name); it != owned.end()) return &it->second;
    if (auto it = feeds.find(name); it != feeds.end()) return it->second;
    if (const Tensor* t = g.initializer(name)) return t;
    return outer && *outer ? (*outer)(name) : nullptr;
  }

  // ---- the value store run_plan (executor.h) drives; find() above is its lookup

  size_t release(const std::string& name) {
    if (plan.outputs.count(name)) return 0;
    auto it = owned.find(name);
    if (it == owned.end()) return 0;
    owned.erase(it);
    return held_bytes[name];  // recorded at production: a kernel may have moved the storage out
  }

  std::vector<Tensor> compute(size_t i, const Node& node, const std::vector<const Tensor*>& in,
                          const std::unordered_map<std::string, int>& uses) {
    std::vector<Tensor> outs(node.outputs.size());
    KernelContext ctx{node, in, outs, threads, plan.opsets[i], ex, &lookup};
    ctx.movable.assign(node.inputs.size(), nullptr);
    for (size_t j = 0; j < node.inputs.size(); ++j) {
      const std::string& name = node.inputs[j];
      auto u = uses.find(name);
      auto o = owned.find(name);
      if (u != uses.end() && u->second == 1 && o != owned.end() && !plan.outputs.count(name)) ctx.movable[j] = &o->second;
    }
    const auto t0 = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    try {
      (*plan.kernels[i])(ctx);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("node '" + node.name + "' (" + node.op_type + "): " + e.what());
    }
    if (profile)
      stats.op_ms[node.op_type] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return outs;
  }

  void produced(const Node& node, const std::string& name, Tensor& t) {
    if (t.dtype != DType::String && t.bytes.size() != dtype_storage_bytes(t.dtype, t.numel()))
      throw Error("node '" + node.name + "' (" + node.op_type + ") produced " + std::to_string(t.bytes.size()) +
                  " bytes for output '" + name + "' of shape " + shape_str(t.dims));
    t.name = name;
    if (hook && (watch->empty() || watch->count(name))) hook(name, t);
  }

  size_t keep(const std::string& name, Tensor&& t) {
    const size_t b = t.bytes.size();
    held_bytes[name] = b;
    owned.insert_or_assign(name, std::move(t));
    return b;
  }

  size_t live_values() const { return owned.size(); }

  void execute(Executor* executor, int nthreads, const ValueHook& h, const std::set<std::string>& w) {
    ex = executor;
    threads = nthreads;
    hook = h;
    watch = &w;
    run_plan<const Tensor>(g, plan, *this, stats);
  }

  Tensor take_output(const std::string& name) {
    if (auto it = owned.find(name); it != owned.end()) return std::move(it->second);
    const Tensor* t = find(name);
    if (!t) throw Error("graph output '" + name + "' was not produced");
    Tensor copy = *t;
    copy.name = name;
    return copy;
  }
};

void check_inputs(const Graph& g, const std::map<std::string, Tensor>& inputs) {
  std::string expected;
  for (const ValueInfo* v : g.runtime_inputs())
    expected += (expected.empty() ? "" : ", ") + v->name + " " + dtype_shape(v->dtype, *v);
  for (const auto& [name, t] : inputs) {
    const ValueInfo* v = nullptr;
    for (const auto& in : g.inputs)
      if (in.name == name) v = &in;
    if (!v) throw InvalidArgument("the model has no input '" + name + "' (it expects " + expected + ")");
    std::string want = "input '" + name + "' must be " + dtype_shape(v->dtype, *v) + ", got " + dtype_name(t.dtype) +
                       shape_str(t.dims);
    if (v->dtype != DType::Undefined && t.dtype != v->dtype) throw InvalidArgument(want);
    if (v->has_shape) {
      if (t.dims.size() != v->shape.size()) throw InvalidArgument(want);
      for (size_t i = 0; i < t.dims.size(); ++i)
        if (v->shape[i].known() && v->shape[i].value != t.dims[i]) throw InvalidArgument(want);
    }
    if (t.dtype != DType::String && t.bytes.size() != dtype_storage_bytes(t.dtype, t.numel()))
      throw InvalidArgument("input '" + name + "' holds " + std::to_string(t.bytes.size()) + " bytes for shape " +
                            shape_str(t.dims));
  }
  for (const ValueInfo* v : g.runtime_inputs())
    if (!inputs.count(v->name))
      throw InvalidArgument("missing input '" + v->name + "': the model expects " + dtype_shape(v->dtype, *v) +
                            " (inputs: " + expected + ")");
}

}  // namespace

std::map<std::string, Tensor> Executor::run(const std::map<std::string, Tensor>& inputs, const ValueHook& hook,
                                            const std::set<std::string>& watch, const DeviceValueHook& device_hook) {
  const Graph& g = model_.graph;
  check_inputs(g, inputs);
  if (device_) {
    stats_ = RunStats{};
    return device_->run(inputs, hook, watch, device_hook, stats_);
  }
#ifdef _OPENMP
  omp_set_num_threads(threads_);
#endif
  GraphRun r(g, impl_->plan(g), nullptr);
  r.profile = opt_.profile;
  for (const auto& [name, t] : inputs) {
    r.feeds[name] = &t;
    if (hook && (watch.empty() || watch.count(name))) hook(name, t);
  }
  r.execute(this, threads_, hook, watch);
  stats_ = r.stats;
  std::map<std::string, Tensor> out;
  for (const auto& o : g.outputs) out[o.name] = r.take_output(o.name);
  return out;
}

std::vector<Tensor> Executor::run_subgraph(const Graph& g, const std::vector<const Tensor*>& inputs,
                                           const std::function<const Tensor*(const std::string&)>& outer) {
  if (inputs.size() > g.inputs.size())
    throw InvalidArgument("subgraph '" + g.name + "' takes " + std::to_string(g.inputs.size()) + " inputs, got " +
                          std::to_string(inputs.size()));
  GraphRun r(g, impl_->plan(g), &outer);
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i]) r.feeds[g.inputs[i].name] = inputs[i];
  r.execute(this, threads_, nullptr, {});
  std::vector<Tensor> out;
  for (const auto& o : g.outputs) out.push_back(r.take_output(o.name));
  return out;
}

}  // namespace oc
