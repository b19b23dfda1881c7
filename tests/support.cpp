#include "support.h"

#include <catch2/catch.hpp>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <nlohmann/json.hpp>

#include "engine/cuda_backend.h"
#include "engine/executor.h"
#include "graph/normalize.h"
#include "engine/npy.h"
#include "graph/errors.h"
#include "graph/onnx_io.h"

namespace oc::test {

namespace {
struct TempRoot {
  fs::path root;
  TempRoot() {
    root = fs::temp_directory_path() / ("oc_tests_" + std::to_string(::getpid()));
    fs::create_directories(root);
  }
  ~TempRoot() {
    std::error_code ec;
    if (!std::getenv("OC_KEEP_TEMP")) fs::remove_all(root, ec);
  }
};
TempRoot& temp_root() {
  static TempRoot r;
  return r;
}
std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

fs::path temp_dir(const std::string& tag) {
  static int counter = 0;
  fs::path p = temp_root().root / (tag + "_" + std::to_string(++counter));
  fs::create_directories(p);
  return p;
}

fs::path source_path(const std::string& rel) { return fs::path(OC_SOURCE_DIR) / rel; }

fs::path corpus_model(const std::string& name) {
  fs::path p = source_path("models/corpus/" + name);
  if (!fs::exists(p)) FAIL("corpus model " << name << " missing: run models/fetch-corpus.sh");
  return p;
}

void skip_test(const std::string& why) {
  std::cout << kSkipMarker << ": " << why << std::endl;
  WARN("skipped: " << why);
}

fs::path zoo_model(const std::string& name) {
  fs::path p = source_path("models/zoo/" + name + ".onnx");
  if (fs::exists(p)) return p;
  const std::string how = p.string() + " is absent (/usr/bin/python3 models/export_torchvision.py " + name + ")";
  // OC_REQUIRE_ZOO=1: every zoo model is required; a list ("resnet18,mobilenet_v2"): those.
  if (const char* req = std::getenv("OC_REQUIRE_ZOO")) {
    const std::string list = "," + std::string(req) + ",";
    if (std::string(req) == "1" || list.find("," + name + ",") != std::string::npos)
      FAIL(how << " and OC_REQUIRE_ZOO=" << req);
  }
  skip_test(how);
  return {};
}

namespace {
// OC_TEST_REFERENCE=cpu: the CPU executor stands in for ONNX Runtime. Only for a GPU machine
// without Node.js, where it still checks the CUDA runs against the CPU ones; anywhere else it would
// compare our executor with itself, so it is refused there. Said once per process.
bool cpu_reference() {
  const char* ref = std::getenv("OC_TEST_REFERENCE");
  if (!ref || std::string(ref) != "cpu") return false;
  static const std::string refused = [] {
    std::string why;
    if (!cuda_usable(&why)) return "no usable GPU (" + why + ")";
    std::cerr << "OC_TEST_REFERENCE=cpu: the CPU executor stands in for ONNX Runtime as the reference\n";
    return std::string();
  }();
  if (!refused.empty())
    FAIL("OC_TEST_REFERENCE=cpu is refused here: " << refused << "; the CPU executor would be compared with itself");
  return true;
}
}  // namespace

nlohmann::json first_step_details(const fs::path& report) {
  std::ifstream f(report);
  return nlohmann::json::parse(f)["steps"][0]["details"];
}

std::map<std::string, Tensor> run_ort(const fs::path& model, const std::map<std::string, Tensor>& inputs) {
  // A GPU machine has no Node.js: there the CPU executor (checked against ONNX Runtime by CI)
  // stands in as the reference, so the CUDA comparisons in agree_with_ort still mean something.
  if (cpu_reference()) {
    Model m = load_model(model);
    normalize(m);
    Executor ex(m);
    std::map<std::string, Tensor> out;
    for (auto& [name, t] : ex.run(inputs)) out[safe_file_name(name)] = std::move(t);
    return out;
  }
  fs::path dir = temp_dir("ort");
  std::string cmd = "node " + quote(source_path("tests/node/ort_run.js").string()) + " " + quote(model.string()) + " " +
                    quote((dir / "out").string());
  int k = 0;
  for (const auto& [name, t] : inputs) {
    fs::path f = dir / ("in" + std::to_string(k++) + ".npy");
    write_npy(f, t);
    cmd += " " + quote(name + "=" + f.string());
  }
  cmd += " 2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (p && std::fgets(buf.data(), buf.size(), p)) out += buf.data();
  int rc = p ? ::pclose(p) : -1;
  if (rc != 0) FAIL("onnxruntime-node failed on " << model.filename().string() << ": " << out);
  std::map<std::string, Tensor> res;
  for (const auto& e : fs::directory_iterator(dir / "out")) {
    Tensor t = read_npy(e.path());
    res[e.path().stem().string()] = std::move(t);
  }
  return res;
}

std::map<std::string, Tensor> agree_with_ort(Model m, const std::map<std::string, Tensor>& in, double tol,
                                             int64_t int_tol) {
  for (const auto& [name, t] : in)
    if (!m.graph.is_graph_input(name))
      m.graph.inputs.push_back(tensor_value(name, t.dims, t.dtype));
  Executor ex(m);
  auto got = ex.run(in);
  for (auto& o : m.graph.outputs)
    if (o.dtype == DType::Undefined) o.dtype = got.at(o.name).dtype;
  fs::path p = temp_dir("agree") / "model.onnx";
  save_model(m, p);
  auto ref = run_ort(p, in);
  REQUIRE(ref.size() == m.graph.outputs.size());
  auto compare = [&](const std::map<std::string, Tensor>& outs) {
    for (const auto& o : m.graph.outputs) {
      INFO("output " << o.name);
      const Tensor& r = ref.at(safe_file_name(o.name));
      const Tensor& t = outs.at(o.name);
      REQUIRE(t.dtype == r.dtype);
      REQUIRE(t.dims == r.dims);
      if (dtype_is_float(t.dtype)) {
        CHECK(max_rel_error(t, r) <= tol);
      } else if (int_tol == 0) {
        CHECK(t.bytes == r.bytes);
      } else {
        auto a = t.to_int64(), b = r.to_int64();
        int64_t worst = 0;
        for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
        CHECK(worst <= int_tol);
      }
    }
  };
  compare(got);
  if (cuda_usable()) {  // the same graph on the GPU, against the same reference
    INFO("device cuda");
    ExecutorOptions o;
    o.device = "cuda";
    Executor gpu(m, o);
    compare(gpu.run(in));
  }
  return got;
}

CliResult run_cli(const std::vector<std::string>& args) {
  std::string cmd = quote(OC_CLI_PATH);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " 2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (p && std::fgets(buf.data(), buf.size(), p)) out += buf.data();
  int status = p ? ::pclose(p) : -1;
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {rc, out};
}

std::vector<float> random_floats(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void add_gaussian_initializer(Graph& g, std::mt19937_64& rng, const std::string& name, std::vector<int64_t> dims,
                              float scale, float mean) {
  std::normal_distribution<float> d(mean, scale);
  int64_t n = 1;
  for (auto x : dims) n *= x;
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  g.add_initializer(Tensor::from_float(name, std::move(dims), v));
}

Tensor random_tensor(const std::string& name, std::vector<int64_t> dims, uint64_t seed, float lo, float hi) {
  int64_t n = 1;
  for (auto d : dims) n *= d;
  return Tensor::from_float(name, std::move(dims), random_floats(static_cast<size_t>(n), seed, lo, hi));
}

std::map<std::string, Tensor> random_inputs(const Model& m, uint64_t seed, int64_t dyn,
                                            const std::map<std::string, std::vector<int64_t>>& shapes) {
  std::map<std::string, Tensor> out;
  for (const ValueInfo* v : m.graph.runtime_inputs()) {
    std::vector<int64_t> dims;
    if (shapes.count(v->name)) dims = shapes.at(v->name);
    else for (const Dim& d : v->shape) dims.push_back(d.known() ? d.value : dyn);
    int64_t n = 1;
    for (auto d : dims) n *= d;
    if (v->dtype == DType::Float) {
      out[v->name] = Tensor::from_float(v->name, dims, random_floats(static_cast<size_t>(n), seed++));
    } else if (v->dtype == DType::Int64) {
      out[v->name] = Tensor::from_int64(v->name, dims, std::vector<int64_t>(static_cast<size_t>(n), 0));
    } else {
      FAIL("random_inputs: unsupported input type " << dtype_name(v->dtype));
    }
  }
  return out;
}

Tensor first_rows(const Tensor& t, int64_t n) {
  REQUIRE(!t.dims.empty());
  REQUIRE(n <= t.dims[0]);
  Tensor r = t;
  r.bytes.resize(t.bytes.size() / static_cast<size_t>(t.dims[0]) * static_cast<size_t>(n));
  r.dims[0] = n;
  return r;
}

std::map<std::string, std::vector<int64_t>> corpus_shapes(const std::string& name) {
  if (name == "ppocr4_det.onnx") return {{"x", {1, 3, 64, 96}}};
  if (name == "ppocr4_rec.onnx") return {{"x", {1, 3, 48, 160}}};
  if (name == "ppocr2_cls.onnx") return {{"x", {1, 3, 48, 192}}};
  if (name == "silero_vad.onnx") return {{"input", {1, 512}}, {"h", {2, 1, 64}}, {"c", {2, 1, 64}}};
  return {};
}

double max_rel_error(const Tensor& a, const Tensor& b, double floor) {
  REQUIRE(a.dims == b.dims);
  auto fa = a.to_float(), fb = b.to_float();
  double worst = 0, scale = floor;
  for (float v : fb) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < fa.size(); ++i) {
    if (std::isnan(fa[i]) != std::isnan(fb[i])) return INFINITY;
    if (std::isnan(fa[i])) continue;
    // Relative to the tensor's scale: elementwise relative error is meaningless near zero.
    worst = std::max(worst, std::fabs(static_cast<double>(fa[i]) - fb[i]) / scale);
  }
  return worst;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.dims == b.dims && a.bytes == b.bytes;
}

Node make_node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out, const std::string& name) {
  Node n;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.name = name.empty() ? op + "_" + (n.outputs.empty() ? std::string("x") : n.outputs[0]) : name;
  return n;
}

Node& add_node(Graph& g, const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
  return g.add_node(make_node(op, std::move(in), std::move(out)));
}

ValueInfo tensor_value(const std::string& name, std::vector<int64_t> dims, DType t) {
  ValueInfo v;
  v.name = name;
  v.dtype = t;
  v.has_shape = true;
  for (int64_t d : dims) v.shape.push_back(d < 0 ? Dim::sym("N") : Dim::of(d));
  return v;
}

Attribute graph_attr(const std::string& name, Graph g) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::Graph;
  a.g = std::make_shared<Graph>(std::move(g));
  return a;
}

