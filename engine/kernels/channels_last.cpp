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

void plain_to_channels_last(Tensor& t) {
  using namespace dnnl_util;
  if (t.dtype != DType::Float || t.dims.size() != 4) throw Error("value '" + t.name + "' is not a rank-4 float tensor");
  const dims_t d = to_dims(t.dims);
  const dnnl::memory::desc from(d, dt::f32, tag::nchw), to(d, dt::f32, tag::nhwc);
  std::vector<uint8_t> cl(t.bytes.size());
  reorder(from, t.bytes.data(), to, cl.data(), key("nchw>nhwc", dims_key(t.dims)));
  t.bytes = std::move(cl);
}

void channels_last_to_plain(Tensor& t) {
  using namespace dnnl_util;
  if (t.dtype != DType::Float || t.dims.size() != 4)
    throw Error("channels-last value '" + t.name + "' is not a rank-4 float tensor");
  const dims_t d = to_dims(t.dims);
  const dnnl::memory::desc from(d, dt::f32, tag::nhwc), to(d, dt::f32, tag::nchw);
  std::vector<uint8_t> plain(t.bytes.size());
  reorder(from, t.bytes.data(), to, plain.data(), key("nhwc>nchw", dims_key(t.dims)));
  t.bytes = std::move(plain);
}

}  // namespace oc
