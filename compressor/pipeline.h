// The compression pipeline: a recipe (ordered steps with options) run over one model, with one
// shared calibration reader, a fidelity check against the input model, and a report.
//
//   load → normalize → for each step: [calibrate on the model the step sees] → rewrite
//        → validate (shapes, our executor; fidelity on evaluation data) → save (atomic) → report
#pragma once
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compressor/report.h"
#include "engine/image_data.h"
#include "graph/ir.h"

namespace oc {

struct RecipeStep {
  std::string kind;           // "prune" | "quantize"
  nlohmann::json options;     // keyed like the subcommand's long options
};

struct Recipe {
  std::string name, description;
  std::vector<RecipeStep> steps;
  nlohmann::json to_json() const;
};

// {"name": .., "description": .., "steps": [{"prune": {..}}, {"quantize": {..}}]}
Recipe parse_recipe(const nlohmann::json& j, const std::string& what = "recipe");
// A file path (.json), or the name of a shipped recipe (recipes/NAME.json).
Recipe load_recipe(const std::string& name_or_path);
// Shipped recipe names, found beside the source tree or the installed binary.
std::vector<std::string> shipped_recipes();

struct PipelineProgress {
  std::string stage;  // "calibrate prune", "quantize", "evaluate", ...
  int step = 0, steps = 0;
  int64_t done = 0, total = 0;
};

struct PipelineOptions {
  std::string calib_spec;         // calibration data; "" = none
  int64_t calib_batch = 8;
  int64_t calib_samples = 0;      // 0 = all
  std::string eval_spec;          // fidelity data; default: calib_spec (first eval_samples)
  bool eval_on_calib = true;      // false: measure fidelity only when eval_spec is given
  int64_t eval_samples = 64;
  std::string labels;             // integer labels for accuracy (with eval_spec); image class folders give their own
  ImageOptions image;             // image folders (--calib/--eval DIR): mean, std, bgr, resize
  bool skip_bad_samples = false;  // leave out samples with NaN/Inf (counted in report.extra) instead of failing
  std::map<std::string, std::vector<int64_t>> input_shapes;
  int threads = 0;
  std::string device = "cpu";   // executor of the calibration passes: cpu or cuda
  bool external_data = false;
  std::function<void(const PipelineProgress&)> progress;
  const std::atomic<bool>* cancel = nullptr;  // set to true from any thread to stop (throws Cancelled)
};

struct PipelineResult {
  Model model;
  Report report;
};

// Runs the recipe on a normalized copy of `input`. Throws typed errors (graph/errors.h).
PipelineResult run_pipeline(const Model& input, const Recipe& recipe, const PipelineOptions& opt);

// Load `in`, run the recipe, save `out` atomically, and return the complete report (identity,
// per-layer rows, totals) — the whole job of `onnx-compress compress`. A one-step recipe is what
// `prune` and `quantize` run (report.command is then the step's kind).
Report compress_file(const std::filesystem::path& in, const std::filesystem::path& out, const Recipe& recipe,
                     const PipelineOptions& opt);

// --dry-run: what the recipe would do, without data: each step run in memory with
// calibration-free substitutes; predicted params, MACs and weight bytes after each step.
nlohmann::json plan_recipe(const Model& input, const Recipe& recipe, const PipelineOptions& opt);
std::string plan_text(const nlohmann::json& plan);

}  // namespace oc
