// Shared pruning checks (see prune_check.h).
#include "prune_check.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <random>

#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "prune/allocate.h"
#include "prune/rewrite.h"

namespace oc::test {

Model load_norm(const fs::path& p) {
  Model m = load_model(p);
  normalize(m);
  return m;
}

std::vector<std::vector<char>> random_plan(const ChannelDeps& d, uint64_t seed, double p) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<char>> plan(d.groups.size());
  for (size_t gi = 0; gi < d.groups.size(); ++gi) {
    std::vector<int> order(d.groups[gi].num_units);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    plan[gi] = remove_in_order(d, static_cast<int>(gi), order, static_cast<int64_t>(p * d.groups[gi].num_units));
  }
  return plan;
}

namespace {

// Zeroes index `idx` of `t` along `axis`.
void zero_along(Tensor& t, int axis, int64_t idx) {
  std::vector<float> v = t.to_float();
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= t.dims[i];
  for (size_t i = axis + 1; i < t.dims.size(); ++i) inner *= t.dims[i];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < inner; ++k) v[(o * t.dims[axis] + idx) * inner + k] = 0.f;
  t = Tensor::from_float_as(t.name, t.dtype, t.dims, v);
}

}  // namespace

Model masked(const Model& m, const ChannelDeps& d, const std::vector<std::vector<char>>& plan) {
  Model out = m;
  for (size_t gi = 0; gi < d.groups.size(); ++gi)
    for (const auto& p : d.groups[gi].params) {
      if (p.role != ParamSlice::Role::Consumer) continue;
      const ChannelSpace& s = d.spaces.at(p.value);
      Tensor* t = out.graph.initializer(out.graph.nodes[p.node].inputs[p.input]);
      REQUIRE(t);
      for (int64_t c = 0; c < s.channels; ++c)
        if (plan[gi][d.unit_of(p.value, c)]) zero_along(*t, p.axis, p.index(c));
    }
  return out;
}

int64_t removed_units(const std::vector<std::vector<char>>& plan) {
  int64_t n = 0;
  for (const auto& g : plan) for (char c : g) n += c;
  return n;
}

void check_interface(const Model& a, const Model& b) {
  REQUIRE(a.graph.inputs.size() == b.graph.inputs.size());
  REQUIRE(a.graph.outputs.size() == b.graph.outputs.size());
  for (size_t i = 0; i < a.graph.inputs.size(); ++i) {
    CHECK(a.graph.inputs[i].name == b.graph.inputs[i].name);
    CHECK(a.graph.inputs[i].shape == b.graph.inputs[i].shape);
  }
  for (size_t i = 0; i < a.graph.outputs.size(); ++i) {
    CHECK(a.graph.outputs[i].name == b.graph.outputs[i].name);
    CHECK(a.graph.outputs[i].shape == b.graph.outputs[i].shape);
  }
}

std::map<std::string, Tensor> text_image(int64_t h, int64_t w) {
  std::vector<float> img(static_cast<size_t>(3 * h * w), 1.f);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        bool ink = ((y >= h * 2 / 7 && y < h * 3 / 7) || (y >= h * 4 / 7 && y < h * 5 / 7)) && x >= w / 8 &&
                   x < w * 7 / 8 && (x % 6) < 3;
        img[static_cast<size_t>((c * h + y) * w + x)] = ink ? -1.f : 1.f;
      }
  return {{"x", Tensor::from_float("x", {1, 3, h, w}, img)}};
}

void prune_equals_mask(const Model& m, const std::string& tag, uint64_t seed, std::map<std::string, Tensor> inputs,
                       double p, const ChannelDepsOptions& opt) {
  ChannelDeps d = build_channel_deps(m, opt);
  if (inputs.empty()) inputs = random_inputs(m, seed);
  prune_equals_mask(m, d, random_plan(d, seed, p), tag, inputs);
}

void prune_equals_mask(const Model& m, const ChannelDeps& d, const std::vector<std::vector<char>>& plan,
                       const std::string& tag, const std::map<std::string, Tensor>& inputs) {
  INFO(tag << ": " << d.groups.size() << " groups, removing " << removed_units(plan) << " units");
  REQUIRE(removed_units(plan) > 0);
  Model pruned = m;
  apply_prune(pruned, d, plan);
  Model ref = masked(m, d, plan);
  check_interface(m, pruned);
  REQUIRE(model_weight_bytes(pruned) < model_weight_bytes(m));
  fs::path dir = temp_dir("prune_" + tag);
  save_model(pruned, dir / "pruned.onnx");
  save_model(ref, dir / "masked.onnx");
  auto a = run_ort(dir / "pruned.onnx", inputs);
  auto b = run_ort(dir / "masked.onnx", inputs);
  REQUIRE(a.size() == b.size());
  for (const auto& [name, t] : b) {
    INFO("output " << name);
    REQUIRE(a.count(name));
    double scale = 0;
    for (float v : t.to_float()) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    REQUIRE(scale > 0.1);  // outputs that carry signal, not a saturated map
    CHECK(max_rel_error(a.at(name), t) <= 1e-5);
  }
}

}  // namespace oc::test
