// Executor: runs a normalized graph node by node in its (topological) order.
//
// Memory: each value v gets uses(v) = #(node inputs naming v) + #(nodes whose subgraphs read v
// from the outer scope); after a node runs, each of its inputs loses one use, and an intermediate
// whose count reaches 0 (and that is not a graph output) is freed at once. Live bytes
// = Σ bytes of held intermediates; graph inputs and initializers are read through pointers.
#include "engine/executor.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/buffer_pool.h"
#include "engine/denormals.h"
#include "engine/device_runner.h"
#include "engine/fusion.h"
#include "graph/errors.h"
#include "graph/subgraphs.h"

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
    p.layouts.push_back(layout_use(n));
    std::vector<uint8_t> constant;
    for (const auto& in : n.inputs) constant.push_back(!in.empty() && g.initializer(in) && !g.is_graph_input(in));
    p.constant_inputs.push_back(std::move(constant));
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
  plan_fusions(g, p);
  return p;
}

struct Executor::Impl {
  const Model& model;
  std::unordered_map<const Graph*, std::unique_ptr<GraphPlan>> plans;
  ConstantCache constants;

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
  for (const auto& sc : all_graphs(model_.graph))
    if (!sc.path.empty()) {
      subgraph_paths_[sc.graph] = sc.path;
      subgraph_outer_[sc.graph] = outer_scope_inputs(*sc.graph);
    }
  if (opt_.device == "cuda") device_ = make_cuda_runner(*this);
}

