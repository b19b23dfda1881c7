// Finding and writing quantized lookup tables (see embeddings.h).
#include "quantize/embeddings.h"

#include <algorithm>
#include <cmath>

#include "graph/errors.h"

namespace oc::quant {

namespace {

constexpr int64_t kMinTableElems = 4096;

int64_t pow2_ceil(int64_t v) {
  int64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

std::vector<EmbeddingTable> find_embedding_tables(const Graph& g) {
  std::vector<EmbeddingTable> out;
  for (const Tensor& t : g.initializers) {
    if (t.dtype != DType::Float || t.numel() < kMinTableElems || t.dims.empty() || g.is_graph_input(t.name) ||
        g.is_graph_output(t.name))
      continue;
    const auto& readers = g.consumers(t.name);
    if (readers.empty()) continue;
    bool all_gather = true, all_add = true;
    for (int c : readers) {
      const Node& n = g.nodes[c];
      const bool data = n.op_type == "Gather" && n.is_default_domain() && n.input(0) == t.name && n.attr_int("axis", 0) == 0 &&
                        !(n.inputs.size() > 1 && n.input(1) == t.name);
      all_gather = all_gather && data;
      all_add = all_add && n.op_type == "Add" && n.is_default_domain();
    }
    int64_t long_axes = 0;
    for (int64_t d : t.dims) long_axes += d > 1;
    const bool table = (all_gather && t.dims.size() == 2) || (all_add && long_axes >= 2);
    if (!table) continue;
    EmbeddingTable e;
    e.name = t.name;
    e.dims = t.dims;
    e.cols = t.dims.back();
    e.rows = t.numel() / e.cols;
    e.gathered = all_gather;
    e.reader = g.nodes[readers.front()].name;
    out.push_back(e);
  }
  return out;
}

QuantLayout table_layout(const EmbeddingTable& t, const QuantLayout& requested) {
  QuantLayout l = requested;
  if (l.granularity != Granularity::Block || l.block_size < 16 || (l.block_size & (l.block_size - 1)) != 0) {
    l.granularity = Granularity::Block;
    l.block_size = std::max<int64_t>(16, pow2_ceil(t.cols));
  }
  return l;
}

double table_bytes(const EmbeddingTable& t, const QuantLayout& layout) {
  const double nb = std::ceil(static_cast<double>(t.cols) / static_cast<double>(layout.block_size));
  const double rows = static_cast<double>(t.rows);
  return rows * (static_cast<double>(t.cols * layout.bits) / 8 + nb * 4 +
                 (layout.scheme == Scheme::Asym ? std::ceil(nb * layout.bits / 8) : 0));
}

std::vector<int> table_widths(const EmbeddingTable& t) {
  std::vector<int> w;
  for (int b : {2, 4, 8})
    if ((t.cols * b) % 8 == 0) w.push_back(b);
  return w;
}

std::vector<float> table_matrix(const Graph& g, const EmbeddingTable& t) {
  const Tensor* x = g.initializer(t.name);
  if (!x) throw InvalidArgument("embedding table " + t.name + " not found");
  return x->to_float();
}

void export_embedding_table(Model& m, const EmbeddingTable& t, const QuantizedMatrix& q) {
  Graph& g = m.graph;
  const int bits = q.layout.bits;
  const int64_t nb = q.nblocks(), packed_cols = t.cols * bits / 8;
  const bool asym = q.layout.scheme == Scheme::Asym;
  // Codes: one bit stream per row (ORT reads element c of a row at bits [c·bits, (c+1)·bits)).
  std::vector<uint8_t> data;
  data.reserve(static_cast<size_t>(t.rows * packed_cols));
  std::vector<uint8_t> zp_bytes;
  for (int64_t r = 0; r < t.rows; ++r) {
    auto p = pack_bits(q.codes.data() + r * t.cols, static_cast<size_t>(t.cols), bits);
    data.insert(data.end(), p.begin(), p.end());
    if (asym) {
      auto z = pack_bits(q.zero_points.data() + r * nb, static_cast<size_t>(nb), bits);
      zp_bytes.insert(zp_bytes.end(), z.begin(), z.end());
    }
  }
  // Dims of the stored tensors: T's, last axis packed / in blocks; a leading 1 for the added form.
  std::vector<int64_t> ddims = t.dims, sdims = t.dims, zdims = t.dims;
  ddims.back() = packed_cols;
  sdims.back() = nb;
  zdims.back() = static_cast<int64_t>(packed_size(static_cast<size_t>(nb), bits));
  if (!t.gathered) {
    ddims.insert(ddims.begin(), 1);
    sdims.insert(sdims.begin(), 1);
    zdims.insert(zdims.begin(), 1);
  }
  const std::string dn = g.unique_name(t.name + "_q"), sn = g.unique_name(t.name + "_scales");
  auto add_packed = [&](const std::string& name, std::vector<int64_t> dims, std::vector<uint8_t>& bytes) {
    Tensor p;
    p.name = name;
    p.dtype = DType::UInt8;
    p.dims = std::move(dims);
    p.bytes = std::move(bytes);
    g.add_initializer(std::move(p));
  };
  add_packed(dn, ddims, data);
  g.add_initializer(Tensor::from_float(sn, sdims, q.scales));
  std::string zn;
  if (asym) {
    zn = g.unique_name(t.name + "_zero_points");
    add_packed(zn, zdims, zp_bytes);
  }
  auto make = [&](const std::string& name, const std::string& indices, const std::string& out) {
    Node n;
    n.op_type = "GatherBlockQuantized";
    n.domain = "com.microsoft";
    n.name = name;
    n.inputs = {dn, indices, sn};
    if (asym) n.inputs.push_back(zn);
    n.outputs = {out};
    n.set_attr_int("gather_axis", 0);
    n.set_attr_int("quantize_axis", static_cast<int64_t>(ddims.size()) - 1);
    n.set_attr_int("block_size", q.layout.block_size);
    n.set_attr_int("bits", bits);
    return n;
  };
  if (t.gathered) {
    // Each Gather becomes the quantized lookup, same name, indices and output.
    for (auto& n : g.nodes)
      if (n.op_type == "Gather" && n.is_default_domain() && !n.inputs.empty() && n.input(0) == t.name) {
        Node r = make(n.name, n.input(1), n.outputs[0]);
        n = r;
      }
    g.remove_initializer(t.name);
  } else {
    // The table's name becomes the lookup's output: every Add reads it unchanged.
    const std::string idx = g.unique_name(t.name + "_index");
    g.remove_initializer(t.name);
    g.add_initializer(Tensor::from_int64(idx, {}, {0}));
    g.nodes.insert(g.nodes.begin(), make(g.unique_name(t.name + "/GatherBlockQuantized"), idx, t.name));
  }
  g.invalidate();
  if (m.opset("com.microsoft") < 1) m.set_opset("com.microsoft", 1);
}

}  // namespace oc::quant
