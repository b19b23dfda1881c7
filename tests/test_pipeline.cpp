// The pipeline: recipes, compress, dry run, reports, cancellation, concurrent use as a library.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <thread>

#include "compressor/pipeline.h"
#include "engine/npy.h"
#include "graph/flush_denormals.h"
#include "graph/normalize.h"
#include "graph/softmax_mask.h"
#include "graph/onnx_io.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

TEST_CASE("compress runs a shipped recipe end to end and reports what it cost", "[pipeline][cli][ort]") {
  fs::path dir = temp_dir("compress");
  fs::path model = corpus_model("ppocr2_cls.onnx");
  // Evaluation data of our own, so the report's fidelity can be recomputed from ONNX Runtime runs.
  Tensor eval = random_tensor("x", {6, 3, 48, 192}, 31);
  write_npy(dir / "eval.npy", eval);
  auto r = run_cli({"compress", model.string(), "-o", (dir / "out.onnx").string(), "--recipe", "prune30-int8",
                    "--calib", "random:8:1", "--eval", (dir / "eval.npy").string(), "--input-shape", "x=1,3,48,192",
                    "--report", (dir / "r.json").string(), "--html", (dir / "r.html").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("MACs"));
  Report rep = read_report(dir / "r.json");
  CHECK(rep.command == "compress");
  CHECK(rep.steps.size() == 2);
  CHECK(rep.after.macs < rep.before.macs * 0.8);
  CHECK(rep.after.macs > rep.before.macs * 0.5);
  // Pruning keeps ~65% of the weights; the int8 step then keeps this model's convs float — they are
  // too thin for ONNX Runtime's integer kernels to pay for their Q/DQ (quantize/static_qdq.cpp) —
  // and says so in the step's notes.
  CHECK(rep.after.file_bytes < rep.before.file_bytes * 0.8);
  CHECK(rep.after.file_bytes == fs::file_size(dir / "out.onnx"));
  REQUIRE(rep.steps[1].contains("details"));
  CHECK_THAT(rep.steps[1]["details"].value("notes", nlohmann::json::array()).dump(), Catch::Contains("int8 kept float"));
  CHECK(rep.input.sha256.size() == 64);
  // The compressed model runs in ONNX Runtime with the original interface, and the report's
  // fidelity is what the two models' ONNX Runtime outputs give (a 2-class softmax: the cosine of
  // any two probability vectors is >= 0.707, so only the exact value says anything).
  const std::string out_name = "softmax_0.tmp_0";
  REQUIRE(rep.fidelity.contains(out_name));
  auto a = run_ort(model, {{"x", eval}}).at(out_name).to_float();
  auto yb = run_ort(dir / "out.onnx", {{"x", eval}}).at(out_name);
  CHECK(yb.dims == std::vector<int64_t>{6, 2});
  auto b = yb.to_float();
  double dot = 0, aa = 0, bb = 0, err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
    err += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  }
  // (The report measures on our executor; ONNX Runtime runs a static W8A8 model on its integer
  // kernels, which round differently: evaluate's metrics themselves are checked exactly in
  // test_evaluate.cpp.)
  const double cosine = dot / std::sqrt(aa * bb), sqnr = 10 * std::log10(aa / err);
  CHECK(rep.fidelity[out_name]["cosine"].get<double>() == Approx(cosine).margin(std::max(1e-4, 0.05 * (1 - cosine))));
  CHECK(rep.fidelity[out_name]["sqnr_db"].get<double>() == Approx(sqnr).margin(0.25));
  std::ifstream h(dir / "r.html");
  std::string html((std::istreambuf_iterator<char>(h)), {});
  CHECK_THAT(html, Catch::Contains("Sparsity per layer"));
}

namespace {

struct Fashion {
  fs::path model = source_path("models/fashion_cnn/model.onnx");
  fs::path calib = source_path("models/fashion_cnn/calib.npy");
  fs::path test_x = source_path("models/fashion_cnn/test_x.npy");
  fs::path test_y = source_path("models/fashion_cnn/test_y.npy");
};

// Accuracy of `model` on the first n images of the fashion_cnn test set in ONNX Runtime.
double ort_accuracy(const fs::path& model, int64_t n) {
  Fashion f;
  Tensor x = first_rows(read_npy(f.test_x), n);
  auto logits = run_ort(model, {{"x", x}}).at("logits").to_float();
  auto labels = read_npy(f.test_y).to_int64();
  REQUIRE(logits.size() == static_cast<size_t>(n) * 10);
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i)
    correct += std::max_element(logits.begin() + i * 10, logits.begin() + (i + 1) * 10) - (logits.begin() + i * 10) ==
               labels[static_cast<size_t>(i)];
  return static_cast<double>(correct) / static_cast<double>(n);
}

