#include "graph/onnx_io.h"
#include "graph/file_io.h"

#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace oc {
namespace fs = std::filesystem;

namespace {

constexpr size_t kProtobufLimit = (size_t{1} << 31) - (size_t{64} << 20);  // 2 GiB less headroom

// ---------------- proto -> IR ----------------
struct Reader {
  fs::path base_dir;
  LoadOptions opt;
  std::string where;  // graph path for messages

  // External-data offset/length: decimal, non-negative, fits int64 (std::stoll would throw
  // std::invalid_argument or out_of_range instead of a LoadError naming the tensor).
  static int64_t parse_count(const onnx::TensorProto& tp, const char* key, const std::string& v) {
    int64_t x = 0;
    bool ok = !v.empty() && v.size() <= 18;
    for (char c : v) ok = ok && c >= '0' && c <= '9';
    if (ok) x = std::stoll(v);
    else throw LoadError("tensor '" + tp.name() + "': external data " + key + " '" + v.substr(0, 32) + "' is not a byte count");
    return x;
  }

  // Open external-data files of this load, by resolved path (tensors share one descriptor per file).
  std::map<std::string, std::shared_ptr<MappedFile>> files;

  // The tensor's range of its external-data file, mapped lazily on first access (graph/bytes.h);
  // empty when LoadOptions::load_external_data is off.
  Bytes read_external(const onnx::TensorProto& tp, size_t expect) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : tp.external_data()) {
      if (kv.key() == "location") location = kv.value();
      else if (kv.key() == "offset") offset = parse_count(tp, "offset", kv.value());
      else if (kv.key() == "length") length = parse_count(tp, "length", kv.value());
    }
    const std::string who = "tensor '" + tp.name() + "'";
    if (location.empty()) throw LoadError(who + ": external data without a location");
    if (base_dir.empty()) throw LoadError(who + ": external data '" + location + "' but the model has no folder");
    fs::path loc(location);
    if (loc.is_absolute()) throw LoadError(who + ": external data path '" + location + "' is absolute; refused");
    for (const auto& part : loc)
      if (part == "..") throw LoadError(who + ": external data path '" + location + "' leaves the model's folder; refused");
    std::error_code ec;
    fs::path base = fs::weakly_canonical(base_dir, ec);
    fs::path full = fs::weakly_canonical(base / loc, ec);
    auto rel = full.lexically_relative(base);
    if (ec || rel.empty() || *rel.begin() == "..")
      throw LoadError(who + ": external data path '" + location + "' resolves outside the model's folder; refused");
    if (!fs::is_regular_file(full, ec))
      throw LoadError(who + ": external data file '" + location + "' not found next to the model");
    auto& file = files[full.string()];
    if (!file) file = MappedFile::open(full.string());
    auto fsize = static_cast<int64_t>(file->size);
    if (length < 0) length = static_cast<int64_t>(expect);
    if (offset > fsize || length > fsize - offset)
      throw LoadError(who + ": external data '" + location + "' offset " + std::to_string(offset) + " + length " +
                      std::to_string(length) + " is past its end (" + std::to_string(fsize) + " bytes)");
    if (opt.external_stats) {
      ++opt.external_stats->external_tensors;
      opt.external_stats->external_bytes += static_cast<uint64_t>(length);
      opt.external_stats->file_bytes[location] = static_cast<uint64_t>(fsize);
    }
    if (!opt.load_external_data) return {};
    if (static_cast<size_t>(length) != expect)
      throw LoadError("tensor '" + tp.name() + "' has " + std::to_string(length) + " bytes of data; shape " +
                      shape_str(std::vector<int64_t>(tp.dims().begin(), tp.dims().end())) + " of " +
                      dtype_name(static_cast<DType>(tp.data_type())) + " needs " + std::to_string(expect));
    return Bytes::mapped(file, static_cast<uint64_t>(offset), static_cast<uint64_t>(length));
  }

  Tensor tensor(const onnx::TensorProto& tp) {
    Tensor t;
    t.name = tp.name();
    t.dtype = static_cast<DType>(tp.data_type());
    t.dims.assign(tp.dims().begin(), tp.dims().end());
    // numel = prod(dims) must fit int64 with room for the bit count (n * 64) that
    // dtype_storage_bytes forms; a wrapped product would size buffers from garbage.
    int64_t n = 1;
    for (int64_t d : t.dims) {
      if (d < 0) throw LoadError("tensor '" + t.name + "' has a negative dimension");
      if (__builtin_mul_overflow(n, d, &n) || n > (INT64_MAX >> 7))
        throw LoadError("tensor '" + t.name + "' has absurd dimensions " + shape_str(t.dims) + ": element count overflows");
    }
    if (tp.has_segment()) throw UnsupportedError("tensor '" + t.name + "' is segmented; not supported");
    const size_t expect = dtype_storage_bytes(t.dtype, n);
    auto set_bytes = [&](const std::string& b) {
      if (b.size() != expect)
        throw LoadError("tensor '" + t.name + "' has " + std::to_string(b.size()) + " bytes of data; shape " +
                        shape_str(t.dims) + " of " + dtype_name(t.dtype) + " needs " + std::to_string(expect));
      t.bytes.assign(b.begin(), b.end());
    };
    if (t.dtype == DType::String) {
      t.strings.assign(tp.string_data().begin(), tp.string_data().end());
      return t;
    }
    if (dtype_bits(t.dtype) == 0) throw UnsupportedError("tensor '" + t.name + "' has unknown element type " + std::to_string(tp.data_type()));
    if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
      t.bytes = read_external(tp, expect);
      return t;
    }
    if (opt.external_stats) ++opt.external_stats->inline_tensors;
    if (tp.has_raw_data()) {
      set_bytes(tp.raw_data());
      return t;
    }
    // Typed fields.
    auto need = [&](int have) {
      if (static_cast<int64_t>(have) != n && !(t.dtype == DType::Int4 || t.dtype == DType::UInt4))
        throw LoadError("tensor '" + t.name + "' has " + std::to_string(have) + " values; shape " + shape_str(t.dims) +
                        " needs " + std::to_string(n));
    };
    // Every typed value takes at least one byte of the message, so a shape asking for more
    // elements than that is refused before the buffer is allocated (no multi-TB allocations).
    if (n > 2 * static_cast<int64_t>(tp.ByteSizeLong()) + 2)
      throw LoadError("tensor '" + t.name + "' holds far fewer values than its shape " + shape_str(t.dims) + " needs");
    t.bytes.assign(expect, 0);
    switch (t.dtype) {
      case DType::Float:
        need(tp.float_data_size());
        if (n) std::memcpy(t.bytes.data(), tp.float_data().data(), expect);
        break;
      case DType::Int64:
        need(tp.int64_data_size());
        if (n) std::memcpy(t.bytes.data(), tp.int64_data().data(), expect);
        break;
      case DType::Double:
        need(tp.double_data_size());
        if (n) std::memcpy(t.bytes.data(), tp.double_data().data(), expect);
        break;
      case DType::UInt32: case DType::UInt64: {
        need(tp.uint64_data_size());
        for (int64_t i = 0; i < n; ++i) {
          uint64_t v = tp.uint64_data(static_cast<int>(i));
          if (t.dtype == DType::UInt32) { auto v32 = static_cast<uint32_t>(v); std::memcpy(&t.bytes[static_cast<size_t>(i) * 4], &v32, 4); }
          else std::memcpy(&t.bytes[static_cast<size_t>(i) * 8], &v, 8);
        }
        break;
      }
      case DType::Int4: case DType::UInt4: {
        // int32_data holds the packed bytes, one per entry.
        if (static_cast<size_t>(tp.int32_data_size()) != expect)
          throw LoadError("tensor '" + t.name + "' has the wrong number of packed 4-bit values");
        for (size_t i = 0; i < expect; ++i) t.bytes[i] = static_cast<uint8_t>(tp.int32_data(static_cast<int>(i)));
        break;
      }
      default: {
        // int32_data carries every other type, one element per entry.
        need(tp.int32_data_size());
        const int bytes = dtype_bits(t.dtype) / 8;
        for (int64_t i = 0; i < n; ++i) {
          int32_t v = tp.int32_data(static_cast<int>(i));
          std::memcpy(&t.bytes[static_cast<size_t>(i * bytes)], &v, static_cast<size_t>(bytes));
        }
      }
    }
    return t;
  }

  ValueInfo value_info(const onnx::ValueInfoProto& vp) {
    ValueInfo v;
    v.name = vp.name();
    v.doc_string = vp.doc_string();
    if (!vp.has_type()) return v;
    if (vp.type().has_tensor_type()) {
      const auto& tt = vp.type().tensor_type();
      v.dtype = static_cast<DType>(tt.elem_type());
      if (tt.has_shape()) {
        v.has_shape = true;
        for (const auto& d : tt.shape().dim()) {
          if (d.has_dim_value()) v.shape.push_back(Dim::of(d.dim_value()));
          else v.shape.push_back(Dim::sym(d.dim_param()));
        }
      }
    } else {
      v.raw_type = vp.type().SerializeAsString();
    }
    return v;
  }

  Attribute attribute(const onnx::AttributeProto& ap) {
    Attribute a;
    a.name = ap.name();
    a.ref_attr_name = ap.ref_attr_name();
    using AP = onnx::AttributeProto;
    AP::AttributeType type = ap.type();
    if (type == AP::UNDEFINED) {  // very old models leave type unset
      if (ap.has_f()) type = AP::FLOAT;
      else if (ap.has_i()) type = AP::INT;
      else if (ap.has_s()) type = AP::STRING;
      else if (ap.has_t()) type = AP::TENSOR;
      else if (ap.has_g()) type = AP::GRAPH;
      else if (ap.floats_size()) type = AP::FLOATS;
      else if (ap.ints_size()) type = AP::INTS;
      else if (ap.strings_size()) type = AP::STRINGS;
      else if (ap.graphs_size()) type = AP::GRAPHS;
    }
    switch (type) {
      case AP::FLOAT: a.kind = Attribute::Kind::Float; a.f = ap.f(); break;
      case AP::INT: a.kind = Attribute::Kind::Int; a.i = ap.i(); break;
      case AP::STRING: a.kind = Attribute::Kind::String; a.s = ap.s(); break;
      case AP::TENSOR: a.kind = Attribute::Kind::Tensor; a.t = tensor(ap.t()); break;
      case AP::GRAPH: a.kind = Attribute::Kind::Graph; a.g = std::make_shared<Graph>(graph(ap.g())); break;
      case AP::FLOATS: a.kind = Attribute::Kind::Floats; a.floats.assign(ap.floats().begin(), ap.floats().end()); break;
      case AP::INTS: a.kind = Attribute::Kind::Ints; a.ints.assign(ap.ints().begin(), ap.ints().end()); break;
      case AP::STRINGS: a.kind = Attribute::Kind::Strings; a.strings.assign(ap.strings().begin(), ap.strings().end()); break;
      case AP::GRAPHS:
        a.kind = Attribute::Kind::Graphs;
        for (const auto& g : ap.graphs()) a.graphs.push_back(std::make_shared<Graph>(graph(g)));
        break;
      default: a.kind = Attribute::Kind::Other; a.raw = ap.SerializeAsString(); break;
    }
    return a;
  }

  // ONNX graphs are SSA: each value has one producer. Two producers would make every later
  // pass (toposort, shapes, pruning) silently pick one of them.
  static void refuse_duplicate_values(const Graph& g) {
    std::map<std::string, std::string> producer;  // value -> node name (or "initializer")
    for (const auto& t : g.initializers) producer.emplace(t.name, "an initializer");
    for (const auto& n : g.nodes)
      for (const auto& o : n.outputs) {
        if (o.empty()) continue;
        const std::string who = n.name.empty() ? "a " + n.op_type + " node" : "node '" + n.name + "'";
        auto [it, fresh] = producer.emplace(o, who);
        if (!fresh)
          throw LoadError("graph '" + g.name + "': value '" + o + "' is produced twice (by " + it->second + " and " +
                          who + ")");
      }
  }

  Graph graph(const onnx::GraphProto& gp) {
    Graph g;
    g.name = gp.name();
    g.doc_string = gp.doc_string();
    for (const auto& t : gp.initializer()) g.initializers.push_back(tensor(t));
    for (const auto& s : gp.sparse_initializer()) g.raw_sparse_initializers.push_back(s.SerializeAsString());
    for (const auto& v : gp.input()) g.inputs.push_back(value_info(v));
    for (const auto& v : gp.output()) g.outputs.push_back(value_info(v));
    for (const auto& v : gp.value_info()) g.value_info.push_back(value_info(v));
    for (const auto& np : gp.node()) {
      Node n;
      n.name = np.name();
      n.op_type = np.op_type();
      n.domain = np.domain();
      n.doc_string = np.doc_string();
      n.inputs.assign(np.input().begin(), np.input().end());
      n.outputs.assign(np.output().begin(), np.output().end());
      for (const auto& ap : np.attribute()) n.attributes.push_back(attribute(ap));
      g.nodes.push_back(std::move(n));
    }
    refuse_duplicate_values(g);
    g.invalidate();
    return g;
  }
};

