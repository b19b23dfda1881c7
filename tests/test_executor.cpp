// The executor against ONNX Runtime: hand-built graphs covering each kernel family, the real
// corpus, memory release, input validation and the run CLI.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>

#include "engine/executor.h"
#include "engine/npy.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/cost.h"
#include "graph/shape_inference.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// ---- small model-building helpers ----

void add_init(Graph& g, const std::string& name, std::vector<int64_t> dims, const std::vector<int64_t>& v) {
  g.add_initializer(Tensor::from_int64(name, std::move(dims), v));
}
void add_finit(Graph& g, const std::string& name, std::vector<int64_t> dims, uint64_t seed, float lo = -1, float hi = 1) {
  g.add_initializer(random_tensor(name, dims, seed, lo, hi));
}
void set_strings(Node& n, const std::string& name, std::vector<std::string> v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Strings;
  a.strings = std::move(v);
  n.attributes.push_back(a);
}
void set_graph(Node& n, const std::string& name, Graph g) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Graph;
  a.g = std::make_shared<Graph>(std::move(g));
  n.attributes.push_back(a);
}
// Graph outputs without shapes (ORT infers them); the executor does not need them either.
void outputs(Graph& g, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    ValueInfo v;
    v.name = n;
    g.outputs.push_back(v);
  }
}
Tensor rand_input(const std::string& name, std::vector<int64_t> dims, uint64_t seed, float lo = -2, float hi = 2) {
  return random_tensor(name, dims, seed, lo, hi);
}

}  // namespace

TEST_CASE("unary and broadcast binary elementwise kernels agree with ONNX Runtime", "[executor][ort]") {
  Model m = new_model(17);
  Graph& g = m.graph;
  g.inputs = {tensor_value("a", {2, 3, 4, 5}), tensor_value("b", {3, 1, 5}), tensor_value("c", {5})};
  std::vector<std::string> outs;
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Neg", "Abs", "Floor", "Ceil", "Round", "Sign", "Sin",
                         "Cos", "Softplus", "HardSwish", "Elu", "Selu", "Softsign"}) {
    add_node(g, op, {"a"}, {std::string("u_") + op});
    outs.push_back(std::string("u_") + op);
  }
  add_node(g, "LeakyRelu", {"a"}, {"leaky"}).set_attr_float("alpha", 0.3f);
  Node& hs = add_node(g, "HardSigmoid", {"a"}, {"hsig"});
  hs.set_attr_float("alpha", 0.25f);
  hs.set_attr_float("beta", 0.4f);
  add_node(g, "Abs", {"a"}, {"abs_a"});
  g.add_initializer(Tensor::from_float("one", {}, {1.f}));
  add_node(g, "Add", {"abs_a", "one"}, {"pos"});  // > 0 for Log/Sqrt/Pow
  add_node(g, "Log", {"pos"}, {"log"});
  add_node(g, "Sqrt", {"pos"}, {"sqrt"});
  add_node(g, "Reciprocal", {"pos"}, {"recip"});
  add_node(g, "Add", {"a", "b"}, {"add"});   // [2,3,4,5] + [3,1,5]
  add_node(g, "Sub", {"b", "a"}, {"sub"});
  add_node(g, "Mul", {"a", "c"}, {"mul"});   // trailing-axis broadcast
  add_node(g, "Div", {"b", "pos"}, {"div"});
  add_node(g, "Pow", {"pos", "c"}, {"pow"});
  g.add_initializer(Tensor::from_float("two", {}, {2.f}));
  add_node(g, "Pow", {"a", "two"}, {"square"});
  add_node(g, "Max", {"a", "b", "c"}, {"max3"});
  add_node(g, "Min", {"a", "c"}, {"min2"});
  add_node(g, "Sum", {"a", "b", "c"}, {"sum3"});
  add_node(g, "Mean", {"a", "b"}, {"mean2"});
  add_node(g, "Mod", {"a", "pos"}, {"fmod"}).set_attr_int("fmod", 1);
  add_finit(g, "slope", {3, 1, 1}, 11);
  add_node(g, "PRelu", {"a", "slope"}, {"prelu"});
  g.add_initializer(Tensor::from_float("lo", {}, {-0.5f}));
  g.add_initializer(Tensor::from_float("hi", {}, {0.7f}));
  add_node(g, "Clip", {"a", "lo", "hi"}, {"clip"});
  add_node(g, "Clip", {"a", "", "hi"}, {"clip_hi"});
  add_node(g, "Less", {"a", "b"}, {"less"});
  add_node(g, "Greater", {"a", "c"}, {"greater"});
  add_node(g, "GreaterOrEqual", {"b", "c"}, {"ge"});
  add_node(g, "LessOrEqual", {"a", "b"}, {"le"});
  add_node(g, "Floor", {"b"}, {"fb"});
  add_node(g, "Floor", {"c"}, {"fc"});
  add_node(g, "Equal", {"fb", "fc"}, {"eq"});
  add_node(g, "And", {"less", "greater"}, {"and"});
  add_node(g, "Or", {"less", "greater"}, {"or"});
  add_node(g, "Xor", {"less", "greater"}, {"xor"});
  add_node(g, "Not", {"less"}, {"not"});
  add_node(g, "Where", {"less", "a", "c"}, {"where"});
  outs.insert(outs.end(), {"leaky", "hsig", "log", "sqrt", "recip", "add", "sub", "mul", "div", "pow", "square", "max3",
                           "min2", "sum3", "mean2", "fmod", "prelu", "clip", "clip_hi", "less", "greater", "ge", "le",
                           "eq", "and", "or", "xor", "not", "where"});
  outputs(g, outs);
  agree_with_ort(m, {{"a", rand_input("a", {2, 3, 4, 5}, 1)}, {"b", rand_input("b", {3, 1, 5}, 2)},
                     {"c", rand_input("c", {5}, 3)}});
}

