// The operator tables agree with each other: shape rules (graph/shape_inference.cpp), channel rules
// (graph/channel_deps.cpp), MAC rules (graph/cost.cpp), CPU kernels (engine/kernels/, registry) and
// CUDA ops (engine/cuda/ops.cpp). An op in one table that another does not cover fails here, naming
// the op — e.g. a shape rule and a CUDA op without a CPU kernel (Mish once), which made every model
// with it refused on every device. Ops with a shape rule that deliberately have no CPU kernel are
// listed with the reason in engine/kernels/unsupported.h.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine/kernel.h"
#include "engine/kernels/unsupported.h"
#include "graph/channel_deps.h"
#include "graph/cost.h"
#include "graph/shape_inference.h"
#ifdef OC_HAVE_CUDA
// engine/cuda/ops.h (its runtime header needs the CUDA include path, private to oc_engine).
namespace oc::cuda {
std::vector<std::string> cuda_ops();
}
#endif

using namespace oc;

namespace {

std::set<std::string> as_set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

// Members of `ops` for which `covered` is false, space-separated (empty when all are covered).
template <typename Pred>
std::string missing(const std::vector<std::string>& ops, Pred covered) {
  std::string out;
  for (const auto& op : ops)
    if (!covered(op)) out += (out.empty() ? "" : " ") + op;
  return out;
}

}  // namespace

TEST_CASE("every op with a shape rule has a CPU kernel or an unsupported entry with a reason", "[op_tables]") {
  const auto shapes = shape_rule_ops();
  const auto kernels = as_set(KernelRegistry::instance().ops());
  const auto& unsupported = cpu_unsupported_ops();
  REQUIRE(shapes.size() > 150);
  REQUIRE(kernels.size() > 150);
  INFO("shape rule, no CPU kernel, not in engine/kernels/unsupported.h");
  CHECK(missing(shapes, [&](const std::string& op) { return kernels.count(op) || unsupported.count(op); }) == "");
  std::vector<std::string> listed;
  for (const auto& [op, why] : unsupported) {
    listed.push_back(op);
    INFO(op);
    CHECK(why.size() > 10);
  }
  {
    INFO("listed as unsupported but a CPU kernel exists (stale entry)");
    CHECK(missing(listed, [&](const std::string& op) { return !kernels.count(op); }) == "");
  }
  {
    INFO("listed as unsupported without a shape rule (nothing to explain)");
    const auto s = as_set(shapes);
    CHECK(missing(listed, [&](const std::string& op) { return s.count(op) > 0; }) == "");
  }
}

TEST_CASE("every CPU kernel has a shape rule or an entry saying why not", "[op_tables]") {
  const auto shapes = as_set(shape_rule_ops());
  const auto kernels = KernelRegistry::instance().ops();
  INFO("CPU kernel without a shape rule: shapes and MACs after it are unknown");
  CHECK(missing(kernels, [&](const std::string& op) { return shapes.count(op) || cpu_kernels_without_shape_rule().count(op); }) == "");
  std::vector<std::string> listed;
  for (const auto& [op, why] : cpu_kernels_without_shape_rule()) {
    listed.push_back(op);
    INFO(op);
    CHECK(why.size() > 10);
  }
  INFO("listed as lacking a shape rule, but it has one (stale entry)");
  CHECK(missing(listed, [&](const std::string& op) { return !shapes.count(op); }) == "");
}

TEST_CASE("channel rules and MAC rules cover only ops with a shape rule and a CPU kernel or unsupported entry", "[op_tables]") {
  const auto shapes = as_set(shape_rule_ops());
  const auto kernels = as_set(KernelRegistry::instance().ops());
  const auto both = [&](const std::string& op) {
    return shapes.count(op) && (kernels.count(op) || cpu_unsupported_ops().count(op));
  };
  const auto channels = channel_rule_ops();
  const auto macs = mac_rule_ops();
  REQUIRE(channels.size() > 50);
  REQUIRE(macs.size() > 5);
  {
    INFO("channel rule without a shape rule or a CPU kernel");
    CHECK(missing(channels, both) == "");
  }
  {
    INFO("MAC rule without a shape rule or a CPU kernel");
    CHECK(missing(macs, both) == "");
  }
  // The MAC-bearing ops the pruner reads have channel rules.
  const auto ch = as_set(channels);
  for (const char* op : {"Conv", "ConvTranspose", "Gemm", "MatMul"}) CHECK(ch.count(op));
}

TEST_CASE("every CUDA op has a CPU kernel (its fallback) and a shape rule", "[op_tables]") {
#ifdef OC_HAVE_CUDA
  const auto shapes = as_set(shape_rule_ops());
  const auto kernels = as_set(KernelRegistry::instance().ops());
  const auto cuda_ops = cuda::cuda_ops();
  REQUIRE(cuda_ops.size() > 30);
  INFO("CUDA op without a CPU kernel or a shape rule");
  CHECK(missing(cuda_ops, [&](const std::string& op) { return shapes.count(op) && kernels.count(op); }) == "");
#else
  SUCCEED("built without the CUDA backend");
#endif
}