// ---------------- IR -> proto ----------------
struct Writer {
  // When set, tensors of at least `min_bytes` go to this stream instead of raw_data.
  std::ostream* external = nullptr;
  std::string external_location;
  size_t min_bytes = 1024;
  uint64_t offset = 0;

  void tensor(const Tensor& t, onnx::TensorProto* tp) {
    tp->set_name(t.name);
    tp->set_data_type(static_cast<int32_t>(t.dtype));
    for (int64_t d : t.dims) tp->add_dims(d);
    if (t.dtype == DType::String) {
      for (const auto& s : t.strings) tp->add_string_data(s);
      return;
    }
    if (external && t.bytes.size() >= min_bytes) {
      // Align each tensor to 64 bytes so readers that mmap can use it in place.
      uint64_t pad = (64 - offset % 64) % 64;
      static const char zeros[64] = {};
      external->write(zeros, static_cast<std::streamsize>(pad));
      offset += pad;
      t.bytes.write_to(*external);  // a mapped range is streamed, not kept resident
      tp->set_data_location(onnx::TensorProto::EXTERNAL);
      auto add = [&](const char* k, const std::string& v) {
        auto* e = tp->add_external_data();
        e->set_key(k);
        e->set_value(v);
      };
      add("location", external_location);
      add("offset", std::to_string(offset));
      add("length", std::to_string(t.bytes.size()));
      offset += t.bytes.size();
      return;
    }
    tp->set_raw_data(t.bytes.data(), t.bytes.size());
  }

