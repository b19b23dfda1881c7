// Broken and hostile model files through the CLI: each is refused with one line naming the
// problem, a non-zero exit and no output file. Library-level load errors live in test_onnx_io.cpp;
// here every case goes through `convert` and `inspect` as a user would meet it.
#include <catch2/catch.hpp>

#include <onnx/onnx_pb.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "graph/onnx_io.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

void put_file(const fs::path& p, const std::string& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}


// small_cnn as a protobuf, for edits the IR would not let us make.
onnx::ModelProto base_proto() {
  onnx::ModelProto mp;
  REQUIRE(mp.ParseFromString(serialize_model(small_cnn())));
  return mp;
}

onnx::TensorProto* weight(onnx::ModelProto& mp, const std::string& name) {
  for (auto& t : *mp.mutable_graph()->mutable_initializer())
    if (t.name() == name) return &t;
  FAIL("no initializer " << name);
  return nullptr;
}

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("broken model files are refused by convert and inspect with one line and no output", "[errors][cli]") {
  fs::path dir = temp_dir("badin");
  struct Case { std::string name; std::function<std::string()> bytes; std::string needle; };
  const std::string good = base_proto().SerializeAsString();

  // External data: a model whose weights sit in m.onnx.data, edited afterwards.
  SaveOptions so;
  so.external = SaveOptions::ExternalData::Always;
  so.external_min_bytes = 64;
  save_model(small_cnn(), dir / "ext.onnx", so);
  onnx::ModelProto ext;
  REQUIRE(ext.ParseFromString(read_all(dir / "ext.onnx")));
  auto with_location = [&](const std::string& loc) {
    onnx::ModelProto mp = ext;
    for (auto& t : *mp.mutable_graph()->mutable_initializer())
      for (auto& kv : *t.mutable_external_data())
        if (kv.key() == "location") kv.set_value(loc);
    return mp.SerializeAsString();
  };

  std::vector<Case> cases = {
    {"empty", [] { return std::string(); }, "empty"},
    {"random", [] {
       std::mt19937 rng(42);
       std::string b(4096, '\0');
       for (char& c : b) c = static_cast<char>(rng());
       return b;
     }, "not an ONNX model"},
    {"truncated", [&] { return good.substr(0, good.size() * 2 / 3); }, "truncated"},
    {"tensorproto", [] {
       // A valid protobuf of another message type: parses, but is no model.
       onnx::TensorProto t;
       t.set_name("w");
       t.set_data_type(onnx::TensorProto::FLOAT);
       t.add_dims(3);
       for (float v : {1.f, 2.f, 3.f}) t.add_float_data(v);
       return t.SerializeAsString();
     }, "not an ONNX model"},
    {"graphproto", [] { return base_proto().graph().SerializeAsString(); }, "not an ONNX model"},
    {"missing_data", [&] { return with_location("gone.onnx.data"); }, "not found"},
    {"escaping_data", [&] { return with_location("../../../etc/passwd"); }, "leaves the model's folder"},
    {"short_raw", [] {
       onnx::ModelProto mp = base_proto();
       auto* w = weight(mp, "c1.w");
       w->set_raw_data(w->raw_data().substr(0, w->raw_data().size() - 4));
       return mp.SerializeAsString();
     }, "bytes of data"},
    {"negative_dim", [] {
       onnx::ModelProto mp = base_proto();
       weight(mp, "c1.b")->set_dims(0, -8);
       return mp.SerializeAsString();
     }, "negative dimension"},
    {"overflowing_dims", [] {
       onnx::ModelProto mp = base_proto();
       auto* w = weight(mp, "c1.b");
       w->clear_dims();
       w->add_dims(int64_t{1} << 40);
       w->add_dims(int64_t{1} << 40);
       return mp.SerializeAsString();
     }, "overflows"},
    {"huge_typed_dims", [] {
       // 2^40 floats fit int64 but not memory: refused before any allocation.
       onnx::ModelProto mp = base_proto();
       auto* w = weight(mp, "c1.b");
       w->clear_raw_data();
       w->clear_dims();
       w->add_dims(int64_t{1} << 20);
       w->add_dims(int64_t{1} << 20);
       w->add_float_data(1.f);
       return mp.SerializeAsString();
     }, "fewer values"},
    {"cycle", [] {
       // The first Conv reads the residual Add's output, which depends on that Conv.
       onnx::ModelProto mp = base_proto();
       for (auto& n : *mp.mutable_graph()->mutable_node())
         if (n.output(0) == "c1") n.set_input(0, "res");
       return mp.SerializeAsString();
     }, "cycle"},
    {"duplicate_value", [] {
       // Relu also claims to produce the BatchNormalization output "bn".
       onnx::ModelProto mp = base_proto();
       for (auto& n : *mp.mutable_graph()->mutable_node())
         if (n.op_type() == "Relu" && n.input(0) == "res") n.set_output(0, "bn");
       return mp.SerializeAsString();
     }, "'bn' is produced twice"},
  };

  for (const Case& c : cases) {
    INFO(c.name);
    fs::path in = dir / (c.name + ".onnx"), out = dir / (c.name + ".out.onnx");
    put_file(in, c.bytes());
    auto conv = run_cli({"convert", in.string(), "-o", out.string()});
    INFO(conv.out);
    CHECK(conv.rc == 1);
    CHECK(lines(conv.out) == 1);
    CHECK_THAT(conv.out, Catch::Contains(c.needle));
    CHECK_FALSE(fs::exists(out));
    auto insp = run_cli({"inspect", in.string(), "--json"});
    INFO(insp.out);
    CHECK(insp.rc == 1);
    CHECK(lines(insp.out) == 1);
    CHECK_THAT(insp.out, Catch::Contains(c.needle));
  }
  // Nothing half-written (temporary files) is left beside the outputs either.
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().string().find(".tmp") == std::string::npos);
}

