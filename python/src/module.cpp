// onnx_compress._onnx_compress: the library's entry points for Python (thin; onnx_compress/__init__.py
// turns arrays into files and options into the dicts read here).
//
// Every call that works runs on a worker thread with the GIL released; the calling thread waits,
// checking for signals every 50 ms, so Ctrl-C (KeyboardInterrupt) sets the library's stop flag and
// the call ends with KeyboardInterrupt once the library has stopped — outputs are written only
// after the work is done (atomically), so nothing partial is left. A progress callable runs with
// the GIL held; an exception it raises stops the work and is re-raised.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "compressor/compare.h"
#include "compressor/evaluate.h"
#include "compressor/options.h"
#include "compressor/pipeline.h"
#include "compressor/report.h"
#include "graph/errors.h"
#include "graph/file_io.h"
#include "graph/inspect.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "quantize/deploy_check.h"

namespace py = pybind11;
using nlohmann::json;

namespace {

py::object to_py(const json& j) { return py::module_::import("json").attr("loads")(j.dump()); }
json from_py(const py::handle& o) {
  return json::parse(py::module_::import("json").attr("dumps")(o).cast<std::string>());
}

// A stop flag a Python caller can set from any thread (or a signal handler).
struct StopFlag {
  std::atomic<bool> flag{false};
};

// Runs `work` on a worker thread with the GIL released. Ctrl-C in the waiting thread, a stop flag
// or an exception from a callback stop the work through `cancel`.
struct Runner {
  std::atomic<bool> cancel{false};
  StopFlag* user_stop = nullptr;
  std::optional<py::error_already_set> callback_error;  // set with the GIL held

  bool stopped() const { return cancel.load() || (user_stop && user_stop->flag.load()); }

  template <class F>
  auto run(F work) -> decltype(work()) {
    using R = decltype(work());
    std::optional<R> result;
    std::exception_ptr err;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::optional<py::error_already_set> interrupt;
    {
      py::gil_scoped_release release;
      std::thread t([&] {
        try {
          result.emplace(work());
        } catch (...) {
          err = std::current_exception();
        }
        std::lock_guard<std::mutex> lock(mu);
        done = true;
        cv.notify_all();
      });
      std::unique_lock<std::mutex> lock(mu);
      while (!done) {
        cv.wait_for(lock, std::chrono::milliseconds(50));
        if (done || interrupt) continue;
        lock.unlock();
        {
          py::gil_scoped_acquire acquire;
          if (PyErr_CheckSignals() != 0) {
            interrupt.emplace();  // takes the pending KeyboardInterrupt
            cancel = true;
          }
          if (user_stop && user_stop->flag.load()) cancel = true;
        }
        lock.lock();
      }
      lock.unlock();
      t.join();
    }
    if (interrupt) throw *interrupt;
    if (callback_error) throw *callback_error;
    if (err) std::rethrow_exception(err);
    return std::move(*result);
  }

