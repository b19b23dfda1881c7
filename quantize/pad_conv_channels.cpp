#include "quantize/pad_conv_channels.h"

#include <algorithm>
#include <set>

namespace oc::quant {

namespace {
constexpr int64_t kBlock = 4;
}  // namespace

int pad_conv_input_channels(Model& m) {
  Graph& g = m.graph;
  if (m.opset() < 11) return 0;  // Pad takes its pads as an input from opset 11 (the int8 path raises older models to 13 or refuses them)
  std::set<std::string> inputs;
  for (const ValueInfo* in : g.runtime_inputs()) inputs.insert(in->name);
  int padded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& conv = g.nodes[i];
    if (conv.op_type != "Conv" || !conv.is_default_domain() || conv.attr_int("group", 1) != 1 || conv.inputs.size() < 2 ||
        !inputs.count(conv.input(0)))
      continue;
    const Tensor* w = g.initializer(conv.input(1));
    if (!w || w->dtype != DType::Float || w->dims.size() != 4 || g.consumers(w->name).size() != 1 || g.is_graph_output(w->name))
      continue;
    const int64_t M = w->dims[0], C = w->dims[1], taps = w->dims[2] * w->dims[3];
    if (C % kBlock == 0) continue;
    const int64_t C2 = (C + kBlock - 1) / kBlock * kBlock;
    // W′: each output channel's C·taps weights, then (C′ − C)·taps zeros.
    const std::vector<float> v = w->to_float();
    std::vector<float> v2(static_cast<size_t>(M * C2 * taps), 0.f);
    for (int64_t o = 0; o < M; ++o)
      std::copy(v.begin() + o * C * taps, v.begin() + (o + 1) * C * taps, v2.begin() + o * C2 * taps);
    const std::string x = conv.input(0), name = w->name, base = conv.name.empty() ? name : conv.name;
    g.add_initializer(Tensor::from_float(name, {M, C2, w->dims[2], w->dims[3]}, v2));
    const std::string pads = g.unique_name(base + "_channel_pads"), xp = g.unique_name(x + "_channels" + std::to_string(C2));
    g.add_initializer(Tensor::from_int64(pads, {8}, {0, 0, 0, 0, 0, C2 - C, 0, 0}));
    Node pad;
    pad.op_type = "Pad";
    pad.name = g.unique_name(base + "_channel_pad");
    pad.inputs = {x, pads};
    pad.outputs = {xp};
    g.nodes[i].inputs[0] = xp;
    g.insert_node(i, pad);
    g.invalidate();
    ++i;  // the Conv moved one down
    ++padded;
  }
  return padded;
}

}  // namespace oc::quant
