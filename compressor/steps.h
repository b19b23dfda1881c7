// Pipeline steps: one class per technique, built from options keyed like the subcommand's flags.
// `prune`, `quantize` and `compress` all run through these, so a recipe step and the subcommand
// behave the same. A step asks for calibration statistics on the model as it sees it and runs
// them on the shared calibration reader.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/calibrate.h"

namespace oc {

struct StepContext {
  CalibrationSource* calib = nullptr;  // shared reader (rewound by each pass); null = no data
  std::map<std::string, std::vector<int64_t>> input_shapes;
  // Why the calibration data gave no concrete shape for a symbolic input (its samples disagree);
  // a step that needs MACs fails with it.
  std::string shape_conflict;
  ExecutorOptions exec;
  ProgressFn progress;                 // calibration progress (throw Cancelled from it to stop)
  ProgressFn work_progress;            // the step's own long work (GPTQ layer by layer)
};

// What a step did. `details` is the report's copy (Report::steps[i]["details"]); the rest is what
// the pipeline reads back without parsing it.
struct StepResult {
  nlohmann::json details;
  // Per-layer importance from width allocation (quantize with --avg-bits/--max-bytes), shown
  // beside each layer as "KIND:scorer"; empty scorer = nothing scored (uniform widths, pruning).
  std::string scorer;
  std::vector<std::pair<std::string, double>> layer_scores;  // node, score
  nlohmann::json blocks;  // CFSP per-block importance and allocation (an array), null when none
};

class Step {
 public:
  virtual ~Step() = default;
  virtual std::string kind() const = 0;
  virtual bool needs_calibration() const = 0;
  virtual nlohmann::json settings() const = 0;
  // Rewrites `m`; returns what it did.
  virtual StepResult run(Model& m, StepContext& ctx) = 0;
  // For --dry-run without data: switch to calibration-free choices; returns what was substituted.
  virtual std::string drop_calibration() = 0;
};

// kind: "prune" or "quantize". Throws InvalidArgument for an unknown kind or option.
std::unique_ptr<Step> make_step(const std::string& kind, const nlohmann::json& options);
std::vector<std::string> step_kinds();

}  // namespace oc
