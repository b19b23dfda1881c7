// Shared pruning checks (see prune_check.h).
#include "prune_check.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <random>

#include "engine/executor.h"
#include "engine/npy.h"
#include "graph/normalize.h"
#include "graph/shape_inference.h"
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

void mask_graph(Graph& g, const ChannelDeps& d, const std::vector<std::vector<char>>& plan) {
  for (size_t gi = 0; gi < d.groups.size(); ++gi)
    for (const auto& p : d.groups[gi].params) {
      if (p.role != ParamSlice::Role::Consumer) continue;
      const ChannelSpace& s = d.spaces.at(p.value);
      Tensor* t = g.initializer(g.nodes[p.node].inputs[p.input]);
      REQUIRE(t);
      for (int64_t c = 0; c < s.channels; ++c)
        if (plan[gi][d.unit_of(p.value, c)]) zero_along(*t, p.axis, p.index(c));
    }
}

Model masked(const Model& m, const ChannelDeps& d, const std::vector<std::vector<char>>& plan) {
  Model out = m;
  mask_graph(out.graph, d, plan);
  return out;
}

void set_input_dims(Model& m, const std::string& name, const std::vector<int64_t>& dims) {
  bool found = false;
  for (auto& v : m.graph.inputs)
    if (v.name == name) {
      v.shape = shape_of(dims);
      v.has_shape = true;
      found = true;
    }
  REQUIRE(found);
  m.graph.value_info.clear();
  for (auto& v : m.graph.outputs) {  // their spatial dims, if any, follow the input's
    v.shape.clear();
    v.has_shape = false;
  }
  infer_shapes(m);
}

void normalize_activations(Model& m, const std::map<std::string, Tensor>& inputs) {
  for (size_t ni = 0; ni < m.graph.nodes.size(); ++ni) {
    Node& n = m.graph.nodes[ni];
    if (n.op_type != "Conv" || n.inputs.size() < 2) continue;
    Tensor* w = m.graph.initializer(n.inputs[1]);
    if (!w || w->dims.empty()) continue;
    const std::string y = n.outputs[0];
    Tensor seen;
    {
      Executor ex(m);
      ex.run(inputs, [&](const std::string& name, const Tensor& t) { if (name == y) seen = t; }, {y});
    }
    REQUIRE(seen.dims.size() >= 2);
    const int64_t N = seen.dims[0], C = seen.dims[1], inner = seen.numel() / (N * C);
    if (N * inner < 2 || C != w->dims[0]) continue;
    const std::vector<float> v = seen.to_float();
    std::vector<float> wv = w->to_float();
    const int64_t per = w->numel() / C;
    Tensor* b = n.inputs.size() > 2 && !n.inputs[2].empty() ? m.graph.initializer(n.inputs[2]) : nullptr;
    std::vector<float> bv = b ? b->to_float() : std::vector<float>(static_cast<size_t>(C), 0.f);
    for (int64_t c = 0; c < C; ++c) {
      double s = 0, s2 = 0;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t k = 0; k < inner; ++k) {
          const double x = v[static_cast<size_t>((i * C + c) * inner + k)];
          s += x, s2 += x * x;
        }
      const double cnt = static_cast<double>(N * inner), mean = s / cnt, var = s2 / cnt - mean * mean;
      if (!(var > 1e-30)) continue;
      const double inv = 1.0 / std::sqrt(var);
      for (int64_t k = 0; k < per; ++k) wv[static_cast<size_t>(c * per + k)] *= static_cast<float>(inv);
      bv[static_cast<size_t>(c)] = static_cast<float>((bv[static_cast<size_t>(c)] - mean) * inv);
    }
    *w = Tensor::from_float_as(w->name, w->dtype, w->dims, wv);
    if (b) {
      *b = Tensor::from_float_as(b->name, b->dtype, b->dims, bv);
    } else {
      const std::string bias = n.outputs[0] + ".normalized_bias";
      m.graph.add_initializer(Tensor::from_float(bias, {C}, bv));
      n.inputs.resize(3);
      n.inputs[2] = bias;
    }
  }
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
  Executor on_pruned(pruned), on_masked(ref);
  auto ours = on_pruned.run(inputs), ours_masked = on_masked.run(inputs);
  REQUIRE(a.size() == b.size());
  for (const auto& o : m.graph.outputs) {
    INFO("output " << o.name);
    const std::string file = safe_file_name(o.name);
    REQUIRE(a.count(file));
    REQUIRE(ours.count(o.name));
    REQUIRE(ours_masked.count(o.name));
    const Tensor& t = b.at(file);
    double scale = 0;
    for (float v : t.to_float()) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    REQUIRE(scale > 0.1);  // outputs that carry signal, not a saturated map
    // Summation order differs between the pruned and the masked model (fewer channels): deep random
    // nets with unit-variance activations (normalize_activations) carry that rounding to the logits
    // (regnet_y_400mf 1.1e-4 in ORT); a wrong slice is off by O(1). Each engine against itself.
    CHECK(max_rel_error(a.at(file), t) <= 1e-2);
    CHECK(max_rel_error(ours.at(o.name), ours_masked.at(o.name)) <= 1e-2);
    // Across engines the pruned model is as close to ORT's masked outputs as the unpruned masked model
    // is (the engines' own disagreement; 0.13 on the normalized efficientnet_b0 at 96x96, 7e-3 on
    // regnet_y_400mf, below 1e-4 on the ResNets).
    const double engines = max_rel_error(ours_masked.at(o.name), t);
    INFO("our executor against ONNX Runtime on the masked model: " << engines);
    CHECK(max_rel_error(ours.at(o.name), t) <= 2 * engines + 1e-4);
  }
}

}  // namespace oc::test
