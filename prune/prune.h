// Structured group pruning, end to end: dependency graph -> scores -> allocation -> rewrite
// (-> compensation) -> report. Calibration statistics come in as plain data (prune_needs() says
// which); this stage never runs the executor.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/calibration_plan.h"
#include "engine/statistics.h"
#include "graph/ir.h"
#include "graph/spill.h"
#include "prune/allocate.h"
#include "prune/importance.h"
#include "prune/sequential.h"

namespace oc {

struct PruneOptions {
  Criterion criterion = Criterion::L1;
  Aggregate aggregate = Aggregate::Mean;
  double ratio = -1;          // fraction of units removed per group (or overall, global scope)
  double target_macs = -1;    // fraction of MACs kept
  double target_params = -1;  // fraction of parameters kept
  bool global = false;        // --scope global
  bool heads = false;         // --heads: attention heads are units (graph/channel_deps.h)
  double max_layer_ratio = 0.9;
  int round_to = 8;
  std::vector<std::string> ignore;  // regexes over node names and op types
  uint64_t seed = 0;
  bool compensate = false;    // implied by Criterion::OBS
  double damping = 0.01;
  std::string blocks;            // CFSP: regex naming blocks (prune/blocks.h); empty = residual Adds
  double cfsp_sharpness = 1.0;   // CFSP: a in sigmoid(a·z) (prune/cfsp.h); 0 = uniform
  bool cfsp_obs = false;         // CFSP: units inside blocks chosen by structured OBS (needs compensation's Grams)
  std::map<std::string, std::vector<int64_t>> input_shapes;  // concrete dims for MAC counting
  bool best_effort = false;   // an unreachable target prunes as far as the rules allow instead of failing
  // Sequential reconstruction (prune/sequential.h) instead of one-shot compensation from `stats`:
  // called after the rewrite with the model before it, the rewritten model and the consumers to
  // re-solve; returns how many it re-solved. The prune step sets it when it has calibration data
  // (it runs the model, which prune_model itself never does).
  std::function<int(const Model& original, Model& pruned, const std::vector<SequentialLayer>& layers)> reconstruct;
  // Allocation by measured sensitivity (prune/sensitivity.h) instead of the uniform/global/cfsp
  // knob: returns S_g(r) [group][ratio] at `sensitivity_ratios` for the given unit scores; the prune
  // step sets it (it runs the model). Needs a --target-macs/--target-params target.
  std::function<std::vector<std::vector<double>>(const Model& m, const ChannelDeps& d,
                                                 const std::vector<std::vector<double>>& scores,
                                                 const AllocationRules& rules)> sensitivity;
  std::vector<double> sensitivity_ratios = kDefaultSensitivityRatios;
  // Layer-streamed output (issue 18): the rewrite moves each sliced tensor to this file as it is
  // made (prune/rewrite.h); the prune step sets it for models larger than memory and hands the same
  // file to sequential reconstruction for the tensors it re-solves.
  SpillFile* spill = nullptr;
};

// A --target-macs/--target-params fraction is met when the kept fraction is within this (absolute)
// tolerance of it. A plan above target + tolerance is never chosen; when the steps of --round-to
// skip over the window, the nearest plan below is taken and the report says so ("overshot").
inline constexpr double kPruneTargetTolerance = 0.01;
// An overshoot further below the target than this is not taken silently: prune_model throws (the
// nearest plans on both sides and how to get finer steps) unless best_effort, which writes it.
inline constexpr double kPruneOvershootLimit = 0.03;

struct PruneGroupReport {
  int id = 0;
  std::vector<std::string> members;  // nodes whose parameters the group slices
  int64_t units_before = 0, units_after = 0;
  int64_t locked = 0;
  double score_min = 0, score_mean = 0, score_max = 0;
  std::string skip;  // why it was left alone (or partly locked)
};

// CFSP: one block's coarse score and what it was given.
struct PruneBlockReport {
  std::string name, input, output;
  double importance = 0;  // mean angle I_l
  double ratio = 0;       // allocated fraction of units removed (1 − keep_l), before rounding
  int64_t units_before = 0, units_after = 0;  // over the block's groups (channels, or heads where units are heads)
  std::vector<int> groups;
};

struct PruneReport {
  std::string criterion;
  std::vector<PruneGroupReport> groups;
  std::vector<PruneBlockReport> blocks;  // CFSP only
  double uniform_ratio = -1;             // CFSP: P, the ratio of groups outside every block
  int64_t params_before = 0, params_after = 0, macs_before = -1, macs_after = -1;
  size_t bytes_before = 0, bytes_after = 0;
  int layers_compensated = 0;
  std::string compensation;  // "", "one-shot" or "sequential"
  std::string allocation;    // "uniform", "global", "cfsp" or "sensitivity"
  std::vector<std::vector<double>> sensitivity;  // S_g(r) per group at PruneOptions::sensitivity_ratios
  double seconds = 0;
  // Wall seconds of each phase that ran, in order: "scoring", "sensitivity", "allocation",
  // "rewrite", "reconstruction" (the caller adds "calibration" before them).
  std::vector<std::pair<std::string, double>> phases;
  std::vector<std::string> notes;
  // For --target-macs/--target-params: {"metric", "requested", "reached", "reachable", "tolerance",
  // "status": "met" | "overshot" | "missed" (with --best-effort), "note"}; null for --ratio.
  nlohmann::json target;
  nlohmann::json to_json() const;
};

// The calibration statistics `opt` needs on `m` (normalized): channel moments of the consumers'
// inputs (activation, CFSP), Grams of dense consumers (obs, compensation), block angles (CFSP).
// Empty for magnitude criteria.
CalibrationPlan prune_calibration_plan(const Model& m, const PruneOptions& opt);

// Prunes `m` in place. Throws InvalidArgument for a bad target, Error naming the reachable bound and
// why (locked groups by reason, the --max-layer-ratio cap) for an unreachable one unless best_effort.
PruneReport prune_model(Model& m, const PruneOptions& opt, const CalibrationStats* stats = nullptr);

// The layers compensation re-solves for `plan` on `m` (the model before the rewrite): every dense
// Conv / Gemm / MatMul that loses input channels, with the original output rows it keeps.
std::vector<SequentialLayer> compensated_layers(const Model& m, const ChannelDeps& d,
                                                const std::vector<std::vector<char>>& plan);

}  // namespace oc
