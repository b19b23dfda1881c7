// onnx-compress compress MODEL -o OUT --recipe FILE|NAME [--calib SPEC] [--report FILE.json] [--html FILE.html] [--dry-run]
#include <iostream>

#include "cli/command.h"
#include "cli/progress.h"
#include "cli/step_command.h"
#include "compressor/pipeline.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/file_io.h"

namespace oc::cli {
namespace {

int run_compress(const std::vector<std::string>& args) {
  po::options_description opts("compress options");
  std::string model, out, recipe_arg, report, html, deploy_cpu;
  std::vector<std::string> shapes;
  PipelineOptions po_;
  opts.add_options()
    ("model", po::value(&model)->required(), "input ONNX model")
    ("output,o", po::value(&out), "output ONNX file (required unless --dry-run)")
    ("recipe", po::value(&recipe_arg)->required(), "recipe JSON file, or a shipped recipe name")
    ("calib", po::value(&po_.calib_spec), "calibration data: FILE.npy, FILE.npz, DIR (of .npy/.npz or .png/.jpg) or random:N[:SEED]")
    ("calib-samples", po::value(&po_.calib_samples)->default_value(0), "use at most N calibration samples (0 = all)")
    ("batch-size", po::value(&po_.calib_batch)->default_value(8), "samples per executor run")
    ("eval", po::value(&po_.eval_spec), "evaluation data for the fidelity check (default: --calib)")
    ("eval-samples", po::value(&po_.eval_samples)->default_value(64), "samples used for the fidelity check")
    ("labels", po::value(&po_.labels), "integer labels .npy for the evaluation data (accuracy); an image folder's class sub-folders give them otherwise")
    ("input-shape", po::value(&shapes)->composing(), "NAME=D0,D1,... concrete input dims (repeatable)")
    ("threads", po::value(&po_.threads)->default_value(0), "executor threads (0 = all cores)")
    ("device", po::value(&po_.device)->default_value("cpu"), "executor of the calibration passes: cpu or cuda")
    ("external-data", po::bool_switch(&po_.external_data), "write weights to OUT.data")
    ("report", po::value(&report), "write the JSON report")
    ("html", po::value(&html), "write the HTML report")
    ("deploy-cpu", po::value(&deploy_cpu), "CPU the output will run on, for the recipe's static int8 steps: host (default), amx, vnni or avx2 (quantize --deploy-cpu)")
    ("dry-run", po::bool_switch(), "print the plan with predicted size and MACs; write nothing");
  add_image_options(opts);
  po::variables_map vm;
  if (!parse_args(args, "onnx-compress compress MODEL -o OUT --recipe FILE|NAME [--calib SPEC] [--report R.json] "
                        "[--html R.html] [--dry-run]\nshipped recipes: " + [] {
                          std::string s;
                          for (const auto& n : shipped_recipes()) s += n + " ";
                          return s;
                        }(),
                  opts, {{"model", 1}}, vm))
    return 0;
  po_.input_shapes = parse_input_shapes(shapes);
  po_.image = image_options(vm);
  po_.skip_bad_samples = vm["skip-bad-samples"].as<bool>();
  Recipe recipe = load_recipe(recipe_arg);
  if (!deploy_cpu.empty())
    for (auto& step : recipe.steps)
      if (step.kind == "quantize") step.options["deploy-cpu"] = deploy_cpu;
  if (vm["dry-run"].as<bool>()) {
    Model m = load_model(model);
    normalize(m);
    std::cout << plan_text(plan_recipe(m, recipe, po_));
    return 0;
  }
  if (out.empty()) throw InvalidArgument("the option '--output' is required (or use --dry-run)");
  ProgressBar bar;
  po_.progress = [&bar](const PipelineProgress& p) {
    if (p.total > 1) bar.update(p.stage, p.done, p.total);
  };
  Report r = compress_file(model, out, recipe, po_);
  bar.finish();
  r.settings["recipe_name"] = recipe.name;
  if (!report.empty()) write_report(r, report);
  if (!html.empty()) write_file_atomic(html, report_html(r));
  std::cout << report_summary(r);
  return 0;
}

RegisterCommand reg({"compress", "run a recipe (prune, quantize) with one command; report what it cost", run_compress});

}  // namespace
}  // namespace oc::cli