Model new_model(int64_t opset) {
  Model m;
  m.ir_version = 8;
  m.opset_imports = {{"", opset}};
  m.producer_name = "onnx-compress-tests";
  m.graph.name = "test";
  return m;
}

Model small_cnn(uint64_t seed) {
  Model m = new_model(13);
  Graph& g = m.graph;
  auto w = [&](const std::string& name, std::vector<int64_t> dims, float scale = 0.3f) {
    g.add_initializer(random_tensor(name, std::move(dims), seed++, -scale, scale));
  };
  g.inputs.push_back(tensor_value("x", {1, 3, 16, 16}));
  w("c1.w", {8, 3, 3, 3}); w("c1.b", {8});
  w("bn.s", {8}, 1.f); w("bn.b", {8}); w("bn.m", {8}, 0.1f);
  g.add_initializer(Tensor::from_float("bn.v", {8}, std::vector<float>(8, 1.0f)));
  w("c2.w", {8, 8, 3, 3}); w("c2.b", {8});
  w("fc.w", {10, 8}); w("fc.b", {10});
  Node c1 = make_node("Conv", {"x", "c1.w", "c1.b"}, {"c1"});
  c1.set_attr_ints("pads", {1, 1, 1, 1});
  g.add_node(c1);
  g.add_node(make_node("BatchNormalization", {"c1", "bn.s", "bn.b", "bn.m", "bn.v"}, {"bn"}));
  g.add_node(make_node("Relu", {"bn"}, {"r1"}));
  Node c2 = make_node("Conv", {"r1", "c2.w", "c2.b"}, {"c2"});
  c2.set_attr_ints("pads", {1, 1, 1, 1});
  g.add_node(c2);
  g.add_node(make_node("Add", {"c2", "r1"}, {"res"}));
  g.add_node(make_node("Relu", {"res"}, {"r2"}));
  g.add_node(make_node("GlobalAveragePool", {"r2"}, {"gap"}));
  Node fl = make_node("Flatten", {"gap"}, {"flat"});
  fl.set_attr_int("axis", 1);
  g.add_node(fl);
  Node fc = make_node("Gemm", {"flat", "fc.w", "fc.b"}, {"y"});
  fc.set_attr_int("transB", 1);
  g.add_node(fc);
  g.outputs.push_back(tensor_value("y", {1, 10}));
  return m;
}

