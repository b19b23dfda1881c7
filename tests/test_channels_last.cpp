// Channels-last execution (engine/channels_last.h): convolution chains keep N,H,W,C bytes between
// layout-aware and elementwise kernels, and every reader that wants N,C,H,W gets it converted.
// Each case runs the same model with channels_last on and off and against ONNX Runtime.
#include <catch2/catch.hpp>
#include <algorithm>
#include <set>

#include "engine/executor.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "tests/support.h"

using namespace oc;
using namespace oc::test;

namespace {

// The model run with every combination of channels-last and Conv+activation fusion; [0] is the
// plain, unfused reference.
struct Runs {
  std::vector<std::map<std::string, Tensor>> out;
  std::vector<size_t> cl_values;
  std::vector<std::map<std::string, int64_t>> fused;  // activation nodes a Conv applied, by op
};

Runs run_all(const Model& m, const std::map<std::string, Tensor>& in) {
  Runs r;
  for (int mode = 0; mode < 4; ++mode) {
    ExecutorOptions o;
    o.num_threads = 1;
    o.channels_last = mode & 1;
    o.fuse = mode & 2;
    Executor ex(m, o);
    r.out.push_back(ex.run(in));
    r.cl_values.push_back(ex.last_run_stats().channels_last_values);
    r.fused.push_back(ex.last_run_stats().fused_activations);
  }
  return r;
}

// `m` normalized, saved as `file` and run in every mode (run_all); each of `outs` checked against
// the plain unfused run and ONNX Runtime.
Runs run_all_against_ort(Model& m, const std::string& file, const std::map<std::string, Tensor>& in,
                         const std::vector<const char*>& outs) {
  normalize(m);
  fs::path p = temp_dir("fuse") / file;
  save_model(m, p);
  Runs r = run_all(m, in);
  auto ref = run_ort(p, in);
  for (int mode = 0; mode < 4; ++mode)
    for (const char* out : outs) {
      INFO("channels-last " << (mode & 1) << ", fused " << (mode >> 1) << ": " << out);
      CHECK(max_rel_error(r.out[mode].at(out), r.out[0].at(out)) <= 1e-5);
      CHECK(max_rel_error(r.out[mode].at(out), ref.at(out)) <= 1e-4);
    }
  return r;
}

Node conv(const std::string& x, const std::string& w, const std::string& b, const std::string& y, int64_t pad,
          int64_t stride = 1, int64_t group = 1) {
  Node n = make_node("Conv", {x, w, b}, {y});
  n.set_attr_ints("pads", {pad, pad, pad, pad});
  n.set_attr_ints("strides", {stride, stride});
  if (group != 1) n.set_attr_int("group", group);
  return n;
}

// Every way a channels-last value is read: Conv (dense, depthwise, 1x1), Relu/Clip in place, a
// residual Add of two channels-last values, MaxPool, AveragePool whose include-pad fix-up needs
// N,C,H,W, a squeeze-excitation Mul by [N,C,1,1] and a Sub of a constant [1,C,1,1] (per-channel),
// GlobalAveragePool, Concat (plain: converted), an If branch reading an outer channels-last value,
// channels-last values that are graph outputs, an Add of a channels-last and a plain value at the same
// dims, BatchNormalization, and Shape (dims only). c1+Relu and dw+Clip are fusable.
Model layout_mix(uint64_t seed) {
  Model m = new_model(13);
  Graph& g = m.graph;
  auto w = [&](const std::string& name, std::vector<int64_t> dims) {
    g.add_initializer(random_tensor(name, std::move(dims), seed++, -0.4f, 0.4f));
  };
  g.inputs.push_back(tensor_value("x", {2, 8, 13, 13}));
  g.inputs.push_back(tensor_value("flag", {}, DType::Bool));
  g.inputs.push_back(tensor_value("z", {2, 16, 7, 7}));
  w("c1.w", {16, 8, 3, 3}); w("c1.b", {16});
  w("dw.w", {16, 1, 3, 3}); w("dw.b", {16});
  w("pw.w", {16, 16, 1, 1}); w("pw.b", {16});
  w("c3.w", {16, 16, 3, 3}); w("c3.b", {16});
  w("se.w", {16, 16, 1, 1}); w("se.b", {16});
  w("shift", {1, 16, 1, 1});
  w("bn.s", {16}); w("bn.b", {16}); w("bn.m", {16});
  g.add_initializer(Tensor::from_float("bn.v", {16}, std::vector<float>(16, 0.7f)));
  g.add_initializer(Tensor::from_float("lo", {}, {0.f}));
  g.add_initializer(Tensor::from_float("hi", {}, {0.5f}));
  g.add_node(conv("x", "c1.w", "c1.b", "c1", 1));
  g.add_node(make_node("Relu", {"c1"}, {"r1"}));
  g.add_node(conv("r1", "dw.w", "dw.b", "dw", 1, 2, 16));  // 13 -> 7
  g.add_node(make_node("Clip", {"dw", "lo", "hi"}, {"dwc"}));
  g.add_node(conv("dwc", "pw.w", "pw.b", "pw", 0));
  g.add_node(conv("pw", "c3.w", "c3.b", "c3", 1));
  g.add_node(make_node("Add", {"c3", "pw"}, {"res"}));
  g.add_node(make_node("Add", {"c3", "z"}, {"c3z"}));  // z plain at the same dims: read as a channels-last copy
  g.add_node(make_node("BatchNormalization", {"c3z", "bn.s", "bn.b", "bn.m", "bn.v"}, {"bn"}));
  g.add_node(make_node("Shape", {"c3"}, {"c3_shape"}));  // dims only: no conversion
  g.add_node(make_node("Relu", {"res"}, {"r2"}));
  Node mp = make_node("MaxPool", {"r2"}, {"mp"});
  mp.set_attr_ints("kernel_shape", {2, 2});
  mp.set_attr_ints("strides", {1, 1});
  g.add_node(mp);  // 7 -> 6
  Node ap = make_node("AveragePool", {"mp"}, {"ap"});
  ap.set_attr_ints("kernel_shape", {3, 3});
  ap.set_attr_ints("strides", {2, 2});
  ap.set_attr_ints("pads", {1, 1, 1, 1});
  ap.set_attr_int("count_include_pad", 1);
  ap.set_attr_int("ceil_mode", 1);
  g.add_node(ap);
  g.add_node(make_node("GlobalAveragePool", {"r2"}, {"gap"}));
  g.add_node(conv("gap", "se.w", "se.b", "se", 0));
  g.add_node(make_node("Sigmoid", {"se"}, {"gate"}));
  g.add_node(make_node("Mul", {"r2", "gate"}, {"excited"}));
  g.add_node(make_node("Sub", {"excited", "shift"}, {"shifted"}));  // per-channel constant
  Node cat = make_node("Concat", {"shifted", "r2"}, {"cat"});
  cat.set_attr_int("axis", 1);
  g.add_node(cat);
  Node iff = make_node("If", {"flag"}, {"branch"});
  for (const auto& [attr, op] : {std::pair{"then_branch", "Relu"}, std::pair{"else_branch", "Neg"}}) {
    Attribute a;
    a.name = attr;
    a.kind = Attribute::Kind::Graph;
    a.g = std::make_shared<Graph>();
    a.g->name = std::string(attr) + "_body";
    a.g->add_node(make_node(op, {"c3"}, {a.g->name + ".y"}));
    a.g->outputs.push_back(tensor_value(a.g->name + ".y", {2, 16, 7, 7}));
    iff.attributes.push_back(a);
  }
  g.add_node(iff);
  g.outputs = {tensor_value("c3", {2, 16, 7, 7}), tensor_value("ap", {2, 16, 4, 4}), tensor_value("cat", {2, 32, 7, 7}),
               tensor_value("branch", {2, 16, 7, 7}), tensor_value("shifted", {2, 16, 7, 7}),
               tensor_value("bn", {2, 16, 7, 7}), tensor_value("c3_shape", {4}, DType::Int64)};
  return m;
}

}  // namespace

