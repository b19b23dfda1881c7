// calibrate(): for each batch b, run the executor with a hook that hands every watched value to
// its observers, then end_batch(); statistics = the observers' accumulators after the last batch.
#include "engine/calibrate.h"

#include <algorithm>
#include <unordered_map>

#include "engine/cuda_backend.h"
#include "graph/errors.h"
#include "graph/subgraphs.h"

namespace oc {

namespace {

// A node of the main graph or of any nested graph (node names are unique across the model).
struct FoundNode {
  const Node* node = nullptr;
  const Graph* graph = nullptr;
  std::string path;
};
FoundNode find_node(const Graph& root, const std::string& name) {
  for (const GraphScope& s : all_graphs(root))
    for (const Node& n : s.graph->nodes)
      if (n.name == name) return {&n, s.graph, s.path};
  return {};
}

// A plan value: a main-graph name, or "<path>::<value>" for a value of a nested graph.
std::pair<const Graph*, std::string> resolve_value(const Graph& root, const std::string& v) {
  for (size_t at = v.find("::"); at != std::string::npos; at = v.find("::", at + 1))
    if (const Graph* g = graph_at(root, v.substr(0, at)); g && at > 0) return {g, v.substr(at + 2)};
  return {&root, v};
}

void require_value(const Graph& root, const std::string& scoped, const char* what) {
  auto [g, v] = resolve_value(root, scoped);
  if (g->producer(v) >= 0 || (g->is_graph_input(v) && !g->is_initializer(v))) return;
  if (g != &root && !g->is_initializer(v)) {  // an outer-scope value, seen each time the subgraph runs
    const auto outer = outer_scope_inputs(*g);
    if (std::find(outer.begin(), outer.end(), v) != outer.end()) return;
  }
  throw InvalidArgument(std::string("calibration plan: ") + what + " '" + scoped + "' is not a graph input or node output of " +
                        (g == &root ? std::string("the main graph") : "its subgraph"));
}

int axis_for(const Graph& root, const std::string& scoped, int axis) {
  if (axis != kAutoAxis) return axis;
  auto [g, v] = resolve_value(root, scoped);
  const int a = channel_axis(*g, v);
  return a < 0 ? kAutoAxis : a;
}

}  // namespace

ColumnStat gram_diagonal(const GramStat& g) {
  ColumnStat c;
  c.features = g.features;
  c.groups = g.groups;
  c.rows = g.rows;
  c.sum_sq.resize(static_cast<size_t>(g.groups * g.features));
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t j = 0; j < g.features; ++j) c.sum_sq[static_cast<size_t>(gi * g.features + j)] = g.at(gi, j, j);
  return c;
}

std::vector<std::unique_ptr<Observer>> make_observers(const Model& model, const CalibrationPlan& plan,
                                                      std::vector<ObserverAlias>* aliases, bool on_device) {
  const Graph& g = model.graph;
  std::vector<std::unique_ptr<Observer>> obs;
  for (const auto& v : plan.minmax) {
    require_value(g, v, "value");
    obs.push_back(on_device ? make_cuda_minmax_observer(v) : std::make_unique<MinMaxObserver>(v));
  }
  for (const auto& v : plan.histograms) {
    require_value(g, v, "value");
    obs.push_back(std::make_unique<HistogramObserver>(v, plan.histogram_bins));
  }
  for (const auto& [v, axis] : plan.channels) {
    require_value(g, v, "value");
    obs.push_back(std::make_unique<ChannelMomentsObserver>(v, axis_for(g, v, axis)));
  }
  // Layers reading the same X the same way (Q/K/V, parallel branches) share one accumulator, and
  // a layer whose X already has a Gram takes its column squares from the Gram's diagonal (when
  // aliases are collected) instead of a second pass over X.
  GramOptions gram_opt;
  gram_opt.max_positions = plan.gram_max_positions;
  std::unordered_map<std::string, std::string> gram_by_signature;
  auto layers = [&](const std::vector<std::string>& names, bool gram) {
    std::unordered_map<std::string, std::string> first_by_signature;
    for (const auto& name : names) {
      const FoundNode f = find_node(g, name);
      if (!f.node) throw InvalidArgument("calibration plan: no node '" + name + "' in the model");
      LayerInput in = LayerInput::of(*f.graph, *f.node);
      // A layer of a branch or body watches its input in its own graph's scope: the runs that take
      // that branch (an outer-scope input too).
      in.value = scoped_value(f.path, in.value);
      require_value(g, in.value, "layer input");
      const std::string sig = in.signature();
      auto [it, fresh] = first_by_signature.emplace(sig, name);
      if (!fresh) {
        if (aliases) aliases->push_back({gram, name, it->second});
        continue;
      }
      if (gram) gram_by_signature.emplace(sig, name);
      if (!gram && aliases && gram_opt.max_positions == 0) {
        auto from = gram_by_signature.find(sig);
        if (from != gram_by_signature.end()) {
          aliases->push_back({false, name, from->second, true});
          continue;
        }
      }
      if (gram && on_device) obs.push_back(make_cuda_gram_observer(name, in));
      else if (gram) obs.push_back(std::make_unique<GramObserver>(name, std::move(in), gram_opt));
      else obs.push_back(std::make_unique<ColumnSquaresObserver>(name, std::move(in)));
    }
  };
  layers(plan.grams, true);
  layers(plan.columns, false);
  for (const auto& b : plan.blocks) {
    require_value(g, b.input, "block input");
    require_value(g, b.output, "block output");
    obs.push_back(std::make_unique<BlockAngleObserver>(b.name, b.input, b.output, axis_for(g, b.input, b.axis)));
  }
  return obs;
}

