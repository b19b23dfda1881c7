// Block-sequential calibration (see segmented_calibrate.h).
#include "engine/segmented_calibrate.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "engine/block_runner.h"
#include "graph/errors.h"
#include "graph/spill.h"

namespace oc {

namespace {

// Input features of a Gram layer from its weight's shape (0 when the weight is not a constant).
int64_t layer_features(const Graph& g, const Node& n) {
  if (n.inputs.size() < 2) return 0;
  const Tensor* w = g.initializer(n.input(1));
  if (!w || w->dims.size() < 2 || w->dims[0] <= 0) return 0;
  if (n.op_type == "Conv") return w->numel() / w->dims[0];
  if (n.op_type == "Gemm") return n.attr_int("transB", 0) ? w->dims[1] : w->dims[0];
  if (n.op_type == "MatMul") return w->dims[w->dims.size() - 2];
  return 0;
}

// Groups × features² doubles.
size_t layer_gram_bytes(const Graph& g, const Node& n) {
  const int64_t f = layer_features(g, n);
  const int64_t groups = n.op_type == "Conv" ? std::max<int64_t>(1, n.attr_int("group", 1)) : 1;
  return static_cast<size_t>(groups * f * f) * sizeof(double);
}

template <typename Map>
void merge_into(Map& to, Map& from) {
  for (auto& [k, v] : from) to[k] = std::move(v);
}

}  // namespace

bool segmentable(const Model& model, const CalibrationPlan& plan) {
  const Graph& g = model.graph;
  auto value_ok = [&](const std::string& v) {
    return v.find("::") == std::string::npos && (g.producer(v) >= 0 || (g.is_graph_input(v) && !g.is_initializer(v)));
  };
  for (const auto* names : {&plan.minmax, &plan.histograms})
    for (const auto& v : *names)
      if (!value_ok(v)) return false;
  for (const auto& [v, axis] : plan.channels)
    if (!value_ok(v)) return false;
  for (const auto* names : {&plan.grams, &plan.columns})
    for (const auto& l : *names)
      if (g.node_index(l) < 0) return false;
  for (const auto& b : plan.blocks)
    if (!value_ok(b.input) || !value_ok(b.output)) return false;
  return true;
}

size_t plan_gram_bytes(const Model& model, const CalibrationPlan& plan) {
  size_t bytes = 0;
  for (const auto& l : plan.grams)
    if (const int i = model.graph.node_index(l); i >= 0) bytes += layer_gram_bytes(model.graph, model.graph.nodes[static_cast<size_t>(i)]);
  return bytes;
}

CalibrationStats calibrate_by_segments(const Model& model, CalibrationSource& source, const CalibrationPlan& plan,
                                       const SegmentedCalibrationOptions& opt, SegmentedCalibrationReport* report) {
  if (!segmentable(model, plan))
    throw InvalidArgument("block-sequential calibration: the plan names values or layers outside the main graph");
  const Graph& g = model.graph;
  const std::vector<size_t> order = execution_order(g);
  std::vector<size_t> pos(g.nodes.size(), 0);
  for (size_t p = 0; p < order.size(); ++p) pos[order[p]] = p;
  auto made_at = [&](const std::string& v) -> int64_t {
    const int p = g.producer(v);
    return p < 0 ? -1 : static_cast<int64_t>(pos[static_cast<size_t>(p)]);
  };

  // Where the segments close: before a Gram layer or a node whose bytes would pass the budgets,
  // and after the last node any statistic needs (the tail never runs).
  std::vector<size_t> gram_at(order.size(), 0), weight_at(order.size(), 0);
  int64_t last = -1;
  for (const auto* names : {&plan.grams, &plan.columns})
    for (const auto& l : *names) {
      const size_t i = static_cast<size_t>(g.node_index(l));
      last = std::max<int64_t>(last, static_cast<int64_t>(pos[i]));
      if (names == &plan.grams) gram_at[pos[i]] += layer_gram_bytes(g, g.nodes[i]);
    }
  for (const auto* names : {&plan.minmax, &plan.histograms})
    for (const auto& v : *names) last = std::max(last, made_at(v));
  for (const auto& [v, axis] : plan.channels) last = std::max(last, made_at(v));
  for (const auto& b : plan.blocks) last = std::max({last, made_at(b.input), made_at(b.output)});
  {
    std::unordered_set<std::string> seen;
    for (size_t p = 0; p < order.size(); ++p)
      for (const auto& v : g.nodes[order[p]].inputs)
        if (const Tensor* t = g.initializer(v); t && seen.insert(v).second) weight_at[p] += t->nbytes();
  }
  std::vector<size_t> cuts;
  size_t grams = 0, weights = 0, start = 0;
  for (size_t p = 0; last >= 0 && p <= static_cast<size_t>(last); ++p) {
    const bool grams_over = gram_at[p] > 0 && grams > 0 && grams + gram_at[p] > opt.gram_bytes;
    const bool weights_over = weight_at[p] > 0 && weights > 0 && weights + weight_at[p] > opt.weight_bytes;
    if (p > start && (grams_over || weights_over)) {
      cuts.push_back(p);
      start = p;
      grams = weights = 0;
    }
    grams += gram_at[p];
    weights += weight_at[p];
  }
  if (last >= 0) cuts.push_back(static_cast<size_t>(last) + 1);
  std::vector<GraphSegment> segs;
  std::vector<int> seg_of_node;
  std::vector<std::set<std::string>> visible;  // per segment: values it makes or reads
  for (;;) {
    segs = split_graph(g, cuts);
    if (last >= 0 && static_cast<size_t>(last) + 1 < order.size() && !segs.empty()) segs.pop_back();  // the tail
    seg_of_node.assign(g.nodes.size(), -1);
    visible.assign(segs.size(), {});
    for (size_t s = 0; s < segs.size(); ++s) {
      visible[s].insert(segs[s].inputs.begin(), segs[s].inputs.end());
      for (size_t i : segs[s].nodes) {
        seg_of_node[i] = static_cast<int>(s);
        for (const auto& o : g.nodes[i].outputs) visible[s].insert(o);
      }
    }
    // A block whose input and output no one segment sees (the input is not read where the output
    // is made: a --blocks match without a residual Add) loses the cuts between them, so one segment
    // runs it whole and its observer sees both in each batch.
    bool merged = false;
    for (const auto& b : plan.blocks) {
      bool seen = false;
      for (const auto& vis : visible) seen = seen || (vis.count(b.input) && vis.count(b.output));
      if (seen) continue;
      const int64_t lo = made_at(b.input), hi = made_at(b.output);
      const auto inside = [&](size_t c) { return static_cast<int64_t>(c) > lo && static_cast<int64_t>(c) <= hi; };
      cuts.erase(std::remove_if(cuts.begin(), cuts.end(), inside), cuts.end());
      merged = true;
    }
    if (!merged) break;
  }

  // Each statistic to one segment.
  auto first_seeing = [&](std::initializer_list<std::string> vs) -> int {
    for (size_t s = 0; s < segs.size(); ++s) {
      bool all = true;
      for (const auto& v : vs) all = all && visible[s].count(v) > 0;
      if (all) return static_cast<int>(s);
    }
    throw InvalidArgument("block-sequential calibration: no segment sees '" + *vs.begin() + "'");
  };
  std::vector<CalibrationPlan> sub(segs.size());
  for (auto& sp : sub) {
    sp.histogram_bins = plan.histogram_bins;
    sp.gram_max_positions = plan.gram_max_positions;
  }
  // Channel axes are resolved on the whole graph (a segment's boundary inputs carry no shapes).
  auto axis_of = [&](const std::string& v, int axis) {
    if (axis != kAutoAxis) return axis;
    const int a = channel_axis(g, v);
    return a < 0 ? kAutoAxis : a;
  };
  for (const auto& v : plan.minmax) sub[static_cast<size_t>(first_seeing({v}))].minmax.push_back(v);
  for (const auto& v : plan.histograms) sub[static_cast<size_t>(first_seeing({v}))].histograms.push_back(v);
  for (const auto& [v, axis] : plan.channels) sub[static_cast<size_t>(first_seeing({v}))].channels[v] = axis_of(v, axis);
  for (const auto& l : plan.grams) sub[static_cast<size_t>(seg_of_node[static_cast<size_t>(g.node_index(l))])].grams.push_back(l);
  for (const auto& l : plan.columns) sub[static_cast<size_t>(seg_of_node[static_cast<size_t>(g.node_index(l))])].columns.push_back(l);
  for (const auto& b : plan.blocks) {
    CalibrationPlan::Block bb = b;
    bb.axis = axis_of(b.input, b.axis);
    sub[static_cast<size_t>(first_seeing({b.input, b.output}))].blocks.push_back(bb);
  }

  CalibrationStats stats;
  BoundaryCache cache(opt.cache_bytes);
  std::vector<int64_t> batch_samples;
  source.rewind();
  {
    std::map<std::string, Tensor> batch;
    while (source.next(batch)) {
      cache.push(batch);
      batch_samples.push_back(source.last_batch_samples());
      stats.samples += batch_samples.back();
    }
  }
  if (plan.empty()) return stats;
  const int64_t total = stats.samples * static_cast<int64_t>(segs.size());
  int64_t done = 0;
  if (opt.progress) opt.progress(0, total);
  SegmentedCalibrationReport rep;
  rep.segments = static_cast<int>(segs.size());
  for (size_t s = 0; s < segs.size(); ++s) {
    BlockRunner runner(model, segs[s], opt.exec);
    ObserverSet set(runner.model(), sub[s]);
    size_t b = 0;
    cache = runner.run(cache, set.hook(), set.watch(), [&] {
      set.end_batch();
      done += b < batch_samples.size() ? batch_samples[b] : 0;
      ++b;
      if (opt.progress) opt.progress(std::min(done, total), total);
    }, opt.cache_bytes);
    rep.spilled_bytes = std::max<uint64_t>(rep.spilled_bytes, cache.spilled_bytes());
    CalibrationStats st = set.store();
    if (opt.reduce) opt.reduce(st);
    merge_into(stats.minmax, st.minmax);
    merge_into(stats.histograms, st.histograms);
    merge_into(stats.channels, st.channels);
    merge_into(stats.grams, st.grams);
    merge_into(stats.columns, st.columns);
    merge_into(stats.blocks, st.blocks);
    if (trace_memory()) std::fprintf(stderr, "[memory] calibration segment %zu of %zu: %s\n", s + 1, segs.size(), memory_status_line().c_str());
  }
  if (opt.progress) opt.progress(total, total);
  if (report) *report = rep;
  return stats;
}

}  // namespace oc