  void value_info(const ValueInfo& v, onnx::ValueInfoProto* vp) {
    vp->set_name(v.name);
    if (!v.doc_string.empty()) vp->set_doc_string(v.doc_string);
    if (!v.raw_type.empty()) {
      vp->mutable_type()->ParseFromString(v.raw_type);
      return;
    }
    if (v.dtype == DType::Undefined && !v.has_shape) return;
    auto* tt = vp->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(static_cast<int32_t>(v.dtype));
    if (v.has_shape) {
      auto* sp = tt->mutable_shape();
      for (const Dim& d : v.shape) {
        auto* dp = sp->add_dim();
        if (d.known()) dp->set_dim_value(d.value);
        else if (!d.param.empty()) dp->set_dim_param(d.param);
      }
    }
  }

  void attribute(const Attribute& a, onnx::AttributeProto* ap) {
    using AP = onnx::AttributeProto;
    if (a.kind == Attribute::Kind::Other) {
      ap->ParseFromString(a.raw);
      return;
    }
    ap->set_name(a.name);
    if (!a.ref_attr_name.empty()) ap->set_ref_attr_name(a.ref_attr_name);
    switch (a.kind) {
      case Attribute::Kind::Float: ap->set_type(AP::FLOAT); ap->set_f(a.f); break;
      case Attribute::Kind::Int: ap->set_type(AP::INT); ap->set_i(a.i); break;
      case Attribute::Kind::String: ap->set_type(AP::STRING); ap->set_s(a.s); break;
      case Attribute::Kind::Tensor: ap->set_type(AP::TENSOR); tensor(a.t, ap->mutable_t()); break;
      case Attribute::Kind::Graph: ap->set_type(AP::GRAPH); graph(*a.g, ap->mutable_g()); break;
      case Attribute::Kind::Floats: ap->set_type(AP::FLOATS); for (float f : a.floats) ap->add_floats(f); break;
      case Attribute::Kind::Ints: ap->set_type(AP::INTS); for (int64_t i : a.ints) ap->add_ints(i); break;
      case Attribute::Kind::Strings: ap->set_type(AP::STRINGS); for (const auto& s : a.strings) ap->add_strings(s); break;
      case Attribute::Kind::Graphs:
        ap->set_type(AP::GRAPHS);
        for (const auto& g : a.graphs) graph(*g, ap->add_graphs());
        break;
      default: break;
    }
  }