TEST_CASE("channels-last runs give the plain layout's outputs, and ONNX Runtime's", "[executor][ort][layout]") {
  Model m = layout_mix(7);
  normalize(m);
  fs::path p = temp_dir("cl") / "mix.onnx";
  save_model(m, p);
  for (bool flag : {true, false}) {
    INFO("If takes the " << (flag ? "then" : "else") << " branch");
    std::map<std::string, Tensor> in = {{"x", random_tensor("x", {2, 8, 13, 13}, 3)}};
    Tensor f;
    f.name = "flag";
    f.dtype = DType::Bool;
    f.bytes = std::vector<uint8_t>{flag ? uint8_t(1) : uint8_t(0)};
    in["flag"] = f;
    in["z"] = random_tensor("z", {2, 16, 7, 7}, 5);
    Runs r = run_all(m, in);
    CHECK(r.cl_values[0] == 0);
    CHECK(r.cl_values[2] == 0);
    // c1 r1 dw dwc pw c3 res c3z bn r2 mp excited shifted: every value up to the Concat but the SE branch
    CHECK(r.cl_values[1] == 13);
    CHECK(r.cl_values[3] == 13);
    auto ref = run_ort(p, in);
    for (int mode = 0; mode < 4; ++mode)
      for (const char* out : {"c3", "ap", "cat", "branch", "shifted", "bn", "c3_shape"}) {
        INFO("channels-last " << (mode & 1) << ", fused " << (mode >> 1) << ": " << out);
        REQUIRE(r.out[mode].at(out).dims == r.out[0].at(out).dims);
        CHECK(max_rel_error(r.out[mode].at(out), r.out[0].at(out)) <= 1e-5);
        CHECK(max_rel_error(r.out[mode].at(out), ref.at(out)) <= 1e-4);
      }
  }
}

