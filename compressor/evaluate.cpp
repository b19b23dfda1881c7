#include "compressor/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

#include "engine/calib_data.h"
#include "engine/executor.h"
#include "engine/npy.h"

namespace oc {
namespace {

struct Accum {
  double dot = 0, aa = 0, bb = 0, err = 0, max_abs = 0;
  int64_t rows = 0, agree = 0;
};

int64_t argmax_row(const float* p, int64_t n) {
  return static_cast<int64_t>(std::max_element(p, p + n) - p);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

EvaluateResult evaluate_models(const Model& reference, const Model& candidate, const EvaluateOptions& opt) {
  auto names = [](const std::vector<ValueInfo>& vs) {
    std::vector<std::string> n;
    for (const auto& v : vs) n.push_back(v.name);
    return n;
  };
  if (names(reference.graph.outputs) != names(candidate.graph.outputs))
    throw InvalidArgument("the two models have different outputs; evaluate compares models with the same interface");
  CalibrationDataOptions dopt;
  dopt.batch_size = opt.batch_size;
  dopt.max_samples = opt.max_samples;
  dopt.shapes = opt.shapes;
  dopt.image = opt.image;
  dopt.skip_bad_samples = opt.skip_bad_samples;
  CalibrationSource data(opt.data_spec, reference, dopt);
  std::vector<int64_t> labels;
  std::string labels_from;
  if (opt.labels_path.empty() && !data.labels().empty()) {
    labels = data.labels();
    labels_from = "class folders";
  } else if (!opt.labels_path.empty()) {
    labels_from = "labels file";
    labels = read_npy(opt.labels_path).to_int64();
    if (static_cast<int64_t>(labels.size()) < data.num_samples())
      throw InvalidArgument("labels file has " + std::to_string(labels.size()) + " labels for " +
                            std::to_string(data.num_samples()) + " samples");
  }
  ExecutorOptions eo;
  eo.num_threads = opt.threads;
  Executor ref_exec(reference, eo), cand_exec(candidate, eo);
  std::map<std::string, Accum> acc;
  std::vector<double> t_ref, t_cand;
  int64_t seen = 0, correct_ref = 0, correct_cand = 0, labelled = 0;
  std::map<std::string, Tensor> batch;
  while (data.next(batch)) {
    auto t0 = std::chrono::steady_clock::now();
    auto out_ref = ref_exec.run(batch);
    auto t1 = std::chrono::steady_clock::now();
    auto out_cand = cand_exec.run(batch);
    auto t2 = std::chrono::steady_clock::now();
    t_ref.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    t_cand.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    const int64_t n = data.last_batch_samples();
    const std::vector<int64_t>& ids = data.last_batch_ids();
    bool first = true;
    for (const auto& ov : reference.graph.outputs) {
      const Tensor& a = out_ref.at(ov.name);
      const Tensor& b = out_cand.at(ov.name);
      if (a.dims != b.dims)
        throw InvalidArgument("output '" + ov.name + "' has shape " + shape_str(b.dims) + " in the candidate but " +
                              shape_str(a.dims) + " in the reference");
      if (!dtype_is_float(a.dtype)) { first = false; continue; }
      auto fa = a.to_float(), fb = b.to_float();
      Accum& s = acc[ov.name];
      for (size_t i = 0; i < fa.size(); ++i) {
        double x = fa[i], y = fb[i];
        s.dot += x * y;
        s.aa += x * x;
        s.bb += y * y;
        s.err += (x - y) * (x - y);
        s.max_abs = std::max(s.max_abs, std::fabs(x - y));
      }
      const int64_t classes = a.dims.empty() ? 0 : a.dims.back();
      if (a.dims.size() >= 2 && classes > 1) {
        const int64_t rows = static_cast<int64_t>(fa.size()) / classes;
        for (int64_t r = 0; r < rows; ++r) {
          int64_t ia = argmax_row(fa.data() + r * classes, classes), ib = argmax_row(fb.data() + r * classes, classes);
          s.agree += ia == ib;
          if (first && !labels.empty() && a.dims.size() == 2 && r < n) {
            const int64_t label = labels[static_cast<size_t>(ids[static_cast<size_t>(r)])];
            correct_ref += ia == label;
            correct_cand += ib == label;
            ++labelled;
          }
        }
        s.rows += rows;
      }
      first = false;
    }
    seen += n;
    if (opt.progress) opt.progress(seen, data.num_samples());
  }
  EvaluateResult res;
  res.samples = seen;
  res.skipped_samples = data.skipped_samples();
  res.labels_from = labels_from;
  for (const auto& [name, s] : acc) {
    OutputFidelity f;
    f.cosine = (s.aa > 0 && s.bb > 0) ? s.dot / std::sqrt(s.aa * s.bb) : (s.aa == s.bb ? 1.0 : 0.0);
    f.sqnr_db = s.err > 0 ? 10 * std::log10(s.aa / s.err) : 200.0;  // identical outputs: report 200 dB
    f.max_abs = s.max_abs;
    f.rows = s.rows;
    f.top1_agreement = s.rows ? static_cast<double>(s.agree) / static_cast<double>(s.rows) : 0;
    res.outputs[name] = f;
  }
  if (labelled) {
    res.accuracy_reference = static_cast<double>(correct_ref) / static_cast<double>(labelled);
    res.accuracy_candidate = static_cast<double>(correct_cand) / static_cast<double>(labelled);
  } else if (!labels.empty()) {
    throw InvalidArgument("labels were given but the first output is not [samples, classes]");
  }
  res.latency_reference_ms = median(t_ref);
  res.latency_candidate_ms = median(t_cand);
  return res;
}

nlohmann::json fidelity_json(const EvaluateResult& r) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, f] : r.outputs) {
    j[name] = {{"cosine", f.cosine}, {"sqnr_db", f.sqnr_db}, {"max_abs", f.max_abs}};
    if (f.rows) j[name]["top1_agreement"] = f.top1_agreement;
  }
  return j;
}

std::string evaluate_text(const EvaluateResult& r) {
  std::ostringstream o;
  char buf[256];
  o << "| output | cosine | SQNR dB | max abs err | top-1 agreement |\n|---|---:|---:|---:|---:|\n";
  for (const auto& [name, f] : r.outputs) {
    std::snprintf(buf, sizeof buf, "| %s | %.6f | %.2f | %.4g | %s |\n", name.c_str(), f.cosine, f.sqnr_db, f.max_abs,
                  f.rows ? (std::to_string(100.0 * f.top1_agreement).substr(0, 5) + "%").c_str() : "-");
    o << buf;
  }
  if (r.accuracy_reference) {
    std::snprintf(buf, sizeof buf, "\naccuracy: reference %.2f%%, candidate %.2f%% (%+.2f points)\n", 100 * *r.accuracy_reference,
                  100 * *r.accuracy_candidate, 100 * (*r.accuracy_candidate - *r.accuracy_reference));
    o << buf;
    if (!r.labels_from.empty()) o << "(labels from the " << r.labels_from << ")\n";
  }
  if (r.skipped_samples)
    o << r.skipped_samples << " samples with NaN/Inf skipped\n";
  std::snprintf(buf, sizeof buf, "latency per batch on our executor: reference %.2f ms, candidate %.2f ms (%lld samples)\n",
                r.latency_reference_ms, r.latency_candidate_ms, static_cast<long long>(r.samples));
  o << buf;
  return o.str();
}

}  // namespace oc
