// Shape inference against ONNX Runtime, and parameter/MAC counting against published figures.
#include <catch2/catch.hpp>

#include <set>

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
      ShapeInferenceResult r = infer_shapes(m, cs.shapes);
      INFO("unknown ops: " << r.unknown_ops.size() << ", first unresolved: "
                           << (r.unresolved.empty() ? "" : r.unresolved[0].first + ": " + r.unresolved[0].second));
      CHECK(r.unknown_ops.empty());
      CHECK(r.values > 0);
      auto inputs = random_inputs(m, 7, 1, cs.shapes);
      if (inputs.count("sr")) inputs["sr"] = Tensor::from_int64("sr", {}, {16000});
      int compared = check_against_ort(m, inputs, cs.file);
      WARN(cs.file << " compared " << compared << " nodes " << m.graph.nodes.size() << " values " << r.values << " concrete " << r.concrete << " unresolved " << r.unresolved.size());
      CHECK(compared >= static_cast<int>(m.graph.nodes.size()) / 2);
    }
  }
}
