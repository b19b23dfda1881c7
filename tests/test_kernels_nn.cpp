// The oneDNN NN kernels and the quantized-format kernels against ONNX Runtime. Each test builds
// one small graph holding many variants side by side (one ORT launch per test keeps them fast).
#include <catch2/catch.hpp>

#include <cmath>

#include "engine/executor.h"
#include "engine/kernels/dnnl_util.h"
#include "engine/npy.h"
#include "graph/onnx_io.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

void weight(Graph& g, const std::string& name, std::vector<int64_t> dims, uint64_t seed, float lo = -1, float hi = 1) {
  g.add_initializer(random_tensor(name, dims, seed, lo, hi));
}
Node& node(Graph& g, const std::string& op, std::vector<std::string> in, const std::string& out) {
  g.outputs.push_back(ValueInfo{out, DType::Undefined, false, {}, "", ""});
  return g.add_node(make_node(op, std::move(in), {out}));
}
Tensor input(const std::string& name, std::vector<int64_t> dims, uint64_t seed, float lo = -2, float hi = 2) {
  return random_tensor(name, dims, seed, lo, hi);
}

}  // namespace

TEST_CASE("Conv with groups and depthwise and dilation and stride and pads and auto_pad agrees with ONNX Runtime", "[nn]") {
  Model m = new_model(13);
  Graph& g = m.graph;
  weight(g, "w", {6, 8, 3, 3}, 1);
  weight(g, "b", {6}, 2);
  weight(g, "wg", {6, 4, 3, 3}, 3);
  weight(g, "wd", {8, 1, 3, 3}, 4);
  weight(g, "we", {4, 8, 2, 4}, 5);
  weight(g, "w1", {8, 8, 1, 1}, 6);
  weight(g, "w1d", {5, 4, 3}, 7);
  weight(g, "w3d", {4, 3, 2, 3, 3}, 8);
  node(g, "Conv", {"x", "w", "b"}, "plain").set_attr_ints("pads", {1, 1, 1, 1});
  Node& grp = node(g, "Conv", {"x", "wg"}, "grouped");
  grp.set_attr_int("group", 2);
  grp.set_attr_ints("strides", {2, 2});
  grp.set_attr_ints("dilations", {2, 2});
  grp.set_attr_ints("pads", {0, 1, 2, 3});  // asymmetric
  Node& dw = node(g, "Conv", {"x", "wd"}, "depthwise");
  dw.set_attr_int("group", 8);
  dw.set_attr_ints("strides", {2, 2});
  dw.set_attr_string("auto_pad", "SAME_UPPER");
  weight(g, "wd5", {8, 1, 5, 3}, 9);
  weight(g, "b8", {8}, 13);
  Node& dw1 = node(g, "Conv", {"x", "wd5", "b8"}, "depthwise_dilated");  // stride 1, bias, uneven pads
  dw1.set_attr_int("group", 8);
  dw1.set_attr_ints("dilations", {2, 3});
  dw1.set_attr_ints("pads", {3, 0, 1, 4});
  Node& dw2 = node(g, "Conv", {"x", "wd5"}, "depthwise_strided");
  dw2.set_attr_int("group", 8);
  dw2.set_attr_ints("strides", {2, 3});
  dw2.set_attr_ints("pads", {2, 1, 2, 1});
  Node& sl = node(g, "Conv", {"x", "we"}, "same_lower");
  sl.set_attr_ints("strides", {2, 3});
  sl.set_attr_string("auto_pad", "SAME_LOWER");
  node(g, "Conv", {"x", "w1"}, "valid").set_attr_string("auto_pad", "VALID");
  Node& c1 = node(g, "Conv", {"x1", "w1d"}, "conv1d");
  c1.set_attr_ints("strides", {2});
  c1.set_attr_ints("pads", {2, 1});
  node(g, "Conv", {"x3", "w3d"}, "conv3d").set_attr_ints("pads", {1, 0, 1, 0, 1, 1});
  agree_with_ort(m, {{"x", input("x", {2, 8, 11, 13}, 10)}, {"x1", input("x1", {2, 4, 17}, 11)},
                     {"x3", input("x3", {1, 3, 5, 6, 7}, 12)}});
}