ObserverSet::ObserverSet(const Model& model, const CalibrationPlan& plan, bool on_device)
    : observers_(make_observers(model, plan, &aliases_, on_device)) {
  for (auto& o : observers_)
    for (const auto& v : o->watched()) {
      by_value_[v].push_back(o.get());
      watch_.insert(v);
    }
}

ValueHook ObserverSet::hook() {
  if (watch_.empty()) return nullptr;
  return [this](const std::string& name, const Tensor& t) {
    auto it = by_value_.find(name);
    if (it != by_value_.end())
      for (Observer* o : it->second) o->observe(name, t);
  };
}

void ObserverSet::end_batch() {
  for (auto& o : observers_) o->end_batch();
}

CalibrationStats ObserverSet::store() {
  CalibrationStats stats;
  for (auto& o : observers_) {
    o->store(stats);
    o.reset();
  }
  for (const auto& a : aliases_) {
    if (a.gram) stats.grams[a.layer] = stats.grams.at(a.source);
    else if (a.from_gram) stats.columns[a.layer] = gram_diagonal(stats.grams.at(a.source));
    else stats.columns[a.layer] = stats.columns.at(a.source);
  }
  observers_.clear();
  by_value_.clear();
  watch_.clear();
  return stats;
}

CalibrationStats calibrate(const Model& model, CalibrationSource& source, const CalibrationPlan& plan,
                           const ProgressFn& progress, const ExecutorOptions& exec) {
  const bool on_device = exec.device == "cuda" && cuda_usable();
  ObserverSet set(model, plan, on_device);
  const auto& by_value = set.by_value();
  const auto& watch = set.watch();
  // Values only order-free observers watch take channels-last values without an N,C,H,W copy.
  std::set<std::string> any_order;
  for (const auto& [v, list] : by_value)
    if (std::all_of(list.begin(), list.end(), [](const Observer* o) { return o->order_free(); })) any_order.insert(v);
  const ValueHook hook = set.hook();

  // On the GPU, a value whose observers all work on the device is never copied to the host.
  DeviceValueHook device_hook;
  if (on_device && !watch.empty())
    device_hook = [&](const std::string& name, const DeviceTensorView& v) {
      auto it = by_value.find(name);
      if (it == by_value.end()) return true;
      for (Observer* o : it->second)
        if (!o->on_device()) return false;
      for (Observer* o : it->second) o->observe_device(name, v);
      return true;
    };

  Executor ex(model, exec);
  source.rewind();
  const int64_t total = source.num_samples();
  int64_t done = 0;
  if (progress) progress(0, total);
  std::map<std::string, Tensor> batch;
  while (source.next(batch)) {
    ex.run(batch, hook, watch, device_hook, any_order);
    set.end_batch();
    done += source.last_batch_samples();
    if (progress) progress(done, total);
  }

  CalibrationStats stats = set.store();
  stats.samples = done;
  return stats;
}

}  // namespace oc