TEST_CASE("integer arithmetic and Gelu behave as ONNX specifies", "[executor][ort]") {
  Model m = new_model(20);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {3, 4}), tensor_value("i", {3, 4}, DType::Int64)};
  add_node(g, "Gelu", {"x"}, {"gelu"});
  add_node(g, "Gelu", {"x"}, {"gelu_tanh"}).set_attr_string("approximate", "tanh");
  add_init(g, "k", {4}, {3, -3, 5, 7});
  add_node(g, "Div", {"i", "k"}, {"idiv"});
  add_node(g, "Mod", {"i", "k"}, {"imod"});
  add_node(g, "Mul", {"i", "k"}, {"imul"});
  add_node(g, "Neg", {"i"}, {"ineg"});
  add_node(g, "Abs", {"i"}, {"iabs"});
  add_node(g, "Max", {"i", "k"}, {"imax"});
  outputs(g, {"gelu", "gelu_tanh", "idiv", "imod", "imul", "ineg", "iabs", "imax"});
  std::vector<int64_t> iv = {-7, -3, 0, 4, 9, 11, -12, 5, 6, -1, 2, 100};
  agree_with_ort(m, {{"x", rand_input("x", {3, 4}, 4, -3, 3)}, {"i", Tensor::from_int64("i", {3, 4}, iv)}});
}

