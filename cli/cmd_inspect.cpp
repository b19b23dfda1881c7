// onnx-compress inspect MODEL [--json] [--deploy] [--input-shape NAME=DIMS ...]
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "engine/shape_eval.h"
#include "graph/inspect.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "quantize/deploy_check.h"

namespace oc::cli {
namespace {

int run_inspect(const std::vector<std::string>& args) {
  po::options_description opts("inspect options");
  std::string model;
  std::vector<std::string> shapes;
  opts.add_options()
    ("model", po::value(&model)->required(), "ONNX model")
    ("json", po::bool_switch(), "print JSON instead of text")
    ("deploy", po::bool_switch(), "add the deployment check: which Conv/MatMul/Gemm layers ONNX Runtime runs as integer kernels, and why not")
    ("input-shape", po::value(&shapes)->composing(), "NAME=D0,D1,... makes symbolic input dims concrete (repeatable)");
  po::variables_map vm;
  if (!parse_args(args, "onnx-compress inspect MODEL [--json] [--deploy] [--input-shape NAME=DIMS ...]", opts, {{"model", 1}}, vm))
    return 0;
  ModelSummary s = inspect_model(model, parse_input_shapes(shapes), kernel_value_evaluator());
  nlohmann::json deploy;
  std::string deploy_text;
  if (vm["deploy"].as<bool>()) {
    Model m = load_model(model);
    normalize(m);
    quant::DeployCheck d = quant::check_deployment(m);
    deploy = d.to_json();
    deploy_text = d.summary() + "\n";
  }
  if (vm["json"].as<bool>()) {
    nlohmann::json j = summary_to_json(s);
    if (!deploy.is_null()) j["deployment"] = deploy;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << summary_to_text(s) << deploy_text;
  }
  return 0;
}

RegisterCommand reg({"inspect", "summarize a model: inputs, outputs, operators, parameters, MACs", run_inspect});

}  // namespace
}  // namespace oc::cli
