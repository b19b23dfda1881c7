// Shape inference against ONNX Runtime, and parameter/MAC counting against published figures.
#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/shape_eval.h"
#include "graph/cost.h"
#include "graph/errors.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/shape_inference.h"
#include "support.h"
#include "zoo_builders.h"

using namespace oc;
using namespace oc::test;

namespace {

std::string safe_name(const std::string& s) {
  std::string r = s;
  for (char& ch : r)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-')) ch = '_';
  return r;
}

// Runs `m` (shapes already inferred) in ONNX Runtime with every main-graph value exposed as an output
// and checks each runtime shape against the inferred one. Returns how many values were compared.
int check_against_ort(const Model& inferred, const std::map<std::string, Tensor>& inputs, const std::string& tag) {
  Model m = inferred;
  std::set<std::string> outs;
  for (const auto& o : m.graph.outputs) outs.insert(o.name);
  std::map<std::string, ValueInfo> expect;
  for (const auto& o : m.graph.outputs) expect[o.name] = o;
  for (const auto& v : m.graph.value_info) {
    if (outs.count(v.name) || m.graph.producer(v.name) < 0) continue;  // subgraph values are not in this graph
    if (v.dtype == DType::String || v.dtype == DType::Undefined) continue;
    ValueInfo o = v;
    m.graph.outputs.push_back(o);
    expect[v.name] = v;
  }
  fs::path p = temp_dir("shape_" + tag) / "model.onnx";
  save_model(m, p);
  auto got = run_ort(p, inputs);
  std::map<std::string, std::string> by_safe;
  for (const auto& [name, vi] : expect) by_safe[safe_name(name)] = name;
  int compared = 0;
  for (const auto& [sname, t] : got) {
    REQUIRE(by_safe.count(sname));
    const ValueInfo& vi = expect.at(by_safe.at(sname));
    INFO(tag << ": value " << vi.name << " inferred " << shape_str(vi.shape) << " runtime " << shape_str(t.dims));
    REQUIRE(vi.has_shape);
    REQUIRE(shape_known(vi.shape));
    CHECK(shape_values(vi.shape) == t.dims);
    if (t.dtype != DType::Bool) CHECK(dtype_name(vi.dtype) == dtype_name(t.dtype));
    ++compared;
  }
  return compared;
}

// Every dim inferred without concrete input shapes must agree with the concrete run: numbers equal,
// symbols and derived expressions evaluated with the concrete input dims equal too; returns the share
// of dims that could not be evaluated (unknown).
double check_symbolic(const Model& symbolic, const Model& concrete, const std::map<std::string, int64_t>& env) {
  int dims = 0, unknown = 0;
  for (const auto& v : concrete.graph.value_info) {
    const ValueInfo* s = symbolic.graph.find_value_info(v.name);
    if (!s || !v.has_shape) continue;
    INFO("value " << v.name << " symbolic " << shape_str(s->shape) << " concrete " << shape_str(v.shape));
    REQUIRE(s->has_shape);
    REQUIRE(s->shape.size() == v.shape.size());
    for (size_t i = 0; i < v.shape.size(); ++i) {
      ++dims;
      std::optional<int64_t> x = evaluate_dim(s->shape[i], env);
      INFO("dim " << i);
      if (x) CHECK(*x == v.shape[i].value);
      else ++unknown;
    }
  }
  return dims ? static_cast<double>(unknown) / dims : 1.0;
}

// The branch of a top-level If taken at runtime becomes the main graph, so its values (inferred in the
// If's context) can be exposed as outputs and checked against ONNX Runtime.
Model inline_if_branch(const Model& src, const std::string& if_output, const char* branch) {
  Model m = src;
  Graph& g = m.graph;
  int p = g.producer(if_output);
  REQUIRE(p >= 0);
  Node node = g.nodes[static_cast<size_t>(p)];
  REQUIRE(node.op_type == "If");
  const Graph& b = *node.attr(branch)->g;
  g.remove_node(static_cast<size_t>(p));
  for (const auto& n : b.nodes) g.add_node(n);
  for (const auto& t : b.initializers) g.add_initializer(t);
  for (const auto& v : b.value_info) g.value_info.push_back(v);
  for (size_t k = 0; k < node.outputs.size(); ++k) {
    g.add_node(make_node("Identity", {b.outputs[k].name}, {node.outputs[k]}));
    ValueInfo vi = b.outputs[k];
    g.value_info.push_back(vi);
  }
  g.invalidate();
  toposort(g);
  g.remove_unused();
  return m;
}

// Many operators in one opset-17 graph on x [batch, 4, 10, 12]: the attribute/input forms the corpus
// does not reach (ConvTranspose output_padding/output_shape, SAME padding, ceil_mode, Resize sizes,
// Slice with negative steps, Reshape 0/-1 from a Shape chain, Split, Tile, Expand, Pad, TopK, GRU...).
Model op_zoo() {
  Model m = new_model(17);
  Graph& g = m.graph;
  ValueInfo x = tensor_value("x", {1, 4, 10, 12});
  x.shape[0] = Dim::sym("batch");
  g.inputs.push_back(x);
  uint64_t seed = 11;
  auto w = [&](const std::string& name, std::vector<int64_t> dims) {
    g.add_initializer(random_tensor(name, dims, seed++));
  };
  auto ints = [&](const std::string& name, std::vector<int64_t> v) {
    g.add_initializer(Tensor::from_int64(name, {static_cast<int64_t>(v.size())}, v));
  };
  auto node = [&](const std::string& op, std::vector<std::string> in, std::vector<std::string> out) -> Node& {
    return g.add_node(make_node(op, std::move(in), std::move(out)));
  };
  std::vector<std::string> outs;
  auto out = [&](const std::string& v) { outs.push_back(v); };

  w("wt1", {4, 3, 3, 3});
  Node& ct1 = node("ConvTranspose", {"x", "wt1"}, {"ct1"});
  ct1.set_attr_ints("strides", {2, 2}); ct1.set_attr_ints("pads", {1, 1, 1, 1}); ct1.set_attr_ints("output_padding", {1, 0});
  out("ct1");
  w("wt2", {4, 2, 3, 3});
  Node& ct2 = node("ConvTranspose", {"x", "wt2"}, {"ct2"});
  ct2.set_attr_ints("strides", {2, 2}); ct2.set_attr_int("group", 2); ct2.set_attr_ints("output_shape", {21, 25});
  out("ct2");
  w("wc1", {6, 4, 3, 3});
  Node& c1 = node("Conv", {"x", "wc1"}, {"c1"});
  c1.set_attr_string("auto_pad", "SAME_UPPER"); c1.set_attr_ints("strides", {2, 2});
  out("c1");
  w("wc2", {4, 2, 3, 3});
  Node& c2 = node("Conv", {"x", "wc2"}, {"c2"});
  c2.set_attr_ints("dilations", {2, 2}); c2.set_attr_int("group", 2); c2.set_attr_ints("pads", {0, 1, 0, 1});
  out("c2");
  Node& mp = node("MaxPool", {"x"}, {"mp"});
  mp.set_attr_ints("kernel_shape", {3, 3}); mp.set_attr_ints("strides", {2, 2}); mp.set_attr_ints("pads", {1, 1, 1, 1});
  mp.set_attr_int("ceil_mode", 1);
  out("mp");
  Node& ap = node("AveragePool", {"x"}, {"ap"});
  ap.set_attr_ints("kernel_shape", {2, 3}); ap.set_attr_ints("strides", {2, 2}); ap.set_attr_int("ceil_mode", 1);
  out("ap");
  g.add_initializer(Tensor::from_float("scales", {4}, {1.f, 1.f, 2.f, 1.5f}));
  Node& rs1 = node("Resize", {"x", "", "scales"}, {"rs1"});
  rs1.set_attr_string("mode", "nearest");
  out("rs1");
  // sizes = Concat(Shape(ct1)[0:2], [7, 9]): folded from the Shape start/end form.
  Node& sh2 = node("Shape", {"ct1"}, {"ct1.nc"});
  sh2.set_attr_int("end", 2);
  ints("hw", {7, 9});
  node("Concat", {"ct1.nc", "hw"}, {"sizes"}).set_attr_int("axis", 0);
  Node& rs2 = node("Resize", {"ct1", "", "", "sizes"}, {"rs2"});
  rs2.set_attr_string("mode", "linear");
  out("rs2");
  // Reshape to [batch, -1, 30] with batch read from Shape(x).
  node("Shape", {"x"}, {"shp"});
  g.add_initializer(Tensor::from_int64("zero", {}, {0}));
  ints("ax0", {0});
  Node& ga = node("Gather", {"shp", "zero"}, {"bdim"});
  ga.set_attr_int("axis", 0);
  node("Unsqueeze", {"bdim", "ax0"}, {"bdim1"});
  ints("rest", {-1, 30});
  Node& cc = node("Concat", {"bdim1", "rest"}, {"tgt"});
  cc.set_attr_int("axis", 0);
  node("Reshape", {"x", "tgt"}, {"rsh1"});
  out("rsh1");
  ints("zz", {0, 0, -1});
  node("Reshape", {"x", "zz"}, {"rsh2"});
  out("rsh2");
  Node& tr = node("Transpose", {"x"}, {"tr0"});
  tr.set_attr_ints("perm", {0, 2, 3, 1});
  out("tr0");

  ints("split", {5, 7});
  Node& sp = node("Split", {"x", "split"}, {"sp0", "sp1"});
  sp.set_attr_int("axis", 3);
  out("sp0"); out("sp1");
  ints("st", {1, -1}); ints("en", {8, -100}); ints("axs", {2, 3}); ints("stp", {2, -2});
  node("Slice", {"x", "st", "en", "axs", "stp"}, {"sl"});
  out("sl");
  g.add_initializer(Tensor::from_int64("gidx", {2, 2}, {0, 2, 1, 3}));
  Node& gt = node("Gather", {"x", "gidx"}, {"gt"});
  gt.set_attr_int("axis", 1);
  out("gt");
  node("ReduceMean", {"x"}, {"rm"}).set_attr_ints("axes", {1});
  ints("eshape", {1, 3, 1, 1});
  node("Expand", {"rm", "eshape"}, {"ex"});
  out("ex");
  ints("reps", {1, 2, 1, 3});
  node("Tile", {"x", "reps"}, {"ti"});
  out("ti");
  ints("pads", {0, 0, 1, 2, 0, 0, 3, 4});
  node("Pad", {"x", "pads"}, {"pd"});
  out("pd");
  ints("rax", {2, 3});
  node("ReduceSum", {"x", "rax"}, {"rsum"}).set_attr_int("keepdims", 0);
  out("rsum");
  ints("k", {3});
  node("TopK", {"x", "k"}, {"tk", "tki"});
  out("tk"); out("tki");
  w("ew", {10, 12});
  node("Einsum", {"x", "ew"}, {"es"}).set_attr_string("equation", "bchw,hw->bc");
  out("es");
  w("mw", {12, 7});
  node("MatMul", {"x", "mw"}, {"mm"});
  out("mm");
  Node& trx = node("Transpose", {"x"}, {"xt"});
  trx.set_attr_ints("perm", {0, 1, 3, 2});
  node("MatMul", {"x", "xt"}, {"att"});
  out("att");
  w("ln.s", {12}); w("ln.b", {12});
  node("LayerNormalization", {"x", "ln.s", "ln.b"}, {"ln"});
  out("ln");
  Node& t2 = node("Transpose", {"rsh2"}, {"seq"});
  t2.set_attr_ints("perm", {1, 0, 2});
  w("gw", {2, 24, 120}); w("gr", {2, 24, 8});
  Node& gru = node("GRU", {"seq", "gw", "gr"}, {"gy", "gyh"});
  gru.set_attr_int("hidden_size", 8); gru.set_attr_string("direction", "bidirectional");
  out("gy"); out("gyh");
  g.add_initializer(Tensor::from_int64("r0", {}, {0}));
  g.add_initializer(Tensor::from_int64("r2", {}, {2}));
  g.add_initializer(Tensor::from_int64("three", {}, {3}));
  node("Gather", {"shp", "three"}, {"wdim"});
  node("Range", {"r0", "wdim", "r2"}, {"rg"});
  out("rg");
  g.add_initializer(Tensor::from_float("fz", {}, {0.f}));
  node("Greater", {"x", "fz"}, {"pos"});
  node("Where", {"pos", "x", "fz"}, {"wh"});
  out("wh");
  node("Flatten", {"x"}, {"fl"}).set_attr_int("axis", 2);
  out("fl");
  node("Cast", {"x"}, {"ci"}).set_attr_int("to", static_cast<int64_t>(DType::Int32));
  out("ci");
  node("ConstantOfShape", {"shp"}, {"cos"});
  out("cos");
  node("Unsqueeze", {"x", "ax0"}, {"us"});
  node("Squeeze", {"us", "ax0"}, {"sq"});
  out("sq");
  node("Flatten", {"x"}, {"flb"});
  w("gb", {7, 480});
  node("Gemm", {"flb", "gb"}, {"gm"}).set_attr_int("transB", 1);
  out("gm");
  node("DepthToSpace", {"x"}, {"d2s"}).set_attr_int("blocksize", 2);
  out("d2s");
  g.add_initializer(Tensor::from_float("qs", {}, {0.05f}));
  Tensor qz8;
  qz8.name = "qz8"; qz8.dtype = DType::Int8; qz8.bytes = {0};
  g.add_initializer(qz8);
  node("QuantizeLinear", {"x", "qs", "qz8"}, {"q"});
  node("DequantizeLinear", {"q", "qs", "qz8"}, {"dq"});
  out("dq");
  node("Concat", {"x", "sp1", "x"}, {"cat"}).set_attr_int("axis", -1);  // 12 + 7 + 12
  out("cat");
  for (const auto& o : outs) {
    ValueInfo v;
    v.name = o;
    g.outputs.push_back(v);
  }
  return m;
}

struct CorpusCase {
  const char* file;
  std::map<std::string, std::vector<int64_t>> shapes;
};

}  // namespace