TEST_CASE("shape and indexing kernels agree with ONNX Runtime", "[executor][ort]") {
  Model m = new_model(17);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {4, 6, 5})};
  // Slice with negative steps, a huge negative end and a clamped start.
  add_init(g, "s_st", {3}, {3, -1, 10});
  add_init(g, "s_en", {3}, {INT64_MIN, 0, -100});
  add_init(g, "s_ax", {3}, {0, 2, 1});
  add_init(g, "s_sp", {3}, {-2, -1, -2});
  add_node(g, "Slice", {"x", "s_st", "s_en", "s_ax", "s_sp"}, {"slice_neg"});
  add_init(g, "s2_st", {2}, {1, -4});
  add_init(g, "s2_en", {2}, {INT64_MAX, 5});
  add_init(g, "s2_ax", {2}, {1, -1});
  add_node(g, "Slice", {"x", "s2_st", "s2_en", "s2_ax"}, {"slice_pos"});
  add_init(g, "gi", {2, 2}, {-1, 0, 2, 5});
  add_node(g, "Gather", {"x", "gi"}, {"gather"}).set_attr_int("axis", 1);
  add_init(g, "gs", {}, {-2});
  add_node(g, "Gather", {"x", "gs"}, {"gather_scalar"});
  add_init(g, "ge_i", {4, 2, 5}, std::vector<int64_t>(40, 0));
  g.initializer("ge_i")->data<int64_t>()[3] = 5;
  g.initializer("ge_i")->data<int64_t>()[17] = -1;
  add_node(g, "GatherElements", {"x", "ge_i"}, {"gather_el"}).set_attr_int("axis", 1);
  add_node(g, "Transpose", {"x"}, {"tr"}).set_attr_ints("perm", {2, 0, 1});
  add_node(g, "Transpose", {"x"}, {"tr_default"});
  add_init(g, "shape2", {2}, {-1, 10});
  add_node(g, "Reshape", {"tr", "shape2"}, {"reshaped"});
  add_node(g, "Flatten", {"x"}, {"flat"}).set_attr_int("axis", 2);
  add_init(g, "ax0", {1}, {0});
  add_init(g, "ax_u", {2}, {0, -1});
  add_node(g, "Unsqueeze", {"x", "ax_u"}, {"unsq"});
  add_node(g, "Squeeze", {"unsq", "ax0"}, {"sq"});
  // sp1 is produced by the Split below: the executor orders nodes by their dependencies.
  add_node(g, "Concat", {"x", "sp1", "x"}, {"concat"}).set_attr_int("axis", 1);
  add_init(g, "split", {3}, {1, 3, 2});
  Node& sp = add_node(g, "Split", {"x", "split"}, {"sp0", "sp1", "sp2"});
  sp.set_attr_int("axis", 1);
  add_init(g, "exp_shape", {4}, {2, 4, 1, 5});
  add_node(g, "Expand", {"gather_scalar", "exp_shape"}, {"expand"});
  add_init(g, "reps", {3}, {2, 1, 3});
  add_node(g, "Tile", {"x", "reps"}, {"tile"});
  add_init(g, "pads", {6}, {1, 2, 0, 0, 3, 4});
  add_node(g, "Pad", {"x", "pads"}, {"pad_reflect"}).set_attr_string("mode", "reflect");
  add_node(g, "Pad", {"x", "pads"}, {"pad_edge"}).set_attr_string("mode", "edge");
  g.add_initializer(Tensor::from_float("pv", {}, {1.5f}));
  add_init(g, "pads_neg", {6}, {1, -2, 0, 0, 1, 2});
  add_node(g, "Pad", {"x", "pads_neg", "pv"}, {"pad_const"});
  Node& sh = add_node(g, "Shape", {"x"}, {"shape_tail"});
  sh.set_attr_int("start", 1);
  add_node(g, "Size", {"x"}, {"size"});
  add_node(g, "ConstantOfShape", {"shape_tail"}, {"zeros"});
  add_init(g, "r0", {}, {2});
  add_init(g, "r1", {}, {-9});
  add_init(g, "rd", {}, {-3});
  add_node(g, "Range", {"r0", "r1", "rd"}, {"range"});
  add_init(g, "k3", {1}, {3});
  add_node(g, "TopK", {"x", "k3"}, {"topv", "topi"}).set_attr_int("axis", 1);
  Node& tk = add_node(g, "TopK", {"x", "k3"}, {"lowv", "lowi"});
  tk.set_attr_int("largest", 0);
  add_node(g, "ArgMax", {"x"}, {"argmax"}).set_attr_int("axis", 2);
  Node& am = add_node(g, "ArgMin", {"x"}, {"argmin"});
  am.set_attr_int("axis", 1);
  am.set_attr_int("keepdims", 0);
  add_init(g, "cs_ax", {}, {1});
  Node& cs = add_node(g, "CumSum", {"x", "cs_ax"}, {"cumsum"});
  cs.set_attr_int("reverse", 1);
  cs.set_attr_int("exclusive", 1);
  g.add_initializer(Tensor::from_float("zero", {}, {0.f}));
  add_node(g, "Greater", {"x", "zero"}, {"pos_mask"});
  add_node(g, "NonZero", {"pos_mask"}, {"nonzero"});
  add_init(g, "sc_i", {2, 2}, {1, 3, 3, 0});
  add_finit(g, "sc_u", {2, 5}, 21);
  add_node(g, "ScatterND", {"x", "sc_i", "sc_u"}, {"scatter"});
  add_node(g, "Cast", {"x"}, {"half"}).set_attr_int("to", static_cast<int64_t>(DType::Float16));
  add_node(g, "Cast", {"half"}, {"back"}).set_attr_int("to", static_cast<int64_t>(DType::Float));
  add_node(g, "Cast", {"x"}, {"as_int"}).set_attr_int("to", static_cast<int64_t>(DType::Int64));
  add_node(g, "Cast", {"pos_mask"}, {"mask_f"}).set_attr_int("to", static_cast<int64_t>(DType::Float));
  add_node(g, "Identity", {"x"}, {"ident"});
  outputs(g, {"slice_neg", "slice_pos", "gather", "gather_scalar", "gather_el", "tr", "tr_default", "reshaped", "flat",
              "unsq", "sq", "concat", "sp0", "sp1", "sp2", "expand", "tile", "pad_reflect", "pad_edge", "pad_const",
              "shape_tail", "size", "zeros", "range", "topv", "topi", "lowv", "lowi", "argmax", "argmin", "cumsum",
              "nonzero", "scatter", "half", "back", "as_int", "mask_f", "ident"});
  agree_with_ort(m, {{"x", rand_input("x", {4, 6, 5}, 5, -4, 4)}});
}

TEST_CASE("reductions over attribute and input axes agree with ONNX Runtime", "[executor][ort]") {
  Model m = new_model(17);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {3, 4, 5, 6})};
  add_init(g, "ax13", {2}, {1, 3});
  add_node(g, "ReduceSum", {"x", "ax13"}, {"sum13"});  // non-contiguous axes (opset 13+: input)
  add_node(g, "ReduceMean", {"x"}, {"mean_last"}).set_attr_ints("axes", {-1});
  Node& mx = add_node(g, "ReduceMax", {"x"}, {"max12"});
  mx.set_attr_ints("axes", {1, 2});
  mx.set_attr_int("keepdims", 0);
  add_node(g, "ReduceMin", {"x"}, {"min_all"});
  add_node(g, "ReduceL2", {"x"}, {"l2"}).set_attr_ints("axes", {0, 2});
  add_node(g, "ReduceSumSquare", {"x"}, {"ss"}).set_attr_ints("axes", {2});
  Node& lse = add_node(g, "ReduceLogSumExp", {"x"}, {"lse"});
  lse.set_attr_ints("axes", {0, 3});
  lse.set_attr_int("keepdims", 0);
  add_node(g, "ReduceProd", {"x"}, {"prod"}).set_attr_ints("axes", {1});
  add_node(g, "ReduceL1", {"x"}, {"l1"}).set_attr_ints("axes", {3});
  outputs(g, {"sum13", "mean_last", "max12", "min_all", "l2", "ss", "lse", "prod", "l1"});
  agree_with_ort(m, {{"x", rand_input("x", {3, 4, 5, 6}, 6, -1.5f, 1.5f)}});
}

