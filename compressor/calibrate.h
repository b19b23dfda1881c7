// One calibration pass: run the executor over every batch of a CalibrationSource with the
// observers a CalibrationPlan asks for, and return their statistics as plain data.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compressor/calib_data.h"
#include "compressor/executor.h"
#include "compressor/observers.h"
#include "compressor/statistics.h"

namespace oc {

// What to observe. Value names are activations of the main graph (graph inputs or node outputs);
// layer names are Conv/MatMul/Gemm nodes of the main graph.
struct CalibrationPlan {
  std::vector<std::string> minmax;      // -> stats.minmax[value]
  std::vector<std::string> histograms;  // -> stats.histograms[value]
  int histogram_bins = 2048;
  std::map<std::string, int> channels;  // value -> channel axis (kAutoAxis: from the graph) -> stats.channels
  std::vector<std::string> grams;       // layer -> stats.grams[layer] (layers reading the same X share one pass)
  std::vector<std::string> columns;     // layer -> stats.columns[layer]
  struct Block {
    std::string name, input, output;
    int axis = kAutoAxis;               // kAutoAxis: the input's channel axis from the graph
  };
  std::vector<Block> blocks;            // -> stats.blocks[name]
};

// Called after each batch with samples done and the total (and once with 0 before the first).
// Throw oc::Cancelled from it to stop.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Builds the plan's observers, validating every name against the model's main graph
// (InvalidArgument naming the first unknown value or node; UnsupportedError for layers without a
// Gram). `aliases` receives the layers that share another layer's observer.
struct ObserverAlias {
  bool gram;           // true: stats.grams, false: stats.columns
  std::string layer;   // copies the statistic of
  std::string source;
};
// `on_device`: min/max and Gram observers take GPU values in place (the CUDA backend's).
std::vector<std::unique_ptr<Observer>> make_observers(const Model& model, const CalibrationPlan& plan,
                                                      std::vector<ObserverAlias>* aliases = nullptr,
                                                      bool on_device = false);

// `model` must be normalized. The source is rewound and read to its end.
CalibrationStats calibrate(const Model& model, CalibrationSource& source, const CalibrationPlan& plan,
                           const ProgressFn& progress = nullptr, const ExecutorOptions& exec = {});

}  // namespace oc
