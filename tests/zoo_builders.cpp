// torchvision ResNet-18/50 (v1.5: stride on the 3x3 conv) and MobileNetV2, BatchNorm folded into Conv
// biases. Weights are uniform in +-sqrt(3/fan_in) so activations stay O(1) through the depth.
#include "zoo_builders.h"

#include <cmath>
#include <random>
#include <string>

#include "support.h"

namespace oc::test {
namespace {

class NetBuilder {
 public:
  NetBuilder(uint64_t seed, int64_t image) : m_(new_model(13)), rng_(seed) {
    ValueInfo in = tensor_value("input", {1, 3, image, image});
    in.shape[0] = Dim::sym("batch");
    m_.graph.inputs.push_back(in);
    m_.graph.name = "zoo";
  }

  std::string conv(const std::string& x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t groups = 1) {
    std::string name = "conv" + std::to_string(++count_);
    weight(name + ".weight", {cout, cin / groups, k, k}, (cin / groups) * k * k);
    weight(name + ".bias", {cout}, 0);
    Node n = make_node("Conv", {x, name + ".weight", name + ".bias"}, {name}, name);
    int64_t p = (k - 1) / 2;
    n.set_attr_ints("kernel_shape", {k, k});
    n.set_attr_ints("strides", {stride, stride});
    n.set_attr_ints("pads", {p, p, p, p});
    if (groups != 1) n.set_attr_int("group", groups);
    m_.graph.add_node(n);
    return name;
  }
  std::string unary(const std::string& op, const std::string& x) {
    std::string y = x + "." + op;
    m_.graph.add_node(make_node(op, {x}, {y}));
    return y;
  }
  std::string relu(const std::string& x) { return unary("Relu", x); }
  std::string relu6(const std::string& x) {
    std::string y = x + ".relu6";
    if (!m_.graph.is_initializer("relu6.min")) {
      m_.graph.add_initializer(Tensor::from_float("relu6.min", {}, {0.f}));
      m_.graph.add_initializer(Tensor::from_float("relu6.max", {}, {6.f}));
    }
    m_.graph.add_node(make_node("Clip", {x, "relu6.min", "relu6.max"}, {y}));
    return y;
  }
  std::string add(const std::string& a, const std::string& b) {
    std::string y = a + ".add";
    m_.graph.add_node(make_node("Add", {a, b}, {y}));
    return y;
  }
  std::string maxpool(const std::string& x) {
    std::string y = x + ".pool";
    Node n = make_node("MaxPool", {x}, {y});
    n.set_attr_ints("kernel_shape", {3, 3});
    n.set_attr_ints("strides", {2, 2});
    n.set_attr_ints("pads", {1, 1, 1, 1});
    m_.graph.add_node(n);
    return y;
  }
  // AdaptiveAvgPool(1) -> flatten -> Linear(c, 1000) (dropout is identity in eval).
  void head(const std::string& x, int64_t c) {
    std::string gap = unary("GlobalAveragePool", x);
    Node fl = make_node("Flatten", {gap}, {"flat"});
    fl.set_attr_int("axis", 1);
    m_.graph.add_node(fl);
    weight("fc.weight", {1000, c}, c);
    weight("fc.bias", {1000}, 0);
    Node fc = make_node("Gemm", {"flat", "fc.weight", "fc.bias"}, {"logits"}, "fc");
    fc.set_attr_int("transB", 1);
    m_.graph.add_node(fc);
    ValueInfo out = tensor_value("logits", {1, 1000});
    out.shape[0] = Dim::sym("batch");
    m_.graph.outputs.push_back(out);
  }
  Model take() { return std::move(m_); }

 private:
  void weight(const std::string& name, std::vector<int64_t> dims, int64_t fan_in) {
    int64_t n = 1;
    for (auto d : dims) n *= d;
    float a = fan_in > 0 ? std::sqrt(3.0f / static_cast<float>(fan_in)) : 0.1f;
    std::uniform_real_distribution<float> dist(-a, a);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = dist(rng_);
    m_.graph.add_initializer(Tensor::from_float(name, std::move(dims), v));
  }

  Model m_;
  std::minstd_rand rng_;
  int count_ = 0;
};

// BasicBlock (expansion 1) or Bottleneck (expansion 4, torchvision puts the stride on the 3x3).
std::string res_block(NetBuilder& b, const std::string& x, int64_t cin, int64_t width, int64_t stride, bool bottleneck) {
  int64_t cout = bottleneck ? width * 4 : width;
  std::string y;
  if (bottleneck) {
    y = b.relu(b.conv(x, cin, width, 1, 1));
    y = b.relu(b.conv(y, width, width, 3, stride));
    y = b.conv(y, width, cout, 1, 1);
  } else {
    y = b.relu(b.conv(x, cin, width, 3, stride));
    y = b.conv(y, width, width, 3, 1);
  }
  std::string identity = (stride != 1 || cin != cout) ? b.conv(x, cin, cout, 1, stride) : x;
  return b.relu(b.add(y, identity));
}

Model resnet(uint64_t seed, int64_t image, const std::vector<int>& layers, bool bottleneck) {
  NetBuilder b(seed, image);
  std::string x = b.maxpool(b.relu(b.conv("input", 3, 64, 7, 2)));
  int64_t cin = 64;
  for (size_t stage = 0; stage < layers.size(); ++stage) {
    int64_t width = 64 << stage;
    for (int i = 0; i < layers[stage]; ++i) {
      x = res_block(b, x, cin, width, (i == 0 && stage > 0) ? 2 : 1, bottleneck);
      cin = bottleneck ? width * 4 : width;
    }
  }
  b.head(x, cin);
  return b.take();
}

}  // namespace

Model build_resnet18(uint64_t seed, int64_t image) { return resnet(seed, image, {2, 2, 2, 2}, false); }
Model build_resnet50(uint64_t seed, int64_t image) { return resnet(seed, image, {3, 4, 6, 3}, true); }

// Inverted residuals: (expansion t, channels c, repeats n, first stride s), as torchvision's table.
Model build_mobilenet_v2(uint64_t seed, int64_t image) {
  NetBuilder b(seed, image);
  std::string x = b.relu6(b.conv("input", 3, 32, 3, 2));
  int64_t cin = 32;
  const int64_t settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  for (const auto& st : settings) {
    for (int64_t i = 0; i < st[2]; ++i) {
      int64_t stride = i == 0 ? st[3] : 1, hidden = cin * st[0], cout = st[1];
      std::string y = x;
      if (st[0] != 1) y = b.relu6(b.conv(y, cin, hidden, 1, 1));
      y = b.relu6(b.conv(y, hidden, hidden, 3, stride, hidden));
      y = b.conv(y, hidden, cout, 1, 1);
      x = (stride == 1 && cin == cout) ? b.add(y, x) : y;
      cin = cout;
    }
  }
  x = b.relu6(b.conv(x, cin, 1280, 1, 1));
  b.head(x, 1280);
  return b.take();
}

}  // namespace oc::test