TEST_CASE("shape inference matches onnxruntime on every value of the corpus models", "[shape]") {
  const std::vector<CorpusCase> cases = {
      {"ppocr4_det.onnx", {{"x", {1, 3, 96, 128}}}},
      {"ppocr4_rec.onnx", {{"x", {2, 3, 48, 160}}}},
      {"ppocr2_cls.onnx", {{"x", {1, 3, 48, 192}}}},
      {"blazeface_front.onnx", {}},
      {"blazeface_back.onnx", {}},
      {"wakeword_hello.onnx", {}},
      {"silero_vad.onnx", {{"input", {1, 512}}, {"h", {2, 1, 64}}, {"c", {2, 1, 64}}}},
  };
  for (const auto& cs : cases) {
    DYNAMIC_SECTION(cs.file) {
      Model m = load_model(corpus_model(cs.file));
      normalize(m);
      ShapeInferenceResult r = infer_shapes_evaluated(m, cs.shapes);  // as prune, reports and inspect do
      INFO("unknown ops: " << r.unknown_ops.size() << ", first unresolved: "
                           << (r.unresolved.empty() ? "" : r.unresolved[0].first + ": " + r.unresolved[0].second));
      CHECK(r.unknown_ops.empty());
      CHECK(r.values > 0);
      auto inputs = random_inputs(m, 7, 1, cs.shapes);
      if (inputs.count("sr")) inputs["sr"] = Tensor::from_int64("sr", {}, {16000});
      int compared = check_against_ort(m, inputs, cs.file);
      CHECK(compared >= static_cast<int>(m.graph.nodes.size()) / 2);
    }
  }
}

