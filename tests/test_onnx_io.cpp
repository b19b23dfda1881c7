// Loading and saving real ONNX files: round trips through ONNX Runtime, external data, hostile input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>

#include "engine/executor.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/opset_convert.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {


std::map<std::string, Tensor> corpus_inputs(const std::string& name, const Model& m, uint64_t seed) {
  auto in = random_inputs(m, seed, 1, corpus_shapes(name));
  if (name == "silero_vad.onnx") in["sr"] = Tensor::from_int64("sr", {}, {16000});
  return in;
}

const char* kCorpus[] = {"ppocr4_det.onnx", "ppocr4_rec.onnx", "ppocr2_cls.onnx", "silero_vad.onnx",
                         "blazeface_front.onnx", "blazeface_back.onnx", "wakeword_hello.onnx"};

void write_bytes(const fs::path& p, const std::string& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}

}  // namespace

TEST_CASE("load-normalize-save keeps ONNX Runtime outputs bitwise identical on the corpus", "[onnx_io][ort][corpus]") {
  for (const char* name : kCorpus) {
    INFO(name);
    fs::path src = corpus_model(name);
    Model m = load_model(src);
    auto inputs = corpus_inputs(name, m, 7);
    normalize(m);
    fs::path out = temp_dir("rt") / name;
    save_model(m, out);
    auto ref = run_ort(src, inputs);
    auto got = run_ort(out, inputs);
    REQUIRE(ref.size() == got.size());
    for (const auto& [k, t] : ref) {
      INFO(k);
      CHECK(bitwise_equal(got.at(k), t));
    }
  }
}

TEST_CASE("Constant-node weights become initializers - subgraph weights survive", "[onnx_io][corpus]") {
  Model det = load_model(corpus_model("ppocr4_det.onnx"));
  REQUIRE(det.graph.initializers.empty());  // PP-OCR keeps every weight in Constant nodes
  size_t constants = 0;
  for (const auto& n : det.graph.nodes) constants += n.op_type == "Constant";
  NormalizeStats st = normalize(det);
  CHECK(st.constants_lifted == static_cast<int>(constants));
  CHECK(det.graph.initializers.size() == constants);
  for (const auto& n : det.graph.nodes) CHECK(n.op_type != "Constant");

  Model vad = load_model(corpus_model("silero_vad.onnx"));
  size_t sub_weights = 0;
  std::function<void(const Graph&, bool)> walk = [&](const Graph& g, bool inside) {
    for (const auto& n : g.nodes) {
      if (inside && n.op_type == "Constant") sub_weights += n.attr("value") ? n.attr("value")->t.bytes.size() : 0;
      for (const auto& sg : n.subgraphs()) walk(*sg, true);
    }
    if (inside) for (const auto& t : g.initializers) sub_weights += t.bytes.size();
  };
  walk(vad.graph, false);
  CHECK(sub_weights > 100000);  // the LSTM weights live inside If branches
  size_t before = model_weight_bytes(vad);
  normalize(vad);
  Model back = load_model_from_bytes(serialize_model(vad), {});
  CHECK(model_weight_bytes(back) == before);
}

TEST_CASE("external data: written on request, read back, runs in ONNX Runtime", "[onnx_io][ort]") {
  Model m = small_cnn();
  fs::path dir = temp_dir("ext");
  SaveOptions so;
  so.external = SaveOptions::ExternalData::Always;
  so.external_min_bytes = 64;
  save_model(m, dir / "m.onnx", so);
  REQUIRE(fs::exists(dir / "m.onnx.data"));
  CHECK(fs::file_size(dir / "m.onnx") < 2000);
  Model back = load_model(dir / "m.onnx");
  for (const auto& t : m.graph.initializers) CHECK(back.graph.initializer(t.name)->bytes == t.bytes);
  save_model(m, dir / "inline.onnx");
  auto in = random_inputs(m, 3);
  auto a = run_ort(dir / "m.onnx", in), b = run_ort(dir / "inline.onnx", in);
  CHECK(bitwise_equal(a.at("y"), b.at("y")));
  // No temporary files are left behind.
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().string().find(".tmp-") == std::string::npos);
}

