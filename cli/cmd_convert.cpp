// onnx-compress convert MODEL -o OUT [--external-data] [--opset N]
#include <iostream>

#include "cli/command.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/opset_convert.h"

namespace oc::cli {
namespace {

int run_convert(const std::vector<std::string>& args) {
  po::options_description opts("convert options");
  std::string model, out;
  int64_t opset = 0;
  opts.add_options()
    ("model", po::value(&model)->required(), "input ONNX model")
    ("output,o", po::value(&out)->required(), "output ONNX file")
    ("external-data", po::bool_switch(), "write weights to OUT.data beside the model")
    ("opset", po::value(&opset), "raise the default-domain opset to N");
  po::variables_map vm;
  if (!parse_args(args, "onnx-compress convert MODEL -o OUT [--external-data] [--opset N]", opts, {{"model", 1}}, vm))
    return 0;
  Model m = load_model(model);
  NormalizeStats st = normalize(m);
  if (vm.count("opset")) convert_opset(m, opset);
  SaveOptions so;
  so.external = vm["external-data"].as<bool>() ? SaveOptions::ExternalData::Always : SaveOptions::ExternalData::Auto;
  save_model(m, out, so);
  std::cout << "wrote " << out << " (opset " << m.opset() << ", " << m.graph.nodes.size() << " nodes, "
            << st.constants_lifted << " Constant nodes lifted to initializers)\n";
  return 0;
}

RegisterCommand reg({"convert", "load, normalize (toposort, Constant weights -> initializers) and save", run_convert});

}  // namespace
}  // namespace oc::cli