TEST_CASE("shape inference covers the operator zoo and matches onnxruntime concrete and symbolic", "[shape]") {
  Model sym = op_zoo();
  ShapeInferenceResult rs = infer_shapes(sym);
  CHECK(rs.unknown_ops.empty());
  // Without a batch size the batch stays symbolic, and the Reshape target folds to [batch, 16, 30].
  const ValueInfo* rsh = sym.graph.find_value_info("rsh1");
  REQUIRE(rsh);
  REQUIRE(rsh->shape.size() == 3);
  CHECK(rsh->shape[0].param == "batch");
  CHECK(rsh->shape[1].value == 16);
  CHECK(rsh->shape[2].value == 30);
  const ValueInfo* fl = sym.graph.find_value_info("fl");
  REQUIRE(fl);
  CHECK(fl->shape[0].param == "batch*4");

  Model con = op_zoo();
  ShapeInferenceResult rc = infer_shapes(con, {{"x", {2, 4, 10, 12}}});
  INFO("first unresolved: " << (rc.unresolved.empty() ? "" : rc.unresolved[0].first + ": " + rc.unresolved[0].second));
  CHECK(rc.complete());
  CHECK(rc.folded.at("tgt") == std::vector<int64_t>{2, -1, 30});
  auto inputs = random_inputs(con, 3, 2, {{"x", {2, 4, 10, 12}}});
  int compared = check_against_ort(con, inputs, "opzoo");
  CHECK(compared >= 40);
  CHECK(check_symbolic(sym, con, {{"batch", 2}}) < 0.02);
}