TEST_CASE("hostile or broken external data paths are refused with the reason", "[onnx_io][errors]") {
  Model m = small_cnn();
  fs::path dir = temp_dir("hostile");
  SaveOptions so;
  so.external = SaveOptions::ExternalData::Always;
  so.external_min_bytes = 64;
  save_model(m, dir / "m.onnx", so);
  std::ifstream f(dir / "m.onnx", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  auto with_location = [&](const std::string& loc) {
    std::string b = bytes;
    const std::string from = "m.onnx.data";
    REQUIRE(loc.size() == from.size());  // same length keeps the protobuf valid
    for (size_t p = b.find(from); p != std::string::npos; p = b.find(from, p + 1)) b.replace(p, from.size(), loc);
    return b;
  };
  auto expect_error = [&](const std::string& b, const std::string& needle) {
    fs::path p = dir / "bad.onnx";
    write_bytes(p, b);
    try {
      load_model(p);
      FAIL("expected LoadError");
    } catch (const LoadError& e) {
      CHECK_THAT(e.what(), Catch::Contains(needle));
    }
  };
  expect_error(with_location("/etc/passwd"), "absolute");
  expect_error(with_location("../../x.bin"), "leaves the model's folder");
  expect_error(with_location("missing.bin"), "not found");
  // A symlink inside the folder that points outside it is refused too.
  fs::create_symlink("/etc/hostname", dir / "link.onnx.d");
  expect_error(with_location("link.onnx.d"), "outside");
  // Truncated data file.
  fs::resize_file(dir / "m.onnx.data", 100);
  expect_error(bytes, "past its end");
}

TEST_CASE("not-ONNX, truncated and empty files give one-line load errors", "[onnx_io][errors]") {
  fs::path dir = temp_dir("bad");
  write_bytes(dir / "text.onnx", "this is not a model at all, just some text\n");
  write_bytes(dir / "empty.onnx", "");
  std::ifstream f(corpus_model("ppocr2_cls.onnx"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  write_bytes(dir / "trunc.onnx", bytes.substr(0, bytes.size() / 2));
  for (const char* n : {"text.onnx", "empty.onnx", "trunc.onnx", "missing.onnx"}) {
    INFO(n);
    try {
      load_model(dir / n);
      FAIL("expected LoadError");
    } catch (const LoadError& e) {
      std::string msg = e.what();
      CHECK(msg.find('\n') == std::string::npos);
      CHECK(msg.find(n) != std::string::npos);
    }
  }
}

TEST_CASE("nodes out of order, unknown domains and subgraph-free models round-trip", "[onnx_io][ort]") {
  Model m = small_cnn();
  Node custom = make_node("FancyOp", {"x"}, {"unused"});
  custom.domain = "com.example";
  custom.set_attr_string("mode", "fast");
  custom.set_attr_ints("sizes", {1, 2, 3});
  m.graph.add_node(custom);
  m.opset_imports.push_back({"com.example", 1});
  std::reverse(m.graph.nodes.begin(), m.graph.nodes.end());
  m.graph.invalidate();
  Model back = load_model_from_bytes(serialize_model(m), {});
  normalize(back);
  // toposort puts producers first
  for (size_t i = 0; i < back.graph.nodes.size(); ++i)
    for (const auto& in : back.graph.nodes[i].inputs) CHECK(back.graph.producer(in) < static_cast<int>(i));
  const Node* fancy = nullptr;
  for (const auto& n : back.graph.nodes) if (n.op_type == "FancyOp") fancy = &n;
  REQUIRE(fancy);
  CHECK(fancy->domain == "com.example");
  CHECK(fancy->attr_string("mode", "") == "fast");
  CHECK(fancy->attr_ints("sizes") == std::vector<int64_t>{1, 2, 3});
  // Without the custom node ONNX Runtime runs the reordered model.
  Model plain = small_cnn();
  std::reverse(plain.graph.nodes.begin(), plain.graph.nodes.end());
  plain.graph.invalidate();
  Model plain_back = load_model_from_bytes(serialize_model(plain), {});
  normalize(plain_back);
  fs::path dir = temp_dir("order");
  save_model(plain_back, dir / "sorted.onnx");
  save_model(small_cnn(), dir / "ref.onnx");
  auto in = random_inputs(plain_back, 5);
  CHECK(bitwise_equal(run_ort(dir / "sorted.onnx", in).at("y"), run_ort(dir / "ref.onnx", in).at("y")));
}

TEST_CASE("raising the opset rewrites attribute-to-input changes - outputs unchanged", "[onnx_io][opset][ort]") {
  Model m = new_model(11);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {2, 1, 6}));
  Node sq = make_node("Squeeze", {"x"}, {"s"});
  sq.set_attr_ints("axes", {1});
  g.add_node(sq);
  Node rs = make_node("ReduceMean", {"s"}, {"r"});
  rs.set_attr_ints("axes", {1});
  rs.set_attr_int("keepdims", 1);
  g.add_node(rs);
  Node sm = make_node("Softmax", {"s"}, {"p"});
  sm.set_attr_int("axis", 1);
  g.add_node(sm);
  Node un = make_node("Unsqueeze", {"r"}, {"y"});
  un.set_attr_ints("axes", {0});
  g.add_node(un);
  g.outputs.push_back(tensor_value("y", {1, 2, 1}));
  g.outputs.push_back(tensor_value("p", {2, 6}));
  g.value_info.push_back(tensor_value("s", {2, 6}));
  fs::path dir = temp_dir("opset");
  save_model(m, dir / "v11.onnx");
  Model up = m;
  convert_opset(up, 21);
  CHECK(up.opset() == 21);
  CHECK(up.ir_version >= 10);
  save_model(up, dir / "v21.onnx");
  auto in = random_inputs(m, 9);
  auto a = run_ort(dir / "v11.onnx", in), b = run_ort(dir / "v21.onnx", in);
  CHECK(max_rel_error(b.at("y"), a.at("y")) < 1e-6);
  CHECK(max_rel_error(b.at("p"), a.at("p")) < 1e-6);
  CHECK_THROWS_AS(convert_opset(up, 13), UnsupportedError);
}

TEST_CASE("convert --opset rewrites every attribute-to-input change", "[onnx_io][opset][ort][cli]") {
  // Opset 10 forms of Pad, Clip, Split, ReduceSum, Squeeze, Unsqueeze, ReduceMax and Softmax over
  // the last axis of a rank-3 input: the opset 21 file must compute the same in ONNX Runtime.
  // (Softmax at another axis changed meaning at 13: rewritten, the test after next.)
  Model m = new_model(10);
  m.ir_version = 5;
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {2, 3, 4}));
  Node pad = make_node("Pad", {"x"}, {"p"});
  pad.set_attr_ints("pads", {0, 0, 1, 0, 0, 1});
  pad.set_attr_float("value", 0.25f);
  g.add_node(pad);
  Node clip = make_node("Clip", {"p"}, {"c"});
  clip.set_attr_float("min", -0.5f);
  clip.set_attr_float("max", 0.5f);
  g.add_node(clip);
  Node split = make_node("Split", {"c"}, {"s1", "s2"});
  split.set_attr_int("axis", 2);
  split.set_attr_ints("split", {2, 4});
  g.add_node(split);
  Node rs = make_node("ReduceSum", {"s2"}, {"rs"});
  rs.set_attr_ints("axes", {1});
  rs.set_attr_int("keepdims", 1);
  g.add_node(rs);
  Node sq = make_node("Squeeze", {"rs"}, {"sq"});
  sq.set_attr_ints("axes", {1});
  g.add_node(sq);
  Node un = make_node("Unsqueeze", {"sq"}, {"un"});
  un.set_attr_ints("axes", {0});
  g.add_node(un);
  Node rm = make_node("ReduceMax", {"s1"}, {"rm"});
  rm.set_attr_ints("axes", {2});
  rm.set_attr_int("keepdims", 0);
  g.add_node(rm);
  Node sm = make_node("Softmax", {"x"}, {"sm"});
  sm.set_attr_int("axis", 2);
  g.add_node(sm);
  g.outputs = {tensor_value("un", {1, 2, 4}), tensor_value("rm", {2, 3}), tensor_value("sm", {2, 3, 4})};
  fs::path dir = temp_dir("opset_cli");
  save_model(m, dir / "v10.onnx");
  auto r = run_cli({"convert", (dir / "v10.onnx").string(), "-o", (dir / "v21.onnx").string(), "--opset", "21"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model up = load_model(dir / "v21.onnx");
  CHECK(up.opset() == 21);
  std::map<std::string, size_t> inputs;
  for (const auto& n : up.graph.nodes)
    if (n.op_type != "Softmax") inputs[n.op_type] = std::max(inputs[n.op_type], n.inputs.size());
  CHECK(inputs["Pad"] >= 2);
  CHECK(inputs["Clip"] == 3);
  CHECK(inputs["Split"] == 2);
  CHECK(inputs["ReduceSum"] == 2);
  CHECK(inputs["Squeeze"] == 2);
  CHECK(inputs["Unsqueeze"] == 2);
  CHECK(inputs["ReduceMax"] == 2);
  auto in = random_inputs(m, 3);
  auto a = run_ort(dir / "v10.onnx", in), b = run_ort(dir / "v21.onnx", in);
  for (const char* o : {"un", "rm", "sm"}) {
    INFO("output " << o);
    CHECK(max_rel_error(b.at(o), a.at(o)) < 1e-6);
  }
}

TEST_CASE("convert --opset refuses, naming the node, where the meaning changed", "[onnx_io][opset][cli]") {
  struct Case { const char* op; int64_t opset; std::vector<std::string> in; };
  const std::vector<Case> cases = {{"Upsample", 9, {"x", "scales"}}, {"Scatter", 10, {"x", "idx", "upd"}},
                                   {"Resize", 10, {"x", "scales"}}};
  for (const auto& c : cases) {
    INFO(c.op);
    Model m = new_model(c.opset);
    m.ir_version = 5;
    Graph& g = m.graph;
    g.inputs.push_back(tensor_value("x", {1, 1, 2, 2}));
    g.add_initializer(Tensor::from_float("scales", {4}, {1, 1, 2, 2}));
    g.add_initializer(Tensor::from_int64("idx", {1, 1, 1, 2}, {1, 0}));
    g.add_initializer(Tensor::from_float("upd", {1, 1, 1, 2}, {5, 6}));
    Node n = make_node(c.op, c.in, {"y"}, std::string("the_") + c.op);
    g.add_node(n);
    g.outputs.push_back(tensor_value("y", {}));
    g.outputs[0].has_shape = false;
    fs::path dir = temp_dir("opset_refuse");
    save_model(m, dir / "m.onnx");
    auto r = run_cli({"convert", (dir / "m.onnx").string(), "-o", (dir / "up.onnx").string(), "--opset", "13"});
    CHECK(r.rc == 1);
    CHECK_THAT(r.out, Catch::Contains(std::string("the_") + c.op));
    CHECK_FALSE(fs::exists(dir / "up.onnx"));
  }
}

TEST_CASE("convert --opset keeps the flattening meaning of Softmax, LogSoftmax and Hardmax below 13",
          "[onnx_io][opset][ort][cli]") {
  // Before 13, Softmax(axis=1) of a rank-4 input normalizes over the flattened trailing dims; from 13
  // it would normalize over axis 1 alone. The converter spells the old meaning out
  // (Flatten -> op(axis=-1) -> Reshape to Shape(x)); ONNX Runtime must give the same numbers for
  // the opset-11 and the opset-13 file, and differ from a plain axis change (the rewrite matters).
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) {
    for (int64_t axis : {1, 2, -2, 0}) {
      INFO(op << " axis " << axis);
      Model m = new_model(11);
      m.ir_version = 6;
      Graph& g = m.graph;
      g.inputs.push_back(tensor_value("x", {2, 3, 4, 5}));
      Node n = make_node(op, {"x"}, {"y"}, "the_op");
      n.set_attr_int("axis", axis);
      g.add_node(n);
      g.outputs.push_back(tensor_value("y", {2, 3, 4, 5}));
      fs::path dir = temp_dir("opset_softmax");
      save_model(m, dir / "v11.onnx");
      auto r = run_cli({"convert", (dir / "v11.onnx").string(), "-o", (dir / "v13.onnx").string(), "--opset", "13"});
      INFO(r.out);
      REQUIRE(r.rc == 0);
      Model up = load_model(dir / "v13.onnx");
      CHECK(up.opset() == 13);
      std::vector<std::string> ops;
      for (const auto& x : up.graph.nodes) ops.push_back(x.op_type);
      CHECK(ops == std::vector<std::string>{"Flatten", "Shape", op, "Reshape"});
      auto in = random_inputs(m, 5);
      auto a = run_ort(dir / "v11.onnx", in), b = run_ort(dir / "v13.onnx", in);
      CHECK(b.at("y").dims == a.at("y").dims);
      CHECK(max_rel_error(b.at("y"), a.at("y")) < 1e-6);
      // Our executor agrees with ONNX Runtime on the rewritten graph.
      normalize(up);
      auto ours = Executor(up, {1}).run(in);
      CHECK(max_rel_error(ours.at("y"), b.at("y")) < 1e-5);
      // A plain axis change would compute something else (Hardmax aside, whose one-hot rows can coincide).
      if (std::string(op) != "Hardmax") {
        Model naive = m;
        naive.set_opset("", 13);
        naive.graph.nodes[0].set_attr_int("axis", axis);
        save_model(naive, dir / "naive.onnx");
        auto c = run_ort(dir / "naive.onnx", in);
        CHECK(max_rel_error(c.at("y"), a.at("y")) > 1e-2);
      }
    }
  }
}
