// Layer importance scorers. Every scorer returns one score per layer, higher = more important
// (the allocator gives more bits to higher scores).
//
//   scorer      | needs        | score of layer l
//   ------------+--------------+-----------------------------------------------------------------
//   zd          | weights      | −fraction of |z| > 1, z = (w − μ)/σ (fewer outliers = more important)
//   lim         | calibration  | mean −cos(x_in, x_out) of the layer (BlockAngleStat by node name);
//               |              | layers whose output shape differs from the input take the mean
//   sensitivity | calibration  | output change when only this layer is quantized (caller-supplied)
//   random      | seed         | uniform [0, 1)
//   FILE.json   | a file       | {"node name": score, ...} (every layer must be listed)
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/statistics.h"
#include "graph/ir.h"
#include "quantize/layers.h"

namespace oc::quant {

// Measures the model-output change when this layer alone is quantized (run by whoever owns an
// executor; planning itself never runs the model).
using SensitivityFn = std::function<double(const WeightLayer& layer)>;
// The same at a given width: the allocator's err_l(b) when the scorer is `sensitivity`.
using WidthSensitivityFn = std::function<double(const WeightLayer& layer, int bits)>;

struct ScoreInputs {
  const CalibrationStats* stats = nullptr;
  SensitivityFn sensitivity;
  WidthSensitivityFn sensitivity_at;
  uint64_t seed = 0;
};

double zd_score(const std::vector<float>& w);  // −fraction of |z| > 1

std::vector<double> score_layers(const Graph& g, const std::vector<WeightLayer>& layers, const std::string& scorer,
                                 const ScoreInputs& in = {});

}  // namespace oc::quant
