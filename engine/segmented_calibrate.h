// Block-sequential calibration (issue 18 point 3): the statistics of calibrate() gathered one
// segment of the main graph at a time, so a model whose Grams (or weights) do not fit in memory
// at once is calibrated with one segment's worth of them.
//
// The execution order is cut into segments (engine/block_runner.h): a segment closes before a
// Gram layer that would take its Grams past `gram_bytes`, or before a node that would take the
// weights it reads past `weight_bytes`. The calibration batches run through segment 0, the values
// crossing each cut are cached (BoundaryCache: in memory up to `cache_bytes`, then spilled to an
// unlinked temporary file), the next segment runs from that cache, and so on; each segment's
// weight pages leave the resident set after its run. Every statistic of the plan is observed in
// exactly one segment:
//   Gram / column layers      the segment holding the layer's node
//   values, blocks            the first segment where every watched value is made or read
// After a segment its statistics go to `reduce` (the caller keeps only what it needs of them,
// e.g. a Gram's diagonal) and are then merged into the result. The executor computes the same
// values segment by segment as for the whole graph, so the statistics are calibrate()'s.
#pragma once
#include <cstddef>
#include <functional>

#include "engine/calibrate.h"

namespace oc {

struct SegmentedCalibrationOptions {
  size_t gram_bytes = size_t(512) << 20;    // Grams held at once (a segment holds at least one layer)
  size_t weight_bytes = size_t(512) << 20;  // weights one segment reads (at least one node)
  size_t cache_bytes = size_t(256) << 20;   // boundary activations in memory, the rest spilled
  // Called with each segment's statistics before they join the result (may shrink them).
  std::function<void(CalibrationStats&)> reduce;
  ProgressFn progress;  // samples over all segments' passes: done of (samples · segments)
  ExecutorOptions exec;
};

struct SegmentedCalibrationReport {
  int segments = 0;
  uint64_t spilled_bytes = 0;  // boundary activations written to the temporary file (largest segment)
};

// Whether `plan` can be gathered by segments: every name it holds is of the main graph (values and
// layers of If/Loop/Scan bodies need the whole model's run).
bool segmentable(const Model& model, const CalibrationPlan& plan);

// `model` must be normalized. The source is rewound and read once (its batches become the first
// segment's input cache). Throws as calibrate() does.
CalibrationStats calibrate_by_segments(const Model& model, CalibrationSource& source, const CalibrationPlan& plan,
                                       const SegmentedCalibrationOptions& opt = {},
                                       SegmentedCalibrationReport* report = nullptr);

// Bytes of the plan's Grams (features² doubles per layer, from the weights' shapes).
size_t plan_gram_bytes(const Model& model, const CalibrationPlan& plan);

}  // namespace oc
