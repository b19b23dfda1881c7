// The toolkit's own executor: runs an IR graph on CPU (oneDNN for heavy ops), releasing each
// intermediate value after its last consumer, and lets observers see chosen values as they are
// produced — so calibration statistics stream without keeping every activation in memory.
#pragma once
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/channels_last.h"
#include "engine/device_view.h"
#include "engine/kernel.h"
#include "graph/errors.h"

namespace oc {

struct ExecutorOptions {
  int num_threads = 0;         // 0 = number of cores
  std::string device = "cpu";  // "cpu" or "cuda"
  bool profile = false;        // time each operator type (RunStats::op_ms)
  // Convolution chains keep their activations channels-last (engine/channels_last.h); a hook
  // sees N,C,H,W copies of watched ones. false runs every kernel on N,C,H,W values.
  bool channels_last = true;
  // Relu / LeakyRelu / Clip after a Conv run inside it (engine/fusion.h), where no hook watches
  // the values the fusion skips.
  bool fuse = true;
  // CPU runs treat denormal float32 values as zero (engine/denormals.h: each one costs a microcode
  // assist; PaddleOCR exports carry thousands). false computes with them, as ONNX Runtime does.
  bool denormals_as_zero = true;
};

// Called once per produced value that is watched (all values when the watch set is empty),
// before the executor may release it. The reference is valid only during the call.
using ValueHook = std::function<void(const std::string& name, const Tensor& value)>;

class DeviceRunner;  // engine/device_runner.h

// Node indices of `g` in an order where producers come before consumers (stable for graphs
// already in topological order). Throws Error on a cycle.
std::vector<size_t> execution_order(const Graph& g);

// How a graph runs, shared by the CPU executor and the CUDA runner: node order, each node's CPU
// kernel (nullptr when none) and opset, and use counts that free an intermediate after its last
// reader (a node's subgraphs count as readers of the outer values they use).
struct GraphPlan {
  std::vector<size_t> order;
  std::vector<const KernelFn*> kernels;
  std::vector<int64_t> opsets;
  std::vector<std::vector<std::string>> implicit;  // outer-scope values read by each node's subgraphs
  std::unordered_map<std::string, int> uses;
  std::unordered_set<std::string> outputs;         // graph outputs (never freed)
  std::vector<LayoutUse> layouts;                  // per node: what it does with channels-last values
  // Per node, per input: an initializer no graph input overrides (storage lives as long as the model).
  std::vector<std::vector<uint8_t>> constant_inputs;
  // Fusions (engine/fusion.h): per node, the producer whose kernel applies this activation (-1:
  // none), and per producer the activation it applies.
  std::vector<int> fused_into;
  std::vector<uint8_t> fused_input;  // which input such a node passes on (a Mul of v·act(v): v's)
  std::vector<int> fused_away;       // the act(v) of v·act(v): computed by this producer, never run (-1: none)
  std::unordered_map<size_t, FusedActivation> activation_of;
  std::unordered_map<size_t, std::string> residual_of;  // per Conv with FusedActivation::residual: the value added

  // A produced value worth keeping: a graph output or read by some node (else dropped at once).
  bool kept(const std::string& v) const { return outputs.count(v) || uses.count(v); }
};
GraphPlan plan_graph(const Model& model, const Graph& g);

// The node loop's shared steps (the CPU executor and the CUDA runner hold values differently).
// Node `node`'s input values from `find(name)` (a pointer, null when absent); an omitted ("")
// input stays null, a missing value throws Error.
template <class V, class Find>
std::vector<V*> node_inputs(const Node& node, Find&& find) {
  std::vector<V*> in;
  in.reserve(node.inputs.size());
  for (const auto& name : node.inputs) {
    if (name.empty()) {
      in.push_back(nullptr);
      continue;
    }
    V* v = find(name);
    if (!v) throw Error("node '" + node.name + "' (" + node.op_type + "): input '" + name + "' has no value");
    in.push_back(v);
  }
  return in;
}
// After plan node `i` ran: counts its reads (inputs, then its subgraphs' outer-scope reads) off
// `uses` and calls release(name) for each value it read last that is not a graph output.
template <class Release>
void count_reads(const GraphPlan& plan, size_t i, const Node& node, std::unordered_map<std::string, int>& uses,
                 Release&& release) {
  auto drop = [&](const std::string& name) {
    auto it = uses.find(name);
    if (it != uses.end() && --it->second == 0 && !plan.outputs.count(name)) release(name);
  };
  for (const auto& name : node.inputs)
    if (!name.empty()) drop(name);
  for (const auto& name : plan.implicit[i]) drop(name);
}

// The node loop, written once for the CPU executor and the CUDA runner, which hold values their
// own way. `store` provides:
//   V* find(name)                      a node input's value, null when absent
//   std::vector<Out> compute(i, node, in, uses)  runs plan node i on its inputs; `uses` are the read
//                                      counts left (a kernel may take over an input read last)
//   void produced(node, name, V&)      each named output, before it may be dropped (checks, hooks)
//   size_t keep(name, V&&)             stores an output some node reads; returns the bytes it holds
//   size_t release(name)               frees a value after its last reader; returns the bytes freed
//   size_t live_values()
// and `stats` the RunStats fields peak_live_bytes, peak_live_values and nodes_run.
template <class V, class Store, class Stats>
void run_plan(const Graph& g, const GraphPlan& plan, Store& store, Stats& stats) {
  std::unordered_map<std::string, int> uses = plan.uses;
  size_t live = 0;
  for (size_t i : plan.order) {
    const Node& node = g.nodes[i];
    std::vector<V*> in = node_inputs<V>(node, [&](const std::string& n) { return store.find(n); });
    auto outs = store.compute(i, node, in, uses);  // values V, or Tensor for the CPU's const Tensor inputs
    for (size_t k = 0; k < node.outputs.size() && k < outs.size(); ++k) {
      const std::string& name = node.outputs[k];
      if (name.empty()) continue;
      store.produced(node, name, outs[k]);
      if (plan.kept(name)) live += store.keep(name, std::move(outs[k]));  // else nobody reads it
    }
    stats.peak_live_bytes = std::max(stats.peak_live_bytes, live);
    stats.peak_live_values = std::max(stats.peak_live_values, store.live_values());
    ++stats.nodes_run;
    count_reads(plan, i, node, uses, [&](const std::string& n) { live -= store.release(n); });
  }
}

// One run at a time per Executor (plans of subgraphs are cached inside); use one executor per
// thread for concurrent runs.
class Executor {
 public:
  // `model` must be normalized (topological order, Constant weights as initializers) and must
  // outlive the executor. Throws UnsupportedError listing every operator without a kernel.
  explicit Executor(const Model& model, ExecutorOptions opt = {});
  ~Executor();