// What each shipped recipe must keep of fashion_cnn's 92.67% test accuracy (chance is 10%):
// weight-only int8 loses well under a point, static W8A8 about one; the compensated prunings lose
// a few points (README: prune30-obs-int8 86.4%). Pruning without compensation is documented to
// drop this model to chance: no bound there, only its MACs.
double accuracy_floor(const std::string& recipe) {
  if (recipe == "int8" || recipe == "w8") return 0.90;
  if (recipe == "w4-mixed") return 0.85;
  if (recipe == "prune30-obs-int8") return 0.83;
  // Measured 0.908 and 0.896 (float 0.927); prune30-int8 was uncompensated l2 and sat at 0.10.
  if (recipe == "prune30-int8" || recipe == "prune50-int8") return 0.85;
  if (recipe == "cfsp40-obs") return 0.75;
  return 0;
}

const std::vector<std::string> kTestedRecipes = {"int8", "w8", "w4-mixed", "prune30-int8", "prune30-obs-int8",
                                                 "prune50-int8", "cfsp40-obs"};

// Runs recipe `name` with --calib/--eval/--labels on fashion_cnn and checks what it promises.
void check_recipe(const std::string& name) {
  Fashion f;
  const auto names = shipped_recipes();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    skip_test("recipe " + name + " is not shipped");
    return;
  }
  Recipe recipe = load_recipe(name);
  REQUIRE_FALSE(recipe.steps.empty());
  const int64_t n = 500;
  fs::path dir = temp_dir("recipe_" + name);
  auto r = run_cli({"compress", f.model.string(), "-o", (dir / "out.onnx").string(), "--recipe", name, "--calib",
                    f.calib.string(), "--calib-samples", "64", "--eval", f.test_x.string(), "--labels", f.test_y.string(),
                    "--eval-samples", std::to_string(n), "--batch-size", "50", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Report rep = read_report(dir / "r.json");
  REQUIRE(rep.steps.size() == recipe.steps.size());
  // Each step's promise, read from the recipe itself. MAC targets: round-to 8 on this small model
  // moves MACs in steps of a few percent (one 8-channel step of its widest group).
  bool quantized = false;
  for (const auto& step : recipe.steps) {
    if (step.kind == "prune" && step.options.contains("target-macs")) {
      const auto& t = step.options["target-macs"];
      double want = t.is_string() ? std::stod(t.get<std::string>()) : t.get<double>();
      CHECK(static_cast<double>(rep.after.macs) / static_cast<double>(rep.before.macs) == Approx(want).margin(0.06));
    }
    quantized |= step.kind == "quantize";
  }
  if (quantized) CHECK(rep.after.weight_bytes * 3 < rep.before.weight_bytes);
  // Accuracy: the report's (our executor) is ONNX Runtime's on the written model within a few
  // images, and above the recipe's floor; the reference's is the trained model's (metrics.json:
  // 464 of the first 500 right).
  REQUIRE(rep.accuracy.contains("candidate"));
  CHECK(rep.accuracy["reference"].get<double>() == Approx(ort_accuracy(f.model, n)).margin(1e-9));
  const double ort = ort_accuracy(dir / "out.onnx", n);
  CHECK(rep.accuracy["candidate"].get<double>() == Approx(ort).margin(0.01));
  CHECK(ort >= accuracy_floor(name));
}

}  // namespace

TEST_CASE("every shipped recipe has its own test", "[pipeline][recipes]") {
  const auto shipped = shipped_recipes();
  for (const auto& name : shipped) {
    INFO("recipe " << name << ": add it to kTestedRecipes (tests/test_pipeline.cpp) with its accuracy floor");
    CHECK(std::find(kTestedRecipes.begin(), kTestedRecipes.end(), name) != kTestedRecipes.end());
  }
  for (const char* must : {"int8", "w4-mixed", "prune30-int8", "prune30-obs-int8", "cfsp40-obs"})
    CHECK(std::find(shipped.begin(), shipped.end(), must) != shipped.end());
}
TEST_CASE("recipe int8 on fashion_cnn", "[pipeline][cli][ort][recipes]") { check_recipe("int8"); }
TEST_CASE("recipe w8 on fashion_cnn", "[pipeline][cli][ort][recipes]") { check_recipe("w8"); }
TEST_CASE("recipe w4-mixed on fashion_cnn", "[pipeline][cli][ort][recipes]") { check_recipe("w4-mixed"); }
TEST_CASE("recipe prune30-int8 on fashion_cnn", "[pipeline][cli][ort][recipes]") { check_recipe("prune30-int8"); }
TEST_CASE("recipe prune30-obs-int8 on fashion_cnn", "[pipeline][cli][ort][recipes]") { check_recipe("prune30-obs-int8"); }
TEST_CASE("recipe prune50-int8 on fashion_cnn", "[pipeline][cli][ort][recipes]") { check_recipe("prune50-int8"); }
TEST_CASE("recipe cfsp40-obs on fashion_cnn", "[pipeline][cli][ort][recipes]") { check_recipe("cfsp40-obs"); }