TEST_CASE("ConvTranspose with groups and output_padding and output_shape and auto_pad agrees with ONNX Runtime", "[nn]") {
  Model m = new_model(13);
  Graph& g = m.graph;
  weight(g, "w", {4, 3, 3, 3}, 1);
  weight(g, "b", {3}, 2);
  weight(g, "wg", {4, 2, 3, 2}, 3);
  weight(g, "w1d", {4, 5, 4}, 4);
  Node& a = node(g, "ConvTranspose", {"x", "w", "b"}, "strided");
  a.set_attr_ints("strides", {2, 2});
  a.set_attr_ints("pads", {1, 0, 1, 2});
  a.set_attr_ints("output_padding", {1, 1});
  Node& gr = node(g, "ConvTranspose", {"x", "wg"}, "grouped");
  gr.set_attr_int("group", 2);
  gr.set_attr_ints("dilations", {2, 1});
  gr.set_attr_ints("strides", {1, 2});
  Node& os = node(g, "ConvTranspose", {"x", "w"}, "output_shape");
  os.set_attr_ints("strides", {2, 2});
  os.set_attr_ints("output_shape", {10, 12});
  Node& su = node(g, "ConvTranspose", {"x", "w", "b"}, "same_upper");
  su.set_attr_ints("strides", {2, 2});
  su.set_attr_string("auto_pad", "SAME_UPPER");
  Node& c1 = node(g, "ConvTranspose", {"x1", "w1d"}, "deconv1d");
  c1.set_attr_ints("strides", {3});
  c1.set_attr_ints("pads", {1, 2});
  agree_with_ort(m, {{"x", input("x", {2, 4, 5, 6}, 10)}, {"x1", input("x1", {1, 4, 7}, 11)}});
}

TEST_CASE("MatMul broadcasting and Gemm flags agree with ONNX Runtime", "[nn]") {
  Model m = new_model(13);
  Graph& g = m.graph;
  weight(g, "w", {5, 6}, 1);
  weight(g, "wb", {2, 5, 6}, 2);
  weight(g, "v5", {5}, 3);
  weight(g, "c_n", {6}, 4);
  weight(g, "c_m1", {4, 1}, 5);
  weight(g, "c_s", {}, 6);
  weight(g, "gb", {6, 5}, 7);
  node(g, "MatMul", {"a", "w"}, "shared_weight");    // [2,3,4,5] x [5,6]
  node(g, "MatMul", {"a3", "wb"}, "batch_broadcast");  // [3,1,4,5] x [2,5,6]
  node(g, "MatMul", {"v5", "wb"}, "vector_left");    // [5] x [2,5,6]
  node(g, "MatMul", {"a", "v5"}, "vector_right");    // [2,3,4,5] x [5]
  node(g, "MatMul", {"a2", "b2"}, "equal_batch");    // [2,4,5] x [2,5,3]
  node(g, "Gemm", {"m", "w", "c_n"}, "gemm_plain");
  Node& t = node(g, "Gemm", {"mt", "gb", "c_m1"}, "gemm_trans");
  t.set_attr_int("transA", 1);
  t.set_attr_int("transB", 1);
  t.set_attr_float("alpha", 0.5f);
  t.set_attr_float("beta", -2.f);
  Node& s = node(g, "Gemm", {"m", "w", "c_s"}, "gemm_scalar_c");
  s.set_attr_float("alpha", 3.f);
  node(g, "Gemm", {"m", "w"}, "gemm_no_c");
  agree_with_ort(m, {{"a", input("a", {2, 3, 4, 5}, 10)}, {"a3", input("a3", {3, 1, 4, 5}, 11)},
                     {"a2", input("a2", {2, 4, 5}, 12)}, {"b2", input("b2", {2, 5, 3}, 13)},
                     {"m", input("m", {4, 5}, 14)}, {"mt", input("mt", {5, 4}, 15)}});
}

