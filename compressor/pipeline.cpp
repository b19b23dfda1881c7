#include "compressor/pipeline.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "engine/calib_data.h"
#include "compressor/evaluate.h"
#include "compressor/options.h"
#include "compressor/softmax_masks.h"
#include "compressor/steps.h"
#include "graph/flush_denormals.h"
#include "graph/inspect.h"
#include "quantize/deploy_check.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/shape_inference.h"
#include "graph/subgraphs.h"

namespace oc {
namespace fs = std::filesystem;
using nlohmann::json;

// ---------------- recipes ----------------
json Recipe::to_json() const {
  json steps_j = json::array();
  for (const auto& s : steps) steps_j.push_back({{s.kind, s.options}});
  return {{"name", name}, {"description", description}, {"steps", steps_j}};
}

Recipe parse_recipe(const json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("steps") || !j["steps"].is_array())
    throw InvalidArgument(what + ": a recipe is an object with a \"steps\" list");
  Recipe r;
  r.name = j.value("name", "");
  r.description = j.value("description", "");
  for (const auto& s : j["steps"]) {
    if (!s.is_object() || s.size() != 1)
      throw InvalidArgument(what + ": each step is {\"prune\": {...}} or {\"quantize\": {...}}, got " + s.dump());
    RecipeStep st{s.begin().key(), s.begin().value()};
    make_step(st.kind, st.options);  // validates kind and options now, not halfway through a run
    r.steps.push_back(std::move(st));
  }
  if (r.steps.empty()) throw InvalidArgument(what + ": the recipe has no steps");
  return r;
}

static std::vector<fs::path> recipe_dirs() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("ONNX_COMPRESS_RECIPES")) dirs.emplace_back(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back(exe.parent_path() / "../share/onnx-compress/recipes");  // installed
    dirs.push_back(exe.parent_path() / "../recipes");                      // build/ in the source tree
    dirs.push_back(exe.parent_path() / "../../recipes");                   // build/tests/
  }
#ifdef OC_SOURCE_RECIPES
  dirs.emplace_back(OC_SOURCE_RECIPES);
#endif
  return dirs;
}

std::vector<std::string> shipped_recipes() {
  std::vector<std::string> names;
  for (const auto& d : recipe_dirs()) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) continue;
    for (const auto& e : fs::directory_iterator(d, ec))
      if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
    if (!names.empty()) break;
  }
  std::sort(names.begin(), names.end());
  return names;
}

Recipe load_recipe(const std::string& name_or_path) {
  fs::path p(name_or_path);
  std::error_code ec;
  if (!fs::exists(p, ec)) {
    bool found = false;
    for (const auto& d : recipe_dirs())
      if (fs::exists(d / (name_or_path + ".json"), ec)) { p = d / (name_or_path + ".json"); found = true; break; }
    if (!found) {
      std::string known;
      for (const auto& n : shipped_recipes()) known += (known.empty() ? "" : ", ") + n;
      throw InvalidArgument("recipe '" + name_or_path + "' is neither a file nor a shipped recipe (" + known + ")");
    }
  }
  std::ifstream f(p);
  json j;
  try {
    f >> j;
  } catch (const json::exception& e) {
    throw InvalidArgument("recipe '" + p.string() + "' is not valid JSON: " + std::string(e.what()).substr(0, 120));
  }
  Recipe r = parse_recipe(j, "recipe '" + p.filename().string() + "'");
  if (r.name.empty()) r.name = p.stem().string();
  return r;
}

