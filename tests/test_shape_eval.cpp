// Shape inference that evaluates shape computations on the CPU kernels (engine/shape_eval.h), and
// the shapes the CLI takes from calibration data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/npy.h"
#include "engine/shape_eval.h"
#include "graph/cost.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/shape_inference.h"
#include "prune/prune.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// tf2onnx's resize pattern on an NHWC input x [1, 8, 8, 4]: Transpose to NCHW, then Resize to sizes
// computed from Shape in float (Cast -> Mul by 2.5 -> Floor -> Cast back), then two Convs (the first
// one's channels are prunable) -> y [1, 6, 20, 20].
Model computed_resize_model() {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {1, 8, 8, 4}));
  g.add_initializer(Tensor::from_int64("s0", {1}, {0}));
  g.add_initializer(Tensor::from_int64("s2", {1}, {2}));
  g.add_initializer(Tensor::from_int64("s4", {1}, {4}));
  g.add_initializer(Tensor::from_float("factor", {}, {2.5f}));
  g.add_initializer(random_tensor("w1", {8, 4, 3, 3}, 1, -0.3f, 0.3f));
  g.add_initializer(random_tensor("w2", {6, 8, 3, 3}, 2, -0.3f, 0.3f));
  Node t = make_node("Transpose", {"x"}, {"xt"});
  t.set_attr_ints("perm", {0, 3, 1, 2});
  g.add_node(t);
  g.add_node(make_node("Shape", {"xt"}, {"shp"}));
  g.add_node(make_node("Slice", {"shp", "s0", "s2"}, {"nc"}));
  g.add_node(make_node("Slice", {"shp", "s2", "s4"}, {"hw"}));
  Node tf = make_node("Cast", {"hw"}, {"hwf"});
  tf.set_attr_int("to", static_cast<int64_t>(DType::Float));
  g.add_node(tf);
  g.add_node(make_node("Mul", {"hwf", "factor"}, {"hws"}));
  g.add_node(make_node("Floor", {"hws"}, {"hwfl"}));
  Node ti = make_node("Cast", {"hwfl"}, {"hwi"});
  ti.set_attr_int("to", static_cast<int64_t>(DType::Int64));
  g.add_node(ti);
  Node cat = make_node("Concat", {"nc", "hwi"}, {"sizes"});
  cat.set_attr_int("axis", 0);
  g.add_node(cat);
  Node rs = make_node("Resize", {"xt", "", "", "sizes"}, {"up"});
  rs.set_attr_string("mode", "nearest");
  g.add_node(rs);
  Node c1 = make_node("Conv", {"up", "w1"}, {"c1"});
  c1.set_attr_ints("pads", {1, 1, 1, 1});
  g.add_node(c1);
  g.add_node(make_node("Relu", {"c1"}, {"r1"}));
  Node c2 = make_node("Conv", {"r1", "w2"}, {"y"});
  c2.set_attr_ints("pads", {1, 1, 1, 1});
  g.add_node(c2);
  ValueInfo y;
  y.name = "y";
  y.dtype = DType::Float;
  g.outputs.push_back(y);
  return m;
}

constexpr double kTolerance = kPruneTargetTolerance;

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

constexpr int64_t kResizeMacs = 8 * 4 * 9 * 20 * 20 + 6 * 8 * 9 * 20 * 20;

}  // namespace

TEST_CASE("shape inference evaluates float shape arithmetic with the CPU kernels", "[shape][shape_eval]") {
  Model m = computed_resize_model();
  auto in = std::map<std::string, Tensor>{{"x", random_tensor("x", {1, 8, 8, 4}, 3)}};
  auto ours = agree_with_ort(m, in);  // the model itself is valid and our executor runs it as ORT does
  REQUIRE(ours.at("y").dims == std::vector<int64_t>{1, 6, 20, 20});

  SECTION("the symbolic rules alone leave the Resize (and both Convs' MACs) unknown") {
    Model c = m;
    ShapeInferenceResult r = infer_shapes(c);
    CHECK(r.evaluated == 0);
    CHECK_FALSE(r.complete());
    CHECK_FALSE(count_costs(c).macs_complete);
  }
  SECTION("with the kernel evaluator every value is concrete and MACs are counted") {
    Model c = m;
    ShapeInferenceResult r = infer_shapes_evaluated(c);
    CHECK(r.evaluated >= 2);  // the float Mul and Floor (the Casts and Concat fold symbolically)
    INFO("first unresolved: " << (r.unresolved.empty() ? "" : r.unresolved[0].first + ": " + r.unresolved[0].second));
    CHECK(r.complete());
    REQUIRE(r.folded.count("sizes"));
    CHECK(r.folded.at("sizes") == std::vector<int64_t>{1, 4, 20, 20});
    const ValueInfo* up = c.graph.find_value_info("up");
    REQUIRE(up);
    CHECK(shape_values(up->shape) == std::vector<int64_t>{1, 4, 20, 20});
    CHECK(shape_values(c.graph.outputs[0].shape) == ours.at("y").dims);
    CostReport cost = count_costs(c);
    CHECK(cost.macs_complete);
    CHECK(cost.macs == kResizeMacs);
  }
  SECTION("random operators are never folded") {
    Model c = m;
    Node rn = make_node("RandomUniformLike", {"hwf"}, {"noise"});
    c.graph.add_node(rn);
    c.graph.add_node(make_node("Add", {"noise", "hwf"}, {"noisy"}));
    ShapeInferenceResult r = infer_shapes_evaluated(c);
    CHECK_FALSE(r.folded.count("noise"));
  }
}