TEST_CASE("shape inference keeps symbolic dims consistent with the concrete run on corpus models", "[shape]") {
  for (const char* file : {"ppocr4_det.onnx", "ppocr4_rec.onnx", "ppocr2_cls.onnx"}) {
    DYNAMIC_SECTION(file) {
      Model sym = load_model(corpus_model(file));
      normalize(sym);
      Model con = sym;
      infer_shapes(sym);
      std::vector<int64_t> dims = {3, 3, 48, 192};
      ShapeInferenceResult r = infer_shapes(con, {{"x", dims}});
      CHECK(r.complete());
      // Derived dims ("(H-1)/2+1") evaluate with the concrete sizes to what the concrete run inferred.
      std::map<std::string, int64_t> env;
      const Shape& in = sym.graph.inputs[0].shape;
      for (size_t i = 0; i < in.size(); ++i) if (!in[i].known()) env[in[i].param] = dims[i];
      CHECK(env.size() >= 2);
      CHECK(check_symbolic(sym, con, env) < 0.05);
    }
  }
}

TEST_CASE("shape inference inside silero's If branch matches onnxruntime", "[shape]") {
  Model m = load_model(corpus_model("silero_vad.onnx"));
  normalize(m);
  ShapeInferenceResult r = infer_shapes(m, {{"input", {1, 512}}, {"h", {2, 1, 64}}, {"c", {2, 1, 64}}});
  CHECK(r.unknown_ops.empty());
  // sr == 16000 takes then_branch; its LSTM states and convolutions resolve concretely.
  Model flat = inline_if_branch(m, "output", "then_branch");
  auto inputs = random_inputs(flat, 5, 1, {{"input", {1, 512}}, {"h", {2, 1, 64}}, {"c", {2, 1, 64}}});
  if (inputs.count("sr")) inputs["sr"] = Tensor::from_int64("sr", {}, {16000});
  int compared = check_against_ort(flat, inputs, "silero_branch");
  CHECK(compared >= 80);
}