TEST_CASE("torchvision CNNs run channels-last with the plain layout's numbers", "[executor][zoo][layout]") {
  // The conv activation each applies itself: Relu / Clip (ReLU6) / SiLU (Sigmoid·Mul) / HardSwish (HardSigmoid·Mul).
  const std::map<std::string, std::pair<const char*, int64_t>> fused_op = {
      {"resnet18", {"Relu", 17}}, {"mobilenet_v2", {"Clip", 35}},
      {"efficientnet_b0", {"Mul", 49}}, {"mobilenet_v3_large", {"Mul", 20}}};
  for (const auto& [name, fused] : fused_op) {
    INFO(name);
    fs::path src = zoo_model(name);
    if (src.empty()) return;
    Model m = load_model(src);
    normalize(m);
    auto in = random_inputs(m, 11);
    Runs r = run_all(m, in);
    CHECK(r.cl_values[3] >= 40);  // every conv and activation of the backbone
    CHECK(r.fused[1].empty());
    CHECK(r.fused[3][fused.first] == fused.second);
    for (int mode = 1; mode < 4; ++mode)
      for (const auto& [k, t] : r.out[0]) CHECK(max_rel_error(r.out[mode].at(k), t) <= 1e-4);
  }
}

TEST_CASE("a value hook sees every value in N,C,H,W while the run stays channels-last", "[executor][layout]") {
  Model m = small_cnn(4);
  normalize(m);
  auto in = random_inputs(m, 2);
  Executor ex(m, ExecutorOptions{1, "cpu", false, true, true});
  std::map<std::string, Tensor> seen;
  ex.run(in, [&](const std::string& n, const Tensor& t) { seen[n] = t; });
  CHECK(ex.last_run_stats().channels_last_values > 0);  // the hook got N,C,H,W copies
  Executor plain(m, ExecutorOptions{1, "cpu", false, false, false});
  std::map<std::string, Tensor> want;
  plain.run(in, [&](const std::string& n, const Tensor& t) { want[n] = t; });
  REQUIRE(seen.size() == want.size());
  // Same layout; the numbers of the channels-last kernels (checked against ONNX Runtime above).
  for (const auto& [k, t] : want) CHECK(max_rel_error(seen.at(k), t) <= 1e-4);
  // Values the hook takes in any order arrive as stored: the same elements, N,H,W,C bytes.
  std::set<std::string> every;
  for (const auto& [k, t] : want) every.insert(k);
  std::map<std::string, Tensor> stored;
  ex.run(in, [&](const std::string& n, const Tensor& t) { stored[n] = t; }, every, nullptr, every);
  REQUIRE(stored.size() == want.size());
  size_t reordered = 0;
  for (const auto& [k, t] : seen) {
    std::vector<float> a = stored.at(k).to_float(), b = t.to_float();
    reordered += a != b;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CHECK(a == b);
  }
  CHECK(reordered > 0);
}