Executor::~Executor() { buffer_pool::clear(); }

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
  // Channels-last values (engine/channels_last.h): allowed in runs of the main graph only.
  bool allow_channels_last = false;
  const std::set<std::string>* any_order = nullptr;  // watched values the hook takes as stored
  bool fuse = false;  // plan.activation_of applies, except at the producers in `unfused`
  std::vector<uint8_t> unfused;  // per node: a fusion a hook would see through (it watches a skipped value)
  ConstantCache* constants = nullptr;
  std::unordered_set<std::string> channels_last;  // names of held values whose bytes are N,H,W,C
  // Subgraphs read outer values through this, always as N,C,H,W.
  const std::function<const Tensor*(const std::string&)> lookup = [this](const std::string& n) {
    to_plain(n);
    return find(n);
  };

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

  // A held channels-last value rewritten to N,C,H,W in place (pointers to it stay valid).
  void to_plain(const std::string& name) {
    if (channels_last.empty() || !channels_last.erase(name)) return;
    channels_last_to_plain(owned.at(name));
  }

  // How node i reads the channels-last values among its inputs, settled before it runs.
  struct Layouts {
    std::vector<uint8_t> in_cl;     // per input: N,H,W,C bytes handed to an Aware kernel as they are
    bool passes = false;            // a Transparent node whose outputs are channels-last
    std::vector<int64_t> dims;      // set when it runs on N,H,W,C dims (per-channel broadcast): the N,C,H,W dims
    std::vector<Tensor> relabeled;  // channels-last copies of plain inputs; per-channel inputs [n,C,1,1] as [n,1,1,C]
  };

  // A Transparent node passes channels-last values on when every input but single elements is
  // channels-last at one dims D, or per-channel ([1 or N, C, 1, 1], as squeeze-excitation scales
  // and SiLU gates are): those run broadcast over N,H,W,C dims. Inputs of other nodes are
  // converted unless the kernel is Aware. `in` may be repointed at relabeled copies.
  Layouts settle_layouts(size_t i, const Node& node, std::vector<const Tensor*>& in) {
    Layouts l;
    l.in_cl.assign(node.inputs.size(), 0);
    if (channels_last.empty()) return l;
    const LayoutUse use = plan.layouts[i];
    auto is_cl = [&](size_t j) { return in[j] && channels_last.count(node.inputs[j]) > 0; };
    if (use == LayoutUse::ShapeOnly) return l;  // dims are N,C,H,W either way
    bool passes = use == LayoutUse::Transparent, per_channel = false;
    const std::vector<int64_t>* d = nullptr;
    for (size_t j = 0; j < node.inputs.size(); ++j) {
      if (!is_cl(j) || in[j]->numel() == 1) continue;
      if (d && *d != in[j]->dims) passes = false;
      d = &in[j]->dims;
    }
    if (!d) passes = false;
    std::vector<size_t> to_cl;  // plain float inputs at D: read as channels-last copies
    for (size_t j = 0; passes && j < node.inputs.size(); ++j) {
      if (!in[j] || in[j]->numel() == 1 || is_cl(j)) continue;
      const std::vector<int64_t>& e = in[j]->dims;
      if (e.size() == 4 && e[2] == 1 && e[3] == 1 && (e[0] == 1 || e[0] == (*d)[0]) && (e[1] == 1 || e[1] == (*d)[1]))
        per_channel = true;
      else if (e == *d && in[j]->dtype == DType::Float)
        to_cl.push_back(j);
      else
        passes = false;
    }
    std::vector<std::string> cl_inputs;
    for (size_t j = 0; j < node.inputs.size(); ++j) {
      if (!is_cl(j)) continue;
      if (use == LayoutUse::Aware || passes) {
        l.in_cl[j] = 1, cl_inputs.push_back(node.inputs[j]);
      } else {
        to_plain(node.inputs[j]);
        ++stats.to_plain_for[node.op_type];
      }
    }
    l.passes = passes && !cl_inputs.empty();
    if (!l.passes) return l;
    l.relabeled.reserve(node.inputs.size());  // `in` points into it
    for (size_t j : to_cl) {
      l.relabeled.push_back(*in[j]);
      plain_to_channels_last(l.relabeled.back());
      in[j] = &l.relabeled.back();
      ++stats.to_channels_last_for[node.op_type];
    }
    if (per_channel) {
      l.dims = *d;
      const std::vector<int64_t> nhwc = {l.dims[0], l.dims[2], l.dims[3], l.dims[1]};
      for (size_t k = 0; k < to_cl.size(); ++k) l.relabeled[k].dims = nhwc;  // the channels-last copies
      for (size_t j = 0; j < node.inputs.size(); ++j) {
        if (!in[j] || in[j]->numel() == 1 || l.in_cl[j]) continue;
        if (std::find(to_cl.begin(), to_cl.end(), j) != to_cl.end()) continue;
        l.relabeled.push_back(*in[j]);
        l.relabeled.back().dims = {in[j]->dims[0], 1, 1, in[j]->dims[1]};
        in[j] = &l.relabeled.back();
      }
      for (const auto& name : cl_inputs) owned.at(name).dims = nhwc;
    }
    return l;
  }

  // After a per-channel broadcast over N,H,W,C dims: outputs and inputs get their N,C,H,W dims back.
  void restore_dims(const Node& node, const Layouts& l, std::vector<Tensor>& outs) {
    if (l.dims.empty()) return;
    for (size_t j = 0; j < node.inputs.size(); ++j)
      if (l.in_cl[j])
        if (auto it = owned.find(node.inputs[j]); it != owned.end()) it->second.dims = l.dims;
    const std::vector<int64_t> nhwc = {l.dims[0], l.dims[2], l.dims[3], l.dims[1]};
    for (Tensor& t : outs)
      if (t.dims == nhwc) t.dims = l.dims;
  }

  size_t release(const std::string& name) {
    if (plan.outputs.count(name)) return 0;
    auto it = owned.find(name);
    if (it == owned.end()) return 0;
    // Plain runs only: a calibration pass's observers allocate between values, so kept buffers
    // would wait unused and add to its peak (efficientnet_b0, 8 samples: 300 -> 482 MiB).
    if (Bytes& b = it->second.bytes; !hook && !b.is_mapped() && b.size() >= buffer_pool::kMinBytes) {
      std::vector<uint8_t> v;
      b.swap(v);
      buffer_pool::give(std::move(v));  // the next large output of about its size reuses it
    }
    owned.erase(it);
    channels_last.erase(name);
    return held_bytes[name];  // recorded at production: a kernel may have moved the storage out
  }

  std::vector<Tensor> compute(size_t i, const Node& node, const std::vector<const Tensor*>& in,
                          const std::unordered_map<std::string, int>& uses) {
    std::vector<Tensor> outs(node.outputs.size());
    if (fuse && plan.fused_away[i] >= 0 && !unfused[i]) {  // the gate of v·act(v): its Conv applied the product
      ++stats.fused_activations[node.op_type];
      for (Tensor& t : outs) t = Tensor::from_float("", {}, {0.f});  // a placeholder the Mul never reads
      return outs;
    }
    // A node its producer applied (engine/fusion.h) passes the value on in the layout it has.
    if (fuse && !unfused[i] && plan.fused_into[i] >= 0) {
      ++stats.fused_activations[node.op_type];
      const size_t j = plan.fused_input[i];
      auto o = owned.find(node.inputs[j]);
      auto u = uses.find(node.inputs[j]);
      if (u != uses.end() && u->second == 1 && o != owned.end() && !plan.outputs.count(node.inputs[j]))
        outs[0] = std::move(o->second);
      else
        outs[0] = *in[j];
      if (channels_last.count(node.inputs[j])) channels_last.insert(node.outputs[0]), ++stats.channels_last_values;
      return outs;
    }
    std::vector<const Tensor*> args = in;
    Layouts layouts = settle_layouts(i, node, args);
    const bool passes_cl = layouts.passes;
    KernelContext ctx{node, args, outs, threads, plan.opsets[i], ex, &lookup};
    ctx.in_channels_last = layouts.in_cl;
    ctx.allow_channels_last = allow_channels_last;
    ctx.constants = constants;
    ctx.in_constant = plan.constant_inputs[i];
    for (size_t j = 0; j < node.inputs.size(); ++j)
      if (args[j] != in[j]) ctx.in_constant[j] = 0;  // a relabeled copy, not the initializer
    ctx.movable.assign(node.inputs.size(), nullptr);
    for (size_t j = 0; j < node.inputs.size(); ++j) {
      const std::string& name = node.inputs[j];
      auto u = uses.find(name);
      auto o = owned.find(name);
      if (u != uses.end() && u->second == 1 && o != owned.end() && !plan.outputs.count(name)) ctx.movable[j] = &o->second;
    }
    if (fuse && !unfused[i])
      if (auto a = plan.activation_of.find(i); a != plan.activation_of.end()) {
        ctx.fused = &a->second;
        if (a->second.residual) {
          const std::string& r = plan.residual_of.at(i);
          ctx.residual = find(r);
          ctx.residual_channels_last = channels_last.count(r) > 0;
          auto u = uses.find(r);
          auto o = owned.find(r);
          if (u != uses.end() && u->second == 1 && o != owned.end() && !plan.outputs.count(r)) ctx.residual_movable = &o->second;
        }
      }
    const auto t0 = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    try {
      (*plan.kernels[i])(ctx);
    } catch (const Error&) {
      restore_dims(node, layouts, outs);
      throw;
    } catch (const std::exception& e) {
      restore_dims(node, layouts, outs);
      throw Error("node '" + node.name + "' (" + node.op_type + "): " + e.what());
    }
    restore_dims(node, layouts, outs);
    if (ctx.residual_declined)  // the Add and the activation run as nodes of their own
      for (size_t c = 0; c < g.nodes.size(); ++c)
        if (plan.fused_into[c] == static_cast<int>(i) || plan.fused_away[c] == static_cast<int>(i)) unfused[c] = 1;
    if (profile)
      stats.op_ms[node.op_type] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      const bool cl = passes_cl || (k < ctx.out_channels_last.size() && ctx.out_channels_last[k]);
      if (cl && !node.outputs[k].empty()) channels_last.insert(node.outputs[k]), ++stats.channels_last_values;
    }
    return outs;
  }

  void produced(const Node& node, const std::string& name, Tensor& t) {
    if (t.dtype != DType::String && t.bytes.size() != dtype_storage_bytes(t.dtype, t.numel()))
      throw Error("node '" + node.name + "' (" + node.op_type + ") produced " + std::to_string(t.bytes.size()) +
                  " bytes for output '" + name + "' of shape " + shape_str(t.dims));
    t.name = name;
    if (!hook || !(watch->empty() || watch->count(name))) return;
    if (channels_last.count(name) && !any_order->count(name)) {
      Tensor plain = t;  // the hook sees N,C,H,W; the run goes on with the channels-last value
      channels_last_to_plain(plain);
      hook(name, plain);
      return;
    }
    hook(name, t);
  }

  // The fusions a hook would see through: a fused producer's output (and, for v·act(v), the
  // act(v) never computed) is never materialized, so watching it keeps the pattern unfused.
  void settle_fusions() {
    unfused.assign(g.nodes.size(), 0);
    if (!fuse || !hook) return;
    auto watched = [&](const std::string& v) { return watch->empty() || watch->count(v) > 0; };
    for (const auto& [p, act] : plan.activation_of) {
      const int producer = static_cast<int>(p);
      // The nodes the producer applied: passed on (fused_into) or never run (fused_away).
      auto member = [&](size_t c) { return plan.fused_into[c] == producer || plan.fused_away[c] == producer; };
      bool seen = false;
      for (const auto& o : g.nodes[p].outputs) seen = seen || (!o.empty() && watched(o));
      // Every value among them but the last holds the end result or nothing, not its own.
      for (size_t c = 0; c < g.nodes.size(); ++c)
        if (member(c))
          for (const auto& o : g.nodes[c].outputs)
            for (int r : g.consumers(o)) seen = seen || (member(static_cast<size_t>(r)) && watched(o));
      if (!seen) continue;
      unfused[p] = 1;
      for (size_t c = 0; c < g.nodes.size(); ++c)
        if (member(c)) unfused[c] = 1;
    }
  }

  size_t keep(const std::string& name, Tensor&& t) {
    const size_t b = t.bytes.size();
    held_bytes[name] = b;
    owned.insert_or_assign(name, std::move(t));
    return b;
  }

  size_t live_values() const { return owned.size(); }

  void execute(Executor* executor, int nthreads, const ValueHook& h, const std::set<std::string>& w,
               bool channels_last_ok = false, bool fuse_ok = false, ConstantCache* cache = nullptr,
               const std::set<std::string>* order_free = nullptr) {
    static const std::set<std::string> none;
    ex = executor;
    allow_channels_last = channels_last_ok && !outer;
    fuse = fuse_ok && !outer;
    constants = cache;
    threads = nthreads;
    hook = h;
    watch = &w;
    any_order = order_free ? order_free : &none;
    settle_fusions();
    run_plan<const Tensor>(g, plan, *this, stats);
  }

  Tensor take_output(const std::string& name) {
    to_plain(name);
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

// The first symbolic dim two inputs of one run give different values, as a clause naming both
// inputs, their shapes and the axes ("" when they all agree). Consulted only once a run has failed:
// models name dims of independent inputs alike (every dim "N", test models and some exporters), so
// a difference alone is no error; a failing run with one is most likely the data's fault (silero
// VAD's audio [batch, T] against its LSTM state [2, batch, 64] fed at another batch).
std::string symbolic_dim_disagreement(const Graph& g, const std::map<std::string, Tensor>& inputs) {
  struct Seen { const ValueInfo* v; const Tensor* t; size_t axis; };
  std::map<std::string, Seen> first;  // dim name -> first input axis that gives it
  for (const ValueInfo* v : g.runtime_inputs()) {
    auto it = inputs.find(v->name);
    if (!v->has_shape || it == inputs.end() || it->second.dims.size() != v->shape.size()) continue;
    const Tensor& t = it->second;
    for (size_t a = 0; a < v->shape.size(); ++a) {
      const Dim& d = v->shape[a];
      if (d.known() || d.param.empty()) continue;
      auto [f, fresh] = first.try_emplace(d.param, Seen{v, &t, a});
      if (fresh || f->second.t->dims[f->second.axis] == t.dims[a]) continue;
      const Seen& s = f->second;
      return "inputs '" + s.v->name + "' " + shape_str(s.t->dims) + " and '" + v->name + "' " + shape_str(t.dims) +
             " give the symbolic dim '" + d.param + "' different values (" + std::to_string(s.t->dims[s.axis]) +
             " at axis " + std::to_string(s.axis) + ", " + std::to_string(t.dims[a]) + " at axis " + std::to_string(a) + ")";
    }
  }
  return "";
}

}  // namespace

