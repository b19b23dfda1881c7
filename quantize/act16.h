// 16-bit activations for the tensors that static W8A8 hurts most (`--act16 N`, issue 15 point 6).
//
// Chosen by measured output fidelity on the calibration data, not by a proxy such as range width:
//   e(S) = Σ_b ‖y_b(S) − y_b‖² / Σ_b ‖y_b‖²
// where y_b is the model before activation quantization (weights already int8) on batch b, and y_b(S)
// the static W8A8 model (apply_static_qdq, ranges as in the real run) with the activations in S at
// uint16 (s = (hi − lo)/65535) and every other one at uint8.
//   1. every candidate v (a quantized root value of the plan) is measured alone: e({v});
//   2. greedy in that order: v joins S when e(S ∪ {v}) < e(S), until |S| = N or 2N + 4 candidates were
//      tried (a tensor whose gain alone is real can add nothing next to one already chosen).
// ONNX stores uint16 QuantizeLinear/DequantizeLinear from opset 21; ONNX Runtime 1.30's CPU EP has no
// 16-bit QLinear kernels, so the nodes reading or writing a 16-bit tensor run in float there (the
// deployment check lists them): accuracy bought with speed.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "engine/calib_data.h"
#include "engine/executor.h"
#include "engine/statistics.h"
#include "graph/ir.h"
#include "quantize/activations.h"
#include "quantize/static_qdq.h"

namespace oc::quant {

// "none" (or "0") → 0; a count N ≥ 0 → N. Anything else: InvalidArgument in one line.
int parse_act16(const std::string& s);

struct Act16Candidate {
  std::string value;
  double error = 0;  // e({value}): the W8A8 model with only this activation at 16 bits
};

struct Act16Choice {
  double error_all8 = 0;                // e({}): every activation at 8 bits
  double error_chosen = 0;              // e(chosen)
  std::vector<Act16Candidate> ranked;   // every candidate, smallest error first
  std::vector<std::string> chosen;      // the activations stored as uint16, in the order chosen
  int samples = 0;                      // calibration samples the errors were measured on
};

// `m`: the model with exported weights, before activation pairs; `plan`, `stats`, `method`,
// `min_macs_per_element`: what apply_static_qdq will be called with. Measures on the first
// `max_samples` samples of `src` (rewound before and after).
Act16Choice choose_act16(const Model& m, const StaticQdqPlan& plan, const CalibrationStats& stats, CalibMethod method,
                         double min_macs_per_element, CalibrationSource& src, int count, int max_samples,
                         const ExecutorOptions& exec);

}  // namespace oc::quant
