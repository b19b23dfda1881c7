// HTML report content: accuracy before/after beside the fidelity table, the deployment check and
// the per-layer error of a real quantization run; compare --html shows accuracy and latency with
// their change from each run's input model.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include "compressor/compare.h"
#include "compressor/pipeline.h"
#include "compressor/report.h"
#include "engine/npy.h"
#include "support.h"

using namespace oc;

namespace {

std::string between(const std::string& s, const std::string& a, const std::string& b) {
  const size_t i = s.find(a);
  REQUIRE(i != std::string::npos);
  const size_t j = s.find(b, i + a.size());
  REQUIRE(j != std::string::npos);
  return s.substr(i, j - i);
}

char pct_buf[32];
const char* pct(double v) {
  std::snprintf(pct_buf, sizeof pct_buf, "%.2f%%", 100 * v);
  return pct_buf;
}

}  // namespace

TEST_CASE("HTML report shows accuracy before/after, the deployment check and per-layer error", "[report]") {
  auto dir = test::temp_dir("html_acc");
  const Tensor x = read_npy(test::source_path("models/fashion_cnn/test_x.npy"));
  const Tensor y = read_npy(test::source_path("models/fashion_cnn/test_y.npy"));
  const int64_t n = 100;
  write_npy(dir / "x.npy", test::first_rows(x, n));
  write_npy(dir / "y.npy", test::first_rows(y, n));
  PipelineOptions opt;
  opt.calib_spec = test::source_path("models/fashion_cnn/calib.npy").string();
  opt.calib_samples = 32;
  opt.eval_spec = (dir / "x.npy").string();
  opt.labels = (dir / "y.npy").string();
  opt.eval_samples = n;
  opt.threads = 1;  // steady on a loaded CI machine
  Report r = compress_file(test::source_path("models/fashion_cnn/model.onnx"), dir / "q.onnx", load_recipe("int8"), opt);
  REQUIRE(r.accuracy.contains("reference"));
  const std::string h = report_html(r);
  // Accuracy: the table's numbers are the report's, and it sits right before the fidelity table.
  const std::string acc = between(h, "<h2>Accuracy</h2>", "</table>");
  const double a = r.accuracy["reference"].get<double>(), b = r.accuracy["candidate"].get<double>();
  CHECK_THAT(acc, Catch::Contains(std::string("<td>") + pct(a) + "</td>"));
  CHECK_THAT(acc, Catch::Contains(std::string("<td>") + pct(b) + "</td>"));
  char change[32];
  std::snprintf(change, sizeof change, "%s%.2f pt", b >= a ? "+" : "", 100 * (b - a));
  CHECK_THAT(acc, Catch::Contains(change));
  CHECK(h.find("<h2>Accuracy</h2>") < h.find("<h2>Fidelity</h2>"));
  CHECK(h.find("<h2>Fidelity</h2>") < h.find("<h2>Deployment check</h2>"));
  CHECK_THAT(h, Catch::Contains("labels from the labels file"));
  // Deployment check with the report's counts.
  const std::string dep = between(h, "<h2>Deployment check</h2>", "</p>");
  CHECK_THAT(dep, Catch::Contains("<b>" + std::to_string(r.deployment["integer_layers"].get<int>()) + " of " +
                                  std::to_string(r.deployment["compute_layers"].get<int>()) + "</b>"));
  // Per-layer error: one row per quantized layer with the step's measured SQNR.
  const std::string err = between(h, "<h2>Per-layer error</h2>", "</table>");
  const auto& layers = r.steps.at(0)["details"]["layers"];
  REQUIRE(layers.size() > 5);
  for (const auto& l : layers) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "<td>%.1f</td></tr>", l["sqnr_db"].get<double>());
    CHECK_THAT(err, Catch::Contains("<tr><td>" + l["node"].get<std::string>() + "</td><td>quantize</td><td>" +
                                    std::to_string(l["bits"].get<int>()) + "</td>"));
    CHECK_THAT(err, Catch::Contains(buf));
  }
  CHECK_THAT(h, Catch::Contains("Weight SQNR per layer"));
  // Without labels or a quantize step there is nothing to show, and nothing is made up.
  Report bare;
  const std::string hb = report_html(bare);
  CHECK(hb.find("<h2>Accuracy</h2>") == std::string::npos);
  CHECK(hb.find("<h2>Per-layer error</h2>") == std::string::npos);
}

TEST_CASE("compare --html shows accuracy and latency with their change from the input model", "[report][cli]") {
  auto dir = test::temp_dir("html_cmp");
  auto make = [](double acc, double lat) {
    Report r;
    r.command = "compress";
    r.input = {"m.onnx", "/x/m.onnx", "same", 1000};
    r.output = {"out.onnx", "/x/out.onnx", "ff", 500};
    r.accuracy = {{"reference", 0.9}, {"candidate", acc}};
    r.latency_ms = {{"reference", 2.0}, {"candidate", lat}};
    return r;
  };
  write_report(make(0.85, 1.0), dir / "fast.json");
  write_report(make(0.89, 1.5), dir / "good.json");
  auto t = test::run_cli({"compare", (dir / "fast.json").string(), (dir / "good.json").string(), "--html", (dir / "c.html").string()});
  REQUIRE(t.rc == 0);
  std::ifstream f(dir / "c.html");
  const std::string html((std::istreambuf_iterator<char>(f)), {});
  CHECK_THAT(html, Catch::Contains("<th>accuracy &uarr;</th>"));
  CHECK_THAT(html, Catch::Contains("<th>latency ms &darr;</th>"));
  const std::string fast = between(html, "<tr><td>fast</td>", "</tr>"), good = between(html, "<tr><td>good</td>", "</tr>");
  CHECK_THAT(fast, Catch::Contains("<td>85.00% (-5.00 pt)</td>"));
  CHECK_THAT(fast, Catch::Contains("<td class='best'>1.00 (0.50x of 2.00)</td>"));
  CHECK_THAT(good, Catch::Contains("<td class='best'>89.00% (-1.00 pt)</td>"));
  CHECK_THAT(good, Catch::Contains("<td>1.50 (0.75x of 2.00)</td>"));
}