  // Wraps a Python progress callable; it receives a dict and runs with the GIL held.
  std::function<void(const json&)> progress(const py::object& cb) {
    if (cb.is_none()) return {};
    return [this, cb](const json& p) {
      if (stopped()) return;
      py::gil_scoped_acquire acquire;
      try {
        cb(to_py(p));
      } catch (py::error_already_set& e) {
        callback_error.emplace(std::move(e));
        cancel = true;
      }
    };
  }
};

template <class T>
T get(const json& o, const char* key, T fallback) {
  return o.contains(key) && !o[key].is_null() ? o[key].get<T>() : fallback;
}

std::string join_floats(const json& v) {
  if (v.is_null()) return "";
  if (v.is_number()) return v.dump();
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x.dump();
  return s;
}

oc::ImageOptions image_options(const json& o) {
  return oc::parse_image_options(join_floats(o.value("mean", json())), join_floats(o.value("std", json())),
                                 get<bool>(o, "bgr", false), get<std::string>(o, "resize", ""));
}

std::map<std::string, std::vector<int64_t>> shapes(const json& o) {
  return get<std::map<std::string, std::vector<int64_t>>>(o, "input_shapes", {});
}

oc::Recipe recipe_of(const py::object& r) {
  if (py::isinstance<py::str>(r)) return oc::load_recipe(r.cast<std::string>());
  if (py::isinstance<py::dict>(r)) return oc::parse_recipe(from_py(r), "recipe");
  throw oc::InvalidArgument("recipe must be a shipped recipe name, a recipe file path or a dict");
}

py::object compress(const std::string& input, const std::string& output, const py::object& recipe_obj,
                    const py::dict& options, const py::object& progress, StopFlag* stop) {
  const json o = from_py(options);
  oc::Recipe recipe = recipe_of(recipe_obj);
  oc::PipelineOptions opt;
  opt.calib_spec = get<std::string>(o, "calib", "");
  opt.calib_samples = get<int64_t>(o, "calib_samples", 0);
  opt.calib_batch = get<int64_t>(o, "batch_size", 8);
  opt.eval_spec = get<std::string>(o, "eval", "");
  opt.eval_on_calib = get<bool>(o, "eval_on_calib", true);
  opt.eval_samples = get<int64_t>(o, "eval_samples", 64);
  opt.labels = get<std::string>(o, "labels", "");
  opt.input_shapes = shapes(o);
  opt.threads = get<int>(o, "threads", 0);
  opt.device = get<std::string>(o, "device", "cpu");
  opt.external_data = get<bool>(o, "external_data", false);
  opt.image = image_options(o);
  opt.skip_bad_samples = get<bool>(o, "skip_bad_samples", false);
  const std::string report = get<std::string>(o, "report", ""), html = get<std::string>(o, "html", "");
  Runner runner;
  runner.user_stop = stop;
  opt.cancel = &runner.cancel;
  auto cb = runner.progress(progress);
  opt.progress = [cb, &runner](const oc::PipelineProgress& p) {
    if (runner.stopped()) runner.cancel = true;  // the pipeline checks `cancel` right after
    if (cb) cb({{"stage", p.stage}, {"step", p.step}, {"steps", p.steps}, {"done", p.done}, {"total", p.total}});
  };
  json j = runner.run([&] {
    oc::Report r = oc::compress_file(input, output, recipe, opt);
    if (!recipe.name.empty()) r.settings["recipe_name"] = recipe.name;
    if (!report.empty()) oc::write_report(r, report);
    if (!html.empty()) oc::write_file_atomic(html, oc::report_html(r));
    return oc::report_to_json(r);
  });
  return to_py(j);
}

py::object plan(const std::string& input, const py::object& recipe_obj, const py::dict& options) {
  const json o = from_py(options);
  oc::Recipe recipe = recipe_of(recipe_obj);
  oc::PipelineOptions opt;
  opt.input_shapes = shapes(o);
  Runner runner;
  json j = runner.run([&] {
    oc::Model m = oc::load_model(input);
    oc::normalize(m);
    return oc::plan_recipe(m, recipe, opt);
  });
  return to_py(j);
}

py::object inspect(const std::string& path, const py::dict& options) {
  const json o = from_py(options);
  const bool deploy = get<bool>(o, "deploy", false);
  Runner runner;
  json j = runner.run([&] {
    json s = oc::summary_to_json(oc::inspect_model(path, shapes(o)));
    if (deploy) {
      oc::Model m = oc::load_model(path);
      oc::normalize(m);
      s["deployment"] = oc::quant::check_deployment(m).to_json();
    }
    return s;
  });
  return to_py(j);
}

py::object evaluate(const std::string& reference, const std::string& candidate, const py::dict& options,
                    const py::object& progress, StopFlag* stop) {
  const json o = from_py(options);
  oc::EvaluateOptions eo;
  eo.data_spec = get<std::string>(o, "data", "");
  eo.labels_path = get<std::string>(o, "labels", "");
  eo.batch_size = get<int64_t>(o, "batch_size", 16);
  eo.max_samples = get<int64_t>(o, "max_samples", 0);
  eo.threads = get<int>(o, "threads", 0);
  eo.shapes = shapes(o);
  eo.image = image_options(o);
  eo.skip_bad_samples = get<bool>(o, "skip_bad_samples", false);
  Runner runner;
  runner.user_stop = stop;
  auto cb = runner.progress(progress);
  eo.progress = [cb, &runner](int64_t done, int64_t total) {
    if (runner.stopped()) throw oc::Cancelled("cancelled");
    if (cb) cb({{"stage", "evaluate"}, {"done", done}, {"total", total}});
  };
  json j = runner.run([&] {
    oc::Model a = oc::load_model(reference), b = oc::load_model(candidate);
    oc::normalize(a);
    oc::normalize(b);
    oc::EvaluateResult r = oc::evaluate_models(a, b, eo);
    json out = {{"fidelity", oc::fidelity_json(r)}, {"samples", r.samples},
                {"latency_ms", {{"reference", r.latency_reference_ms}, {"candidate", r.latency_candidate_ms}}}};
    if (r.accuracy_reference)
      out["accuracy"] = {{"reference", *r.accuracy_reference}, {"candidate", *r.accuracy_candidate}, {"labels_from", r.labels_from}};
    if (eo.skip_bad_samples) out["skipped_samples"] = r.skipped_samples;
    return out;
  });
  return to_py(j);
}

py::object compare(const py::list& reports, const py::object& labels, const py::object& html) {
  std::vector<oc::ComparedRun> runs;
  std::vector<std::string> names;
  if (!labels.is_none()) names = labels.cast<std::vector<std::string>>();
  for (size_t i = 0; i < reports.size(); ++i) {
    py::handle r = reports[i];
    oc::ComparedRun run;
    if (py::isinstance<py::dict>(r)) {
      run.report = oc::report_from_json(from_py(r), "report " + std::to_string(i + 1));
      run.label = run.report.output.name.empty() ? "run " + std::to_string(i + 1) : run.report.output.name;
    } else {
      const std::string p = py::str(r).cast<std::string>();
      run.report = oc::read_report(p);
      run.label = std::filesystem::path(p).stem().string();
    }
    if (i < names.size()) run.label = names[i];
    runs.push_back(std::move(run));
  }
  const std::string html_path = html.is_none() ? "" : py::str(html).cast<std::string>();
  Runner runner;
  json j = runner.run([&] {
    oc::Comparison c = oc::compare_reports(runs);
    if (!html_path.empty()) oc::write_file_atomic(html_path, oc::comparison_html(c));
    json out = oc::comparison_json(c);
    out["text"] = oc::comparison_text(c);
    return out;
  });
  return to_py(j);
}

}  // namespace