TEST_CASE("a hook keeps the Conv fusions whose skipped values it does not watch", "[executor][layout]") {
  Model m = layout_mix(5);
  normalize(m);
  std::map<std::string, Tensor> in = {{"x", random_tensor("x", {2, 8, 13, 13}, 3)},
                                      {"z", random_tensor("z", {2, 16, 7, 7}, 5)}};
  Tensor flag;
  flag.name = "flag";
  flag.dtype = DType::Bool;
  flag.bytes = std::vector<uint8_t>{1};
  in["flag"] = flag;
  ExecutorOptions fused_opt;
  fused_opt.num_threads = 1;
  Executor ex(m, fused_opt);
  ex.run(in);
  const auto plain_fused = ex.last_run_stats().fused_activations;  // c1+Relu, dw+Clip, se+Sigmoid
  REQUIRE(plain_fused.count("Relu"));
  ExecutorOptions unfused_opt = fused_opt;
  unfused_opt.fuse = false;
  Executor ref(m, unfused_opt);
  std::map<std::string, Tensor> want, seen;
  ref.run(in, [&](const std::string& n, const Tensor& t) { want[n] = t; });
  auto hook = [&](const std::string& n, const Tensor& t) { seen[n] = t; };
  // Watching only what the fusions produce: every fusion stays, with the unfused numbers.
  ex.run(in, hook, {"r1", "dwc", "r2", "gate"});
  CHECK(ex.last_run_stats().fused_activations == plain_fused);
  for (const char* v : {"r1", "dwc", "r2", "gate"}) CHECK(max_rel_error(seen.at(v), want.at(v)) <= 1e-5);
  // Watching a Conv output the Relu would have been applied to: that one fusion is undone, and
  // the hook sees the Conv's own output (negative values included).
  seen.clear();
  ex.run(in, hook, {"c1", "r1"});
  auto expect = plain_fused;
  if (--expect["Relu"] == 0) expect.erase("Relu");
  CHECK(ex.last_run_stats().fused_activations == expect);
  CHECK(max_rel_error(seen.at("c1"), want.at("c1")) <= 1e-5);
  const std::vector<float> c1 = seen.at("c1").to_float();
  CHECK(*std::min_element(c1.begin(), c1.end()) < 0.f);
  CHECK(max_rel_error(seen.at("r1"), want.at("r1")) <= 1e-5);
}