TEST_CASE("dry-run predictions equal what the real run reports", "[pipeline][cli]") {
  Fashion f;
  // A weight-only recipe (no step needs data) and the shipped static-int8 (W8A8) recipes: params,
  // MACs and bytes are predicted exactly (the W8A8 step places its Q/DQ pairs and keeps its thin
  // regions float from shapes; only scale values differ, not sizes).
  const Recipe weight_only = parse_recipe(nlohmann::json::parse(
      R"({"name": "wo", "steps": [{"prune": {"target-macs": 0.7, "criterion": "l2"}}, {"quantize": {"bits": 8}}]})"));
  for (const std::string name : {"", "prune30-int8", "int8"}) {
    INFO("recipe " << (name.empty() ? "weight-only" : name));
    Recipe recipe = name.empty() ? weight_only : load_recipe(name);
    nlohmann::json plan = plan_recipe(load_model(f.model), recipe, PipelineOptions{});
    fs::path dir = temp_dir("dry_real");
    PipelineOptions real;
    real.calib_spec = f.calib.string();
    real.calib_samples = 64;
    Report rep = compress_file(f.model, dir / "out.onnx", recipe, real);
    CHECK(plan["before"]["params"].get<int64_t>() == rep.before.params);
    CHECK(plan["before"]["macs"].get<int64_t>() == rep.before.macs);
    CHECK(plan["after"]["params"].get<int64_t>() == rep.after.params);
    CHECK(plan["after"]["macs"].get<int64_t>() == rep.after.macs);
    CHECK(plan["after"]["weight_bytes"].get<uint64_t>() == rep.after.weight_bytes);
    CHECK(plan["after"]["file_bytes"].get<double>() == Approx(static_cast<double>(rep.after.file_bytes)).epsilon(0.01));
    if (name.empty()) continue;
    // The CLI prints that plan.
    auto dry = run_cli({"compress", f.model.string(), "--recipe", name, "--dry-run"});
    REQUIRE(dry.rc == 0);
    CHECK_THAT(dry.out, Catch::StartsWith(plan_text(plan)));
  }
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

TEST_CASE("denormal weights are written as zeros: PP-OCRv4 rec's 31,350 never reach ORT's float kernels", "[pipeline][cli]") {
  // A 1x1 Conv holding a few thousand denormal weights ran 47 ms against 1.6 ms in ORT 1.30 on a
  // Xeon (microcode assists on every multiply): ppocr4_rec pruned to 70% MACs, compensated.
  Model tiny = new_model(13);
  tiny.graph.add_initializer(Tensor::from_float("w", {4}, {1e-40f, -3e-39f, 1e-30f, 0.5f}));
  CHECK(flush_denormal_weights(tiny) == 2);
  const auto w = tiny.graph.initializer("w")->to_float();
  CHECK(w == std::vector<float>{0.f, 0.f, 1e-30f, 0.5f});  // normal values, however small, stay
  CHECK(flush_denormal_weights(tiny) == 0);

  fs::path dir = temp_dir("denormals");
  const fs::path model = corpus_model("ppocr4_rec.onnx");
  auto count = [](const Model& m) {
    int64_t n = 0;
    for (const auto& t : m.graph.initializers)
      if (t.dtype == DType::Float)
        for (float v : t.to_float()) n += v != 0.f && std::fabs(v) < std::numeric_limits<float>::min();
    return n;
  };
  Model in = load_model(model);
  normalize(in);  // the Constant nodes holding the weights become initializers
  const int64_t before = count(in);
  CHECK(before > 10000);
  auto r = run_cli({"prune", model.string(), "-o", (dir / "p.onnx").string(), "--ratio", "0.1", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model out = load_model(dir / "p.onnx");
  CHECK(count(out) == 0);
  CHECK_THAT(read_all(dir / "r.json"), Catch::Contains("denormal float32 weights set to 0"));
  // The flushed file runs in ONNX Runtime and our executor agrees with it.
  agree_with_ort(out, {{"x", random_tensor("x", {1, 3, 48, 320}, 5, 0.f, 1.f)}}, 1e-3);
}

TEST_CASE("a causal Softmax mask of -1e4 takes a value that keeps ORT's Softmax off denormals, outputs unchanged", "[pipeline][cli][ort]") {
  // ORT's Softmax clamps exp's argument at -88.4: every masked entry became a denormal and gpt_tiny's
  // four causal Softmaxes ran 7x slower (int8 1.46x of float -> 1.66x with the masks rewritten).
  auto mask_graph = [](bool shared) {
    Model m = new_model(13);
    Graph& g = m.graph;
    g.inputs.push_back(tensor_value("x", {1, 4, 4}));
    std::vector<float> c(16, 0.f);
    for (int i = 0; i < 4; ++i)
      for (int j = i + 1; j < 4; ++j) c[i * 4 + j] = -10000.f;
    g.add_initializer(Tensor::from_float("mask", {4, 4}, c));
    g.add_node(make_node("Add", {"x", "mask"}, {"s"}));
    g.add_node(make_node("Softmax", {"s"}, {"y"}));
    g.outputs.push_back(tensor_value("y", {1, 4, 4}));
    if (shared) {  // the mask read by something else too: left alone
      g.add_node(make_node("Mul", {"x", "mask"}, {"z"}));
      g.outputs.push_back(tensor_value("z", {1, 4, 4}));
    }
    return m;
  };
  Model plain = mask_graph(false);
  const auto sites = find_softmax_masks(plain.graph);
  REQUIRE(sites.size() == 1);
  CHECK(sites[0].scores == "x");
  CHECK(sites[0].values == "mask");
  CHECK(find_softmax_masks(mask_graph(true).graph).empty());
  CHECK(mask_value(-20.f, 10.f) == Approx(-34.5f));
  CHECK(std::isnan(mask_value(-60.f, 10.f)));  // would reach exp's denormals: left alone
  CHECK(set_mask_entries(plain.graph, "mask", mask_value(-20.f, 10.f)) == 6);

  fs::path dir = temp_dir("softmax_mask");
  const fs::path model = source_path("models/gpt_tiny/model.onnx");
  Model f = load_model(model);
  normalize(f);
  CHECK(find_softmax_masks(f.graph).size() == 4);
  // quantize with 16 calibration samples; the report must name the rewritten masks
  auto quantize = [&](const std::string& out, std::vector<std::string> how) {
    std::vector<std::string> a{"quantize", model.string(), "-o", (dir / (out + ".onnx")).string(), "--calib",
                               source_path("models/gpt_tiny/calib.npy").string(), "--calib-samples", "16", "--report",
                               (dir / (out + ".json")).string()};
    a.insert(a.end(), how.begin(), how.end());
    auto r = run_cli(a);
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK_THAT(read_all(dir / (out + ".json")), Catch::Contains("of 4 Softmax mask(s)"));
  };
  quantize("q", {"--bits", "8", "--activations", "int8"});
  Model q = load_model(dir / "q.onnx");
  CHECK(find_softmax_masks(q.graph).size() < 4);  // masks whose scores allow it keep no entry at or below -87
  // The same file with the masks put back at -1e4 gives ORT's outputs to float rounding.
  Model back = q;
  for (const auto& n : back.graph.nodes) {
    if (n.op_type != "Softmax") continue;
    const Node& add = back.graph.nodes[back.graph.producer(n.input(0))];
    for (const auto& in : add.inputs)
      if (Tensor* t = back.graph.initializer(in)) {
        auto v = t->to_float();
        for (auto& e : v) e = e < -20.f ? -10000.f : e;
        *t = Tensor::from_float(t->name, t->dims, v);
      }
  }
  save_model(back, dir / "back.onnx");
  Tensor held = read_npy(source_path("models/gpt_tiny/heldout.npy"));
  const auto h = held.to_int64();
  std::vector<int64_t> tokens(2 * 128);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 128; ++j) tokens[i * 128 + j] = h[i * held.dims[1] + j];
  std::map<std::string, Tensor> in{{"tokens", Tensor::from_int64("tokens", {2, 128}, tokens)}};
  CHECK(max_rel_error(run_ort(dir / "q.onnx", in).at("logits"), run_ort(dir / "back.onnx", in).at("logits")) < 1e-5);

  // A MatMulNBits file holds one Where(Trilu) mask that the four layers share: the layers whose scores
  // allow it read their own copy of the Where (layer 0's scores span too much for any value).
  quantize("n", {"--bits", "4", "--format", "matmulnbits"});
  Model nb = load_model(dir / "n.onnx");
  int wheres = 0;
  for (const auto& n : nb.graph.nodes) wheres += n.op_type == "Where";
  CHECK(wheres >= 2);  // the shared mask and at least one layer's own
  Model nb_back = nb;
  for (auto& t : nb_back.graph.initializers)
    if (t.dtype == DType::Float && t.dims.empty() && t.to_float()[0] < -20.f) t = Tensor::from_float(t.name, {}, {-10000.f});
  save_model(nb_back, dir / "n_back.onnx");
  CHECK(max_rel_error(run_ort(dir / "n.onnx", in).at("logits"), run_ort(dir / "n_back.onnx", in).at("logits")) < 1e-5);
}
