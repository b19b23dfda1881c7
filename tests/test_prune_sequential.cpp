// Sequential reconstruction (prune/sequential.h): each compensated layer fitted to the original
// model's output of that layer from the already pruned model's input.
#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <random>

#include "engine/calib_data.h"
#include "engine/dense_solve.h"
#include "engine/executor.h"
#include "engine/npy.h"
#include "graph/channel_deps.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "prune/prune.h"
#include "prune/sequential.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// x [N,16] -> Gemm(width) -> Relu -> ... (`hidden` layers) -> Gemm -> y [N,8]
// (`skip`: y = that + Gemm(x), the skip Gemm last in node order, so x crosses every cut.)
Model mlp(int hidden, uint64_t seed, int64_t width = 32, bool skip = false) {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {-1, 16}));
  std::string in = "x";
  int64_t k = 16;
  for (int l = 0; l <= hidden; ++l) {
    const bool last = l == hidden;
    const int64_t n = last ? 8 : width;
    const std::string w = "w" + std::to_string(l), b = "b" + std::to_string(l), out = last ? "y" : "h" + std::to_string(l);
    g.add_initializer(random_tensor(w, {n, k}, seed++, -0.5f, 0.5f));
    g.add_initializer(random_tensor(b, {n}, seed++, -0.2f, 0.2f));
    Node fc = make_node("Gemm", {in, w, b}, {last ? out : out + "_pre"}, "fc" + std::to_string(l));
    fc.set_attr_int("transB", 1);
    g.add_node(fc);
    if (!last) g.add_node(make_node("Relu", {out + "_pre"}, {out}, "relu" + std::to_string(l)));
    in = out;
    k = n;
  }
  if (skip) {
    g.nodes.back().outputs[0] = "y_main";
    g.add_initializer(random_tensor("ws", {8, 16}, seed++, -0.5f, 0.5f));
    Node fc = make_node("Gemm", {"x", "ws"}, {"y_skip"}, "fc_skip");
    fc.set_attr_int("transB", 1);
    g.add_node(fc);
    g.add_node(make_node("Add", {"y_main", "y_skip"}, {"y"}, "add"));
  }
  g.outputs.push_back(tensor_value("y", {-1, 8}));
  normalize(m);
  return m;
}

struct Pruned {
  Model model;
  PruneReport report;
};

// l2 scores, half of every hidden group, compensated one-shot or sequentially on `calib`.
Pruned prune_mlp(const Model& m, const fs::path& calib, bool sequential, double damping = 0.01,
                 size_t cache_bytes = SequentialOptions{}.cache_bytes, int* passes = nullptr) {
  PruneOptions o;
  o.damping = damping;
  o.criterion = Criterion::L2;
  o.compensate = true;
  o.ratio = 0.5;
  o.round_to = 1;
  CalibrationSource src(calib.string(), m);
  CalibrationStats stats = calibrate(m, src, prune_calibration_plan(m, o));
  if (sequential)
    o.reconstruct = [&src, damping, cache_bytes, passes](const Model& a, Model& b, const std::vector<SequentialLayer>& layers) {
      SequentialOptions so;
      so.damping = damping;
      so.cache_bytes = cache_bytes;
      const SequentialReport r = reconstruct_sequential(a, b, layers, src, so);
      if (passes) *passes = r.passes;
      return r.layers;
    };
  Pruned p{m, {}};
  p.report = prune_model(p.model, o, &stats);
  return p;
}

double mse(const Tensor& a, const Tensor& ref) {
  auto x = a.to_float(), r = ref.to_float();
  REQUIRE(x.size() == r.size());
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (x[i] - r[i]) * (x[i] - r[i]);
  return s / static_cast<double>(x.size());
}

}  // namespace