Model attention_block(uint64_t seed) {
  Model m = new_model(17);
  Graph& g = m.graph;
  const int64_t T = 8, D = 16, H = 2, Dh = 8;
  g.inputs.push_back(tensor_value("x", {1, T, D}));
  for (const char* w : {"wq", "wk", "wv", "wo"})
    g.add_initializer(Tensor::from_float(w, {D, D}, random_floats(D * D, seed++, -0.4f, 0.4f)));
  g.add_initializer(Tensor::from_int64("heads_shape", {4}, {1, T, H, Dh}));
  g.add_initializer(Tensor::from_int64("model_shape", {3}, {1, T, D}));
  g.add_initializer(Tensor::from_float("scale", {}, {1.0f / std::sqrt(static_cast<float>(Dh))}));
  auto perm = [&](const std::string& in, const std::string& out, std::vector<int64_t> p) {
    Node t = make_node("Transpose", {in}, {out});
    t.set_attr_ints("perm", std::move(p));
    g.add_node(t);
  };
  for (const char* h : {"q", "k", "v"}) {
    std::string s(h);
    g.add_node(make_node("MatMul", {"x", "w" + s}, {s}));
    g.add_node(make_node("Reshape", {s, "heads_shape"}, {s + "_h"}));
  }
  perm("q_h", "q_t", {0, 2, 1, 3});
  perm("k_h", "k_t", {0, 2, 3, 1});
  perm("v_h", "v_t", {0, 2, 1, 3});
  g.add_node(make_node("MatMul", {"q_t", "k_t"}, {"scores"}));
  g.add_node(make_node("Mul", {"scores", "scale"}, {"scaled"}));
  Node sm = make_node("Softmax", {"scaled"}, {"probs"});
  sm.set_attr_int("axis", -1);
  g.add_node(sm);
  g.add_node(make_node("MatMul", {"probs", "v_t"}, {"ctx"}));
  perm("ctx", "ctx_t", {0, 2, 1, 3});
  g.add_node(make_node("Reshape", {"ctx_t", "model_shape"}, {"ctx_m"}));
  g.add_node(make_node("MatMul", {"ctx_m", "wo"}, {"o"}));
  g.add_node(make_node("Add", {"o", "x"}, {"y"}));
  g.outputs.push_back(tensor_value("y", {1, T, D}));
  return m;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "(no error)";
}

