// A deployment-pipeline step using onnx-compress as a library:
// load a model, quantize its weights to 8 bits (QDQ), save, and write a report.
//   embed MODEL OUT.onnx REPORT.json
#include <iostream>

#include <onnx_compress/compressor/report.h>
#include <onnx_compress/graph/normalize.h>
#include <onnx_compress/graph/onnx_io.h>
#include <onnx_compress/quantize/quantize.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: embed MODEL OUT.onnx REPORT.json\n";
    return 2;
  }
  try {
    oc::Model model = oc::load_model(argv[1]);
    oc::normalize(model);
    oc::Model compressed = model;
    oc::quant::QuantizeOptions opt;
    opt.bits = 8;
    opt.format = oc::quant::Format::QDQ;
    oc::quant::QuantizeReport qr = oc::quant::quantize_model(compressed, opt);
    oc::save_model(compressed, argv[2]);
    oc::Report report;
    report.command = "quantize";
    report.settings = {{"bits", 8}, {"format", "qdq"}};
    report.steps.push_back({{"kind", "quantize"}, {"details", qr.to_json()}});
    oc::fill_report_models(report, model, argv[1], compressed, argv[2]);
    oc::write_report(report, argv[3]);
    std::cout << oc::report_summary(report);
  } catch (const oc::Error& e) {
    std::cerr << "embed: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