TEST_CASE("Resize nearest and linear in the corpus coordinate modes agree with ONNX Runtime", "[executor][ort]") {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {1, 2, 5, 7})};
  g.add_initializer(Tensor::from_float("up", {4}, {1, 1, 2, 2}));
  g.add_initializer(Tensor::from_float("odd", {4}, {1, 1, 1.6f, 0.5f}));
  add_init(g, "sizes", {4}, {1, 2, 9, 4});
  struct Case { const char* out; const char* mode; const char* coord; const char* nearest; const char* scales; };
  const Case cases[] = {
    {"n_asym_floor", "nearest", "asymmetric", "floor", "up"},
    {"n_half_rpf", "nearest", "half_pixel", "round_prefer_floor", "odd"},
    {"n_align_rpc", "nearest", "align_corners", "round_prefer_ceil", "odd"},
    {"l_half", "linear", "half_pixel", "", "up"},
    {"l_half_odd", "linear", "half_pixel", "", "odd"},
    {"l_align", "linear", "align_corners", "", "up"},
    {"l_pytorch", "linear", "pytorch_half_pixel", "", "odd"},
    {"l_asym", "linear", "asymmetric", "", "odd"},
    {"l_sizes", "linear", "half_pixel", "", ""},
    {"n_sizes", "nearest", "asymmetric", "floor", ""},
  };
  std::vector<std::string> outs;
  for (const Case& c : cases) {
    std::string sc = c.scales;
    Node& n = sc.empty() ? add_node(g, "Resize", {"x", "", "", "sizes"}, {c.out}) : add_node(g, "Resize", {"x", "", sc}, {c.out});
    n.set_attr_string("mode", c.mode);
    n.set_attr_string("coordinate_transformation_mode", c.coord);
    if (*c.nearest) n.set_attr_string("nearest_mode", c.nearest);
    outs.push_back(c.out);
  }
  outputs(g, outs);
  agree_with_ort(m, {{"x", rand_input("x", {1, 2, 5, 7}, 7)}});
}

TEST_CASE("Resize cubic (coefficient, exclude_outside, coordinate modes) agrees with ONNX Runtime", "[executor][ort]") {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {1, 2, 5, 7})};
  g.add_initializer(Tensor::from_float("up", {4}, {1, 1, 2, 2}));
  g.add_initializer(Tensor::from_float("odd", {4}, {1, 1, 1.6f, 0.5f}));
  add_init(g, "sizes", {4}, {1, 2, 3, 11});
  struct Case { const char* out; const char* coord; const char* scales; float a; int exclude; };
  const Case cases[] = {
    {"c_half_up", "half_pixel", "up", -0.75f, 0},
    {"c_half_odd", "half_pixel", "odd", -0.75f, 0},
    {"c_half_excl", "half_pixel", "odd", -0.5f, 1},
    {"c_align", "align_corners", "up", -0.75f, 0},
    {"c_asym", "asymmetric", "odd", -0.75f, 0},
    {"c_pytorch_sizes", "pytorch_half_pixel", "", -0.75f, 0},
  };
  std::vector<std::string> outs;
  for (const Case& c : cases) {
    std::string sc = c.scales;
    Node& n = sc.empty() ? add_node(g, "Resize", {"x", "", "", "sizes"}, {c.out}) : add_node(g, "Resize", {"x", "", sc}, {c.out});
    n.set_attr_string("mode", "cubic");
    n.set_attr_string("coordinate_transformation_mode", c.coord);
    n.set_attr_float("cubic_coeff_a", c.a);
    n.set_attr_int("exclude_outside", c.exclude);
    outs.push_back(c.out);
  }
  outputs(g, outs);
  agree_with_ort(m, {{"x", rand_input("x", {1, 2, 5, 7}, 9)}});
}

