#include "quantize/stem_space_to_depth.h"

#include <set>

namespace oc::quant {

int stem_space_to_depth(Model& m) {
  Graph& g = m.graph;
  // Pad takes its pads as an input from opset 11, SpaceToDepth is opset 1 (the int8 path raises
  // older models to 13 or refuses them).
  if (m.opset() < 11) return 0;
  std::set<std::string> inputs;
  for (const ValueInfo* in : g.runtime_inputs()) inputs.insert(in->name);
  int rewritten = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& conv = g.nodes[i];
    if (conv.op_type != "Conv" || !conv.is_default_domain() || conv.attr_int("group", 1) != 1 || conv.inputs.size() < 2 ||
        !inputs.count(conv.input(0)) || conv.attr_string("auto_pad", "NOTSET") != "NOTSET")
      continue;
    const ValueInfo* xi = g.find_value_info(conv.input(0));
    if (!xi || !xi->has_shape || xi->shape.size() != 4 || !xi->shape[1].known() || !xi->shape[2].known() || !xi->shape[3].known())
      continue;
    const Tensor* w = g.initializer(conv.input(1));
    if (!w || w->dtype != DType::Float || w->dims.size() != 4 || g.consumers(w->name).size() != 1 || g.is_graph_output(w->name))
      continue;
    const std::vector<int64_t> strides = conv.attr_ints("strides", {1, 1}), dil = conv.attr_ints("dilations", {1, 1}),
                               pads = conv.attr_ints("pads", {0, 0, 0, 0});
    if (strides.size() != 2 || dil != std::vector<int64_t>{1, 1} || pads.size() != 4 || strides[0] != strides[1]) continue;
    const int64_t s = strides[0], M = w->dims[0], C = w->dims[1], kh = w->dims[2], kw = w->dims[3];
    if (s < 2 || kh <= s || kw <= s || C != xi->shape[1].value) continue;
    const int64_t H = xi->shape[2].value, W = xi->shape[3].value;
    const int64_t kh2 = (kh + s - 1) / s, kw2 = (kw + s - 1) / s;
    // Padded sizes rounded up to a multiple of s; the output must keep its size.
    auto plan = [&](int64_t n, int64_t before, int64_t after, int64_t k, int64_t k2, int64_t& extra) {
      const int64_t out = (n + before + after - k) / s + 1;
      const int64_t padded = n + before + after;
      extra = (s - padded % s) % s;
      const int64_t blocks = (padded + extra) / s;
      return out > 0 && blocks - k2 + 1 == out;
    };
    int64_t eh = 0, ew = 0;
    if (!plan(H, pads[0], pads[2], kh, kh2, eh) || !plan(W, pads[1], pads[3], kw, kw2, ew)) continue;
    const int64_t C2 = s * s * C;
    // Only where the blocks add no work over the channel-padded direct conv (pad_conv_channels.h):
    // 7×7/2 on RGB reads 12·16 = 192 values per output against 4·49 = 196; 3×3/2 would read 12·4 = 48
    // against 4·9 = 36 (PP-OCRv4 det int8 ran 1.37× → 1.26× of float with it).
    if (C2 * kh2 * kw2 > (C + 3) / 4 * 4 * kh * kw) continue;
    const std::vector<float> v = w->to_float();
    std::vector<float> v2(static_cast<size_t>(M * C2 * kh2 * kw2), 0.f);
    for (int64_t o = 0; o < M; ++o)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < kh; ++y)
          for (int64_t x = 0; x < kw; ++x) {
            const int64_t c2 = ((y % s) * s + x % s) * C + c;
            v2[static_cast<size_t>(((o * C2 + c2) * kh2 + y / s) * kw2 + x / s)] = v[static_cast<size_t>(((o * C + c) * kh + y) * kw + x)];
          }
    const std::string x = conv.input(0), name = w->name, base = conv.name.empty() ? name : conv.name;
    g.add_initializer(Tensor::from_float(name, {M, C2, kh2, kw2}, v2));
    const std::string pads_name = g.unique_name(base + "_s2d_pads"), xp = g.unique_name(x + "_padded"),
                      xs = g.unique_name(x + "_space_to_depth");
    g.add_initializer(Tensor::from_int64(pads_name, {8}, {0, 0, pads[0], pads[1], 0, 0, pads[2] + eh, pads[3] + ew}));
    Node pad;
    pad.op_type = "Pad";
    pad.name = g.unique_name(base + "_s2d_pad");
    pad.inputs = {x, pads_name};
    pad.outputs = {xp};
    Node s2d;
    s2d.op_type = "SpaceToDepth";
    s2d.name = g.unique_name(base + "_space_to_depth");
    s2d.inputs = {xp};
    s2d.outputs = {xs};
    s2d.set_attr_int("blocksize", s);
    Node& c = g.nodes[i];
    c.inputs[0] = xs;
    c.set_attr_ints("strides", {1, 1});
    c.set_attr_ints("pads", {0, 0, 0, 0});
    if (c.has_attr("kernel_shape")) c.set_attr_ints("kernel_shape", {kh2, kw2});
    g.insert_node(i, s2d);
    g.insert_node(i, pad);
    g.invalidate();
    i += 2;  // the Conv moved two down
    ++rewritten;
  }
  return rewritten;
}

}  // namespace oc::quant