TEST_CASE("an unknown operator does not stop inspect - it is listed and MACs elsewhere still count", "[errors][cli]") {
  fs::path dir = temp_dir("unkop");
  Model m = small_cnn();
  // Insert an operator nobody knows between the residual Add and what reads it.
  for (auto& n : m.graph.nodes)
    for (auto& i : n.inputs)
      if (i == "res") i = "res_fancy";
  m.graph.add_node(make_node("FrobnicateChannels", {"res"}, {"res_fancy"}, "fancy"));
  save_model(m, dir / "m.onnx");
  auto r = run_cli({"inspect", (dir / "m.onnx").string(), "--json"});
  REQUIRE(r.rc == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["op_counts"]["FrobnicateChannels"] == 1);
  bool listed = false;
  for (const auto& op : j["unknown_ops"]) listed = listed || op.get<std::string>().find("FrobnicateChannels") != std::string::npos;
  CHECK(listed);
  // The Convs before the unknown op still count.
  CHECK(j["macs_counted"].get<int64_t>() > 0);
  auto t = run_cli({"inspect", (dir / "m.onnx").string()});
  REQUIRE(t.rc == 0);
  CHECK_THAT(t.out, Catch::Contains("no shape rule for") && Catch::Contains("FrobnicateChannels"));
}