TEST_CASE("infer_shapes rejects input shapes for unknown inputs or of the wrong rank", "[shape]") {
  Model m = small_cnn();
  CHECK_THROWS_AS(infer_shapes(m, {{"nope", {1, 3, 16, 16}}}), InvalidArgument);
  CHECK_THROWS_AS(infer_shapes(m, {{"x", {1, 3, 16}}}), InvalidArgument);
  CHECK_THROWS_AS(infer_shapes(m, {{"c1.w", {8, 3, 3, 3}}}), InvalidArgument);
  // An operator without a rule leaves its outputs unknown and is reported, downstream too.
  Model u = small_cnn();
  u.graph.nodes[2].op_type = "MysteryOp";
  u.graph.nodes[2].domain = "example.com";
  ShapeInferenceResult r = infer_shapes(u);
  CHECK(r.unknown_ops == std::vector<std::string>{"example.com:MysteryOp"});
  CHECK_FALSE(r.complete());
  CHECK(count_costs(u).macs_complete == false);
}

namespace {
struct ZooCase {
  const char* name;
  Model (*build)(uint64_t, int64_t);
  double gmacs, mparams;  // published torchvision figures at 1x3x224x224
};
}  // namespace

TEST_CASE("MACs and params of ResNet-18/50 and MobileNetV2 match the published figures", "[shape][cost]") {
  const ZooCase cases[] = {{"resnet18", build_resnet18, 1.82, 11.69},
                           {"resnet50", build_resnet50, 4.11, 25.56},
                           {"mobilenet_v2", build_mobilenet_v2, 0.30, 3.50}};
  for (const auto& zc : cases) {
    DYNAMIC_SECTION(zc.name) {
      Model m = zc.build(1, 224);
      Model sym = m;
      infer_shapes(sym);
      CostReport cs = count_costs(sym);
      CHECK_FALSE(cs.macs_complete);  // symbolic batch: MACs need an input shape
      infer_shapes(m, {{"input", {1, 3, 224, 224}}});
      CostReport c = count_costs(m);
      REQUIRE(c.macs_complete);
      INFO(zc.name << ": " << c.macs << " MACs, " << c.params << " params");
      CHECK(std::abs(static_cast<double>(c.macs) / 1e9 - zc.gmacs) / zc.gmacs < 0.02);
      CHECK(std::abs(static_cast<double>(c.params) / 1e6 - zc.mparams) / zc.mparams < 0.02);
      // Rows add up to the totals; only Conv and Gemm carry MACs here.
      int64_t sum_macs = 0, sum_params = 0;
      for (const auto& row : c.per_node) { sum_macs += row.macs; sum_params += row.params; }
      CHECK(sum_macs == c.macs);
      CHECK(sum_params == c.params);
      CHECK(c.macs_by_op.size() == 2);
      // MACs are linear in the batch.
      Model b2 = zc.build(1, 224);
      infer_shapes(b2, {{"input", {2, 3, 224, 224}}});
      CHECK(count_costs(b2).macs == 2 * c.macs);
    }
  }
}