TEST_CASE("sequential reconstruction equals one-shot when only one layer is re-solved", "[prune][sequential]") {
  // One hidden layer: fc1 is the only consumer of a pruned group and reads fc0's kept channels,
  // which nothing before it changed, so X̂ = X restricted to the kept features and the cross-Gram
  // solve must give the one-shot least-squares weights (prune/compensate.cpp) to rounding. (Almost
  // no damping: one-shot scales λ by the diagonal over all input features, sequential over the kept.)
  fs::path dir = temp_dir("seq_one");
  Model m = mlp(1, 3);
  write_npy(dir / "calib.npy", random_inputs(m, 5, 96).at("x"));
  Pruned a = prune_mlp(m, dir / "calib.npy", false, 1e-7), b = prune_mlp(m, dir / "calib.npy", true, 1e-7);
  CHECK(a.report.compensation == "one-shot");
  CHECK(b.report.compensation == "sequential");
  CHECK(a.report.layers_compensated == 1);
  CHECK(b.report.layers_compensated == 1);
  const Tensor* wa = a.model.graph.initializer(a.model.graph.nodes[2].input(1));
  const Tensor* wb = b.model.graph.initializer(b.model.graph.nodes[2].input(1));
  REQUIRE(wa);
  REQUIRE(wb);
  REQUIRE(wa->dims == wb->dims);
  CHECK(wa->dims == std::vector<int64_t>{8, 16});
  CHECK(max_rel_error(*wb, *wa, 1e-2) < 1e-3);
  const Tensor* ba = a.model.graph.initializer(a.model.graph.nodes[2].input(2));
  const Tensor* bb = b.model.graph.initializer(b.model.graph.nodes[2].input(2));
  REQUIRE((ba && bb));
  CHECK(max_rel_error(*bb, *ba, 1e-2) < 1e-3);
}

TEST_CASE("sequential reconstruction gives the same weights when batches are split by samples", "[prune][sequential]") {
  // Batches of 16 samples, each taken whole and one sample at a time (chunk_bytes 1): the Grams
  // sum the same rows, so the re-solved weights agree to fp32 rounding; a chunk lost, repeated or
  // misaligned between the two models would move them far more.
  fs::path dir = temp_dir("seq_chunk");
  Model m = mlp(3, 21);
  write_npy(dir / "calib.npy", random_inputs(m, 7, 64).at("x"));
  auto pruned = [&](size_t chunk_bytes) {
    PruneOptions o;
    o.criterion = Criterion::L2;
    o.compensate = true;
    o.ratio = 0.5;
    o.round_to = 1;
    CalibrationDataOptions co;
    co.batch_size = 16;
    CalibrationSource src((dir / "calib.npy").string(), m, co);
    CalibrationStats stats = calibrate(m, src, prune_calibration_plan(m, o));
    o.reconstruct = [&src, chunk_bytes](const Model& a, Model& b, const std::vector<SequentialLayer>& layers) {
      SequentialOptions so;
      so.chunk_bytes = chunk_bytes;
      return reconstruct_sequential(a, b, layers, src, so).layers;
    };
    Model p = m;
    const PruneReport r = prune_model(p, o, &stats);
    CHECK(r.layers_compensated == 3);
    return p;
  };
  const Model whole = pruned(SequentialOptions{}.chunk_bytes), split = pruned(1);
  int compared = 0;
  for (size_t i = 0; i < whole.graph.nodes.size(); ++i) {
    if (whole.graph.nodes[i].op_type != "Gemm") continue;
    for (int in = 1; in <= 2; ++in) {
      const Tensor* a = whole.graph.initializer(whole.graph.nodes[i].input(in));
      const Tensor* b = split.graph.initializer(split.graph.nodes[i].input(in));
      REQUIRE((a && b));
      REQUIRE(a->dims == b->dims);
      CHECK(max_rel_error(*b, *a, 1e-2) < 1e-4);
      ++compared;
    }
  }
  CHECK(compared == 8);
}