TEST_CASE("inspect and prune --target-macs work on a model whose Resize sizes are computed", "[shape_eval][cli]") {
  fs::path dir = temp_dir("shape_eval_cli");
  fs::path model = dir / "resize.onnx";
  save_model(computed_resize_model(), model);
  CliResult ins = run_cli({"inspect", model.string(), "--json"});
  REQUIRE(ins.rc == 0);
  auto j = nlohmann::json::parse(ins.out);
  CHECK(j["macs"].get<int64_t>() == kResizeMacs);
  CliResult pr = run_cli({"prune", model.string(), "-o", (dir / "p.onnx").string(), "--target-macs", "0.75", "--round-to", "2"});
  INFO(pr.out);
  REQUIRE(pr.rc == 0);
  Model p = load_model(dir / "p.onnx");
  normalize(p);
  infer_shapes_evaluated(p);
  CostReport c = count_costs(p);
  REQUIRE(c.macs_complete);
  CHECK(static_cast<double>(c.macs) / kResizeMacs <= 0.75 + 1e-9);
  auto in = std::map<std::string, Tensor>{{"x", random_tensor("x", {1, 8, 8, 4}, 4)}};
  auto out = agree_with_ort(p, in);
  CHECK(out.at("y").dims == std::vector<int64_t>{1, 6, 20, 20});
}

// ---- shapes from calibration data (ppocr2_cls: x [N, 3, H, W]) ----

TEST_CASE("prune --target-macs takes symbolic input dims from the calibration data", "[shape_eval][cli][calib]") {
  const std::string cls = corpus_model("ppocr2_cls.onnx").string();
  fs::path dir = temp_dir("shapes_from_data");
  fs::create_directories(dir / "mixed");
  write_npy(dir / "a.npy", random_tensor("x", {3, 3, 48, 192}, 1, 0.f, 1.f));
  write_npy(dir / "mixed" / "b.npy", random_tensor("x", {2, 3, 48, 160}, 2, 0.f, 1.f));
  fs::copy_file(dir / "a.npy", dir / "mixed" / "a.npy");
  write_npy(dir / "bad.npy", random_tensor("x", {2, 4, 48, 160}, 3, 0.f, 1.f));
  const std::string out = (dir / "p.onnx").string();

  SECTION("without data the error names the symbolic dims and the flag") {
    CliResult r = run_cli({"prune", cls, "-o", out, "--target-macs", "0.5"});
    CHECK(r.rc == 2);
    CHECK_THAT(r.out, Catch::Contains("input 'x' has symbolic dims p2o.DynamicDimension.0, p2o.DynamicDimension.1"));
    CHECK_THAT(r.out, Catch::Contains("--input-shape x="));
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(out));
  }
  SECTION("with data the MACs are counted at the data's shape (batch 1)") {
    fs::path report = dir / "r.json";
    CliResult r = run_cli({"prune", cls, "-o", out, "--target-macs", "0.5", "--calib", (dir / "a.npy").string(),
                           "--report", report.string()});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    auto j = nlohmann::json::parse(read_text(report));
    const auto& t = j["steps"][0]["details"]["totals"];
    CHECK(t["macs_before"].get<int64_t>() == 16315376);  // inspect --input-shape x=1,3,48,192
    CHECK(j["steps"][0]["details"]["target"]["status"] == "met");
    CHECK(std::abs(t["macs_after"].get<double>() / t["macs_before"].get<double>() - 0.5) <= kTolerance);
  }
  SECTION("samples of different shapes: one line naming the input and both shapes") {
    CliResult r = run_cli({"prune", cls, "-o", out, "--target-macs", "0.5", "--calib", (dir / "mixed").string()});
    CHECK(r.rc == 2);
    CHECK_THAT(r.out, Catch::Contains("input 'x'") && Catch::Contains("[1,3,48,192]") && Catch::Contains("[1,3,48,160]") &&
                          Catch::Contains("--input-shape x=1,3,48,192"));
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(out));
    // Pruning by ratio needs no MACs: the mixed shapes calibrate in batches of their own.
    CHECK(run_cli({"prune", cls, "-o", out, "--ratio", "0.25", "--calib", (dir / "mixed").string()}).rc == 0);
  }
  SECTION("data that disagrees with a fixed dim: one line naming the input and the dims") {
    CliResult r = run_cli({"prune", cls, "-o", out, "--target-macs", "0.5", "--calib", (dir / "bad.npy").string()});
    CHECK(r.rc == 2);
    CHECK_THAT(r.out, Catch::Contains("'x'") && Catch::Contains("[2,4,48,160]"));
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  }
}