TEST_CASE("If and Loop and Scan run their subgraphs with outer-scope values", "[executor][ort]") {
  Model m = new_model(16);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {2, 3}), tensor_value("flag", {}, DType::Bool)};
  add_finit(g, "w", {2, 3}, 31);
  // If: then = x * w (outer scope), else = x - w
  Graph then_g, else_g;
  then_g.name = "then";
  add_node(then_g, "Mul", {"x", "w"}, {"t_out"});
  then_g.outputs = {tensor_value("t_out", {2, 3})};
  else_g.name = "else";
  add_node(else_g, "Sub", {"x", "w"}, {"e_out"});
  else_g.outputs = {tensor_value("e_out", {2, 3})};
  Node& iff = add_node(g, "If", {"flag"}, {"if_out"});
  set_graph(iff, "then_branch", then_g);
  set_graph(iff, "else_branch", else_g);
  // Loop: 4 iterations of acc = acc * 0.5 + x (x from the outer scope); scan output = acc + iter.
  Graph body;
  body.name = "body";
  body.inputs = {tensor_value("it", {}, DType::Int64), tensor_value("cin", {}, DType::Bool), tensor_value("acc", {2, 3})};
  body.add_initializer(Tensor::from_float("half", {}, {0.5f}));
  add_node(body, "Mul", {"acc", "half"}, {"acc_h"});
  add_node(body, "Add", {"acc_h", "x"}, {"acc_out"});
  add_node(body, "Cast", {"it"}, {"it_f"}).set_attr_int("to", static_cast<int64_t>(DType::Float));
  add_node(body, "Add", {"acc_out", "it_f"}, {"scan_out"});
  add_node(body, "Identity", {"cin"}, {"cout"});
  body.outputs = {tensor_value("cout", {}, DType::Bool), tensor_value("acc_out", {2, 3}), tensor_value("scan_out", {2, 3})};
  add_init(g, "trips", {}, {4});
  Node& loop = add_node(g, "Loop", {"trips", "", "if_out"}, {"loop_acc", "loop_scan"});
  set_graph(loop, "body", body);
  // Scan: running sum over axis 1 of x, reversed, outputs stacked on axis 1.
  Graph sb;
  sb.name = "scan_body";
  sb.inputs = {tensor_value("s", {2}), tensor_value("xt", {2})};
  add_node(sb, "Add", {"s", "xt"}, {"s_next"});
  add_node(sb, "Identity", {"s_next"}, {"y_t"});
  sb.outputs = {tensor_value("s_next", {2}), tensor_value("y_t", {2})};
  g.add_initializer(Tensor::from_float("s0", {2}, {0.f, 1.f}));
  Node& scan = add_node(g, "Scan", {"s0", "x"}, {"scan_state", "scan_ys"});
  scan.set_attr_int("num_scan_inputs", 1);
  scan.set_attr_ints("scan_input_axes", {1});
  scan.set_attr_ints("scan_input_directions", {1});
  scan.set_attr_ints("scan_output_axes", {1});
  set_graph(scan, "body", sb);
  outputs(g, {"if_out", "loop_acc", "loop_scan", "scan_state", "scan_ys"});
  Tensor x = rand_input("x", {2, 3}, 8);
  for (bool flag : {true, false}) {
    INFO("flag " << flag);
    Tensor f = Tensor::from_int64("flag", {}, {0});
    f.dtype = DType::Bool;
    f.bytes = {static_cast<uint8_t>(flag)};
    agree_with_ort(m, {{"x", x}, {"flag", f}});
  }
}

TEST_CASE("RNN, LSTM and GRU in all directions agree with ONNX Runtime", "[executor][ort]") {
  const int64_t T = 5, B = 2, I = 3, H = 4;
  Model m = new_model(14);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {T, B, I})};
  add_finit(g, "W2", {2, 4 * H, I}, 41);
  add_finit(g, "R2", {2, 4 * H, H}, 42);
  add_finit(g, "B2", {2, 8 * H}, 43);
  add_finit(g, "h0", {2, B, H}, 44);
  add_finit(g, "c0", {2, B, H}, 45);
  add_finit(g, "P2", {2, 3 * H}, 46);
  Node& bi = add_node(g, "LSTM", {"x", "W2", "R2", "B2", "", "h0", "c0", "P2"}, {"ly", "lyh", "lyc"});
  bi.set_attr_string("direction", "bidirectional");
  bi.set_attr_int("hidden_size", H);
  add_finit(g, "W1", {1, 4 * H, I}, 47);
  add_finit(g, "R1", {1, 4 * H, H}, 48);
  Node& rv = add_node(g, "LSTM", {"x", "W1", "R1"}, {"lry", "lryh"});
  rv.set_attr_string("direction", "reverse");
  rv.set_attr_int("hidden_size", H);
  add_finit(g, "GW", {2, 3 * H, I}, 51);
  add_finit(g, "GR", {2, 3 * H, H}, 52);
  add_finit(g, "GB", {2, 6 * H}, 53);
  for (int lbr : {0, 1}) {
    std::string s = std::to_string(lbr);
    Node& gru = add_node(g, "GRU", {"x", "GW", "GR", "GB", "", "h0"}, {"gy" + s, "gyh" + s});
    gru.set_attr_string("direction", "bidirectional");
    gru.set_attr_int("hidden_size", H);
    gru.set_attr_int("linear_before_reset", lbr);
  }
  add_finit(g, "GW1", {1, 3 * H, I}, 54);
  add_finit(g, "GR1", {1, 3 * H, H}, 55);
  Node& gf = add_node(g, "GRU", {"x", "GW1", "GR1"}, {"gfy"});
  gf.set_attr_int("hidden_size", H);
  set_strings(gf, "activations", {"Sigmoid", "Relu"});
  add_finit(g, "RW", {2, H, I}, 56);
  add_finit(g, "RR", {2, H, H}, 57);
  add_finit(g, "RB", {2, 2 * H}, 58);
  Node& rb = add_node(g, "RNN", {"x", "RW", "RR", "RB", "", "h0"}, {"ry", "ryh"});
  rb.set_attr_string("direction", "bidirectional");
  rb.set_attr_int("hidden_size", H);
  add_finit(g, "RW1", {1, H, I}, 59);
  add_finit(g, "RR1", {1, H, H}, 60);
  Node& rr = add_node(g, "RNN", {"x", "RW1", "RR1"}, {"rry", "rryh"});
  rr.set_attr_string("direction", "reverse");
  rr.set_attr_int("hidden_size", H);
  set_strings(rr, "activations", {"Relu"});
  outputs(g, {"ly", "lyh", "lyc", "lry", "lryh", "gy0", "gyh0", "gy1", "gyh1", "gfy", "ry", "ryh", "rry", "rryh"});
  agree_with_ort(m, {{"x", rand_input("x", {T, B, I}, 9)}});
}

