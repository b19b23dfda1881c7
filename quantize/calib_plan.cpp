// The calibration plan of quantization (see calib_plan.h). Shapes come from shape inference on a
// copy, so the caller's model is untouched.
#include "quantize/calib_plan.h"

#include <algorithm>

#include "graph/shape_inference.h"
#include "graph/subgraphs.h"

namespace oc::quant {

CalibrationPlan quantize_calibration_plan(const Model& m, const std::vector<WeightLayer>& layers,
                                          const CalibrationNeeds& needs) {
  CalibrationPlan plan;
  Model shaped;
  if (needs.lim) {
    shaped = m;
    infer_shapes(shaped);
  }
  for (const auto& l : layers) {
    const Node* n = nullptr;
    for (const auto& x : layer_graph(m.graph, l).nodes)
      if (x.name == l.node) n = &x;
    if (!n) continue;
    // A body layer's input is watched in its own graph's scope: the runs that take it (graph/subgraphs.h).
    const std::string x = scoped_value(l.graph, n->input(0));
    if (needs.grams) plan.grams.push_back(l.node);
    if (needs.activation_minmax) plan.minmax.push_back(x);
    if (needs.activation_histograms) plan.histograms.push_back(x);
    if (needs.lim && l.graph.empty()) {  // LIM angles: main-graph layers (shapes from infer_shapes)
      const ValueInfo* a = shaped.graph.find_value_info(n->input(0));
      const ValueInfo* b = shaped.graph.find_value_info(n->outputs[0]);
      if (a && b && a->has_shape && b->has_shape && a->shape == b->shape) plan.blocks.push_back({l.node, n->input(0), n->outputs[0]});
    }
  }
  // One observer per value is enough when several layers read the same activation.
  for (auto* v : {&plan.minmax, &plan.histograms}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  return plan;
}

}  // namespace oc::quant