// A run that fails on inputs giving one symbolic dim different values says so first, naming the
// inputs and their dims, then the failing node (symbolic_dim_disagreement).
std::map<std::string, Tensor> Executor::run(const std::map<std::string, Tensor>& inputs, const ValueHook& hook,
                                            const std::set<std::string>& watch, const DeviceValueHook& device_hook,
                                            const std::set<std::string>& any_order) {
  const Graph& g = model_.graph;
  check_inputs(g, inputs);
  try {
    if (device_) {
      stats_ = RunStats{};
      return device_->run(inputs, hook, watch, device_hook, stats_);
    }
#ifdef _OPENMP
    omp_set_num_threads(threads_);
#endif
    std::optional<DenormalsAsZero> daz;
    if (opt_.denormals_as_zero) daz.emplace(threads_);
    GraphRun r(g, impl_->plan(g), nullptr);
    r.profile = opt_.profile;
    struct Active {  // run_subgraph sees the hook while this run lasts
      Executor& e;
      ~Active() { e.run_hook_ = nullptr, e.run_watch_ = nullptr; }
    } active{*this};
    if (hook && !watch.empty()) run_hook_ = &hook, run_watch_ = &watch;
    for (const auto& [name, t] : inputs) {
      r.feeds[name] = &t;
      if (hook && (watch.empty() || watch.count(name))) hook(name, t);
    }
    r.execute(this, threads_, hook, watch, opt_.channels_last, opt_.fuse, &impl_->constants, &any_order);
    stats_ = r.stats;
    std::map<std::string, Tensor> out;
    for (const auto& o : g.outputs) out[o.name] = r.take_output(o.name);
    return out;
  } catch (const InvalidArgument& e) {
    const std::string why = symbolic_dim_disagreement(g, inputs);
    if (why.empty()) throw;
    throw InvalidArgument(why + " — the run fails at " + e.what());
  }
}

