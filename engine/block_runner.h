// Running a model one segment at a time from cached boundary values (issue 18: calibration of
// models larger than memory). The main graph's execution order is cut into consecutive segments;
// segment k reads only graph inputs and values of segments before it. Each batch of calibration
// data is run through segment 0, the values that cross the cut are cached (BoundaryCache: in
// memory up to a byte budget, then in an unlinked temporary file), and segment 1 runs from that
// cache, and so on. A caller that needs per-layer statistics (Gram matrices for GPTQ, sequential
// compensation) therefore holds the statistics of one segment at a time, and may rewrite the
// segment's weights (quantize it) before the next segment's runner is built: that segment then
// sees the rewritten weights' outputs if the caller re-runs it, or the original ones if it keeps
// the cache of the float run.
//
//   auto segs = split_graph(model.graph, cuts);           // cuts: positions in execution_order
//   BoundaryCache c = cache_source(source, budget);        // the graph inputs, batch by batch
//   for (auto& s : segs) {
//     BlockRunner r(model, s);
//     c = r.run(c, hook, watch, budget);                   // hook sees watched values of s
//   }
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/calib_data.h"
#include "engine/executor.h"
#include "graph/ir.h"

namespace oc {

// A contiguous range of the main graph's execution order.
struct GraphSegment {
  std::vector<size_t> nodes;         // main-graph node indices, in execution order
  std::vector<std::string> inputs;   // values it reads that earlier segments or the graph inputs produce
  std::vector<std::string> outputs;  // values it produces that later segments read, and graph outputs
};

// Cuts the execution order of `g` (execution_order) before each position in `cuts` (ascending,
// 0 < c < number of nodes; others are ignored): cuts.size() + 1 segments at most, none empty.
// Initializers are never boundary values (every segment reads them from the model).
std::vector<GraphSegment> split_graph(const Graph& g, const std::vector<size_t>& cuts);

// Batches of named tensors: the first ones in memory up to `memory_budget` bytes, the rest
// appended to an unlinked temporary file (under $TMPDIR, else /tmp) and read back by get().
class BoundaryCache {
 public:
  explicit BoundaryCache(size_t memory_budget = size_t(256) << 20);
  ~BoundaryCache();
  BoundaryCache(BoundaryCache&&) noexcept;
  BoundaryCache& operator=(BoundaryCache&&) noexcept;

  void push(std::map<std::string, Tensor> batch);  // throws Error when the spill file cannot be written
  size_t size() const;
  std::map<std::string, Tensor> get(size_t i) const;
  uint64_t memory_bytes() const;   // held in memory
  uint64_t spilled_bytes() const;  // written to the temporary file
  int64_t samples(size_t i) const; // rows of batch i (axis 0 of its first tensor; 1 for scalars)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every batch of `source` (rewound first) as the first segment's input cache.
BoundaryCache cache_source(CalibrationSource& source, size_t memory_budget = size_t(256) << 20);

// One segment as a model of its own: its nodes, its boundary inputs as graph inputs, its outputs
// as graph outputs, and the initializers it reads (copies of `model`'s tensors, which share
// mapped external data instead of reading it). `model` must be normalized.
class BlockRunner {
 public:
  BlockRunner(const Model& model, GraphSegment segment, ExecutorOptions exec = {});
  ~BlockRunner();
  BlockRunner(const BlockRunner&) = delete;
  BlockRunner& operator=(const BlockRunner&) = delete;

  // Runs the segment on every batch of `in` (inputs it does not read are ignored). The hook sees
  // the watched values as the executor produces them (and watched boundary inputs, first); after
  // each batch `end_batch` (if set) is called. Returns the segment outputs, batch by batch.
  BoundaryCache run(const BoundaryCache& in, const ValueHook& hook = nullptr, const std::set<std::string>& watch = {},
                    const std::function<void()>& end_batch = nullptr, size_t memory_budget = size_t(256) << 20);

  const Model& model() const { return *model_; }
  const GraphSegment& segment() const { return segment_; }

 private:
  GraphSegment segment_;
  std::unique_ptr<Model> model_;
  ExecutorOptions exec_;
};

}  // namespace oc
