// oc_gpu_check MODEL [--shape NAME=D,D,...]... [--fill NAME=V]... [--runs K] [--calib-samples N] [--tol T]
//
// One table row for MODEL: the CUDA backend's outputs against the CPU executor's (max error
// relative to each output's scale), plain-inference throughput of both, calibration throughput
// of both (min/max of every value + XᵀX of every Conv/MatMul/Gemm with constant weights, the
// observers on the device for CUDA), and which float nodes fell back to the CPU. Exit code 1 when
// the outputs disagree beyond --tol or a run fails. bench/gpu_check runs it over the corpus.
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>

#include "engine/calib_data.h"
#include "engine/calibrate.h"
#include "engine/cuda_backend.h"
#include "engine/executor.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"

using namespace oc;

namespace {

using Clock = std::chrono::steady_clock;

std::vector<int64_t> parse_dims(const std::string& s) {
  std::vector<int64_t> d;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) d.push_back(std::stoll(item));
  return d;
}

double max_rel_error(const Tensor& a, const Tensor& b) {
  const auto fa = a.to_float(), fb = b.to_float();
  double scale = 1e-6, worst = 0;
  for (float v : fb) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < fa.size(); ++i) {
    if (std::isnan(fa[i]) != std::isnan(fb[i])) return INFINITY;
    if (!std::isnan(fa[i])) worst = std::max(worst, std::fabs(static_cast<double>(fa[i]) - fb[i]) / scale);
  }
  return worst;
}

// Runs fn until `min_runs` runs and at least `min_seconds` have passed; returns runs per second.
template <typename F>
double rate(F&& fn, int min_runs, double min_seconds) {
  fn();  // warm-up: primitive caches, weight uploads, index maps
  const auto t0 = Clock::now();
  int runs = 0;
  double s = 0;
  do {
    fn();
    ++runs;
    s = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (runs < min_runs || s < min_seconds);
  return runs / s;
}

std::string fmt(double v, int prec = 1) {
  if (!(v > 0)) return "n/a";
  std::ostringstream o;
  o << std::fixed << std::setprecision(prec) << v;
  return o.str();
}

}  // namespace