TEST_CASE("MobileNetV2 builder shapes match onnxruntime", "[shape]") {
  Model m = build_mobilenet_v2(3, 64);
  infer_shapes(m, {{"input", {1, 3, 64, 64}}});
  auto inputs = random_inputs(m, 9, 1, {{"input", {1, 3, 64, 64}}});
  CHECK(check_against_ort(m, inputs, "mbv2") >= 100);
}

TEST_CASE("cost counting: LSTM gate matmuls, attention MatMuls and MatMulNBits", "[cost]") {
  Model m = load_model(corpus_model("ppocr4_rec.onnx"));
  normalize(m);
  infer_shapes(m, {{"x", {1, 3, 48, 320}}});
  CostReport c = count_costs(m);
  REQUIRE(c.macs_complete);
  // The SVTR attention computes Q.K^T and A.V on activations: MatMuls whose both inputs are computed.
  int act_matmuls = 0;
  for (const auto& row : c.per_node)
    if (row.op_type == "MatMul" && row.params == 0 && row.macs > 0) ++act_matmuls;
  CHECK(act_matmuls >= 4);

  Model s = load_model(corpus_model("silero_vad.onnx"));
  normalize(s);
  infer_shapes(s, {{"input", {1, 512}}, {"h", {2, 1, 64}}, {"c", {2, 1, 64}}});
  CostReport cs = count_costs(s);
  REQUIRE(cs.macs_complete);
  REQUIRE(cs.macs_by_op.count("LSTM"));
  // Two 64->64 LSTM layers per branch; only the taken-size branch counts: seq * (W + R) per layer.
  int64_t lstm = cs.macs_by_op.at("LSTM");
  CHECK(lstm % (4 * 64 * (64 + 64)) == 0);

  // MatMulNBits [M,K] x [K,N] in 4 bits: M*N*K MACs and K*N params.
  Model q = new_model(21);
  q.set_opset("com.microsoft", 1);
  q.graph.inputs.push_back(tensor_value("a", {3, 64}));
  Tensor b;
  b.name = "b"; b.dtype = DType::UInt8; b.dims = {16, 2, 16}; b.bytes.assign(16 * 2 * 16, 0x88);
  q.graph.add_initializer(b);
  q.graph.add_initializer(Tensor::from_float("sc", {16 * 2}, std::vector<float>(32, 0.1f)));
  Node nb = make_node("MatMulNBits", {"a", "b", "sc"}, {"y"});
  nb.domain = "com.microsoft";
  nb.set_attr_int("K", 64); nb.set_attr_int("N", 16); nb.set_attr_int("bits", 4); nb.set_attr_int("block_size", 32);
  q.graph.add_node(nb);
  q.graph.outputs.push_back(tensor_value("y", {3, 16}));
  infer_shapes(q);
  CostReport cq = count_costs(q);
  CHECK(cq.macs == 3 * 16 * 64);
  CHECK(cq.params == 16 * 64);
  auto got = run_ort([&] { fs::path p = temp_dir("nbits") / "m.onnx"; save_model(q, p); return p; }(),
                     {{"a", Tensor::from_float("a", {3, 64}, random_floats(192, 1))}});
  CHECK(got.at("y").dims == std::vector<int64_t>{3, 16});
}