// (Kept here with the other inspect checks: the weight, layer and external-data fields of `inspect --json`.)
TEST_CASE("inspect --json reports weights by dtype - heaviest layers and external data on every corpus model", "[cli][inspect][corpus]") {
  // Shapes for the symbolic OCR inputs so their layers get MACs; silero's LSTM state stays symbolic.
  const std::vector<std::pair<std::string, std::string>> models = {
      {"ppocr4_det.onnx", "x=1,3,64,64"}, {"ppocr4_rec.onnx", "x=1,3,48,320"}, {"ppocr2_cls.onnx", "x=1,3,48,192"},
      {"silero_vad.onnx", ""}, {"blazeface_front.onnx", ""}, {"blazeface_back.onnx", ""}, {"wakeword_hello.onnx", ""}};
  for (const auto& [name, shape] : models) {
    INFO(name);
    std::vector<std::string> args = {"inspect", corpus_model(name).string(), "--json"};
    if (!shape.empty()) args.insert(args.end(), {"--input-shape", shape});
    auto r = run_cli(args);
    REQUIRE(r.rc == 0);
    auto j = nlohmann::json::parse(r.out);
    // Bytes by dtype add up to the total weight bytes; float32 elements cover the parameter count.
    uint64_t bytes = 0;
    int tensors = 0;
    for (const auto& [dt, w] : j["weights_by_dtype"].items()) {
      bytes += w["bytes"].get<uint64_t>();
      tensors += w["tensors"].get<int>();
      CHECK(w["elements"].get<int64_t>() >= 0);
    }
    CHECK(bytes == j["weight_bytes"].get<uint64_t>());
    REQUIRE(j["weights_by_dtype"].contains("float32"));
    CHECK(j["weights_by_dtype"]["float32"]["elements"].get<int64_t>() >= j["params"].get<int64_t>());
    // Heaviest layers: at most 5, largest first, the first is the per-node maximum.
    const auto& h = j["heaviest"];
    CHECK(h.size() <= 5);
    int64_t max_node = 0;
    for (const auto& row : j["per_node"])
      if (!row["macs"].is_null()) max_node = std::max(max_node, row["macs"].get<int64_t>());
    if (name != "silero_vad.onnx") CHECK(max_node > 0);
    if (max_node > 0) {
      REQUIRE(!h.empty());
      CHECK(h[0]["macs"].get<int64_t>() == max_node);
    }
    for (size_t i = 1; i < h.size(); ++i) CHECK(h[i]["macs"].get<int64_t>() <= h[i - 1]["macs"].get<int64_t>());
    for (const auto& row : h) {
      CHECK(row["share"].get<double>() > 0.0);
      CHECK(row["share"].get<double>() <= 1.0);
    }
    // The corpus keeps its weights inline.
    CHECK(j["external_data"]["used"] == false);
    CHECK(j["external_data"]["external_tensors"] == 0);
    CHECK(j["external_data"]["inline_tensors"].get<int>() > 0);
    CHECK(tensors > 0);
  }
  // With external data the data file and the bytes it holds are reported.
  fs::path dir = temp_dir("inspext");
  SaveOptions so;
  so.external = SaveOptions::ExternalData::Always;
  so.external_min_bytes = 64;
  save_model(small_cnn(), dir / "m.onnx", so);
  auto r = run_cli({"inspect", (dir / "m.onnx").string(), "--json"});
  REQUIRE(r.rc == 0);
  auto e = nlohmann::json::parse(r.out)["external_data"];
  CHECK(e["used"] == true);
  CHECK(e["external_tensors"].get<int>() >= 3);  // c1.w, c2.w, fc.w are over 64 bytes
  CHECK(e["files"]["m.onnx.data"].get<uint64_t>() == fs::file_size(dir / "m.onnx.data"));
  CHECK(e["external_bytes"].get<uint64_t>() <= fs::file_size(dir / "m.onnx.data"));
  CHECK(e["external_bytes"].get<uint64_t>() > 0);
  auto t = run_cli({"inspect", (dir / "m.onnx").string()});
  CHECK_THAT(t.out, Catch::Contains("external") && Catch::Contains("m.onnx.data"));
  CHECK_THAT(t.out, Catch::Contains("heaviest") && Catch::Contains("float32"));
}

TEST_CASE("calibration data giving silero VAD's batch two values is one line naming the inputs and the dims", "[errors][cli][corpus]") {
  // silero's audio is [batch, T] and its LSTM state h, c [2, batch, 64]: a state at batch 3 beside
  // audio samples of batch 1 cannot run; the error says so before the LSTM node's own complaint.
  const fs::path dir = temp_dir("badin_silero_batch");
  const fs::path model = corpus_model("silero_vad.onnx");
  const std::vector<float> zeros(2 * 3 * 64, 0.f);
  write_npz(dir / "bad.npz",
            {random_tensor("input", {4, 512}, 1, -0.3f, 0.3f), Tensor::from_int64("sr", {}, {16000}),
             Tensor::from_float("h", {2, 3, 64}, zeros), Tensor::from_float("c", {2, 3, 64}, zeros)},
            false);
  for (const char* cmd : {"prune", "quantize"}) {
    const fs::path out = dir / (std::string(cmd) + ".onnx");
    std::vector<std::string> args = {cmd, model.string(), "-o", out.string(), "--calib", (dir / "bad.npz").string()};
    if (std::string(cmd) == "prune") args.insert(args.end(), {"--target-macs", "0.95"});
    else args.insert(args.end(), {"--bits", "8", "--activations", "int8"});
    const CliResult r = run_cli(args);
    INFO(cmd << ": " << r.out);
    CHECK(r.rc == 2);  // bad input, as the CLI exits for any
    CHECK(lines(r.out) == 1);
    CHECK_THAT(r.out, Catch::Contains("inputs 'input' [1,512] and 'h' [2,3,64] give the symbolic dim 'batch' different values "
                                      "(1 at axis 0, 3 at axis 1)"));
    CHECK_FALSE(fs::exists(out));
  }
}
