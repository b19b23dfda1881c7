// What the quantizer asks calibration to observe (plain data, engine/calibration_plan.h):
//   gptq      -> Gram matrix XᵀX of each layer's input          (stats.grams[layer])
//   lim       -> angle between each layer's input and output     (stats.blocks[layer]); only layers
//                whose input and output have the same shape have one (K = N, same spatial size)
//   activations int8 -> range of each layer's input activation  (stats.minmax / stats.histograms)
#pragma once
#include <string>
#include <vector>

#include "engine/calibration_plan.h"
#include "quantize/layers.h"

namespace oc::quant {

struct CalibrationNeeds {
  bool grams = false;
  bool lim = false;
  bool activation_minmax = false;
  bool activation_histograms = false;
};

// `m` must be normalized. Layers without a shape-preserving input/output pair get no LIM block.
CalibrationPlan quantize_calibration_plan(const Model& m, const std::vector<WeightLayer>& layers,
                                          const CalibrationNeeds& needs);

}  // namespace oc::quant
