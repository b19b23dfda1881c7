// The CUDA backend against the CPU executor (itself checked against ONNX Runtime): real models,
// a graph that reaches every device operator family, and device calibration statistics. On a
// machine without a usable GPU these tests say so and check only that the backend refuses
// cleanly; bench/gpu_check runs the same comparison with timings on a GPU machine.
#include <catch2/catch.hpp>

#include <cmath>

#include "engine/calib_data.h"
#include "engine/calibrate.h"
#include "engine/cuda_backend.h"
#include "engine/executor.h"
#include "engine/npy.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

bool gpu_or_skip() {
  std::string why;
  if (cuda_usable(&why)) return true;
  skip_test("no usable GPU: " + why);
  return false;
}

// Every output of the CUDA run agrees with the CPU run (floats ≤ tol of the tensor's scale,
// other types exactly). Returns the CUDA run's fallbacks for the caller to inspect.
std::map<std::string, int64_t> cuda_agrees_with_cpu(const Model& m, const std::map<std::string, Tensor>& in,
                                                    double tol = 1e-4) {
  Executor cpu(m);
  auto want = cpu.run(in);
  ExecutorOptions o;
  o.device = "cuda";
  Executor gpu(m, o);
  auto got = gpu.run(in);
  got = gpu.run(in);  // second run: cached weights and index maps
  REQUIRE(got.size() == want.size());
  for (const auto& [name, w] : want) {
    INFO("output " << name);
    const Tensor& t = got.at(name);
    REQUIRE(t.dtype == w.dtype);
    REQUIRE(t.dims == w.dims);
    if (t.dtype == DType::Float) CHECK(max_rel_error(t, w) <= tol);
    else CHECK(t.bytes == w.bytes);
  }
  return gpu.last_run_stats().cpu_fallbacks;
}

void add_w(Graph& g, const std::string& name, std::vector<int64_t> dims, uint64_t seed) {
  g.add_initializer(random_tensor(name, dims, seed));
}
void add_i(Graph& g, const std::string& name, std::vector<int64_t> dims, std::vector<int64_t> v) {
  g.add_initializer(Tensor::from_int64(name, std::move(dims), std::move(v)));
}