  void graph(const Graph& g, onnx::GraphProto* gp) {
    gp->set_name(g.name);
    if (!g.doc_string.empty()) gp->set_doc_string(g.doc_string);
    for (const auto& t : g.initializers) tensor(t, gp->add_initializer());
    for (const auto& s : g.raw_sparse_initializers) gp->add_sparse_initializer()->ParseFromString(s);
    for (const auto& v : g.inputs) value_info(v, gp->add_input());
    for (const auto& v : g.outputs) value_info(v, gp->add_output());
    for (const auto& v : g.value_info) value_info(v, gp->add_value_info());
    for (const auto& n : g.nodes) {
      auto* np = gp->add_node();
      if (!n.name.empty()) np->set_name(n.name);
      np->set_op_type(n.op_type);
      if (!n.domain.empty()) np->set_domain(n.domain);
      if (!n.doc_string.empty()) np->set_doc_string(n.doc_string);
      for (const auto& i : n.inputs) np->add_input(i);
      for (const auto& o : n.outputs) np->add_output(o);
      for (const auto& a : n.attributes) attribute(a, np->add_attribute());
    }
  }

  void model(const Model& m, onnx::ModelProto* mp) {
    mp->set_ir_version(m.ir_version);
    for (const auto& o : m.opset_imports) {
      auto* op = mp->add_opset_import();
      op->set_domain(o.domain);
      op->set_version(o.version);
    }
    if (!m.producer_name.empty()) mp->set_producer_name(m.producer_name);
    if (!m.producer_version.empty()) mp->set_producer_version(m.producer_version);
    if (!m.domain.empty()) mp->set_domain(m.domain);
    if (m.model_version) mp->set_model_version(m.model_version);
    if (!m.doc_string.empty()) mp->set_doc_string(m.doc_string);
    for (const auto& kv : m.metadata) {
      auto* p = mp->add_metadata_props();
      p->set_key(kv.first);
      p->set_value(kv.second);
    }
    for (const auto& f : m.raw_functions) mp->add_functions()->ParseFromString(f);
    for (const auto& t : m.raw_training_info) mp->add_training_info()->ParseFromString(t);
    graph(m.graph, mp->mutable_graph());
  }
};

