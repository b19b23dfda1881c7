// onnx-compress inspect MODEL [--json] [--input-shape NAME=DIMS ...]
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "graph/inspect.h"

namespace oc::cli {
namespace {

int run_inspect(const std::vector<std::string>& args) {
  po::options_description opts("inspect options");
  std::string model;
  std::vector<std::string> shapes;
  opts.add_options()
    ("model", po::value(&model)->required(), "ONNX model")
    ("json", po::bool_switch(), "print JSON instead of text")
    ("input-shape", po::value(&shapes)->composing(), "NAME=D0,D1,... makes symbolic input dims concrete (repeatable)");
  po::variables_map vm;
  if (!parse_args(args, "onnx-compress inspect MODEL [--json] [--input-shape NAME=DIMS ...]", opts, {{"model", 1}}, vm))
    return 0;
  ModelSummary s = inspect_model(model, parse_input_shapes(shapes));
  if (vm["json"].as<bool>()) std::cout << summary_to_json(s).dump(2) << "\n";
  else std::cout << summary_to_text(s);
  return 0;
}

RegisterCommand reg({"inspect", "summarize a model: inputs, outputs, operators, parameters, MACs", run_inspect});

}  // namespace
}  // namespace oc::cli