// ---- targets: met within kPruneTargetTolerance, or a one-line error with the reachable bound ----

TEST_CASE("prune targets are met within the tolerance, or fail naming the reachable bound", "[prune][cli][target]") {
  const std::string fc = source_path("models/fashion_cnn/model.onnx").string();
  fs::path dir = temp_dir("prune_targets");
  const std::string out = (dir / "p.onnx").string();
  fs::path report = dir / "r.json";
  auto target_of = [&]() { return nlohmann::json::parse(read_text(report))["steps"][0]["details"]["target"]; };

  SECTION("0.7 at --round-to 8 lands within 0.01 of 0.7 (was 0.645)") {
    CliResult r = run_cli({"prune", fc, "-o", out, "--target-macs", "0.7", "--criterion", "l1", "--report", report.string()});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    auto t = target_of();
    CHECK(t["status"] == "met");
    CHECK(t["tolerance"].get<double>() == kTolerance);
    CHECK(t["reached"].get<double>() <= 0.7 + kTolerance);
    CHECK(t["reached"].get<double>() >= 0.7 - kTolerance);
    CHECK_THAT(r.out, !Catch::Contains("note: target"));
  }
  SECTION("an unreachable target exits 1 with one line: the bound and the locked groups by reason") {
    CliResult r = run_cli({"prune", fc, "-o", out, "--target-macs", "0.02", "--criterion", "l1"});
    CHECK(r.rc == 1);
    CHECK_THAT(r.out, Catch::Contains("reachable 0.05") && Catch::Contains("of MACs (target 0.020)") &&
                          Catch::Contains("channel groups locked — reaches graph output (1)") &&
                          Catch::Contains("--max-layer-ratio 0.9") && Catch::Contains("--best-effort"));
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(out));
  }
  SECTION("--best-effort writes the reachable model and says so in the summary and the report") {
    CliResult r = run_cli({"prune", fc, "-o", out, "--target-macs", "0.02", "--criterion", "l1", "--best-effort",
                           "--report", report.string()});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK(fs::exists(out));
    CHECK_THAT(r.out, Catch::Contains("note: best effort: reachable 0.05"));
    auto t = target_of();
    CHECK(t["status"] == "missed");
    CHECK(t["best_effort"] == true);
    CHECK(t["reached"].get<double>() == Approx(t["reachable"].get<double>()));
    CHECK(t["reached"].get<double>() > 0.02 + kTolerance);
  }
  SECTION("a target between --round-to steps is overshot, and the summary says so") {
    CliResult r = run_cli({"prune", fc, "-o", out, "--target-macs", "0.5", "--criterion", "l1", "--report", report.string()});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    auto t = target_of();
    double reached = t["reached"].get<double>();
    CHECK(reached <= 0.5 + kTolerance);  // never above the window
    if (reached < 0.5 - kTolerance) {
      CHECK(t["status"] == "overshot");
      CHECK_THAT(r.out, Catch::Contains("note: target 0.500 of MACs overshot"));
    } else {
      CHECK(t["status"] == "met");
    }
    // --round-to 1 has steps fine enough to meet it.
    REQUIRE(run_cli({"prune", fc, "-o", out, "--target-macs", "0.5", "--criterion", "l1", "--round-to", "1", "--report",
                     report.string()}).rc == 0);
    CHECK(target_of()["status"] == "met");
  }
  SECTION("targets of 0 or at least 1 are one-line errors") {
    for (const char* bad : {"0", "1", "1.5"}) {
      for (const char* flag : {"--target-macs", "--target-params"}) {
        CliResult r = run_cli({"prune", fc, "-o", out, flag, bad});
        INFO(flag << " " << bad << ": " << r.out);
        CHECK(r.rc == 2);
        CHECK_THAT(r.out, Catch::Contains("must be a fraction in (0, 1)"));
        CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
      }
    }
    CHECK_FALSE(fs::exists(out));
  }
}