size_t graph_weight_bytes(const Graph& g) {
  size_t total = 0;
  for (const auto& t : g.initializers) total += t.bytes.size();
  for (const auto& n : g.nodes) {
    for (const auto& a : n.attributes)
      if (a.kind == Attribute::Kind::Tensor) total += a.t.bytes.size();
    for (const auto& sg : n.subgraphs()) total += graph_weight_bytes(*sg);
  }
  return total;
}

}  // namespace

size_t model_weight_bytes(const Model& m) { return graph_weight_bytes(m.graph); }

Model load_model_from_bytes(const std::string& bytes, const fs::path& base_dir, const LoadOptions& opt) {
  onnx::ModelProto mp;
  if (bytes.empty()) throw LoadError("not an ONNX model: the file is empty");
  if (bytes.size() > static_cast<size_t>(INT_MAX)) throw LoadError("not an ONNX model: over 2 GiB of protobuf");
  if (!mp.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw LoadError("not an ONNX model, or truncated: protobuf parsing failed");
  if (!mp.has_graph() || mp.ir_version() <= 0)
    throw LoadError("not an ONNX model: no graph or IR version in the file");
  if (mp.ir_version() > 12)
    throw UnsupportedError("IR version " + std::to_string(mp.ir_version()) + " is newer than this toolkit knows (3-10)");
  Reader r{base_dir, opt, "", {}};
  Model m;
  m.ir_version = mp.ir_version();
  for (const auto& o : mp.opset_import()) m.opset_imports.push_back({o.domain(), o.version()});
  if (m.opset_imports.empty()) m.opset_imports.push_back({"", 1});  // IR 3 files may omit it
  m.producer_name = mp.producer_name();
  m.producer_version = mp.producer_version();
  m.domain = mp.domain();
  m.model_version = mp.model_version();
  m.doc_string = mp.doc_string();
  for (const auto& p : mp.metadata_props()) m.metadata.emplace_back(p.key(), p.value());
  for (const auto& f : mp.functions()) m.raw_functions.push_back(f.SerializeAsString());
  for (const auto& t : mp.training_info()) m.raw_training_info.push_back(t.SerializeAsString());
  m.graph = r.graph(mp.graph());
  if (m.graph.nodes.empty() && m.graph.outputs.empty())
    throw LoadError("not an ONNX model: the graph has no nodes and no outputs");
  return m;
}

Model load_model(const fs::path& path, const LoadOptions& opt) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw LoadError("cannot open '" + path.string() + "': no such file");
  if (fs::is_directory(path, ec)) throw LoadError("cannot open '" + path.string() + "': it is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw LoadError("cannot open '" + path.string() + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  try {
    return load_model_from_bytes(ss.str(), path.parent_path().empty() ? fs::path(".") : path.parent_path(), opt);
  } catch (const LoadError& e) {
    throw LoadError(path.filename().string() + ": " + e.what());
  } catch (const UnsupportedError& e) {
    throw UnsupportedError(path.filename().string() + ": " + e.what());
  }
}