std::vector<Tensor> Executor::run_subgraph(const Graph& g, const std::vector<const Tensor*>& inputs,
                                           const std::function<const Tensor*(const std::string&)>& outer) {
  if (inputs.size() > g.inputs.size())
    throw InvalidArgument("subgraph '" + g.name + "' takes " + std::to_string(g.inputs.size()) + " inputs, got " +
                          std::to_string(inputs.size()));
  GraphRun r(g, impl_->plan(g), &outer);
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i]) r.feeds[g.inputs[i].name] = inputs[i];
  // Watched values of this graph go to the run's hook under their scoped names.
  ValueHook scoped;
  auto path = subgraph_paths_.find(&g);
  if (run_hook_ && path != subgraph_paths_.end()) {
    const std::string& p = path->second;
    scoped = [this, &p](const std::string& name, const Tensor& t) {
      const std::string q = scoped_value(p, name);
      if (run_watch_->count(q)) (*run_hook_)(q, t);
    };
    for (const auto& [name, t] : r.feeds) scoped(name, *t);
    for (const auto& name : subgraph_outer_[&g])
      if (run_watch_->count(scoped_value(p, name)))
        if (const Tensor* t = outer ? outer(name) : nullptr) scoped(name, *t);
  }
  static const std::set<std::string> every;
  r.execute(this, threads_, scoped, every, false, false, &impl_->constants);
  std::vector<Tensor> out;
  for (const auto& o : g.outputs) out.push_back(r.take_output(o.name));
  return out;
}

}  // namespace oc