namespace {

// Every activation a Conv applies itself (engine/fusion.h), on each of the conv kernel's paths
// (dense, depthwise, 1x1 on N,C,H,W): v·Sigmoid(v) either way round, v·HardSigmoid(v) at torch's
// HardSwish constants, Sigmoid and HardSigmoid alone, the HardSwish op; and two that must not fuse:
// v·HardSigmoid(v) at other constants (no one-eltwise form) and a v that is also a graph output.
Model activation_mix(uint64_t seed) {
  Model m = new_model(14);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {2, 8, 9, 9}));
  auto c = [&](const std::string& name, const std::string& in, int64_t k, int64_t group = 1) {
    g.add_initializer(random_tensor(name + ".w", {8, 8 / group, k, k}, seed++, -0.5f, 0.5f));
    g.add_initializer(random_tensor(name + ".b", {8}, seed++, -0.5f, 0.5f));
    g.add_node(conv(in, name + ".w", name + ".b", name, k / 2, 1, group));
  };
  auto hsig = [&](const std::string& in, const std::string& out, float alpha) {
    Node n = make_node("HardSigmoid", {in}, {out});
    n.set_attr_float("alpha", alpha);
    n.set_attr_float("beta", 0.5f);
    g.add_node(n);
  };
  c("c1", "x", 3);
  g.add_node(make_node("Sigmoid", {"c1"}, {"s1"}));
  g.add_node(make_node("Mul", {"c1", "s1"}, {"silu"}));
  c("c2", "silu", 3);
  hsig("c2", "h2", 1.f / 6);
  g.add_node(make_node("Mul", {"h2", "c2"}, {"hswish"}));
  c("c3", "hswish", 3, 8);  // depthwise
  g.add_node(make_node("Sigmoid", {"c3"}, {"sig"}));
  c("c4", "sig", 1);
  hsig("c4", "hs4", 0.2f);
  c("c5", "hs4", 3);
  hsig("c5", "h5", 0.2f);
  g.add_node(make_node("Mul", {"c5", "h5"}, {"not_hswish"}));
  c("c6", "not_hswish", 3);
  g.add_node(make_node("HardSwish", {"c6"}, {"hs6"}));
  c("c7", "hs6", 3);
  g.add_node(make_node("Sigmoid", {"c7"}, {"s7"}));
  g.add_node(make_node("Mul", {"s7", "c7"}, {"silu7"}));
  g.outputs = {tensor_value("c7", {2, 8, 9, 9}), tensor_value("silu7", {2, 8, 9, 9})};
  return m;
}

}  // namespace

TEST_CASE("Conv applies SiLU, HardSwish, Sigmoid and HardSigmoid itself, with the unfused numbers",
          "[executor][ort][layout]") {
  Model m = activation_mix(3);
  std::map<std::string, Tensor> in = {{"x", random_tensor("x", {2, 8, 9, 9}, 4, -2.f, 2.f)}};
  Runs r = run_all_against_ort(m, "acts.onnx", in, {"c7", "silu7"});
  const std::vector<std::map<std::string, int64_t>>& fused = r.fused;
  const std::map<std::string, int64_t> none, want = {{"Sigmoid", 2}, {"HardSigmoid", 2}, {"Mul", 2}, {"HardSwish", 1}};
  CHECK(fused[0] == none);
  CHECK(fused[1] == none);
  CHECK(fused[2] == want);
  CHECK(fused[3] == want);
}