TEST_CASE("MaxPool and AveragePool with ceil_mode and pads and dilations agree with ONNX Runtime", "[nn]") {
  Model m = new_model(19);
  Graph& g = m.graph;
  auto pool = [&](const std::string& op, const std::string& in, const std::string& out, std::vector<int64_t> k,
                  std::vector<int64_t> s) -> Node& {
    Node& n = node(g, op, {in}, out);
    n.set_attr_ints("kernel_shape", k);
    n.set_attr_ints("strides", s);
    return n;
  };
  Node& mc = pool("MaxPool", "x", "max_ceil", {3, 3}, {2, 2});
  mc.set_attr_int("ceil_mode", 1);
  mc.set_attr_ints("pads", {1, 0, 0, 1});
  Node& md = pool("MaxPool", "x", "max_dilated", {2, 3}, {1, 2});
  md.set_attr_ints("dilations", {2, 2});
  Node& ae = pool("AveragePool", "x", "avg_exclude_ceil", {3, 3}, {2, 2});
  ae.set_attr_int("ceil_mode", 1);
  ae.set_attr_ints("pads", {1, 1, 1, 1});
  Node& ai = pool("AveragePool", "x", "avg_include_ceil", {3, 3}, {2, 2});
  ai.set_attr_int("ceil_mode", 1);
  ai.set_attr_int("count_include_pad", 1);
  ai.set_attr_ints("pads", {1, 1, 1, 1});
  pool("AveragePool", "x", "avg_same", {3, 2}, {2, 2}).set_attr_string("auto_pad", "SAME_UPPER");
  pool("MaxPool", "x1", "max1d", {3}, {2}).set_attr_string("auto_pad", "SAME_LOWER");
  node(g, "GlobalAveragePool", {"x"}, "gap");
  node(g, "GlobalMaxPool", {"x"}, "gmp");
  agree_with_ort(m, {{"x", input("x", {2, 3, 10, 9}, 10)}, {"x1", input("x1", {1, 2, 12}, 11)}});
}

TEST_CASE("BatchNorm and InstanceNorm and LayerNorm and LRN agree with ONNX Runtime", "[nn]") {
  Model m = new_model(17);
  Graph& g = m.graph;
  weight(g, "s", {4}, 1, 0.5f, 1.5f);
  weight(g, "b", {4}, 2);
  weight(g, "mean", {4}, 3);
  weight(g, "var", {4}, 4, 0.2f, 2.f);
  weight(g, "ln_s", {7}, 5);
  weight(g, "ln_b", {7}, 6);
  weight(g, "ln_s2", {4, 5, 7}, 7);
  node(g, "BatchNormalization", {"x", "s", "b", "mean", "var"}, "bn").set_attr_float("epsilon", 1e-3f);
  node(g, "InstanceNormalization", {"x", "s", "b"}, "in");
  Node& ln = g.add_node(make_node("LayerNormalization", {"x", "ln_s", "ln_b"}, {"ln", "ln_mean", "ln_inv"}));
  for (const char* o : {"ln", "ln_mean", "ln_inv"}) g.outputs.push_back(ValueInfo{o, DType::Undefined, false, {}, "", ""});
  ln.set_attr_float("epsilon", 1e-4f);
  node(g, "LayerNormalization", {"x", "ln_s2"}, "ln_axis1").set_attr_int("axis", 1);  // no bias, Y only
  Node& lrn = node(g, "LRN", {"x"}, "lrn");
  lrn.set_attr_int("size", 3);
  lrn.set_attr_float("alpha", 0.01f);
  lrn.set_attr_float("beta", 0.6f);
  lrn.set_attr_float("bias", 2.f);
  node(g, "LRN", {"x"}, "lrn_default").set_attr_int("size", 5);
  agree_with_ort(m, {{"x", input("x", {2, 4, 5, 7}, 10, -3, 5)}});
}

TEST_CASE("GroupNormalization follows opset 18 per-group and opset 21 per-channel scale", "[nn]") {
  for (int64_t opset : {18, 21}) {
    INFO("opset " << opset);
    Model m = new_model(opset);
    if (opset >= 21) m.ir_version = 10;
    Graph& g = m.graph;
    const int64_t groups = 3, nparams = opset >= 21 ? 6 : groups;
    weight(g, "s", {nparams}, 1, 0.5f, 1.5f);
    weight(g, "b", {nparams}, 2);
    Node& n = node(g, "GroupNormalization", {"x", "s", "b"}, "gn");
    n.set_attr_int("num_groups", groups);
    n.set_attr_float("epsilon", 1e-3f);
    auto got = agree_with_ort(m, {{"x", input("x", {2, 6, 4, 5}, 10, -1, 3)}});
    REQUIRE(got.at("gn").dims == std::vector<int64_t>{2, 6, 4, 5});
  }
}