  // Runs the main graph. `inputs` by name; missing or mis-shaped inputs throw InvalidArgument
  // with what the model expects. The hook also sees watched graph inputs (before any node runs).
  // Values of nested graphs (If branches that run, Loop/Scan bodies at every iteration) reach the
  // hook as "<path>::<value>" (graph/subgraphs.h) when `watch` names them (CPU only); so do the
  // outer-scope values a nested graph reads, each time it runs, under that graph's path.
  // Watched values in `any_order` may reach the hook with their elements in storage order (bytes
  // N,H,W,C under the logical N,C,H,W dims): for statistics that do not depend on element order
  // (min/max, histograms), which then skip the N,C,H,W copy.
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs, const ValueHook& hook = nullptr,
                                    const std::set<std::string>& watch = {}, const DeviceValueHook& device_hook = nullptr,
                                    const std::set<std::string>& any_order = {});

  // Runs a subgraph (If branch, Loop body) with the given inputs and outer-scope lookup.
  std::vector<Tensor> run_subgraph(const Graph& g, const std::vector<const Tensor*>& inputs,
                                   const std::function<const Tensor*(const std::string&)>& outer);

  const Model& model() const { return model_; }
  const std::string& device() const { return opt_.device; }
  int num_threads() const { return threads_; }

  // Memory accounting of the last run() (main graph; subgraph runs are not counted).
  struct RunStats {
    size_t peak_live_bytes = 0;   // max bytes held by intermediate values at once (inputs and
                                  // initializers excluded: they are never copied)
    size_t peak_live_values = 0;  // max number of intermediate values held at once
    size_t nodes_run = 0;
    size_t channels_last_values = 0;  // values produced channels-last (engine/channels_last.h)
    std::map<std::string, int64_t> fused_activations;  // activation nodes a Conv applied, by op (engine/fusion.h)
    std::map<std::string, int64_t> to_plain_for;  // channels-last values converted back, by reading op
    std::map<std::string, int64_t> to_channels_last_for;  // plain inputs an elementwise op read as channels-last copies
    std::map<std::string, double> op_ms;  // wall time per operator type (ExecutorOptions::profile)
    // CUDA backend only: nodes that ran on the CPU instead, by "op: reason", and the bytes moved
    // between host and device for them (weights uploaded once are not counted).
    std::map<std::string, int64_t> cpu_fallbacks;
    size_t transfer_bytes = 0;
    size_t device_peak_bytes = 0;  // device memory held by the backend's pool
  };
  const RunStats& last_run_stats() const { return stats_; }

 private:
  struct Impl;
  const Model& model_;
  ExecutorOptions opt_;
  int threads_ = 1;
  RunStats stats_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<DeviceRunner> device_;
  // During run(): its hook and watch set, and each nested graph's path, for run_subgraph.
  const ValueHook* run_hook_ = nullptr;
  const std::set<std::string>* run_watch_ = nullptr;
  std::unordered_map<const Graph*, std::string> subgraph_paths_;
  std::unordered_map<const Graph*, std::vector<std::string>> subgraph_outer_;  // outer-scope values each reads
};

}  // namespace oc