PYBIND11_MODULE(_onnx_compress, m) {
  m.doc() = "onnx-compress: structured pruning and mixed-bit quantization of ONNX models (C++ core)";
  m.attr("__version__") = OC_VERSION;
  auto error = py::register_exception<oc::Error>(m, "Error", PyExc_RuntimeError);
  py::register_exception<oc::InvalidArgument>(m, "InvalidArgument", error.ptr());
  py::register_exception<oc::LoadError>(m, "LoadError", error.ptr());
  py::register_exception<oc::UnsupportedError>(m, "UnsupportedError", error.ptr());
  py::register_exception<oc::SaveError>(m, "SaveError", error.ptr());
  py::register_exception<oc::Cancelled>(m, "Cancelled", error.ptr());
  py::class_<StopFlag>(m, "StopFlag", "A flag that stops a running call from any thread: set() it; the call raises Cancelled.")
      .def(py::init<>())
      .def("set", [](StopFlag& s) { s.flag = true; })
      .def("clear", [](StopFlag& s) { s.flag = false; })
      .def("is_set", [](const StopFlag& s) { return s.flag.load(); });
  m.def("compress", &compress, py::arg("input"), py::arg("output"), py::arg("recipe"), py::arg("options"),
        py::arg("progress") = py::none(), py::arg("stop") = nullptr);
  m.def("plan", &plan, py::arg("input"), py::arg("recipe"), py::arg("options"));
  m.def("inspect", &inspect, py::arg("path"), py::arg("options"));
  m.def("evaluate", &evaluate, py::arg("reference"), py::arg("candidate"), py::arg("options"),
        py::arg("progress") = py::none(), py::arg("stop") = nullptr);
  m.def("compare", &compare, py::arg("reports"), py::arg("labels") = py::none(), py::arg("html") = py::none());
  m.def("shipped_recipes", &oc::shipped_recipes);
}