TEST_CASE("least-squares solve and inverse in single precision agree with double Cholesky", "[prune][sequential][solve]") {
  // X = A⁻¹·B·Tᵀ with A = XᵀX + λI of correlated features, as compensation forms it: at 600
  // unknowns (past kSinglePrecisionSolveMin) on sgemm in fp32, at 100 by Eigen in double.
  for (const int64_t n : {int64_t{600}, int64_t{100}}) {
    const int64_t rows = 3 * n / 2, k = n + 1, r = 40;
    std::mt19937_64 rng(static_cast<uint64_t>(n));
    std::normal_distribution<double> nd(0.0, 1.0);
    RowMatrixD X(rows, n), B(n, k), T(r, k);
    for (int64_t i = 0; i < rows; ++i) {
      double common = nd(rng);
      for (int64_t j = 0; j < n; ++j) X(i, j) = 0.7 * common + nd(rng) + 0.5;  // shared mean and factor
    }
    RowMatrixD A = X.transpose() * X;
    A.diagonal().array() += 0.01 * A.diagonal().mean();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) B(i, j) = j < n ? A(i, j) : 0.3 * nd(rng);
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < k; ++j) T(i, j) = nd(rng);
    const RowMatrixD ref = Eigen::LLT<RowMatrixD>(A).solve(B * T.transpose());
    const RowMatrixD got = spd_solve_product(A, B, T);
    REQUIRE(got.rows() == n);
    REQUIRE(got.cols() == r);
    const double rel = (got - ref).norm() / ref.norm();
    INFO("n = " << n << ", relative error " << rel);
    CHECK(rel < (n >= kSinglePrecisionSolveMin ? 1e-3 : 1e-10));
    // The fit it is for: the output error ‖X·(got − ref)‖ against the output ‖X·ref‖.
    CHECK((X * (got - ref)).norm() / (X * ref).norm() < (n >= kSinglePrecisionSolveMin ? 1e-4 : 1e-10));
    // Structured OBS's damped H⁻¹ the same way.
    const RowMatrixD inv_ref = Eigen::LLT<RowMatrixD>(A).solve(RowMatrixD::Identity(n, n));
    CHECK((spd_inverse(A) - inv_ref).norm() / inv_ref.norm() < (n >= kSinglePrecisionSolveMin ? 1e-3 : 1e-10));
  }
}

TEST_CASE("sequential reconstruction beats one-shot on held-out inputs of a deep MLP", "[prune][sequential][ort]") {
  // Four hidden layers, half of each removed (measured: mse 0.320 one-shot, 0.285 sequential): one-shot fits each layer as if the ones before it
  // were unpruned, so errors pile up; sequential fits each to the original's output of that layer
  // from the pruned model's input. Same channels removed (same shapes), both measured against the
  // unpruned model in ONNX Runtime on inputs the fit never saw.
  fs::path dir = temp_dir("seq_deep");
  Model m = mlp(4, 11);
  write_npy(dir / "calib.npy", random_inputs(m, 7, 256).at("x"));
  Pruned a = prune_mlp(m, dir / "calib.npy", false), b = prune_mlp(m, dir / "calib.npy", true);
  CHECK(b.report.layers_compensated == 4);
  REQUIRE(a.model.graph.nodes.size() == b.model.graph.nodes.size());
  for (size_t i = 0; i < a.model.graph.nodes.size(); ++i)
    for (size_t k = 1; k < a.model.graph.nodes[i].inputs.size(); ++k) {
      const Tensor* ta = a.model.graph.initializer(a.model.graph.nodes[i].input(k));
      const Tensor* tb = b.model.graph.initializer(b.model.graph.nodes[i].input(k));
      REQUIRE((ta && tb));
      CHECK(ta->dims == tb->dims);
    }
  save_model(m, dir / "m.onnx");
  save_model(a.model, dir / "oneshot.onnx");
  save_model(b.model, dir / "seq.onnx");
  auto held_out = random_inputs(m, 1007, 256);
  auto ref = run_ort(dir / "m.onnx", held_out).at("y");
  const double e_one = mse(run_ort(dir / "oneshot.onnx", held_out).at("y"), ref);
  const Tensor ys = run_ort(dir / "seq.onnx", held_out).at("y");
  const double e_seq = mse(ys, ref);
  INFO("held-out mse one-shot " << e_one << " sequential " << e_seq);
  CHECK(e_seq < 0.95 * e_one);
  // Our executor runs the written model as ONNX Runtime does.
  Executor ex(b.model);
  CHECK(max_rel_error(ex.run(held_out).at("y"), ys) < 1e-4);
}