namespace {

// Linear layers the executor fuses (engine/fusion.h): MatMul + bias Add + GELU (torch's erf form),
// MatMul + bias Add + Relu, MatMul + scalar Mul; and three that must stay as they are: a bias Add
// whose MatMul output is also a graph output, an Add of a non-constant value, and a GELU whose
// Div constant is not √2.
Model linear_mix(uint64_t seed) {
  Model m = new_model(13);
  Graph& g = m.graph;
  auto w = [&](const std::string& name, std::vector<int64_t> dims) {
    g.add_initializer(random_tensor(name, std::move(dims), seed++, -0.5f, 0.5f));
  };
  auto scalar = [&](const std::string& name, float v) { g.add_initializer(Tensor::from_float(name, {}, {v})); };
  g.inputs.push_back(tensor_value("x", {2, 5, 12}));
  g.inputs.push_back(tensor_value("z", {2, 5, 16}));
  w("w1", {12, 16}); w("b1", {16}); w("w2", {16, 8}); w("b2", {8}); w("w3", {12, 16}); w("w4", {12, 16}); w("b4", {16});
  w("w5", {12, 16}); w("w6", {12, 16}); w("b6", {16});
  scalar("sqrt2", 1.41421356f); scalar("one", 1.f); scalar("half", 0.5f); scalar("quarter", 0.25f); scalar("two", 2.f);
  g.add_node(make_node("MatMul", {"x", "w1"}, {"h1"}));
  g.add_node(make_node("Add", {"b1", "h1"}, {"h1b"}));
  g.add_node(make_node("Div", {"h1b", "sqrt2"}, {"d"}));
  g.add_node(make_node("Erf", {"d"}, {"e"}));
  g.add_node(make_node("Add", {"e", "one"}, {"e1"}));
  g.add_node(make_node("Mul", {"h1b", "e1"}, {"m"}));
  g.add_node(make_node("Mul", {"m", "half"}, {"gelu"}));
  g.add_node(make_node("MatMul", {"gelu", "w2"}, {"h2"}));
  g.add_node(make_node("Add", {"h2", "b2"}, {"h2b"}));
  g.add_node(make_node("Relu", {"h2b"}, {"y"}));
  g.add_node(make_node("MatMul", {"x", "w3"}, {"h3"}));
  g.add_node(make_node("Mul", {"h3", "quarter"}, {"scaled"}));
  g.add_node(make_node("MatMul", {"x", "w4"}, {"h4"}));  // h4 is a graph output: its Add stays
  g.add_node(make_node("Add", {"h4", "b4"}, {"h4b"}));
  g.add_node(make_node("MatMul", {"x", "w5"}, {"h5"}));
  g.add_node(make_node("Add", {"h5", "z"}, {"h5z"}));  // not a constant bias
  g.add_node(make_node("MatMul", {"x", "w6"}, {"h6"}));
  g.add_node(make_node("Add", {"h6", "b6"}, {"h6b"}));  // bias fused, the GELU-like chain is not (Div by 2)
  g.add_node(make_node("Div", {"h6b", "two"}, {"d6"}));
  g.add_node(make_node("Erf", {"d6"}, {"e6"}));
  g.add_node(make_node("Add", {"e6", "one"}, {"e61"}));
  g.add_node(make_node("Mul", {"h6b", "e61"}, {"m6"}));
  g.add_node(make_node("Mul", {"m6", "half"}, {"not_gelu"}));
  g.outputs = {tensor_value("y", {2, 5, 8}), tensor_value("scaled", {2, 5, 16}), tensor_value("h4", {2, 5, 16}),
               tensor_value("h4b", {2, 5, 16}), tensor_value("h5z", {2, 5, 16}), tensor_value("not_gelu", {2, 5, 16})};
  return m;
}

}  // namespace

TEST_CASE("MatMul applies its bias Add, GELU, Relu and a scale itself, with the unfused numbers",
          "[executor][ort][layout]") {
  Model m = linear_mix(11);
  std::map<std::string, Tensor> in = {{"x", random_tensor("x", {2, 5, 12}, 5, -2.f, 2.f)},
                                      {"z", random_tensor("z", {2, 5, 16}, 6)}};
  Runs r = run_all_against_ort(m, "linear.onnx", in, {"y", "scaled", "h4", "h4b", "h5z", "not_gelu"});
  // Bias Adds of h1, h2, h6; the GELU's Div, Erf, Add(1) run nowhere and its two Muls hand the value
  // on; the Relu; the scale Mul.
  const std::map<std::string, int64_t> none, want = {{"Add", 4}, {"Div", 1}, {"Erf", 1}, {"Mul", 3}, {"Relu", 1}};
  CHECK(r.fused[0] == none);
  CHECK(r.fused[2] == want);
}