TEST_CASE("Softmax and LogSoftmax use flatten semantics before opset 13 and one axis from 13", "[nn]") {
  for (int64_t opset : {11, 13}) {
    INFO("opset " << opset);
    Model m = new_model(opset);
    Graph& g = m.graph;
    node(g, "Softmax", {"x"}, "sm_default");
    node(g, "Softmax", {"x"}, "sm_axis1").set_attr_int("axis", 1);
    node(g, "LogSoftmax", {"x"}, "lsm_default");
    node(g, "LogSoftmax", {"x"}, "lsm_axis0").set_attr_int("axis", 0);
    node(g, "Hardmax", {"x"}, "hardmax").set_attr_int("axis", 1);
    auto got = agree_with_ort(m, {{"x", input("x", {2, 3, 4}, 10, -4, 4)}});
    // The two semantics differ on axis 1 of a rank-3 input: a real check that we switched.
    const auto v = got.at("sm_axis1").to_float();
    double sum_over_axis = 0;
    for (int c = 0; c < 3; ++c) sum_over_axis += v[static_cast<size_t>(c * 4)];
    if (opset >= 13) CHECK(std::abs(sum_over_axis - 1.0) < 1e-5);
    else CHECK(std::abs(sum_over_axis - 1.0) > 1e-3);
  }
}

TEST_CASE("QuantizeLinear and DequantizeLinear per-axis int8 and blocked int4 agree with ONNX Runtime", "[nn][quant]") {
  Model m = new_model(21);
  m.ir_version = 10;
  Graph& g = m.graph;
  // int8 per-axis weight [4, 6], axis 0.
  std::vector<int64_t> q8(24);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<int64_t>((i * 37) % 256) - 128;
  std::vector<int8_t> q8b(q8.begin(), q8.end());
  Tensor w8;
  w8.name = "w8";
  w8.dtype = DType::Int8;
  w8.dims = {4, 6};
  w8.bytes.assign(reinterpret_cast<const uint8_t*>(q8b.data()), reinterpret_cast<const uint8_t*>(q8b.data()) + 24);
  g.add_initializer(w8);
  weight(g, "s8", {4}, 1, 0.01f, 0.1f);
  std::vector<int8_t> z8v = {-3, 0, 5, 1};
  Tensor z8 = w8;
  z8.name = "z8";
  z8.dims = {4};
  z8.bytes.assign(reinterpret_cast<const uint8_t*>(z8v.data()), reinterpret_cast<const uint8_t*>(z8v.data()) + 4);
  g.add_initializer(z8);
  node(g, "DequantizeLinear", {"w8", "s8", "z8"}, "dq_int8_axis").set_attr_int("axis", 0);
  // int4 and uint4 blocked [3, 10] along axis 1, block 4 (last block partial).
  std::vector<int8_t> q4(30), u4(30);
  for (int i = 0; i < 30; ++i) { q4[i] = static_cast<int8_t>((i * 5) % 16 - 8); u4[i] = static_cast<int8_t>((i * 7) % 16); }
  g.add_initializer(Tensor::from_4bit("w4", DType::Int4, {3, 10}, q4));
  g.add_initializer(Tensor::from_4bit("wu4", DType::UInt4, {3, 10}, u4));
  weight(g, "s4", {3, 3}, 2, 0.05f, 0.2f);
  g.add_initializer(Tensor::from_4bit("zu4", DType::UInt4, {3, 3}, {8, 7, 9, 0, 15, 3, 8, 8, 1}));
  Node& d4 = node(g, "DequantizeLinear", {"w4", "s4"}, "dq_int4_blocked");
  d4.set_attr_int("axis", 1);
  d4.set_attr_int("block_size", 4);
  Node& du4 = node(g, "DequantizeLinear", {"wu4", "s4", "zu4"}, "dq_uint4_blocked");
  du4.set_attr_int("axis", 1);
  du4.set_attr_int("block_size", 4);
  // Quantize a runtime input: per-tensor uint8 and per-axis int8 (saturating).
  weight(g, "qs", {}, 3, 0.01f, 0.02f);
  g.add_initializer(Tensor::from_float("qs_axis", {3}, {0.02f, 0.05f, 0.005f}));
  node(g, "QuantizeLinear", {"x", "qs"}, "q_uint8");
  Tensor zq = z8;
  zq.name = "zq";
  zq.dims = {3};
  zq.bytes.resize(3);
  g.add_initializer(zq);
  node(g, "QuantizeLinear", {"x", "qs_axis", "zq"}, "q_int8_axis").set_attr_int("axis", 1);
  auto got = agree_with_ort(m, {{"x", input("x", {2, 3, 5}, 10, -1, 1)}});
  // The int8 dequantization reproduces (q - z) * s by hand too.
  const auto dq = got.at("dq_int8_axis").to_float();
  const auto s8 = g.initializer("s8")->to_float();
  CHECK(dq[7] == Approx(static_cast<float>(q8[7] - z8v[1]) * s8[1]));
}

