// A deployment-pipeline step using onnx-compress as a library, the way an outside project would:
// prune 30% of the MACs and quantize weights to 8 bits, with progress and a stop flag, then
// print the report summary. No method flags: with calibration data the steps use the data-aware
// defaults (a fixed criterion such as l2, uncompensated, leaves fashion_cnn at chance level).
//   embed MODEL OUT.onnx REPORT.json [CALIB_SPEC]
#include <atomic>
#include <iostream>

#include <onnx_compress/compressor/pipeline.h>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: embed MODEL OUT.onnx REPORT.json [CALIB_SPEC]\n";
    return 2;
  }
  std::atomic<bool> stop{false};  // another thread may set it to cancel
  try {
    oc::Recipe recipe = oc::parse_recipe(nlohmann::json::parse(R"({
      "name": "embed-prune-int8",
      "steps": [{"prune": {"target-macs": 0.7}},
                {"quantize": {"bits": 8, "format": "qdq"}}]})"));
    oc::PipelineOptions opt;
    if (argc > 4) opt.calib_spec = argv[4];
    opt.cancel = &stop;
    int last_step = 0;
    opt.progress = [&](const oc::PipelineProgress& p) {
      if (p.step != last_step) std::cerr << "step " << (last_step = p.step) << "/" << p.steps << ": " << p.stage << "\n";
    };
    oc::Report report = oc::compress_file(argv[1], argv[2], recipe, opt);
    oc::write_report(report, argv[3]);
    std::cout << oc::report_summary(report);
  } catch (const oc::Error& e) {  // typed errors; the library never exits
    std::cerr << "embed: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