TEST_CASE("sequential reconstruction from cached cuts equals running both models from the inputs", "[prune][sequential]") {
  // Five stages (fc1..fc4 re-solved in order, fc4 = the last); x is read again by the skip Gemm at
  // the end, so every cached cut carries x besides the hidden value. Each pass after the first runs
  // only the nodes after the previous stage's first node, from the cached values: the statistics,
  // hence the weights, must be the same numbers as from full runs of both models (cache off), and
  // a cache budget too small for any cut falls back to the full runs.
  fs::path dir = temp_dir("seq_cache");
  Model m = mlp(4, 21, 24, true);
  write_npy(dir / "calib.npy", random_inputs(m, 9, 200).at("x"));  // 200 batches of one sample
  int p_on = 0, p_off = 0, p_tiny = 0;
  Pruned on = prune_mlp(m, dir / "calib.npy", true, 0.01, SequentialOptions{}.cache_bytes, &p_on);
  Pruned off = prune_mlp(m, dir / "calib.npy", true, 0.01, 0, &p_off);
  Pruned tiny = prune_mlp(m, dir / "calib.npy", true, 0.01, 64, &p_tiny);
  CHECK(on.report.layers_compensated == 4);
  CHECK(p_on == 4);
  CHECK(p_off == 4);
  CHECK(p_tiny == 4);
  const Graph& g = on.model.graph;
  REQUIRE(g.initializers.size() == off.model.graph.initializers.size());
  int compared = 0;
  for (const Tensor& t : g.initializers) {
    const Tensor* u = off.model.graph.initializer(t.name);
    const Tensor* v = tiny.model.graph.initializer(t.name);
    REQUIRE((u && v));
    INFO(t.name);
    CHECK(t.dims == u->dims);
    CHECK(t.to_float() == u->to_float());
    CHECK(v->to_float() == u->to_float());
    ++compared;
  }
  CHECK(compared >= 10);
  // fc4 reads the 12 kept of fc3's 24 outputs.
  const Tensor* w4 = g.initializer("w4");
  REQUIRE(w4);
  CHECK(w4->dims == std::vector<int64_t>{8, 12});
}

TEST_CASE("prune --reconstruct: sequential by default with --calib, one-shot on request, bad values refused", "[prune][sequential][cli]") {
  fs::path dir = temp_dir("seq_cli");
  Model m = mlp(2, 21);
  save_model(m, dir / "m.onnx");
  write_npy(dir / "calib.npy", random_inputs(m, 9, 64).at("x"));
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"prune", (dir / "m.onnx").string(), "-o", (dir / "p.onnx").string(), "--ratio", "0.5",
                                     "--round-to", "1", "--calib", (dir / "calib.npy").string(), "--report",
                                     (dir / "r.json").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args);
  };
  auto def = run({});
  INFO(def.out);
  REQUIRE(def.rc == 0);
  CHECK_THAT(def.out, Catch::Contains("sequential compensation"));
  auto one = run({"--reconstruct", "one-shot"});
  REQUIRE(one.rc == 0);
  CHECK_THAT(one.out, Catch::Contains("+ compensation"));
  auto bad = run({"--reconstruct", "twice"});
  CHECK(bad.rc == 2);
  CHECK_THAT(bad.out, Catch::Contains("--reconstruct must be sequential or one-shot"));
}
