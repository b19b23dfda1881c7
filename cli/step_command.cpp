#include "cli/step_command.h"

#include <iostream>
#include <set>

#include "cli/progress.h"
#include "compressor/options.h"
#include "compressor/pipeline.h"
#include "graph/file_io.h"

namespace oc::cli {
namespace {

const std::set<std::string> kCommon = {"model", "output", "calib", "calib-samples", "batch-size", "eval",
                                       "labels", "input-shape", "threads", "device", "external-data", "report", "html", "help",
                                       "mean", "std", "bgr", "resize", "skip-bad-samples"};

// Step options as JSON: strings, lists of strings (repeatable flags) and switches.
nlohmann::json step_options(const po::variables_map& vm) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : vm) {
    if (kCommon.count(key) || value.defaulted()) continue;
    const boost::any& v = value.value();
    if (const auto* s = boost::any_cast<std::string>(&v)) j[key] = *s;
    else if (const auto* l = boost::any_cast<std::vector<std::string>>(&v)) j[key] = *l;
    else if (const auto* b = boost::any_cast<bool>(&v)) j[key] = *b;
    else throw InvalidArgument("--" + key + ": unsupported option type");
  }
  return j;
}

}  // namespace

void add_common_step_options(po::options_description& opts) {
  opts.add_options()
    ("model", po::value<std::string>()->required(), "input ONNX model")
    ("output,o", po::value<std::string>()->required(), "output ONNX file")
    ("calib", po::value<std::string>(), "calibration data: FILE.npy, FILE.npz, DIR (of .npy/.npz or .png/.jpg) or random:N[:SEED]")
    ("calib-samples", po::value<int64_t>()->default_value(0), "use at most N calibration samples (0 = all)")
    ("batch-size", po::value<int64_t>()->default_value(8), "samples per executor run")
    ("eval", po::value<std::string>(), "evaluation data: measure fidelity (and accuracy with --labels)")
    ("labels", po::value<std::string>(), "integer labels .npy for --eval (an image folder's class sub-folders give them otherwise)")
    ("input-shape", po::value<std::vector<std::string>>()->composing(), "NAME=D0,D1,... concrete input dims (repeatable)")
    ("threads", po::value<int>()->default_value(0), "executor threads (0 = all cores)")
    ("device", po::value<std::string>()->default_value("cpu"), "executor of the calibration passes: cpu or cuda")
    ("external-data", po::bool_switch(), "write weights to OUT.data")
    ("report", po::value<std::string>(), "write the JSON report (docs/REPORT_SCHEMA.md)")
    ("html", po::value<std::string>(), "write the HTML report");
  add_image_options(opts);
}

void add_image_options(po::options_description& opts) {
  opts.add_options()
    ("mean", po::value<std::string>(), "images: subtract after scaling to [0,1] (one value or one per channel: 0.485,0.456,0.406)")
    ("std", po::value<std::string>(), "images: divide by after --mean (one value or one per channel)")
    ("bgr", po::bool_switch(), "images: the model takes BGR channel order")
    ("resize", po::value<std::string>()->default_value("shorter"), "images: shorter (cover, centre crop), exact, or none")
    ("skip-bad-samples", po::bool_switch(), "leave out samples with NaN/Inf (counted in the report) instead of failing");
}

ImageOptions image_options(const po::variables_map& vm) {
  auto str = [&](const char* k) { return vm.count(k) ? vm[k].as<std::string>() : std::string(); };
  return parse_image_options(str("mean"), str("std"), vm.count("bgr") && vm["bgr"].as<bool>(), str("resize"));
}

int run_step_command(const std::string& kind, const po::variables_map& vm) {
  Recipe recipe;
  recipe.name = kind;
  recipe.steps.push_back({kind, step_options(vm)});
  PipelineOptions opt;
  if (vm.count("calib")) opt.calib_spec = vm["calib"].as<std::string>();
  if (vm.count("eval")) opt.eval_spec = vm["eval"].as<std::string>();
  if (vm.count("labels")) opt.labels = vm["labels"].as<std::string>();
  opt.eval_on_calib = false;
  opt.eval_samples = 0;
  opt.calib_samples = vm["calib-samples"].as<int64_t>();
  opt.calib_batch = vm["batch-size"].as<int64_t>();
  opt.threads = vm["threads"].as<int>();
  opt.device = vm["device"].as<std::string>();
  opt.external_data = vm["external-data"].as<bool>();
  opt.image = image_options(vm);
  opt.skip_bad_samples = vm["skip-bad-samples"].as<bool>();
  if (vm.count("input-shape")) opt.input_shapes = parse_input_shapes(vm["input-shape"].as<std::vector<std::string>>());
  ProgressBar bar;
  opt.progress = [&bar](const PipelineProgress& p) {
    if (p.total > 1) bar.update(p.stage, p.done, p.total);
  };
  const std::string out = vm["output"].as<std::string>();
  Report r = compress_file(vm["model"].as<std::string>(), out, recipe, opt);
  bar.finish();
  if (vm.count("report")) write_report(r, vm["report"].as<std::string>());
  if (vm.count("html")) write_file_atomic(vm["html"].as<std::string>(), report_html(r));
  const nlohmann::json& d = r.steps.at(0)["details"];
  if (kind == "prune") {
    int pruned = 0;
    for (const auto& g : d.value("groups", nlohmann::json::array()))
      pruned += g.value("channels_after", 0) < g.value("channels_before", 0);
    std::cout << "pruned " << pruned << " of " << d.value("groups", nlohmann::json::array()).size() << " channel groups";
    const int comp = d.value("totals", nlohmann::json::object()).value("layers_compensated", 0);
    if (comp > 0) std::cout << ", " << comp << " layers compensated";
    std::cout << "; wrote " << out << "\n";
    if (d.contains("method")) std::cout << "method: " << d.value("method", "") << "\n";
  } else if (kind == "quantize") {
    for (const auto& l : d.value("layers", nlohmann::json::array()))
      std::cout << "  " << l.value("node", "") << " " << l.value("op", "") << " " << l.value("bits", 0) << " bits ("
                << l.value("decided_by", "") << ")\n";
    std::cout << "wrote " << out << "\n";
    if (d.contains("method")) std::cout << "method: " << d.value("method", "") << "\n";
  }
  std::cout << "\n" << report_summary(r);
  return 0;
}

}  // namespace oc::cli