Tensor load_tensor_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw LoadError("cannot open '" + path.string() + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  const std::string bytes = ss.str();
  onnx::TensorProto tp;
  if (bytes.size() > static_cast<size_t>(INT_MAX) || !tp.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw LoadError(path.filename().string() + ": not a TensorProto (protobuf parsing failed)");
  Reader r{path.parent_path(), LoadOptions{}, "", {}};
  return r.tensor(tp);
}

std::string serialize_model(const Model& m) {
  if (model_weight_bytes(m) > kProtobufLimit)
    throw SaveError("model weights exceed protobuf's 2 GiB limit; save with external data");
  onnx::ModelProto mp;
  Writer w;
  w.model(m, &mp);
  return mp.SerializeAsString();
}

void save_model(const Model& m, const fs::path& path, const SaveOptions& opt) {
  bool external = opt.external == SaveOptions::ExternalData::Always ||
                  (opt.external == SaveOptions::ExternalData::Auto && model_weight_bytes(m) > kProtobufLimit);
  fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw SaveError("cannot write '" + path.string() + "': folder does not exist");
  const fs::path tmp = temp_path_for(path);
  std::string data_name = opt.external_file.empty() ? path.filename().string() + ".data" : opt.external_file;
  const fs::path data_path = dir / data_name;
  const fs::path data_tmp = temp_path_for(data_path);
  auto cleanup = [&] {
    fs::remove(tmp, ec);
    fs::remove(data_tmp, ec);
  };
  try {
    onnx::ModelProto mp;
    Writer w;
    std::ofstream data_out;
    if (external) {
      data_out.open(data_tmp, std::ios::binary | std::ios::trunc);
      if (!data_out) throw SaveError("cannot write '" + data_path.string() + "': " + std::strerror(errno));
      w.external = &data_out;
      w.external_location = data_name;
      w.min_bytes = opt.external_min_bytes;
    }
    w.model(m, &mp);
    if (external) {
      data_out.close();
      if (!data_out) throw SaveError("writing '" + data_path.string() + "' failed");
    }
    if (mp.ByteSizeLong() > static_cast<size_t>(INT_MAX))
      throw SaveError("model exceeds protobuf's 2 GiB limit; save with external data");
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw SaveError("cannot write '" + path.string() + "': " + std::strerror(errno));
      if (!mp.SerializeToOstream(&out)) throw SaveError("serializing '" + path.string() + "' failed");
      out.close();
      if (!out) throw SaveError("writing '" + path.string() + "' failed (disk full?)");
    }
    if (external) fs::rename(data_tmp, data_path);
    fs::rename(tmp, path);
  } catch (const fs::filesystem_error& e) {
    cleanup();
    throw SaveError("cannot write '" + path.string() + "': " + e.code().message());
  } catch (...) {
    cleanup();
    throw;
  }
}

}  // namespace oc
