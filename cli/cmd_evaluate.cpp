// onnx-compress evaluate REFERENCE CANDIDATE --data SPEC [--labels FILE.npy] [--json]
#include <iostream>

#include "cli/command.h"
#include "cli/step_command.h"
#include "compressor/evaluate.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"

namespace oc::cli {
namespace {

int run_evaluate(const std::vector<std::string>& args) {
  po::options_description opts("evaluate options");
  std::string ref, cand;
  EvaluateOptions eo;
  opts.add_options()
    ("reference", po::value(&ref)->required(), "reference (original) model")
    ("candidate", po::value(&cand)->required(), "candidate (compressed) model")
    ("data", po::value(&eo.data_spec)->required(), "inputs: FILE.npy, FILE.npz, folder (of .npy/.npz or .png/.jpg), or random:N[:SEED]")
    ("labels", po::value(&eo.labels_path), "integer labels .npy (one per sample) to report accuracy; an image folder's class sub-folders give them otherwise")
    ("input-shape", po::value<std::vector<std::string>>()->composing(), "NAME=D0,D1,... concrete input dims (repeatable)")
    ("batch-size", po::value(&eo.batch_size)->default_value(16), "samples per run")
    ("max-samples", po::value(&eo.max_samples)->default_value(0), "use at most N samples (0 = all)")
    ("threads", po::value(&eo.threads)->default_value(0), "executor threads (0 = all cores)")
    ("json", po::bool_switch(), "print JSON");
  add_image_options(opts);
  po::variables_map vm;
  if (!parse_args(args, "onnx-compress evaluate REFERENCE CANDIDATE --data SPEC [--labels FILE.npy] [--json]", opts,
                  {{"reference", 1}, {"candidate", 1}}, vm))
    return 0;
  eo.image = image_options(vm);
  eo.skip_bad_samples = vm["skip-bad-samples"].as<bool>();
  if (vm.count("input-shape")) eo.shapes = parse_input_shapes(vm["input-shape"].as<std::vector<std::string>>());
  Model a = load_model(ref), b = load_model(cand);
  normalize(a);
  normalize(b);
  if (stderr_is_tty())
    eo.progress = [](int64_t done, int64_t total) {
      std::cerr << "\revaluating " << done << "/" << total << (done == total ? "\n" : "") << std::flush;
    };
  EvaluateResult r = evaluate_models(a, b, eo);
  if (vm["json"].as<bool>()) {
    nlohmann::json j = {{"fidelity", fidelity_json(r)}, {"samples", r.samples},
                        {"latency_ms", {{"reference", r.latency_reference_ms}, {"candidate", r.latency_candidate_ms}}}};
    if (r.accuracy_reference)
      j["accuracy"] = {{"reference", *r.accuracy_reference}, {"candidate", *r.accuracy_candidate}, {"labels_from", r.labels_from}};
    if (eo.skip_bad_samples) j["skipped_samples"] = r.skipped_samples;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << evaluate_text(r);
  }
  return 0;
}

RegisterCommand reg({"evaluate", "compare a compressed model's outputs with the original on data", run_evaluate});

}  // namespace
}  // namespace oc::cli
