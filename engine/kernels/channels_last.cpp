// Which operators see channels-last values as they are (engine/channels_last.h), and the one
// conversion back to N,C,H,W. A new elementwise operator is one entry in kTransparent.
#include "engine/channels_last.h"

#include <set>

#include "engine/kernels/dnnl_util.h"

namespace oc {

namespace {

// Elementwise: output element i depends on input element i only (or on one-element inputs).
const std::set<std::string> kTransparent = {
    "Abs",  "Add",      "Ceil",      "Clip", "Div",      "Elu",      "Erf",  "Exp",  "Floor", "Gelu",
    "HardSigmoid",      "HardSwish", "Identity", "LeakyRelu", "Log",  "Max",  "Min", "Mish",
    "Mul",  "Neg",      "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Softplus", "Softsign",
    "Sqrt", "Sub",      "Sum",       "Tanh"};

// Kernels that read and write channels-last values themselves (engine/kernels/nn.cpp).
const std::set<std::string> kAware = {"BatchNormalization", "Conv",          "MaxPool",
                                      "AveragePool",        "GlobalAveragePool", "GlobalMaxPool"};

// Read only their input's dims.
const std::set<std::string> kShapeOnly = {"Shape", "Size"};

}  // namespace

LayoutUse layout_use(const Node& n) {
  if (!n.is_default_domain() || !n.subgraphs().empty()) return LayoutUse::Plain;
  if (kAware.count(n.op_type)) return LayoutUse::Aware;
  if (kShapeOnly.count(n.op_type)) return LayoutUse::ShapeOnly;
  if (kTransparent.count(n.op_type)) return LayoutUse::Transparent;
  return LayoutUse::Plain;
}

namespace {

// t's bytes rewritten from layout `from` to `to` (both of its logical N,C,H,W dims).
void relayout(Tensor& t, dnnl_util::tag from, dnnl_util::tag to, const char* what) {
  using namespace dnnl_util;
  if (t.dtype != DType::Float || t.dims.size() != 4) throw Error("value '" + t.name + "' is not a rank-4 float tensor");
  const dims_t d = to_dims(t.dims);
  std::vector<uint8_t> out(t.bytes.size());
  reorder(dnnl::memory::desc(d, dt::f32, from), t.bytes.data(), dnnl::memory::desc(d, dt::f32, to), out.data(),
          key(what, dims_key(t.dims)));
  t.bytes = std::move(out);
}

}  // namespace

void plain_to_channels_last(Tensor& t) { relayout(t, dnnl_util::tag::nchw, dnnl_util::tag::nhwc, "nchw>nhwc"); }

void channels_last_to_plain(Tensor& t) { relayout(t, dnnl_util::tag::nhwc, dnnl_util::tag::nchw, "nhwc>nchw"); }

}  // namespace oc