// ---------------- running ----------------
namespace {

void check_cancel(const PipelineOptions& opt) {
  if (opt.cancel && opt.cancel->load()) throw Cancelled("cancelled");
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Inputs whose only unknown dimension is the leading (batch) one count MACs at batch 1 unless
// the user gave a shape: the usual case, and what published MAC figures mean.
std::map<std::string, std::vector<int64_t>> effective_shapes(const Model& m,
                                                             std::map<std::string, std::vector<int64_t>> shapes) {
  for (const ValueInfo* v : m.graph.runtime_inputs()) {
    if (shapes.count(v->name) || !v->has_shape || v->shape.empty() || v->shape[0].known()) continue;
    std::vector<int64_t> dims{1};
    bool rest_known = true;
    for (size_t i = 1; i < v->shape.size(); ++i) {
      rest_known &= v->shape[i].known();
      dims.push_back(v->shape[i].value);
    }
    if (rest_known) shapes[v->name] = dims;
  }
  return shapes;
}

// run_pipeline's result with what each step returned, which compress_file reads back.
struct PipelineRun {
  PipelineResult result;
  std::vector<StepResult> steps;
  std::map<std::string, std::vector<int64_t>> shapes;  // the concrete input shapes MACs were counted at
};

// --input-shape, completed from the calibration data for inputs with symbolic dims it leaves open:
// the data's one sample shape (batch 1). Samples of different shapes (fine for calibration, which
// batches each shape apart) leave the input symbolic and say why in `conflict`, which a step that
// needs MACs reports. Inputs whose only symbolic dim is the batch are left to effective_shapes.
std::map<std::string, std::vector<int64_t>> shapes_from_data(const Model& m, std::map<std::string, std::vector<int64_t>> shapes,
                                                             const CalibrationSource* calib, std::string& conflict) {
  if (!calib) return shapes;
  const auto data = calib->sample_shapes();
  for (const ValueInfo* v : m.graph.runtime_inputs()) {
    if (shapes.count(v->name) || !v->has_shape) continue;
    bool open = false;
    for (size_t i = 1; i < v->shape.size(); ++i) open |= !v->shape[i].known();
    if (!open) continue;
    auto it = data.find(v->name);
    if (it == data.end() || it->second.empty()) continue;
    const auto& seen = it->second;
    std::vector<int64_t> dims = seen[0].first;
    if (!v->shape[0].known() && !dims.empty()) dims[0] = 1;
    if (seen.size() > 1) {
      std::string first;
      for (int64_t x : dims) first += (first.empty() ? "" : ",") + std::to_string(x);
      if (conflict.empty())
        conflict = "calibration data for input '" + v->name + "' has samples of shape " + shape_str(seen[0].first) + " (" +
                   seen[0].second + ") and " + shape_str(seen[1].first) + " (" + seen[1].second +
                   "): MACs are counted at one shape, give it with --input-shape " + v->name + "=" + first;
      continue;
    }
    if (dims.size() != v->shape.size()) continue;
    shapes[v->name] = dims;
  }
  return shapes;
}

// Why a step left the model as it was ("" when it changed it). A prune step changes the model when a
// group loses channels (or heads go: params or MACs fall); a quantize step always does (it refuses a
// model without quantizable layers itself).
std::string unchanged_reason(const std::string& kind, const nlohmann::json& d, const Model& m) {
  if (kind != "prune") return "";
  const auto groups = d.value("groups", nlohmann::json::array());
  const auto totals = d.value("totals", nlohmann::json::object());
  int pruned = 0, left = 0;
  std::map<std::string, int> why;  // groups left alone, by reason
  for (const auto& g : groups) {
    const int64_t before = g.value("channels_before", int64_t{0});
    pruned += g.value("channels_after", int64_t{0}) < before;
    std::string r = g.value("skip_reason", std::string());
    if (r.empty() && g.value("locked", int64_t{0}) >= before) r = "locked";
    if (!r.empty()) ++left, ++why[r];
  }
  if (pruned > 0 || totals.value("params_after", 0.0) < totals.value("params_before", 0.0) ||
      totals.value("macs_after", 0.0) < totals.value("macs_before", 0.0))
    return "";
  if (groups.empty()) {
    int nested = 0;
    for (const auto& n : m.graph.nodes) nested += !n.subgraphs().empty();
    return nested ? "the model has no prunable channel group (its If/Loop/Scan bodies included)"
                  : "the model has no prunable channel group";
  }
  if (left == static_cast<int>(groups.size())) {
    std::string top;
    int best = 0;
    for (const auto& [r, n] : why)
      if (n > best) best = n, top = r;
    return "all " + std::to_string(groups.size()) + " channel groups are left alone (" + std::to_string(best) + ": " + top + ")";
  }
  return "no channel group loses a channel at this target (raise it)";
}

// Normalizes `original` in place and keeps it as the reference; the steps rewrite one copy of it
// (the candidate). Two models' weights in memory, not three: callers hand over their own copy.
PipelineRun run_recipe(Model& original, const Recipe& recipe, const PipelineOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  PipelineRun run;
  PipelineResult& res = run.result;
  normalize(original);
  Model m = original;
  // Weights only one If/Loop/Scan body reads move into it (the model computes the same), so the
  // steps and their calibration see a body's layers with their own weights (graph/subgraphs.h).
  localize_subgraph_weights(m.graph);
  ExecutorOptions exec;
  exec.num_threads = opt.threads;
  exec.device = opt.device;
  std::unique_ptr<CalibrationSource> calib;
  if (!opt.calib_spec.empty()) {
    CalibrationDataOptions co;
    co.batch_size = opt.calib_batch;
    co.max_samples = opt.calib_samples;
    co.shapes = opt.input_shapes;
    co.image = opt.image;
    co.skip_bad_samples = opt.skip_bad_samples;
    calib = std::make_unique<CalibrationSource>(opt.calib_spec, m, co);
  }
  std::string shape_conflict;
  const auto shapes = effective_shapes(original, shapes_from_data(original, opt.input_shapes, calib.get(), shape_conflict));
  run.shapes = shapes;
  Report& rep = res.report;
  rep.command = "compress";
  rep.settings = {{"recipe", recipe.to_json()}, {"calib", opt.calib_spec}, {"eval", opt.eval_spec}};
  if (!opt.image.mean.empty() || !opt.image.std.empty() || opt.image.bgr || opt.image.resize != ImageOptions::Resize::Shorter)
    rep.settings["image"] = image_options_json(opt.image);
  if (opt.skip_bad_samples) rep.settings["skip_bad_samples"] = true;
  int index = 0;
  for (const auto& rs : recipe.steps) {
    ++index;
    check_cancel(opt);
    auto step = make_step(rs.kind, rs.options);
    StepContext ctx;
    ctx.calib = calib.get();
    ctx.input_shapes = shapes;
    ctx.shape_conflict = shape_conflict;
    ctx.exec = exec;
    ctx.progress = [&, index](int64_t done, int64_t total) {
      check_cancel(opt);
      if (opt.progress) opt.progress({"calibrate " + rs.kind, index, static_cast<int>(recipe.steps.size()), done, total});
    };
    ctx.work_progress = [&, index](int64_t done, int64_t total) {
      check_cancel(opt);
      if (opt.progress) opt.progress({rs.kind + " layers", index, static_cast<int>(recipe.steps.size()), done, total});
    };
    if (opt.progress) opt.progress({rs.kind, index, static_cast<int>(recipe.steps.size()), 0, 1});
    auto ts = std::chrono::steady_clock::now();
    StepResult sr = step->run(m, ctx);
    rep.steps.push_back({{"kind", rs.kind}, {"settings", step->settings()}, {"seconds", since(ts)}, {"details", sr.details}});
    run.steps.push_back(std::move(sr));
    if (opt.progress) opt.progress({rs.kind, index, static_cast<int>(recipe.steps.size()), 1, 1});
  }
  // Additive Softmax masks of -1e4 / -inf make ORT's Softmax compute on denormals (graph/softmax_mask.h):
  // with calibration data, the masked entries take a value the observed scores keep normal.
  if (calib && !rep.steps.empty())
    if (const std::string note = relax_softmax_masks(m, *calib, exec); !note.empty())
      rep.steps.back()["details"]["notes"].push_back(note);
  // Denormal weights (the model's own, or written by compensation) slow ORT's float kernels ~30x.
  if (const int64_t flushed = flush_denormal_weights(m); flushed > 0 && !rep.steps.empty())
    rep.steps.back()["details"]["notes"].push_back(std::to_string(flushed) +
                                                   " denormal float32 weights set to 0 (below 1.2e-38: no effect on the outputs; "
                                                   "x86 float kernels multiply them ~30x slower)");
  check_cancel(opt);
  // Fidelity against the input model on evaluation data (our executor runs both).
  std::string eval = opt.eval_spec.empty() && opt.eval_on_calib ? opt.calib_spec : opt.eval_spec;
  if (!eval.empty()) {
    EvaluateOptions eo;
    eo.data_spec = eval;
    eo.labels_path = opt.labels;
    eo.max_samples = opt.eval_samples;
    eo.batch_size = opt.calib_batch;
    eo.threads = opt.threads;
    eo.shapes = opt.input_shapes;
    eo.image = opt.image;
    eo.skip_bad_samples = opt.skip_bad_samples;
    eo.progress = [&](int64_t done, int64_t total) {
      check_cancel(opt);
      if (opt.progress) opt.progress({"evaluate", 0, static_cast<int>(recipe.steps.size()), done, total});
    };
    EvaluateResult er = evaluate_models(original, m, eo);
    rep.fidelity = fidelity_json(er);
    rep.latency_ms = {{"reference", er.latency_reference_ms}, {"candidate", er.latency_candidate_ms}};
    if (er.accuracy_reference)
      rep.accuracy = {{"reference", *er.accuracy_reference}, {"candidate", *er.accuracy_candidate}, {"labels_from", er.labels_from}};
    if (opt.skip_bad_samples) rep.extra["skipped_samples"]["evaluation"] = er.skipped_samples;
  }
  if (opt.skip_bad_samples && calib) rep.extra["skipped_samples"]["calibration"] = calib->skipped_samples();
  rep.seconds = since(t0);
  res.model = std::move(m);
  return run;
}

}  // namespace

PipelineResult run_pipeline(const Model& input, const Recipe& recipe, const PipelineOptions& opt) {
  Model original = input;
  return std::move(run_recipe(original, recipe, opt).result);
}

Report compress_file(const fs::path& in, const fs::path& out, const Recipe& recipe, const PipelineOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  Model input = load_model(in);
  PipelineRun run = run_recipe(input, recipe, opt);  // normalizes `input`: the report's rows are its nodes
  PipelineResult& r = run.result;
  // A request that changes nothing is refused, not written as a copy: every step left the model as
  // it was (a recipe whose prune step finds nothing while its quantize step changes the model is
  // fine). The library's run_pipeline returns the model as it is.
  {
    std::string why;
    bool changed = false;
    for (size_t i = 0; i < recipe.steps.size() && !changed; ++i) {
      const std::string reason = unchanged_reason(recipe.steps[i].kind, run.steps[i].details, input);
      changed = reason.empty();
      if (why.empty()) why = recipe.steps[i].kind + ": nothing to change: " + reason;
    }
    if (!changed && !recipe.steps.empty()) throw UnsupportedError(why + "; no model written");
  }
  SaveOptions so;
  so.external = opt.external_data ? SaveOptions::ExternalData::Always : SaveOptions::ExternalData::Auto;
  save_model(r.model, out, so);
  fill_report_models(r.report, input, in, r.model, out, run.shapes);
  r.report.deployment = quant::check_deployment(r.model).to_json();
  if (recipe.steps.size() == 1) r.report.command = recipe.steps[0].kind;
  // Per-layer importance scores the steps computed, shown beside each layer.
  for (size_t i = 0; i < run.steps.size(); ++i) {
    const StepResult& sr = run.steps[i];
    // CFSP per-block importance and allocation, plotted by the HTML report.
    if (sr.blocks.is_array()) r.report.extra["blocks"] = sr.blocks;
    if (sr.scorer.empty()) continue;
    std::string key = recipe.steps[i].kind + ":" + sr.scorer;
    for (const auto& [node, score] : sr.layer_scores)
      for (auto& row : r.report.layers)
        if (node == row.name) row.scores[key] = score;
  }
  r.report.seconds = since(t0);
  return r.report;
}

json plan_recipe(const Model& input, const Recipe& recipe, const PipelineOptions& opt) {
  Model m = input;
  normalize(m);
  const auto shapes = effective_shapes(m, opt.input_shapes);
  auto totals = [&](const Model& x) {
    Totals t = model_totals(x, shapes);
    return json{{"params", t.params}, {"macs", t.macs}, {"weight_bytes", t.weight_bytes},
                {"file_bytes", serialize_model(x).size()}};
  };
  json plan = {{"recipe", recipe.to_json()}, {"before", totals(m)}, {"steps", json::array()}, {"notes", json::array()}};
  for (const auto& rs : recipe.steps) {
    auto step = make_step(rs.kind, rs.options);
    StepContext ctx;
    ctx.input_shapes = shapes;
    std::string note = step->drop_calibration();
    if (!note.empty()) plan["notes"].push_back(note);
    step->run(m, ctx);
    plan["steps"].push_back({{"kind", rs.kind}, {"settings", rs.options}, {"predicted", totals(m)}});
  }
  plan["after"] = plan["steps"].back()["predicted"];
  return plan;
}

std::string plan_text(const json& plan) {
  std::ostringstream o;
  auto row = [&](const std::string& label, const json& t) {
    o << "| " << label << " | " << human_count(t.value("params", 0.0)) << " | " << human_count(t.value("macs", 0.0)) << " | "
      << human_bytes(t.value("file_bytes", 0.0)) << " |\n";
  };
  o << "plan for recipe '" << plan["recipe"].value("name", "") << "' (dry run: nothing written)\n\n"
    << "| stage | params | MACs | predicted file |\n|---|---:|---:|---:|\n";
  row("input", plan["before"]);
  int i = 0;
  for (const auto& s : plan["steps"]) row(std::to_string(++i) + ". " + s.value("kind", "") + " " + s["settings"].dump(), s["predicted"]);
  for (const auto& n : plan["notes"]) o << "\nnote: " << n.get<std::string>();
  o << "\n";
  return o.str();
}

}  // namespace oc