// x [2,4,9,9], q [2,3,4,5]: convolutions of each kind, pooling, normalizations, activations,
// data movement, matrix products with broadcasting, reductions, and one op without a device
// kernel (Where) in the middle of float work.
Model device_ops_graph() {
  Model m = new_model(17);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {2, 4, 9, 9}), tensor_value("q", {2, 3, 4, 5})};
  add_w(g, "w1", {6, 4, 3, 3}, 1);
  add_w(g, "b1", {6}, 2);
  add_node(g, "Conv", {"x", "w1", "b1"}, {"c1"}).set_attr_ints("pads", {1, 1, 1, 1});
  add_w(g, "wd", {6, 1, 3, 3}, 3);
  Node& dw = add_node(g, "Conv", {"c1", "wd"}, {"c2"});
  dw.set_attr_int("group", 6);
  dw.set_attr_ints("strides", {2, 2});
  dw.set_attr_ints("pads", {1, 1, 1, 1});
  add_w(g, "wg", {4, 3, 1, 1}, 4);
  add_node(g, "Conv", {"c2", "wg"}, {"c3"}).set_attr_int("group", 2);
  add_w(g, "ws", {4, 4, 3, 3}, 5);
  Node& same = add_node(g, "Conv", {"x", "ws"}, {"c4"});
  same.set_attr_string("auto_pad", "SAME_UPPER");
  same.set_attr_ints("strides", {2, 2});
  Node& mp = add_node(g, "MaxPool", {"c3"}, {"p1"});
  mp.set_attr_ints("kernel_shape", {2, 2});
  mp.set_attr_ints("strides", {2, 2});
  mp.set_attr_int("ceil_mode", 1);
  Node& ap = add_node(g, "AveragePool", {"c1"}, {"p2"});
  ap.set_attr_ints("kernel_shape", {3, 3});
  ap.set_attr_ints("strides", {2, 2});
  ap.set_attr_ints("pads", {1, 1, 1, 1});
  ap.set_attr_int("count_include_pad", 1);
  for (const char* n : {"bn_s", "bn_b", "bn_m"}) add_w(g, n, {6}, n[3]);
  g.add_initializer(Tensor::from_float("bn_v", {6}, {0.5f, 1.f, 2.f, 0.1f, 1.5f, 3.f}));
  add_node(g, "BatchNormalization", {"p2", "bn_s", "bn_b", "bn_m", "bn_v"}, {"bn"});
  add_node(g, "HardSwish", {"bn"}, {"hs"});
  add_node(g, "LeakyRelu", {"hs"}, {"lr"}).set_attr_float("alpha", 0.2f);
  g.add_initializer(Tensor::from_float("lo", {}, {-0.3f}));
  g.add_initializer(Tensor::from_float("hi", {}, {0.4f}));
  add_node(g, "Clip", {"c4", "lo", "hi"}, {"clip"});
  add_node(g, "Sigmoid", {"clip"}, {"sig"});
  add_node(g, "Mul", {"sig", "c4"}, {"gate"});
  add_i(g, "pads", {8}, {0, 0, 1, 2, 0, 0, 2, 1});
  add_node(g, "Pad", {"c3", "pads"}, {"pad"}).set_attr_string("mode", "reflect");
  add_i(g, "st", {2}, {1, 8});
  add_i(g, "en", {2}, {6, 0});
  add_i(g, "ax", {2}, {1, 3});
  add_i(g, "sp", {2}, {2, -2});
  add_node(g, "Slice", {"c1", "st", "en", "ax", "sp"}, {"slice"});
  add_node(g, "Transpose", {"slice"}, {"tr"}).set_attr_ints("perm", {0, 2, 3, 1});
  add_node(g, "Concat", {"c2", "c2"}, {"cat"}).set_attr_int("axis", 1);
  add_node(g, "Split", {"cat"}, {"s1", "s2"}).set_attr_int("axis", 1);
  add_node(g, "GlobalAveragePool", {"s2"}, {"gap"});
  add_node(g, "Flatten", {"c3"}, {"flat"});
  add_w(g, "gw", {7, 100}, 6);
  add_w(g, "gc", {7}, 7);
  Node& gm = add_node(g, "Gemm", {"flat", "gw", "gc"}, {"gemm"});
  gm.set_attr_int("transB", 1);
  gm.set_attr_float("alpha", 0.5f);
  add_node(g, "Softmax", {"gemm"}, {"sm"});
  add_w(g, "mw", {2, 3, 5, 6}, 8);
  add_node(g, "MatMul", {"q", "mw"}, {"mm"});
  add_w(g, "bw", {5, 6}, 9);
  add_node(g, "MatMul", {"q", "bw"}, {"mm2"});
  add_i(g, "rs", {4}, {2, 1, 12, 5});
  add_node(g, "Reshape", {"q", "rs"}, {"qr"});
  add_w(g, "bw3", {3, 5, 2}, 10);
  add_node(g, "MatMul", {"qr", "bw3"}, {"mm3"});  // [2,1,12,5] x [3,5,2] -> [2,3,12,2]
  add_w(g, "ln_s", {6}, 11);
  add_w(g, "ln_b", {6}, 12);
  add_node(g, "LayerNormalization", {"mm", "ln_s", "ln_b"}, {"ln"});
  add_node(g, "ReduceMean", {"ln"}, {"rm"}).set_attr_ints("axes", {1, 3});
  add_node(g, "Tanh", {"mm2"}, {"th"});
  add_node(g, "Less", {"mm2", "th"}, {"less"});
  add_node(g, "Where", {"less", "mm2", "th"}, {"where"});
  add_node(g, "Gelu", {"where"}, {"gelu"});  // opset 20 op, but the kernels do not check
  add_node(g, "Erf", {"gelu"}, {"erf"});
  add_i(g, "gi", {3}, {2, 0, 1});
  add_node(g, "Gather", {"q", "gi"}, {"gat"}).set_attr_int("axis", 2);
  add_i(g, "ex", {5}, {2, 2, 6, 1, 3});
  add_node(g, "Expand", {"gap", "ex"}, {"exp"});
  add_w(g, "wt", {4, 3, 3, 3}, 13);
  Node& ct = add_node(g, "ConvTranspose", {"c3", "wt", "b3"}, {"ct"});
  add_w(g, "b3", {6}, 14);
  ct.inputs[2] = "b3";
  ct.set_attr_int("group", 2);
  ct.set_attr_ints("strides", {2, 2});
  ct.set_attr_ints("pads", {1, 0, 1, 1});
  ct.set_attr_ints("output_padding", {1, 0});
  g.add_initializer(Tensor::from_float("rz_scales", {4}, {1.f, 1.f, 2.f, 1.5f}));
  add_node(g, "Resize", {"c3", "", "rz_scales"}, {"rz"});
  add_node(g, "Shape", {"rz"}, {"rz_shape"});
  for (const char* o : {"p1", "lr", "gate", "pad", "tr", "s1", "sm", "mm3", "rm", "erf", "gat", "exp", "ct", "rz", "rz_shape"}) {
    ValueInfo v;
    v.name = o;
    g.outputs.push_back(v);
  }
  return m;
}

}  // namespace