TEST_CASE("corpus models and small_cnn agree with ONNX Runtime", "[executor][ort][corpus]") {
  const char* corpus[] = {"ppocr4_det.onnx", "ppocr4_rec.onnx", "ppocr2_cls.onnx", "silero_vad.onnx",
                          "blazeface_front.onnx", "blazeface_back.onnx", "wakeword_hello.onnx"};
  for (const char* name : corpus) {
    INFO(name);
    fs::path src = corpus_model(name);
    Model m = load_model(src);
    normalize(m);
    auto in = random_inputs(m, 17, 1, corpus_shapes(name));
    if (std::string(name) == "silero_vad.onnx") in["sr"] = Tensor::from_int64("sr", {}, {16000});
    Executor ex(m);
    auto got = ex.run(in);
    auto ref = run_ort(src, in);
    REQUIRE(got.size() == ref.size());
    for (const auto& [k, t] : got) {
      INFO(k);
      const Tensor& r = ref.at(safe_file_name(k));
      REQUIRE(t.dims == r.dims);
      CHECK(max_rel_error(t, r) <= 1e-4);
    }
  }
  Model cnn = small_cnn(3);
  fs::path p = temp_dir("cnn") / "cnn.onnx";
  save_model(cnn, p);
  auto in = random_inputs(cnn, 5);
  Executor ex(cnn);
  auto got = ex.run(in);
  CHECK(max_rel_error(got.at("y"), run_ort(p, in).at("y")) <= 1e-4);
}

TEST_CASE("intermediates are released after their last consumer", "[executor]") {
  // A chain of 60 ops on a 1 MiB tensor with a skip connection from the start to the end: the
  // executor must hold only the current value, the next and the skip, not all 60.
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {1, 64, 64, 64})};
  g.add_initializer(Tensor::from_float("k", {}, {0.99f}));
  add_node(g, "Relu", {"x"}, {"v0"});
  const int n = 60;
  for (int i = 1; i <= n; ++i) add_node(g, i % 2 ? "Mul" : "Add", {"v" + std::to_string(i - 1), "k"}, {"v" + std::to_string(i)});
  add_node(g, "Add", {"v" + std::to_string(n), "v0"}, {"y"});
  outputs(g, {"y"});
  const size_t one = 64 * 64 * 64 * 4;
  Executor ex(m, {});
  auto in = std::map<std::string, Tensor>{{"x", rand_input("x", {1, 64, 64, 64}, 10)}};
  auto out = ex.run(in);
  const auto& st = ex.last_run_stats();
  CHECK(st.nodes_run == static_cast<size_t>(n + 2));
  CHECK(st.peak_live_bytes <= 3 * one);
  CHECK(st.peak_live_bytes >= 2 * one);  // v0 (the skip) and the current value
  // The result is right: y = relu(x)·0.99^30 + 0.99·30 terms... check one element directly.
  float x0 = in["x"].data<float>()[123];
  double v = std::max(0.f, x0), v0 = v;
  for (int i = 1; i <= n; ++i) v = i % 2 ? static_cast<float>(v * 0.99f) : static_cast<float>(v + 0.99f);
  CHECK(std::fabs(out.at("y").data<float>()[123] - (v + v0)) < 1e-4);

  // A hook sees every watched value once, and watching does not keep values alive longer.
  std::map<std::string, int> seen;
  ex.run(in, [&](const std::string& name, const Tensor& t) {
    ++seen[name];
    CHECK(t.numel() == 64 * 64 * 64);
  }, {"v5", "v17", "y", "x"});
  CHECK(seen == std::map<std::string, int>{{"v5", 1}, {"v17", 1}, {"y", 1}, {"x", 1}});
  CHECK(ex.last_run_stats().peak_live_bytes <= 3 * one);
}