// Packs codes low bits first into bytes, as MatMulNBits lays out B and packed zero points.
static std::vector<uint8_t> pack_codes(const std::vector<int>& codes, int bits) {
  std::vector<uint8_t> out((codes.size() * static_cast<size_t>(bits) + 7) / 8, 0);
  for (size_t i = 0; i < codes.size(); ++i)
    for (int b = 0; b < bits; ++b)
      if (codes[i] >> b & 1) out[(i * bits + b) / 8] |= static_cast<uint8_t>(1u << ((i * bits + b) % 8));
  return out;
}

TEST_CASE("MatMulNBits with 4 and 8 bits and packed zero points agrees with ONNX Runtime", "[nn][quant]") {
  Model m = new_model(17);
  m.opset_imports.push_back({"com.microsoft", 1});
  Graph& g = m.graph;
  const int64_t K = 40, N = 6, bs = 16, nb = (K + bs - 1) / bs;  // K not a multiple of the block
  for (int bits : {4, 8}) {
    const std::string s = std::to_string(bits);
    // B [N, nb, bs*bits/8]: each (n, block) blob packs bs codes; codes past K are padding.
    std::vector<uint8_t> B;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t b = 0; b < nb; ++b) {
        std::vector<int> codes(static_cast<size_t>(bs));
        for (int64_t t = 0; t < bs; ++t) codes[t] = static_cast<int>((n * 131 + b * 17 + t * 7) % (1 << bits));
        auto blob = pack_codes(codes, bits);
        B.insert(B.end(), blob.begin(), blob.end());
      }
    Tensor bt;
    bt.name = "B" + s;
    bt.dtype = DType::UInt8;
    bt.dims = {N, nb, bs * bits / 8};
    bt.bytes = B;
    g.add_initializer(bt);
    weight(g, "scales" + s, {N * nb}, 20 + bits, 0.01f, 0.05f);
    // Zero points: per row of N, nb codes packed to whole bytes.
    std::vector<uint8_t> zp;
    for (int64_t n = 0; n < N; ++n) {
      std::vector<int> codes;
      for (int64_t b = 0; b < nb; ++b) codes.push_back(static_cast<int>((n * 3 + b * 5) % (1 << bits)));
      auto row = pack_codes(codes, bits);
      zp.insert(zp.end(), row.begin(), row.end());
    }
    Tensor zt = bt;
    zt.name = "zp" + s;
    zt.dims = {static_cast<int64_t>(zp.size())};
    zt.bytes = zp;
    g.add_initializer(zt);
    weight(g, "bias" + s, {N}, 30 + bits);
    for (bool with_zp : {false, true}) {
      const std::string out = "nbits" + s + (with_zp ? "_zp" : "_sym");
      Node& n = node(g, "MatMulNBits", {"a", "B" + s, "scales" + s, with_zp ? "zp" + s : ""}, out);
      if (with_zp) n.inputs.insert(n.inputs.end(), {"", "bias" + s});  // g_idx omitted, bias given
      n.domain = "com.microsoft";
      n.set_attr_int("K", K);
      n.set_attr_int("N", N);
      n.set_attr_int("bits", bits);
      n.set_attr_int("block_size", bs);
    }
  }
  auto got = agree_with_ort(m, {{"a", input("a", {2, 3, K}, 10)}});
  REQUIRE(got.at("nbits4_sym").dims == std::vector<int64_t>{2, 3, N});
}