TEST_CASE("the CUDA backend refuses cleanly where it cannot run", "[cuda]") {
  std::string why;
  const bool usable = cuda_usable(&why);
  Model m = small_cnn(2);
  ExecutorOptions o;
  o.device = "cuda";
  if (usable) {
    CHECK_NOTHROW(Executor(m, o));
    return;
  }
  CHECK_FALSE(why.empty());
  REQUIRE_THROWS_AS(Executor(m, o), UnsupportedError);
  try {
    Executor ex(m, o);
  } catch (const UnsupportedError& e) {
    CHECK(std::string(e.what()).find("device cuda") != std::string::npos);
  }
  auto r = run_cli({"run", source_path("models/fashion_cnn/model.onnx").string(), "--input",
                    "x=" + source_path("models/fashion_cnn/calib.npy").string(), "-o",
                    (temp_dir("cuda_cli") / "out").string(), "--device", "cuda"});
  CHECK(r.rc == 1);
  CHECK(r.out.find("device cuda") != std::string::npos);
}

TEST_CASE("CUDA runs of every device operator family agree with the CPU executor", "[cuda]") {
  Model m = device_ops_graph();
  std::map<std::string, Tensor> in;
  in["x"] = Tensor::from_float("x", {2, 4, 9, 9}, random_floats(2 * 4 * 81, 21));
  in["q"] = Tensor::from_float("q", {2, 3, 4, 5}, random_floats(120, 22));
  REQUIRE(Executor(m).run(in).size() == 15);  // the graph itself is valid
  if (!gpu_or_skip()) return;
  auto fallbacks = cuda_agrees_with_cpu(m, in);
  // Where and Less have no device kernel; everything else in the graph must have run on the GPU.
  for (const auto& [what, count] : fallbacks) {
    INFO(what);
    CHECK((what.rfind("Where", 0) == 0 || what.rfind("Less", 0) == 0));
  }
}

TEST_CASE("CUDA runs of corpus and project models agree with the CPU executor", "[cuda][corpus]") {
  if (!gpu_or_skip()) return;
  const char* corpus[] = {"ppocr4_det.onnx", "ppocr4_rec.onnx", "ppocr2_cls.onnx", "silero_vad.onnx",
                          "blazeface_front.onnx", "blazeface_back.onnx", "wakeword_hello.onnx"};
  for (const char* name : corpus) {
    INFO(name);
    Model m = load_model(corpus_model(name));
    normalize(m);
    auto in = random_inputs(m, 17, 1, corpus_shapes(name));
    if (std::string(name) == "silero_vad.onnx") in["sr"] = Tensor::from_int64("sr", {}, {16000});
    cuda_agrees_with_cpu(m, in);
  }
  for (const char* name : {"fashion_cnn", "gpt_tiny", "bert_tiny"}) {
    INFO(name);
    Model m = load_model(source_path(std::string("models/") + name + "/model.onnx"));
    normalize(m);
    cuda_agrees_with_cpu(m, random_inputs(m, 3, 2));
  }
}

