// The data side of graph/softmax_mask.h: runs the calibration data through the model, measures
// where each Softmax's masked entries fall against their row's largest unmasked score, and sets the
// masks that can take a value keeping ORT's Softmax off denormals.
#pragma once
#include <string>

#include "engine/calib_data.h"
#include "engine/executor.h"
#include "graph/ir.h"

namespace oc {

// Returns a one-line note for the report ("" when no mask changed). `m` must be normalized.
std::string relax_softmax_masks(Model& m, CalibrationSource& calib, const ExecutorOptions& exec);

}  // namespace oc