TEST_CASE("bad inputs and unsupported operators give errors that say what is expected", "[executor]") {
  Model m = small_cnn(1);
  Executor ex(m);
  auto good = random_inputs(m, 1);
  auto msg = [&](std::map<std::string, Tensor> in) {
    try {
      ex.run(in);
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(msg({}), Catch::Contains("missing input 'x'") && Catch::Contains("float32[1,3,16,16]"));
  auto wrong_rank = good;
  wrong_rank["x"] = rand_input("x", {3, 16, 16}, 1);
  CHECK_THAT(msg(wrong_rank), Catch::Contains("must be float32[1,3,16,16]") && Catch::Contains("got float32[3,16,16]"));
  auto wrong_dim = good;
  wrong_dim["x"] = rand_input("x", {1, 3, 16, 15}, 1);
  CHECK_THAT(msg(wrong_dim), Catch::Contains("got float32[1,3,16,15]"));
  auto wrong_type = good;
  wrong_type["x"] = Tensor::from_int64("x", {1, 3, 16, 16}, std::vector<int64_t>(768, 0));
  CHECK_THAT(msg(wrong_type), Catch::Contains("got int64"));
  auto extra = good;
  extra["z"] = rand_input("z", {1}, 1);
  CHECK_THAT(msg(extra), Catch::Contains("no input 'z'"));
  CHECK(msg(good) == "no error");

  Model bad = new_model(13);
  bad.graph.inputs = {tensor_value("x", {2})};
  add_node(bad.graph, "FancyOp", {"x"}, {"a"});
  add_node(bad.graph, "Relu", {"a"}, {"b"});
  add_node(bad.graph, "OtherOp", {"b"}, {"c"}).domain = "com.example";
  add_node(bad.graph, "FancyOp", {"c"}, {"d"});
  outputs(bad.graph, {"d"});
  try {
    Executor e2(bad);
    FAIL("no error");
  } catch (const UnsupportedError& e) {
    std::string w = e.what();
    CHECK_THAT(w, Catch::Contains("2 operator(s)") && Catch::Contains("FancyOp") && Catch::Contains("com.example.OtherOp"));
  }
  ExecutorOptions cuda;
  cuda.device = "cuda";
#ifndef OC_HAVE_CUDA
  CHECK_THROWS_AS(Executor(m, cuda), UnsupportedError);
#endif
  // A kernel error names the node.
  Model shp = new_model(13);
  shp.graph.inputs = {tensor_value("x", {2, 3}), tensor_value("y", {4})};
  add_node(shp.graph, "Add", {"x", "y"}, {"z"});
  outputs(shp.graph, {"z"});
  Executor e3(shp);
  CHECK_THROWS_WITH(e3.run({{"x", rand_input("x", {2, 3}, 1)}, {"y", rand_input("y", {4}, 2)}}),
                    Catch::Contains("Add_z") && Catch::Contains("do not broadcast"));
}

TEST_CASE("a run that fails on inputs giving one symbolic dim two values names the inputs and the dims", "[executor]") {
  // Two inputs [B,3] (same dim name) added; a third [B,4] read by its own Relu (independent of the
  // others however its dim is named, as in models that call every dim "N").
  auto sym = [](const std::string& name, const std::string& dim, int64_t width) {
    ValueInfo v = tensor_value(name, {1, width});
    v.shape[0] = Dim::sym(dim);
    return v;
  };
  Model m = new_model(13);
  m.graph.inputs = {sym("a", "B", 3), sym("b", "B", 3), sym("c", "B", 4)};
  add_node(m.graph, "Add", {"a", "b"}, {"s"});
  add_node(m.graph, "Relu", {"c"}, {"r"});
  outputs(m.graph, {"s", "r"});
  Executor ex(m);
  auto run = [&](int64_t na, int64_t nb, int64_t nc) {
    return ex.run({{"a", rand_input("a", {na, 3}, 1)}, {"b", rand_input("b", {nb, 3}, 2)}, {"c", rand_input("c", {nc, 4}, 3)}});
  };
  // Not an error by itself: 'c' at another B, and 'a' at 1 against 'b' at 3 (Add broadcasts), run.
  auto out = run(2, 2, 5);
  CHECK(out.at("s").dims == std::vector<int64_t>{2, 3});
  CHECK(out.at("r").dims == std::vector<int64_t>{5, 4});
  CHECK(run(1, 3, 2).at("s").dims == std::vector<int64_t>{3, 3});
  // A failing run says which inputs disagree on B, with their shapes and axes, then the node.
  CHECK_THROWS_WITH(run(2, 3, 2), Catch::StartsWith("inputs 'a' [2,3] and 'b' [3,3] give the symbolic dim 'B' different "
                                                    "values (2 at axis 0, 3 at axis 0)") &&
                                      Catch::Contains("node 'Add_s' (Add)") && Catch::Contains("do not broadcast"));
  // The same failure with the dims named apart is the node's error alone: the names are what tie them.
  Model apart = m;
  apart.graph.inputs[1].shape[0] = Dim::sym("B2");
  Executor ex2(apart);
  try {
    ex2.run({{"a", rand_input("a", {2, 3}, 1)}, {"b", rand_input("b", {3, 3}, 2)}, {"c", rand_input("c", {2, 4}, 3)}});
    FAIL("no error");
  } catch (const InvalidArgument& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("node 'Add_s' (Add)") && Catch::Contains("do not broadcast"));
  }
}

TEST_CASE("run CLI writes each output as a safely named .npy file", "[executor][cli]") {
  fs::path src = corpus_model("blazeface_front.onnx");
  Model m = load_model(src);
  normalize(m);
  fs::path dir = temp_dir("runcli");
  auto in = random_inputs(m, 3);
  write_npy(dir / "in.npy", in.begin()->second);
  auto r = run_cli({"run", src.string(), "--input", in.begin()->first + "=" + (dir / "in.npy").string(), "--output-dir",
                    (dir / "out").string(), "--threads", "1"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Executor ex(m);
  auto ref = ex.run(in);
  for (const auto& [name, t] : ref) {
    INFO(name);
    fs::path f = dir / "out" / (safe_file_name(name) + ".npy");
    REQUIRE(fs::exists(f));
    CHECK(name.find(':') != std::string::npos);  // "Identity:0" really needed renaming
    CHECK(bitwise_equal(read_npy(f), t));
  }
  // One-input shorthand, bad input shape, unknown device.
  CHECK(run_cli({"run", src.string(), "--input", (dir / "in.npy").string(), "-o", (dir / "o2").string()}).rc == 0);
  CHECK(fs::exists(dir / "o2" / "Identity_0.npy"));
  write_npy(dir / "bad.npy", rand_input("b", {1, 3, 128, 128}, 1));
  auto bad = run_cli({"run", src.string(), "--input", (dir / "bad.npy").string(), "-o", (dir / "o3").string()});
  CHECK(bad.rc == 2);
  CHECK_THAT(bad.out, Catch::Contains("float32[1,128,128,3]"));
  CHECK_FALSE(fs::exists(dir / "o3" / "Identity_0.npy"));
#ifndef OC_HAVE_CUDA
  auto cuda = run_cli({"run", src.string(), "--input", (dir / "in.npy").string(), "--device", "cuda"});
  CHECK(cuda.rc == 1);
  CHECK_THAT(cuda.out, Catch::Contains("no CUDA backend"));
#endif
}

TEST_CASE("operators in their opset 11 and opset 18 forms agree with ONNX Runtime", "[executor][ort]") {
  for (int64_t opset : {11, 18}) {
    INFO("opset " << opset);
    Model m = new_model(opset);
    Graph& g = m.graph;
    g.inputs = {tensor_value("x", {2, 7, 1, 3})};
    if (opset == 11) {
      add_node(g, "Squeeze", {"x"}, {"sq"}).set_attr_ints("axes", {2});
      add_node(g, "Unsqueeze", {"sq"}, {"unsq"}).set_attr_ints("axes", {0, 3});
      add_node(g, "Split", {"x"}, {"s0", "s1"}).set_attr_ints("split", {3, 4});
      g.nodes.back().set_attr_int("axis", 1);
      add_node(g, "ReduceSum", {"x"}, {"red"}).set_attr_ints("axes", {1});
      add_node(g, "Slice", {"x", "st", "en", "ax"}, {"slice"});
      add_init(g, "st", {1}, {-2});
      add_init(g, "en", {1}, {-9});
      add_init(g, "ax", {1}, {1});
      g.add_initializer(Tensor::from_float("cmin", {}, {-0.25f}));
      add_node(g, "Clip", {"x", "cmin"}, {"clip"});
      outputs(g, {"sq", "unsq", "s0", "s1", "red", "slice", "clip"});
    } else {
      Node& sp = add_node(g, "Split", {"x"}, {"s0", "s1", "s2"});
      sp.set_attr_int("axis", 1);
      sp.set_attr_int("num_outputs", 3);  // 7 -> 3, 3, 1
      add_init(g, "axes", {2}, {1, -1});
      add_node(g, "ReduceMean", {"x", "axes"}, {"mean"});
      add_node(g, "ReduceMax", {"x", "axes"}, {"max"}).set_attr_int("keepdims", 0);
      add_init(g, "pads", {4}, {2, 1, 1, 2});
      add_init(g, "pax", {2}, {1, 3});
      add_node(g, "Pad", {"x", "pads", "", "pax"}, {"pad"}).set_attr_string("mode", "edge");
      outputs(g, {"s0", "s1", "s2", "mean", "max", "pad"});
    }
    agree_with_ort(m, {{"x", rand_input("x", {2, 7, 1, 3}, 12)}});
  }
}

TEST_CASE("an attention block runs like ONNX Runtime and its MatMuls are all counted", "[executor][ort]") {
  Model m = attention_block(3);
  agree_with_ort(m, random_inputs(m, 5));
  Model shaped = m;
  infer_shapes(shaped);
  // Q/K/V/O projections 4·(8·16·16) plus QKᵀ and attention·V 2·(2 heads·8·8·8).
  CHECK(count_costs(shaped).macs == 4 * 8 * 16 * 16 + 2 * 2 * 8 * 8 * 8);
}