TEST_CASE("inspect prints MACs per op type and asks for --input-shape when dims are symbolic", "[cost][cli]") {
  std::string det = corpus_model("ppocr4_det.onnx").string();
  CliResult r = run_cli({"inspect", det});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("MACs       unknown"));
  CHECK_THAT(r.out, Catch::Contains("--input-shape x=?,3,?,?"));
  CliResult j = run_cli({"inspect", det, "--json", "--input-shape", "x=1,3,640,640"});
  REQUIRE(j.rc == 0);
  auto doc = nlohmann::json::parse(j.out);
  int64_t macs = doc["macs"].get<int64_t>();
  CHECK(macs > 1000000000);
  int64_t sum = 0;
  for (const auto& row : doc["per_node"]) if (!row["macs"].is_null()) sum += row["macs"].get<int64_t>();
  CHECK(sum == macs);
  CHECK(doc["macs_by_op"]["Conv"].get<int64_t>() + doc["macs_by_op"]["ConvTranspose"].get<int64_t>() == macs);
  // Same model, twice the batch: twice the MACs.
  CliResult j2 = run_cli({"inspect", det, "--json", "--input-shape", "x=2,3,640,640"});
  CHECK(nlohmann::json::parse(j2.out)["macs"].get<int64_t>() == 2 * macs);
  CliResult t = run_cli({"inspect", det, "--input-shape", "x=1,3,640,640"});
  CHECK_THAT(t.out, Catch::Contains("= Conv "));
  CliResult bad = run_cli({"inspect", det, "--input-shape", "y=1,3,64,64"});
  CHECK(bad.rc == 2);
  CHECK_THAT(bad.out, Catch::Contains("'y'"));
  CliResult rank = run_cli({"inspect", det, "--input-shape", "x=1,3,64"});
  CHECK(rank.rc == 2);
  CHECK_THAT(rank.out, Catch::Contains("rank"));
}

TEST_CASE("LSTM MACs are the closed form seq x batch x dirs x 4H x (I + H)", "[cost][ort]") {
  for (const char* direction : {"forward", "bidirectional"}) {
    INFO(direction);
    const int64_t T = 5, B = 2, I = 3, H = 4, D = std::string(direction) == "bidirectional" ? 2 : 1;
    Model m = new_model(14);
    Graph& g = m.graph;
    g.inputs.push_back(tensor_value("x", {T, B, I}));
    g.add_initializer(random_tensor("W", {D, 4 * H, I}, 1));
    g.add_initializer(random_tensor("R", {D, 4 * H, H}, 2));
    g.add_initializer(random_tensor("Bias", {D, 8 * H}, 3));
    Node n = make_node("LSTM", {"x", "W", "R", "Bias"}, {"y"});
    n.set_attr_int("hidden_size", H);
    n.set_attr_string("direction", direction);
    g.add_node(n);
    g.outputs.push_back(tensor_value("y", {T, D, B, H}));
    infer_shapes(m);
    CostReport c = count_costs(m);
    REQUIRE(c.macs_complete);
    CHECK(c.macs_by_op.at("LSTM") == T * B * D * 4 * H * (I + H));
    CHECK(c.params == D * 4 * H * (I + H) + D * 8 * H);
    // The graph is one ONNX Runtime runs with those shapes.
    fs::path p = temp_dir("lstm") / "m.onnx";
    save_model(m, p);
    CHECK(run_ort(p, random_inputs(m, 4)).at("y").dims == std::vector<int64_t>{T, D, B, H});
  }
}