namespace {

// Residual Adds a Conv adds itself (engine/fusion.h, oneDNN's sum post-op), on each path of the
// conv kernel: a 1x1 conv on N,C,H,W adding its own input then Relu (the matmul path), a depthwise
// conv whose Add names the residual first (the depthwise loop, or oneDNN reordering a plain
// residual), two parallel convs whose Add fuses into the later one (its residual read last: written
// in place) then Clip, and an Add of a [2,8,1,1] input the Conv declines (broadcast), whose Add and
// Relu then run as nodes.
Model residual_mix(uint64_t seed) {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {2, 8, 9, 9}));
  g.inputs.push_back(tensor_value("s", {2, 8, 1, 1}));
  auto c = [&](const std::string& name, const std::string& in, int64_t k, int64_t group = 1) {
    g.add_initializer(random_tensor(name + ".w", {8, 8 / group, k, k}, seed++, -0.5f, 0.5f));
    g.add_initializer(random_tensor(name + ".b", {8}, seed++, -0.5f, 0.5f));
    g.add_node(conv(in, name + ".w", name + ".b", name, k / 2, 1, group));
  };
  g.add_initializer(Tensor::from_float("lo", {}, {-0.5f}));
  g.add_initializer(Tensor::from_float("hi", {}, {0.5f}));
  c("p1", "x", 1);
  g.add_node(make_node("Add", {"p1", "x"}, {"a1"}));
  g.add_node(make_node("Relu", {"a1"}, {"r1"}));
  c("d2", "r1", 3, 8);
  g.add_node(make_node("Add", {"r1", "d2"}, {"a2"}));
  c("c3", "a2", 3);
  c("c4", "a2", 3);
  g.add_node(make_node("Add", {"c3", "c4"}, {"a3"}));
  g.add_node(make_node("Clip", {"a3", "lo", "hi"}, {"k3"}));
  c("c5", "k3", 3);
  g.add_node(make_node("Add", {"c5", "s"}, {"a5"}));
  g.add_node(make_node("Relu", {"a5"}, {"y"}));
  g.outputs = {tensor_value("a2", {2, 8, 9, 9}), tensor_value("y", {2, 8, 9, 9})};
  return m;
}

}  // namespace

TEST_CASE("Conv adds a residual shortcut before its activation itself, with the unfused numbers",
          "[executor][ort][layout]") {
  Model m = residual_mix(5);
  std::map<std::string, Tensor> in = {{"x", random_tensor("x", {2, 8, 9, 9}, 4, -2.f, 2.f)},
                                      {"s", random_tensor("s", {2, 8, 1, 1}, 6)}};
  Runs r = run_all_against_ort(m, "residual.onnx", in, {"a2", "y"});
  // a1, a2, a3 fused (p1, d2, c4 add them); r1 and k3 applied by those convs; c5 declines.
  const std::map<std::string, int64_t> none, want = {{"Add", 3}, {"Relu", 1}, {"Clip", 1}};
  CHECK(r.fused[0] == none);
  CHECK(r.fused[1] == none);
  CHECK(r.fused[2] == want);
  CHECK(r.fused[3] == want);
  // A hook watching the sum before the Clip undoes that fusion alone and sees the unclipped sum.
  ExecutorOptions fused_opt;
  fused_opt.num_threads = 1;
  Executor ex(m, fused_opt);
  ExecutorOptions unfused_opt = fused_opt;
  unfused_opt.fuse = false;
  Executor plain(m, unfused_opt);
  std::map<std::string, Tensor> seen, want_seen;
  ex.run(in, [&](const std::string& n, const Tensor& t) { seen[n] = t; }, {"a3"});
  plain.run(in, [&](const std::string& n, const Tensor& t) { want_seen[n] = t; }, {"a3"});
  CHECK(ex.last_run_stats().fused_activations == std::map<std::string, int64_t>{{"Add", 2}, {"Relu", 1}});
  REQUIRE(seen.count("a3"));
  CHECK(max_rel_error(seen.at("a3"), want_seen.at("a3")) <= 1e-5);
  const std::vector<float> a3 = seen.at("a3").to_float();
  CHECK(*std::max_element(a3.begin(), a3.end()) > 0.5f);  // not clipped
}
