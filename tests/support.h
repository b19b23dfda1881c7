// Shared test helpers: temp folders, the ONNX Runtime reference runner, the CLI, small model builders.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "graph/ir.h"

namespace oc::test {

namespace fs = std::filesystem;

// A fresh empty folder under the system temp dir, removed at process exit.
fs::path temp_dir(const std::string& tag);
// models/corpus/<name>; fails the test (with how to fetch) when missing.
fs::path corpus_model(const std::string& name);
fs::path source_path(const std::string& rel);

// Marks the running test case as skipped: prints kSkipMarker and the reason on stdout, which
// tests/CMakeLists.txt makes ctest report as "Skipped" (Catch2 2 has no SKIP). The caller returns.
inline constexpr const char* kSkipMarker = "OC_TEST_SKIPPED";
void skip_test(const std::string& why);
// models/zoo/<name>.onnx (models/export_torchvision.py), or empty after skip_test when it is absent;
// with OC_REQUIRE_ZOO=1, or a comma-separated list naming it (CI), an absent model fails the test.
fs::path zoo_model(const std::string& name);

// Operator counts of the graph ONNX Runtime runs for `model` (its level-2 fusions and constant
// folding, written by tests/node/ort_optimize.js).
std::map<std::string, int> ort_optimized_ops(const fs::path& model);
// Runs `model` in onnxruntime-node on `inputs`; returns outputs by name.
std::map<std::string, Tensor> run_ort(const fs::path& model, const std::map<std::string, Tensor>& inputs);
// The first step's "details" of a CLI report file (--report): what a one-step command decided.
nlohmann::json first_step_details(const fs::path& report);

// Runs `m` in our executor and in ONNX Runtime; every graph output must agree: floats to
// max_rel_error <= tol, other types within int_tol units (exactly when 0). Inputs in `in` that the
// graph does not declare are added as graph inputs. Returns our outputs.
std::map<std::string, Tensor> agree_with_ort(Model m, const std::map<std::string, Tensor>& in, double tol = 1e-4,
                                             int64_t int_tol = 0);

// The message of the InvalidArgument `f` throws, or "(no error)".
std::string error_of(const std::function<void()>& f);

// The quantization tests' MatMul/Gemm stack, x [4, 32] -> y [4, 16] (test_quant_models.cpp).
Model quant_mlp(uint64_t seed);

struct CliResult { int rc; std::string out; };
// Runs the onnx-compress binary with `args` (shell-quoted here); captures stdout+stderr.
CliResult run_cli(const std::vector<std::string>& args);
// The whole file as bytes ("" when it cannot be opened).
std::string read_all(const fs::path& p);
// Share of rows of [n, k] logits whose arg-max is the int64 label.
double top1_accuracy(const Tensor& logits, const Tensor& labels);

// Seeded inputs matching the model's runtime inputs (symbolic dims become `dyn`).
std::map<std::string, Tensor> random_inputs(const Model& m, uint64_t seed, int64_t dyn = 1,
                                            const std::map<std::string, std::vector<int64_t>>& shapes = {});
std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f);
// A float tensor of `dims` filled with random_floats(numel, seed, lo, hi).
Tensor random_tensor(const std::string& name, std::vector<int64_t> dims, uint64_t seed, float lo = -1.f, float hi = 1.f);

// The first n samples (axis 0) of `t`.
Tensor first_rows(const Tensor& t, int64_t n);

// Concrete input shapes for the corpus models' symbolic inputs (small, fast to run).
std::map<std::string, std::vector<int64_t>> corpus_shapes(const std::string& name);

// Max |a-b| / max(|b|, floor) over all elements.
double max_rel_error(const Tensor& a, const Tensor& b, double floor = 1e-3);
bool bitwise_equal(const Tensor& a, const Tensor& b);

// Writes a zip with one entry per array named <tensor name>.npy (`compress`: raw deflate, else
// stored), as numpy.savez / savez_compressed do.
void write_npz(const fs::path& path, const std::vector<Tensor>& arrays, bool compress);

// ---- building small models ----
// Adds initializer `name` of `dims` drawn from N(mean, scale²) with `rng` (the quantization tests'
// Gaussian weights; callers scale them ~1/sqrt(K) to keep activations O(1)).
void add_gaussian_initializer(Graph& g, std::mt19937_64& rng, const std::string& name, std::vector<int64_t> dims,
                              float scale, float mean = 0.f);
Node make_node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
               const std::string& name = "");
// Appends make_node(op, in, out) to g and returns it.
Node& add_node(Graph& g, const std::string& op, std::vector<std::string> in, std::vector<std::string> out);
ValueInfo tensor_value(const std::string& name, std::vector<int64_t> dims, DType t = DType::Float);
Model new_model(int64_t opset = 13);
// A graph-valued attribute (If then_branch / else_branch, Loop and Scan body) holding `g`.
Attribute graph_attr(const std::string& name, Graph g);
// One self-attention block with a residual on input "x" [1,8,16] -> "y" [1,8,16]: Q/K/V/O MatMuls
// with constant weights, 2 heads of 8 (Reshape/Transpose), scaled QKᵀ, Softmax, attention·V.
Model attention_block(uint64_t seed = 1);
// A small Conv-BN-Relu-residual-pool-Gemm network on input "x" [1,3,16,16] -> "y" [1,10].
Model small_cnn(uint64_t seed = 1);

}  // namespace oc::test
