// What one calibration pass observes: plain data, written by the planners in prune/ and quantize/
// and read by engine/calibrate.h. Nothing here runs the model, so planning code includes this
// header without pulling in the executor.
#pragma once
#include <climits>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace oc {

// A channel axis taken from the graph (by the value's rank at the first batch).
constexpr int kAutoAxis = INT_MIN;

// Value names are activations of the main graph (graph inputs or node outputs), or of a nested
// graph as "<path>::<value>" (graph/subgraphs.h); layer names are Conv/MatMul/Gemm nodes of any
// graph (an If branch's layers see only the runs that take that branch).
struct CalibrationPlan {
  std::vector<std::string> minmax;      // -> stats.minmax[value]
  std::vector<std::string> histograms;  // -> stats.histograms[value]
  int histogram_bins = 2048;
  std::map<std::string, int> channels;  // value -> channel axis (kAutoAxis: from the graph) -> stats.channels
  std::vector<std::string> grams;       // layer -> stats.grams[layer] (layers reading the same X share one pass)
  // Conv Grams: at most about this many output positions per sample (a fixed pseudo-random
  // subset of the larger feature maps); 0 = every position. See GramOptions::max_positions.
  int64_t gram_max_positions = 0;
  std::vector<std::string> columns;     // layer -> stats.columns[layer]
  struct Block {
    std::string name, input, output;
    int axis = kAutoAxis;               // kAutoAxis: the input's channel axis from the graph
  };
  std::vector<Block> blocks;            // -> stats.blocks[name]
  bool empty() const { return minmax.empty() && histograms.empty() && channels.empty() && grams.empty() && columns.empty() && blocks.empty(); }
};

}  // namespace oc
