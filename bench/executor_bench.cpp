// oc-executor-bench: throughput of the built-in executor, for bench/run's executor table.
//
//   oc-executor-bench MODEL --data SPEC [--shape NAME=D,D,..] [--batch B] [--threads T]
//                     [--mode infer|calib] [--samples N] [--repeat R] [--profile]
//
// infer: one batch of B samples from SPEC, one warm-up run, then R timed runs;
//        samples/s = B / fastest run (median reported too); --profile adds ms per operator type
//        (the fastest run's).
// calib: one calibration pass over N samples in batches of B with min/max on every float
//        activation and XᵀX on every Conv/MatMul/Gemm that has a Gram (calibrate()); samples/s =
//        N / wall time of the pass, primitive creation included (a real pass pays for it too).
//        --gram-max-positions P: Conv Grams on about P positions per sample (default: the
//        CalibrationPlan default; 0 = every position).
// Prints one JSON line; peak_rss_bytes is the process's (getrusage), so run one mode per process.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/calibrate.h"
#include "engine/executor.h"
#include "compressor/report.h"
#include "graph/errors.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

[[noreturn]] void usage(const std::string& why) {
  throw oc::InvalidArgument(why + " (usage: oc-executor-bench MODEL --data SPEC [--shape NAME=D,D] [--batch B] "
                                  "[--threads T] [--mode infer|calib] [--samples N] [--repeat R] [--profile] [--no-fuse] [--keep-denormals] [--gram-max-positions P])");
}

std::vector<int64_t> parse_dims(const std::string& s) {
  std::vector<int64_t> d;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) d.push_back(std::stoll(part));
  return d;
}

// Min/max on every float node output, a Gram on every layer whose input has one.
oc::CalibrationPlan full_plan(const oc::Model& m) {
  oc::CalibrationPlan plan;
  const oc::Graph& g = m.graph;
  for (const oc::Node& n : g.nodes) {
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      const oc::ValueInfo* vi = g.find_value_info(o);
      if (vi && vi->dtype != oc::DType::Float) continue;
      plan.minmax.push_back(o);
    }
    if (n.op_type != "Conv" && n.op_type != "MatMul" && n.op_type != "Gemm") continue;
    try {
      (void)oc::LayerInput::of(g, n);
      plan.grams.push_back(n.name);
    } catch (const oc::Error&) {
      // activation x activation products (attention scores) have no weight to calibrate
    }
  }
  return plan;
}

int bench(int argc, char** argv) {
  std::string model_path, spec, mode = "infer";
  std::map<std::string, std::vector<int64_t>> shapes;
  int64_t batch = 8, samples = 0, max_positions = oc::CalibrationPlan{}.gram_max_positions;
  int threads = 1, repeat = 10;
  bool profile = false, fuse = true, keep_denormals = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--data") spec = value();
    else if (a == "--shape") {
      const std::string s = value();
      const auto eq = s.find('=');
      if (eq == std::string::npos) usage("--shape takes NAME=D,D,..");
      shapes[s.substr(0, eq)] = parse_dims(s.substr(eq + 1));
    } else if (a == "--batch") batch = std::stoll(value());
    else if (a == "--threads") threads = std::stoi(value());
    else if (a == "--mode") mode = value();
    else if (a == "--samples") samples = std::stoll(value());
    else if (a == "--repeat") repeat = std::stoi(value());
    else if (a == "--profile") profile = true;
    else if (a == "--no-fuse") fuse = false;
    else if (a == "--keep-denormals") keep_denormals = true;  // compute with denormals (ExecutorOptions::denormals_as_zero off)
    else if (a == "--gram-max-positions") max_positions = std::stoll(value());  // Conv Grams on a subset of positions (0: all)
    else if (!a.empty() && a[0] == '-') usage("unknown option " + a);
    else if (model_path.empty()) model_path = a;
    else usage("more than one model");
  }
  if (model_path.empty() || spec.empty()) usage("MODEL and --data are required");
  if (batch < 1 || threads < 1 || repeat < 1 || samples < 0) usage("batch, threads and repeat must be positive");
  if (mode != "infer" && mode != "calib") usage("--mode must be infer or calib");

  oc::Model model = oc::load_model(model_path);
  oc::normalize(model);
  oc::CalibrationDataOptions dopt;
  dopt.batch_size = batch;
  dopt.max_samples = samples;
  dopt.shapes = shapes;
  oc::CalibrationSource source(spec, model, dopt);
  oc::ExecutorOptions eo;
  eo.num_threads = threads;
  eo.profile = profile;
  eo.fuse = fuse;
  eo.denormals_as_zero = !keep_denormals;

  nlohmann::json out = {{"model", model_path}, {"mode", mode}, {"threads", threads}};
  if (mode == "infer") {
    std::map<std::string, oc::Tensor> feeds;
    if (!source.next(feeds)) usage("no data in " + spec);
    const int64_t n = source.last_batch_samples();
    oc::Executor ex(model, eo);
    ex.run(feeds);  // warm-up: primitive creation, weight reorders
    std::vector<double> times;
    std::map<std::string, double> best_profile;
    for (int r = 0; r < repeat; ++r) {
      const auto t0 = Clock::now();
      ex.run(feeds);
      times.push_back(ms_since(t0));
      if (times.back() <= *std::min_element(times.begin(), times.end())) best_profile = ex.last_run_stats().op_ms;
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    out["batch"] = n;
    out["min_ms"] = sorted.front();
    out["median_ms"] = sorted[sorted.size() / 2];
    out["samples_per_s"] = static_cast<double>(n) / sorted.front() * 1000.0;
    out["peak_live_bytes"] = ex.last_run_stats().peak_live_bytes;
    out["channels_last_values"] = ex.last_run_stats().channels_last_values;
    out["fused_activations"] = ex.last_run_stats().fused_activations;
    out["to_plain_for"] = ex.last_run_stats().to_plain_for;
    out["to_channels_last_for"] = ex.last_run_stats().to_channels_last_for;
    if (profile) out["op_ms"] = best_profile;
  } else {
    oc::CalibrationPlan plan = full_plan(model);
    plan.gram_max_positions = max_positions;
    const auto t0 = Clock::now();
    oc::CalibrationStats stats = oc::calibrate(model, source, plan, nullptr, eo);
    const double ms = ms_since(t0);
    out["batch"] = source.batch_size();
    out["samples"] = stats.samples;
    out["minmax_values"] = plan.minmax.size();
    out["gram_layers"] = plan.grams.size();
    out["gram_max_positions"] = max_positions;
    out["seconds"] = ms / 1000.0;
    out["samples_per_s"] = static_cast<double>(stats.samples) / ms * 1000.0;
  }
  out["peak_rss_bytes"] = oc::peak_rss_bytes();
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  oc::keep_freed_activations();
  try {
    return bench(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "oc-executor-bench: " << e.what() << "\n";
    return 1;
  }
}
