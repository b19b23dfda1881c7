// The pipeline: recipes, compress, dry run, reports, cancellation, concurrent use as a library.
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include "compressor/pipeline.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

TEST_CASE("compress runs a shipped recipe end to end and reports what it cost", "[pipeline][cli][ort]") {
  fs::path dir = temp_dir("compress");
  fs::path model = corpus_model("ppocr2_cls.onnx");
  auto r = run_cli({"compress", model.string(), "-o", (dir / "out.onnx").string(), "--recipe", "prune30-int8",
                    "--calib", "random:8:1", "--input-shape", "x=1,3,48,192", "--report", (dir / "r.json").string(),
                    "--html", (dir / "r.html").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("MACs"));
  Report rep = read_report(dir / "r.json");
  CHECK(rep.command == "compress");
  CHECK(rep.steps.size() == 2);
  CHECK(rep.after.macs < rep.before.macs * 0.8);
  CHECK(rep.after.macs > rep.before.macs * 0.5);
  CHECK(rep.after.file_bytes < rep.before.file_bytes / 2);
  bool any8 = false;
  for (const auto& l : rep.layers) any8 |= l.bits == 8;
  CHECK(any8);
  REQUIRE(rep.fidelity.contains("softmax_0.tmp_0"));
  CHECK(rep.fidelity["softmax_0.tmp_0"]["cosine"].get<double>() > 0.5);
  CHECK(rep.input.sha256.size() == 64);
  // The compressed model runs in ONNX Runtime with the original interface.
  Model out = load_model(dir / "out.onnx");
  auto in = random_inputs(out, 3, 1, {{"x", {1, 3, 48, 192}}});
  auto y = run_ort(dir / "out.onnx", in);
  CHECK(y.at("softmax_0.tmp_0").dims == std::vector<int64_t>{1, 2});
  std::ifstream h(dir / "r.html");
  std::string html((std::istreambuf_iterator<char>(h)), {});
  CHECK_THAT(html, Catch::Contains("Sparsity per layer"));
}

TEST_CASE("dry run predicts without writing and errors name the problem", "[pipeline][cli][errors]") {
  fs::path dir = temp_dir("dry");
  fs::path model = corpus_model("ppocr2_cls.onnx");
  auto dry = run_cli({"compress", model.string(), "--recipe", "prune30-obs-int8", "--dry-run", "--input-shape",
                      "x=1,3,48,192"});
  INFO(dry.out);
  REQUIRE(dry.rc == 0);
  CHECK_THAT(dry.out, Catch::Contains("predicted"));
  CHECK_THAT(dry.out, Catch::Contains("l2 scores"));  // says what it substituted for the calibration-based criterion
  auto nocal = run_cli({"compress", model.string(), "-o", (dir / "x.onnx").string(), "--recipe", "prune30-obs-int8"});
  CHECK(nocal.rc != 0);
  CHECK_THAT(nocal.out, Catch::Contains("--calib"));
  CHECK_FALSE(fs::exists(dir / "x.onnx"));
  std::ofstream(dir / "bad.json") << R"({"steps": [{"quantize": {"bitz": 4}}]})";
  auto bad = run_cli({"compress", model.string(), "-o", (dir / "y.onnx").string(), "--recipe", (dir / "bad.json").string()});
  CHECK(bad.rc == 2);
  CHECK_THAT(bad.out, Catch::Contains("bitz"));
  auto missing = run_cli({"compress", model.string(), "-o", (dir / "y.onnx").string(), "--recipe", "no-such-recipe"});
  CHECK(missing.rc == 2);
  CHECK_THAT(missing.out, Catch::Contains("int8"));  // lists the shipped recipes
}

TEST_CASE("library: cancellation stops the run and models compress concurrently", "[pipeline]") {
  Recipe recipe = parse_recipe(nlohmann::json::parse(
      R"({"name": "t", "steps": [{"prune": {"ratio": 0.25, "criterion": "obs", "round-to": 1}}, {"quantize": {"bits": 8}}]})"));
  PipelineOptions opt;
  opt.calib_spec = "random:8:2";
  std::atomic<bool> cancel{false};
  opt.cancel = &cancel;
  opt.progress = [&](const PipelineProgress& p) {
    if (p.stage.rfind("calibrate", 0) == 0 && p.done >= 1) cancel = true;
  };
  CHECK_THROWS_AS(run_pipeline(small_cnn(), recipe, opt), Cancelled);

  PipelineOptions plain;
  plain.calib_spec = "random:8:2";
  Model a = small_cnn(1), b = small_cnn(2);
  PipelineResult seq_a = run_pipeline(a, recipe, plain), seq_b = run_pipeline(b, recipe, plain);
  PipelineResult par_a, par_b;
  std::thread ta([&] { par_a = run_pipeline(a, recipe, plain); });
  std::thread tb([&] { par_b = run_pipeline(b, recipe, plain); });
  ta.join();
  tb.join();
  CHECK(serialize_model(par_a.model) == serialize_model(seq_a.model));
  CHECK(serialize_model(par_b.model) == serialize_model(seq_b.model));
  CHECK(seq_a.report.fidelity["y"]["cosine"].get<double>() > 0.9);
}

TEST_CASE("weights shared through Identity (torch exports) are pruned per user", "[pipeline][prune][ort]") {
  // Two convs whose equal biases the exporter stored once: conv2 reads Identity(conv1's bias).
  Model m = small_cnn();
  Graph& g = m.graph;
  Node id = make_node("Identity", {"c1.b"}, {"c2.b.shared"});
  g.insert_node(0, id);
  for (auto& n : g.nodes)
    if (n.op_type == "Conv" && n.input(1) == "c2.w") n.inputs[2] = "c2.b.shared";
  g.remove_initializer("c2.b");
  g.invalidate();
  fs::path dir = temp_dir("shared");
  save_model(m, dir / "m.onnx");
  Model norm = load_model(dir / "m.onnx");
  NormalizeStats st = normalize(norm);
  CHECK(st.identities_folded == 1);
  auto r = run_cli({"prune", (dir / "m.onnx").string(), "-o", (dir / "p.onnx").string(), "--ratio", "0.5",
                    "--round-to", "1"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  auto in = random_inputs(m, 4);
  auto y = run_ort(dir / "p.onnx", in);  // ONNX Runtime refuses a bias of the wrong width
  CHECK(y.at("y").dims == std::vector<int64_t>{1, 10});
}

TEST_CASE("progress reports calibration and GPTQ layer by layer", "[pipeline]") {
  Recipe recipe = parse_recipe(nlohmann::json::parse(R"({"steps": [{"quantize": {"bits": 4, "method": "gptq"}}]})"));
  PipelineOptions opt;
  opt.calib_spec = "random:4:1";
  std::map<std::string, std::pair<int64_t, int64_t>> last;
  opt.progress = [&](const PipelineProgress& p) { last[p.stage] = {p.done, p.total}; };
  run_pipeline(small_cnn(), recipe, opt);
  REQUIRE(last.count("calibrate quantize"));
  CHECK(last["calibrate quantize"].first == 4);
  REQUIRE(last.count("quantize layers"));
  CHECK(last["quantize layers"].first == 3);  // two convs and the Gemm
  CHECK(last["quantize layers"].second == 3);
  // Off a terminal the CLI stays quiet: no bar characters in captured output.
  auto r = run_cli({"quantize", corpus_model("ppocr2_cls.onnx").string(), "-o", (temp_dir("quiet") / "q.onnx").string(),
                    "--bits", "8", "--method", "gptq", "--calib", "random:2:1", "--input-shape", "x=1,3,48,192"});
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("[#") == std::string::npos);
  CHECK(r.out.find('\r') == std::string::npos);
}