void write_npz(const fs::path& path, const std::vector<Tensor>& arrays, bool compress) {
  std::string out, cd;
  auto put = [](std::string& s, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  for (const Tensor& t : arrays) {
    const std::string raw = serialize_npy(t), name = t.name + ".npy";
    std::string data = raw;
    if (compress) {
      z_stream zs{};
      REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
      data.resize(deflateBound(&zs, static_cast<uLong>(raw.size())));
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
      zs.avail_in = static_cast<uInt>(raw.size());
      zs.next_out = reinterpret_cast<Bytef*>(data.data());
      zs.avail_out = static_cast<uInt>(data.size());
      REQUIRE(::deflate(&zs, Z_FINISH) == Z_STREAM_END);
      data.resize(zs.total_out);
      deflateEnd(&zs);
    }
    const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(raw.data()), static_cast<uInt>(raw.size())));
    const uint64_t local = out.size();
    const int method = compress ? 8 : 0;
    out += std::string("PK\x03\x04", 4);
    put(out, 20, 2); put(out, 0, 2); put(out, method, 2); put(out, 0, 4);
    put(out, crc, 4); put(out, data.size(), 4); put(out, raw.size(), 4); put(out, name.size(), 2); put(out, 0, 2);
    out += name + data;
    cd += std::string("PK\x01\x02", 4);
    put(cd, 20, 2); put(cd, 20, 2); put(cd, 0, 2); put(cd, method, 2); put(cd, 0, 4);
    put(cd, crc, 4); put(cd, data.size(), 4); put(cd, raw.size(), 4); put(cd, name.size(), 2);
    put(cd, 0, 2); put(cd, 0, 2); put(cd, 0, 2); put(cd, 0, 2); put(cd, 0, 4); put(cd, local, 4);
    cd += name;
  }
  const uint64_t cd_off = out.size();
  out += cd + std::string("PK\x05\x06", 4);
  put(out, 0, 2); put(out, 0, 2); put(out, arrays.size(), 2); put(out, arrays.size(), 2);
  put(out, cd.size(), 4); put(out, cd_off, 4); put(out, 0, 2);
  std::ofstream(path, std::ios::binary) << out;
}

std::map<std::string, int> ort_optimized_ops(const fs::path& model) {
  const fs::path out = temp_dir("ort_opt") / "optimized.onnx";
  std::string cmd = "node '" + source_path("tests/node/ort_optimize.js").string() + "' '" + model.string() + "' '" +
                    out.string() + "' 2>&1";
  std::string text;
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (p && std::fgets(buf.data(), buf.size(), p)) text += buf.data();
  const int rc = p ? ::pclose(p) : -1;
  if (rc != 0) FAIL("ort_optimize.js failed on " << model << ": " << text);
  std::map<std::string, int> ops;
  for (const auto& n : load_model(out).graph.nodes) ++ops[n.op_type];
  return ops;
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

double top1_accuracy(const Tensor& logits, const Tensor& labels) {
  const auto y = logits.to_float();
  const auto l = labels.to_int64();
  const int64_t n = logits.dims[0], k = logits.dims[1];
  int64_t right = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < k; ++j)
      if (y[i * k + j] > y[i * k + best]) best = j;
    right += best == l[i];
  }
  return static_cast<double>(right) / static_cast<double>(n);
}

}  // namespace oc::test
