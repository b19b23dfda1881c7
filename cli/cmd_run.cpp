// onnx-compress run MODEL --input NAME=FILE.npy ... [--output-dir DIR] [--device cpu|cuda] [--threads N]
// Runs a model on the toolkit's own executor and writes each output as DIR/NAME.npy.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "cli/command.h"
#include "engine/executor.h"
#include "engine/npy.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"

namespace oc::cli {
namespace {

int run_run(const std::vector<std::string>& args) {
  po::options_description opts("run options");
  std::string model, out_dir = ".", device = "cpu";
  std::vector<std::string> inputs;
  int threads = 0;
  opts.add_options()
    ("model", po::value(&model)->required(), "ONNX model")
    ("input,i", po::value(&inputs)->composing(), "NAME=FILE.npy (repeatable); FILE.npy alone for a one-input model")
    ("output-dir,o", po::value(&out_dir), "folder for the output .npy files (default: current folder)")
    ("device", po::value(&device), "cpu or cuda")
    ("threads", po::value(&threads), "worker threads (default: all cores)")
    ("profile", po::bool_switch(), "print the time spent per operator type");
  po::variables_map vm;
  if (!parse_args(args, "onnx-compress run MODEL --input NAME=FILE.npy ... [--output-dir DIR] [--device cpu|cuda] [--threads N]",
                  opts, {{"model", 1}}, vm))
    return 0;
  if (threads < 0) throw InvalidArgument("--threads must be >= 0");
  Model m = load_model(model);
  normalize(m);
  ExecutorOptions eo;
  eo.device = device;
  eo.num_threads = threads;
  eo.profile = vm["profile"].as<bool>();
  Executor ex(m, eo);

  std::map<std::string, Tensor> feeds;
  auto runtime = m.graph.runtime_inputs();
  for (const auto& spec : inputs) {
    auto eq = spec.find('=');
    std::string name, file;
    if (eq == std::string::npos) {
      if (runtime.size() != 1)
        throw InvalidArgument("--input '" + spec + "': the model has " + std::to_string(runtime.size()) +
                              " inputs, write NAME=FILE.npy");
      name = runtime[0]->name;
      file = spec;
    } else {
      name = spec.substr(0, eq);
      file = spec.substr(eq + 1);
    }
    if (feeds.count(name)) throw InvalidArgument("--input '" + name + "' given twice");
    feeds[name] = read_npy(file);
  }

  auto t0 = std::chrono::steady_clock::now();
  auto outs = ex.run(feeds);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  std::filesystem::create_directories(out_dir);
  for (const auto& o : m.graph.outputs) {
    const Tensor& t = outs.at(o.name);
    std::filesystem::path p = std::filesystem::path(out_dir) / (safe_file_name(o.name) + ".npy");
    write_npy(p, t);
    std::cout << o.name << "  " << dtype_name(t.dtype) << shape_str(t.dims) << "  -> " << p.string() << "\n";
  }
  const auto& st = ex.last_run_stats();
  std::cout << "ran " << st.nodes_run << " nodes in " << std::fixed << std::setprecision(1) << ms << " ms on "
            << ex.num_threads() << " thread(s); peak intermediate memory "
            << std::setprecision(2) << static_cast<double>(st.peak_live_bytes) / (1024.0 * 1024.0) << " MiB\n";
  if (device == "cuda") {
    int64_t nodes = 0;
    for (const auto& [what, count] : st.cpu_fallbacks) nodes += count;
    std::cout << "cuda: " << nodes << " float node(s) ran on the CPU, " << std::setprecision(2)
              << static_cast<double>(st.transfer_bytes) / (1024.0 * 1024.0) << " MiB moved between host and device; "
              << "device memory peak " << static_cast<double>(st.device_peak_bytes) / (1024.0 * 1024.0) << " MiB\n";
    for (const auto& [what, count] : st.cpu_fallbacks) std::cout << "  cpu fallback  " << what << "  x" << count << "\n";
  }
  if (eo.profile) {
    std::vector<std::pair<double, std::string>> by_time;
    for (const auto& [op, t] : st.op_ms) by_time.emplace_back(t, op);
    std::sort(by_time.rbegin(), by_time.rend());
    for (const auto& [t, op] : by_time) std::cout << "  " << std::setw(10) << std::setprecision(2) << t << " ms  " << op << "\n";
  }
  return 0;
}

RegisterCommand reg({"run", "run a model on the built-in executor and write its outputs as .npy", run_run});

}  // namespace
}  // namespace oc::cli