int main(int argc, char** argv) {
  oc::keep_freed_activations();
  if (argc < 2) {
    std::cerr << "usage: oc_gpu_check MODEL [--shape NAME=D,D,...]... [--fill NAME=V]... [--runs K] "
                 "[--calib-samples N] [--tol T]\n";
    return 2;
  }
  const std::string path = argv[1];
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, int64_t> fills;
  int runs = 5;
  int64_t calib_samples = 64;
  double tol = 1e-4;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    const auto eq = v.find('=');
    if (k == "--shape" && eq != std::string::npos) shapes[v.substr(0, eq)] = parse_dims(v.substr(eq + 1));
    else if (k == "--fill" && eq != std::string::npos) fills[v.substr(0, eq)] = std::stoll(v.substr(eq + 1));
    else if (k == "--runs") runs = std::stoi(v);
    else if (k == "--calib-samples") calib_samples = std::stoll(v);
    else if (k == "--tol") tol = std::stod(v);
    else {
      std::cerr << "oc_gpu_check: unknown option " << k << "\n";
      return 2;
    }
  }
  // models/NAME/model.onnx is named NAME, anything else by its file name.
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name == "model.onnx" && path.find('/') != std::string::npos) {
    const std::string dir = path.substr(0, path.find_last_of('/'));
    name = dir.substr(dir.find_last_of('/') + 1);
  }
  try {
    std::string why;
    if (!cuda_usable(&why)) throw UnsupportedError("no CUDA: " + why);
    Model m = load_model(path);
    normalize(m);
    // Inputs: seeded uniform [-1, 1) floats, integer inputs 0 unless --fill gives a value.
    std::map<std::string, Tensor> in;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uni(-1.f, 1.f);
    int64_t batch = 1;
    for (const ValueInfo* v : m.graph.runtime_inputs()) {
      std::vector<int64_t> dims;
      if (shapes.count(v->name)) dims = shapes.at(v->name);
      else
        for (const Dim& d : v->shape) {
          if (!d.known()) throw InvalidArgument("input '" + v->name + "' has a symbolic dim: give --shape");
          dims.push_back(d.value);
        }
      if (!dims.empty()) batch = std::max(batch, dims[0]);
      int64_t n = 1;
      for (int64_t d : dims) n *= d;
      if (v->dtype == DType::Float) {
        std::vector<float> x(static_cast<size_t>(n));
        for (auto& e : x) e = uni(rng);
        in[v->name] = Tensor::from_float(v->name, dims, x);
      } else {
        const int64_t fill = fills.count(v->name) ? fills.at(v->name) : 0;
        in[v->name] = Tensor::from_int64(v->name, dims, std::vector<int64_t>(static_cast<size_t>(n), fill));
      }
    }
    ExecutorOptions cpu_opt, gpu_opt;
    gpu_opt.device = "cuda";
    Executor cpu(m, cpu_opt), gpu(m, gpu_opt);
    const auto want = cpu.run(in);
    const auto got = gpu.run(in);
    double err = 0;
    for (const auto& [k, w] : want) {
      const Tensor& t = got.at(k);
      if (t.dims != w.dims) throw Error("output '" + k + "' has shape " + shape_str(t.dims) + " on CUDA, " + shape_str(w.dims) + " on CPU");
      if (w.dtype == DType::Float) err = std::max(err, max_rel_error(t, w));
      else if (t.bytes != w.bytes) err = INFINITY;
    }
    const auto fallbacks = gpu.last_run_stats().cpu_fallbacks;
    int64_t fallback_nodes = 0;
    std::string fallback_ops;
    for (const auto& [what, count] : fallbacks) {
      fallback_nodes += count;
      fallback_ops += (fallback_ops.empty() ? "" : "; ") + what + " ×" + std::to_string(count);
    }
    const double cpu_ips = rate([&] { cpu.run(in); }, runs, 2.0) * static_cast<double>(batch);
    const double gpu_ips = rate([&] { gpu.run(in); }, runs * 4, 2.0) * static_cast<double>(batch);

    // Calibration pass: random samples of the same per-sample shape, `batch` per run.
    CalibrationPlan plan;
    for (const Node& n : m.graph.nodes) {
      if ((n.op_type == "Conv" || n.op_type == "MatMul" || n.op_type == "Gemm") && n.inputs.size() > 1 &&
          m.graph.initializer(n.input(1)))
        plan.grams.push_back(n.name);
      for (const auto& o : n.outputs)
        if (!o.empty()) plan.minmax.push_back(o);
    }
    auto calib_rate = [&](const ExecutorOptions& eo, int64_t samples) {
      CalibrationDataOptions co;
      co.batch_size = batch;
      // One sample's shape: a symbolic batch axis holds one row per sample, a fixed one keeps its size.
      for (const ValueInfo* v : m.graph.runtime_inputs()) {
        auto d = in.at(v->name).dims;
        if (!d.empty() && !(v->has_shape && !v->shape.empty() && v->shape[0].known())) d[0] = 1;
        co.shapes[v->name] = d;
      }
      CalibrationSource src("random:" + std::to_string(samples) + ":1", m, co);
      const auto t0 = Clock::now();
      calibrate(m, src, plan, nullptr, eo);
      return static_cast<double>(samples) / std::chrono::duration<double>(Clock::now() - t0).count();
    };
    double cpu_cal = 0, gpu_cal = 0;
    std::string calib_note;
    try {
      cpu_cal = calib_rate(cpu_opt, std::max<int64_t>(batch, calib_samples / 8));
      gpu_cal = calib_rate(gpu_opt, std::max<int64_t>(batch, calib_samples));
    } catch (const std::exception& e) {
      calib_note = std::string(" (calibration: ") + e.what() + ")";
    }
    std::cout << "| " << name << " | " << batch << " | " << std::scientific << std::setprecision(1) << err << std::defaultfloat << " | "
              << fmt(cpu_ips) << " | " << fmt(gpu_ips) << " | " << fmt(gpu_ips / cpu_ips) << "× | " << fmt(cpu_cal)
              << " | " << fmt(gpu_cal) << " | " << fmt(gpu_cal / cpu_cal) << "× | " << plan.grams.size() << " | "
              << fallback_nodes << (fallback_ops.empty() ? "" : " (" + fallback_ops + ")") << calib_note << " |\n";
    return err <= tol ? 0 : 1;
  } catch (const std::exception& e) {
    std::cout << "| " << name << " | | error: " << e.what() << " | | | | | | | | |\n";
    return 1;
  }
}
