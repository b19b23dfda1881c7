// The `prune` step: structured group pruning (prune/prune.h) with its calibration needs.
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "compressor/options.h"
#include "compressor/steps.h"
#include "prune/prune.h"

namespace oc {
namespace {

class PruneStep : public Step {
 public:
  explicit PruneStep(const nlohmann::json& options) : settings_(options) {
    OptionReader r(options, "prune");
    if (auto v = r.number("ratio")) o_.ratio = *v;
    for (auto [key, dst, of] : {std::tuple<const char*, double*, const char*>{"target-macs", &o_.target_macs, "MACs"},
                                {"target-params", &o_.target_params, "parameters"}})
      if (auto v = r.number(key)) {
        if (!(*v > 0 && *v < 1)) {
          std::ostringstream s;
          s << "prune: --" << key << " " << *v << " must be a fraction in (0, 1): the share of the model's " << of << " to keep";
          throw InvalidArgument(s.str());
        }
        *dst = *v;
      }
    int targets = (o_.ratio >= 0) + (o_.target_macs >= 0) + (o_.target_params >= 0);
    if (targets != 1) throw InvalidArgument("prune: give exactly one of --ratio, --target-macs, --target-params");
    o_.best_effort = r.flag("best-effort");
    if (auto v = r.text("criterion")) o_.criterion = parse_criterion(*v);
    if (auto v = r.text("aggregate")) o_.aggregate = parse_aggregate(*v);
    if (auto v = r.text("scope")) {
      if (*v != "local" && *v != "global") throw InvalidArgument("prune: --scope must be local or global");
      o_.global = *v == "global";
    }
    if (auto v = r.number("max-layer-ratio")) o_.max_layer_ratio = *v;
    if (auto v = r.integer("round-to")) o_.round_to = static_cast<int>(*v);
    o_.ignore = r.texts("ignore");
    if (auto v = r.integer("seed")) o_.seed = static_cast<uint64_t>(*v);
    o_.compensate = r.flag("compensate");
    o_.heads = r.flag("heads");
    if (auto v = r.number("damping")) o_.damping = *v;
    if (auto v = r.text("blocks")) o_.blocks = *v;
    if (auto v = r.number("cfsp-sharpness")) o_.cfsp_sharpness = *v;
    r.finish();
  }

  std::string kind() const override { return "prune"; }
  bool needs_calibration() const override {
    return o_.criterion == Criterion::Activation || o_.criterion == Criterion::OBS || o_.criterion == Criterion::CFSP ||
           o_.compensate;
  }
  nlohmann::json settings() const override { return settings_; }

  StepResult run(Model& m, StepContext& ctx) override {
    PruneOptions o = o_;
    o.input_shapes = ctx.input_shapes;
    if (o.target_macs >= 0 && !ctx.shape_conflict.empty()) throw InvalidArgument(ctx.shape_conflict);
    CalibrationStats stats;
    const CalibrationStats* have = nullptr;
    if (needs_calibration()) {
      if (!ctx.calib)
        throw InvalidArgument(std::string("prune: --criterion ") + criterion_name(o.criterion) +
                              (o.compensate ? " with --compensate" : "") + " needs calibration data (--calib SPEC)");
      CalibrationPlan plan = prune_calibration_plan(m, o);
      ctx.calib->rewind();
      stats = calibrate(m, *ctx.calib, plan, ctx.progress, ctx.exec);
      have = &stats;
    }
    StepResult r;
    r.details = prune_model(m, o, have).to_json();
    if (r.details.contains("blocks")) r.blocks = r.details["blocks"];
    return r;
  }

  std::string drop_calibration() override {
    if (!needs_calibration()) return "";
    std::string note = std::string("prune: ") + criterion_name(o_.criterion) + " predicted with l2 scores, no compensation";
    o_.criterion = Criterion::L2;
    o_.compensate = false;
    o_.blocks.clear();
    return note;
  }

 private:
  PruneOptions o_;
  nlohmann::json settings_;
};

}  // namespace

std::unique_ptr<Step> make_prune_step(const nlohmann::json& options) { return std::make_unique<PruneStep>(options); }

}  // namespace oc