TEST_CASE("device calibration statistics equal the host ones", "[cuda][calib]") {
  if (!gpu_or_skip()) return;
  for (const char* name : {"fashion_cnn", "gpt_tiny"}) {
    INFO(name);
    Model m = load_model(source_path(std::string("models/") + name + "/model.onnx"));
    normalize(m);
    CalibrationPlan plan;
    for (const Node& n : m.graph.nodes) {
      if (n.op_type == "Conv" || n.op_type == "MatMul" || n.op_type == "Gemm") {
        if (m.graph.initializer(n.input(1))) plan.grams.push_back(n.name);
      }
      for (const auto& o : n.outputs) plan.minmax.push_back(o);
    }
    CalibrationDataOptions co;
    co.batch_size = 4;
    co.max_samples = 16;
    const std::string calib = source_path(std::string("models/") + name + "/calib.npy").string();
    CalibrationSource src_cpu(calib, m, co), src_gpu(calib, m, co);
    ExecutorOptions cpu, gpu;
    gpu.device = "cuda";
    // Some minmax values are int64 (shape arithmetic): keep the float ones.
    CalibrationStats a = calibrate(m, src_cpu, plan, nullptr, cpu);
    CalibrationStats b = calibrate(m, src_gpu, plan, nullptr, gpu);
    REQUIRE(a.grams.size() == b.grams.size());
    REQUIRE_FALSE(a.grams.empty());
    for (const auto& [layer, ga] : a.grams) {
      INFO(layer);
      const GramStat& gb = b.grams.at(layer);
      REQUIRE(ga.rows == gb.rows);
      REQUIRE(ga.xtx.size() == gb.xtx.size());
      double scale = 1e-12, worst = 0;
      for (double v : ga.xtx) scale = std::max(scale, std::fabs(v));
      for (size_t i = 0; i < ga.xtx.size(); ++i) worst = std::max(worst, std::fabs(ga.xtx[i] - gb.xtx[i]) / scale);
      CHECK(worst <= 1e-5);  // float activations from two executors, accumulated in double
      for (size_t i = 0; i < ga.col_sum.size(); ++i) CHECK(gb.col_sum[i] == Approx(ga.col_sum[i]).epsilon(1e-4).margin(1e-3));
    }
    for (const auto& [value, ma] : a.minmax) {
      INFO(value);
      const MinMaxStat& mb = b.minmax.at(value);
      CHECK(mb.min == Approx(ma.min).epsilon(1e-4).margin(1e-5));
      CHECK(mb.max == Approx(ma.max).epsilon(1e-4).margin(1e-5));
    }
  }
}

TEST_CASE("pruning with compensation calibrated on the GPU matches calibration on the CPU", "[cuda][prune]") {
  if (!gpu_or_skip()) return;
  const fs::path dir = temp_dir("cuda_prune");
  const std::string model = source_path("models/fashion_cnn/model.onnx").string();
  const std::string calib = source_path("models/fashion_cnn/calib.npy").string();
  std::map<std::string, Model> pruned;
  for (const char* device : {"cpu", "cuda"}) {
    const fs::path out = dir / (std::string(device) + ".onnx");
    auto r = run_cli({"prune", model, "-o", out.string(), "--calib", calib, "--calib-samples", "128", "--criterion",
                      "obs", "--target-macs", "0.6", "--device", device});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    pruned[device] = load_model(out);
  }
  const Model& a = pruned.at("cpu");
  const Model& b = pruned.at("cuda");
  REQUIRE(a.graph.initializers.size() == b.graph.initializers.size());
  for (size_t i = 0; i < a.graph.initializers.size(); ++i) CHECK(a.graph.initializers[i].dims == b.graph.initializers[i].dims);
  auto in = random_inputs(a, 5, 8);
  Executor ea(a), eb(b);
  auto ya = ea.run(in), yb = eb.run(in);
  for (const auto& [k, t] : ya) CHECK(max_rel_error(yb.at(k), t) <= 1e-3);
  // The model written from GPU statistics runs in ONNX Runtime like on our executor.
  auto ort = run_ort(dir / "cuda.onnx", in);
  for (const auto& [k, t] : yb) CHECK(max_rel_error(ort.at(safe_file_name(k)), t) <= 1e-4);
}
