// Finding and writing quantized lookup tables (see embeddings.h).
#include "quantize/embeddings.h"

#include <algorithm>
#include <cmath>

#include "graph/errors.h"

namespace oc::quant {

namespace {

constexpr int64_t kMinTableElems = 4096;

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
  // zero points (asym): packed in the GatherBlockQuantized form, one byte per block in the other
  const double zp = layout.scheme != Scheme::Asym ? 0 : dequantizes_at_load(t, layout) ? nb : std::ceil(nb * layout.bits / 8);
  return rows * (static_cast<double>(t.cols * layout.bits) / 8 + nb * 4 + zp);
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

namespace {

// A uint8 initializer (packed codes, zero points, shift amounts).
void add_uint8(Graph& g, const std::string& name, std::vector<int64_t> dims, std::vector<uint8_t> bytes) {
  Tensor p;
  p.name = name;
  p.dtype = DType::UInt8;
  p.dims = std::move(dims);
  p.bytes = std::move(bytes);
  g.add_initializer(std::move(p));
}

// Named base/op_k, k the node's place in the chain: its nodes join the graph together, so
// unique_name (which sees the graph only) cannot tell two of the same op apart.
Node chain_node(Graph& g, const std::string& op, const std::string& base, size_t k, std::vector<std::string> in, std::string out) {
  Node n;
  n.op_type = op;
  n.name = g.unique_name(base + "/" + op + "_" + std::to_string(k));
  n.inputs = std::move(in);
  n.outputs = {std::move(out)};
  return n;
}

// The GatherBlockQuantized form (kept for tables whose blocks do not tile the rows).
void export_as_gather_block_quantized(Model& m, const EmbeddingTable& t, const QuantizedMatrix& q) {
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
  add_uint8(g, dn, ddims, std::move(data));
  g.add_initializer(Tensor::from_float(sn, sdims, q.scales));
  std::string zn;
  if (asym) {
    zn = g.unique_name(t.name + "_zero_points");
    add_uint8(g, zn, zdims, std::move(zp_bytes));
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

}  // namespace

bool dequantizes_at_load(const EmbeddingTable& t, const QuantLayout& layout) {
  if (layout.granularity == Granularity::Tensor) return false;
  // one block for the whole row, or whole blocks: the codes reshape to [rows, C / block, block]
  const int64_t block = layout.group_cols(t.cols);
  return block > 0 && (block >= t.cols || t.cols % block == 0);
}

void export_embedding_table(Model& m, const EmbeddingTable& t, const QuantizedMatrix& q) {
  if (!dequantizes_at_load(t, q.layout)) return export_as_gather_block_quantized(m, t, q);
  Graph& g = m.graph;
  const int bits = q.layout.bits, per = 8 / bits;
  const int64_t nb = q.nblocks(), block = t.cols / nb;
  const std::string base = t.name + "/dequantize";
  std::vector<Node> chain;
  auto value = [&](const std::string& what) { return g.unique_name(t.name + "_" + what); };

  // codes: uint8 [rows, C/per, 1] packed low bits first (one stream per row), shifted by {0, b, 2b, …}
  // into [rows, C/per, per] and masked to b bits (Mod: BitwiseAnd needs opset 18) — [rows, C] in order.
  std::string codes = value("q");
  std::vector<uint8_t> packed = pack_bits(q.codes.data(), q.codes.size(), bits);
  if (per > 1) {
    add_uint8(g, codes, {t.rows, t.cols / per, 1}, std::move(packed));
    std::vector<uint8_t> shifts(static_cast<size_t>(per));
    for (int k = 0; k < per; ++k) shifts[static_cast<size_t>(k)] = static_cast<uint8_t>(k * bits);
    const std::string sh = value("shifts"), md = value("modulus"), shifted = value("shifted"), masked = value("codes");
    add_uint8(g, sh, {per}, shifts);
    add_uint8(g, md, {}, {static_cast<uint8_t>(1u << bits)});
    chain.push_back(chain_node(g, "BitShift", base, chain.size(), {codes, sh}, shifted));
    chain.back().set_attr_string("direction", "RIGHT");
    chain.push_back(chain_node(g, "Mod", base, chain.size(), {shifted, md}, masked));
    codes = masked;
  } else {
    add_uint8(g, codes, {t.rows, t.cols}, std::move(packed));
  }
  // float codes in blocks [rows, nb, block]; minus z (one scalar when every block has the same: sym).
  const std::string fl = value("codes_float"), shape = value("block_shape"), blocks = value("blocks");
  chain.push_back(chain_node(g, "Cast", base, chain.size(), {codes}, fl));
  chain.back().set_attr_int("to", static_cast<int64_t>(DType::Float));
  g.add_initializer(Tensor::from_int64(shape, {3}, {t.rows, nb, block}));
  chain.push_back(chain_node(g, "Reshape", base, chain.size(), {fl, shape}, blocks));
  const bool one_z = std::all_of(q.zero_points.begin(), q.zero_points.end(), [&](uint8_t z) { return z == q.zero_points.front(); });
  const std::string centred = value("centred");
  if (one_z) {
    const std::string z = value("zero_point");
    g.add_initializer(Tensor::from_float(z, {}, {static_cast<float>(q.zero_points.front())}));
    chain.push_back(chain_node(g, "Sub", base, chain.size(), {blocks, z}, centred));
  } else {
    const std::string z8 = value("zero_points"), zf = value("zero_points_float");
    add_uint8(g, z8, {t.rows, nb, 1}, q.zero_points);
    chain.push_back(chain_node(g, "Cast", base, chain.size(), {z8}, zf));
    chain.back().set_attr_int("to", static_cast<int64_t>(DType::Float));
    chain.push_back(chain_node(g, "Sub", base, chain.size(), {blocks, zf}, centred));
  }
  // times the block scales [rows, nb, 1], back to T's dims under T's name: every reader is unchanged.
  const std::string sc = value("scales"), scaled = value("scaled"), dims = value("dims");
  g.add_initializer(Tensor::from_float(sc, {t.rows, nb, 1}, q.scales));
  chain.push_back(chain_node(g, "Mul", base, chain.size(), {centred, sc}, scaled));
  g.add_initializer(Tensor::from_int64(dims, {static_cast<int64_t>(t.dims.size())}, t.dims));
  g.remove_initializer(t.name);
  chain.push_back(chain_node(g, "Reshape", base, chain.size(), {scaled, dims}, t.name));
  g.nodes.insert(g.nodes.begin(), chain.begin(), chain.end());
  g.invalidate();
}

}  // namespace oc::quant