TEST_CASE("DynamicQuantizeLinear and integer MatMul and Conv ops agree with ONNX Runtime", "[nn][quant]") {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.add_node(make_node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"}));
  for (const char* o : {"xq", "xs", "xz"}) g.outputs.push_back(ValueInfo{o, DType::Undefined, false, {}, "", ""});
  auto u8 = [&](const std::string& name, std::vector<int64_t> dims, int mul, DType t = DType::UInt8) {
    int64_t n = 1;
    for (auto d : dims) n *= d;
    Tensor w;
    w.name = name;
    w.dtype = t;
    w.dims = dims;
    for (int64_t i = 0; i < n; ++i) {
      const int v = static_cast<int>((i * mul + 11) % 256);
      w.bytes.push_back(static_cast<uint8_t>(t == DType::Int8 ? (v - 128) : v));
    }
    g.add_initializer(w);
  };
  u8("wm", {6, 4}, 29, DType::Int8);
  u8("wz", {}, 0, DType::Int8);
  node(g, "MatMulInteger", {"xq", "wm", "xz", "wz"}, "mmi");
  g.add_initializer(Tensor::from_float("ws", {}, {0.02f}));
  g.add_initializer(Tensor::from_float("ys", {}, {0.05f}));
  u8("yz", {}, 0);
  node(g, "QLinearMatMul", {"xq", "xs", "xz", "wm", "ws", "wz", "ys", "yz"}, "qmm");
  // QLinearConv with per-channel weight scales on an image input quantized by Q.
  g.add_initializer(Tensor::from_float("is", {}, {0.03f}));
  u8("iz", {}, 0);
  node(g, "QuantizeLinear", {"img", "is", "iz"}, "imgq");
  u8("cw", {4, 3, 3, 3}, 53, DType::Int8);
  g.add_initializer(Tensor::from_float("cws", {4}, {0.01f, 0.02f, 0.015f, 0.005f}));
  Tensor cwz;
  cwz.name = "cwz";
  cwz.dtype = DType::Int8;
  cwz.dims = {4};
  cwz.bytes.assign(4, 0);
  g.add_initializer(cwz);
  g.add_initializer(Tensor::from_int32("cb", {4}, {100, -50, 0, 7}));
  g.add_initializer(Tensor::from_float("cys", {}, {0.1f}));
  u8("cyz", {}, 0);
  node(g, "QLinearConv", {"imgq", "is", "iz", "cw", "cws", "cwz", "cys", "cyz", "cb"}, "qconv").set_attr_ints("pads", {1, 1, 1, 1});
  node(g, "ConvInteger", {"imgq", "cw", "iz"}, "convint");
  // Requantized outputs may differ by one unit where a product lands on a rounding tie.
  agree_with_ort(m, {{"x", input("x", {3, 6}, 10, -1, 2)}, {"img", input("img", {1, 3, 6, 7}, 11, -2, 4)}}, 1e-4, 1);
}

TEST_CASE("repeated runs of the same shapes reuse cached oneDNN primitives", "[nn]") {
  Model m = small_cnn(3);
  Executor ex(m);
  auto in = random_inputs(m, 5);
  auto first = ex.run(in);
  const size_t cached = dnnl_util::cache_size();
  auto in2 = random_inputs(m, 6);
  auto second = ex.run(in2);
  CHECK(dnnl_util::cache_size() == cached);
  CHECK_FALSE(bitwise_equal(first.at("y"), second.at("y")));
  auto again = ex.run(in);
  CHECK(bitwise_equal(first.at("y"), again.at("y")));
}

TEST_CASE("NN kernels refuse what they do not implement with the node named", "[nn]") {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {1, 2, 6, 6}));
  Node& mp = g.add_node(make_node("MaxPool", {"x"}, {"y", "idx"}, "pool_with_indices"));
  mp.set_attr_ints("kernel_shape", {2, 2});
  g.outputs.push_back(tensor_value("y", {1, 2, 5, 5}));
  g.outputs.push_back(tensor_value("idx", {1, 2, 5, 5}, DType::Int64));
  Executor ex(m);
  try {
    ex.run({{"x", input("x", {1, 2, 6, 6}, 1)}});
    FAIL("expected UnsupportedError");
  } catch (const UnsupportedError& e) {
    CHECK_THAT(e.what(), Catch::Contains("pool_with_indices") && Catch::Contains("Indices"));
  }
}
