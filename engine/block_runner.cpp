// Segments, the boundary cache and the segment runner (see block_runner.h).
#include "engine/block_runner.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "graph/errors.h"
#include "graph/spill.h"

namespace oc {

std::vector<GraphSegment> split_graph(const Graph& g, const std::vector<size_t>& cuts) {
  const std::vector<size_t> order = execution_order(g);
  std::vector<size_t> bounds = {0};
  for (size_t c : cuts)
    if (c > bounds.back() && c < order.size()) bounds.push_back(c);
  bounds.push_back(order.size());
  // Segment of each produced value, and the last segment reading each value.
  std::unordered_map<std::string, int> made_in, last_read;
  std::vector<int> seg_of(order.size());
  for (size_t s = 0; s + 1 < bounds.size(); ++s)
    for (size_t p = bounds[s]; p < bounds[s + 1]; ++p) seg_of[p] = static_cast<int>(s);
  std::vector<GraphSegment> out(bounds.size() - 1);
  for (size_t p = 0; p < order.size(); ++p) {
    const Node& n = g.nodes[order[p]];
    out[seg_of[p]].nodes.push_back(order[p]);
    for (const auto& o : n.outputs)
      if (!o.empty()) made_in[o] = seg_of[p];
  }
  std::vector<std::set<std::string>> ins(out.size()), outs(out.size());
  auto read = [&](int s, const std::string& v) {
    if (v.empty() || g.is_initializer(v)) return;
    auto it = made_in.find(v);
    if (it != made_in.end() && it->second == s) return;
    ins[s].insert(v);
    if (it != made_in.end()) outs[it->second].insert(v);
  };
  for (size_t p = 0; p < order.size(); ++p) {
    const Node& n = g.nodes[order[p]];
    for (const auto& v : n.inputs) read(seg_of[p], v);
    for (const auto& sg : n.subgraphs())
      for (const auto& v : outer_scope_inputs(*sg)) read(seg_of[p], v);
  }
  for (const auto& o : g.outputs) {
    auto it = made_in.find(o.name);
    if (it != made_in.end()) outs[it->second].insert(o.name);
  }
  // A value read by a later segment passes through the ones in between: each reads it from its
  // input cache and hands it on.
  for (size_t s = 0; s < out.size(); ++s)
    for (const auto& v : ins[s]) {
      auto it = made_in.find(v);
      const int from = it == made_in.end() ? -1 : it->second;
      for (int t = from + 1; t < static_cast<int>(s); ++t) {
        ins[t].insert(v);
        outs[t].insert(v);
      }
    }
  for (size_t s = 0; s < out.size(); ++s) {
    out[s].inputs.assign(ins[s].begin(), ins[s].end());
    out[s].outputs.assign(outs[s].begin(), outs[s].end());
  }
  return out;
}

// ---------------------------------------------------------------- BoundaryCache

struct BoundaryCache::Impl {
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> dims;
    uint64_t offset, length;
  };
  size_t budget;
  std::vector<std::map<std::string, Tensor>> mem;  // batches held in memory (a prefix)
  std::vector<std::vector<Entry>> spilled;         // the batches after them, in the file
  std::vector<int64_t> rows;
  uint64_t mem_bytes = 0, file_bytes = 0;
  int fd = -1;

  ~Impl() {
    if (fd >= 0) ::close(fd);
  }
  void open_file() {
    const char* t = std::getenv("TMPDIR");
    std::string path = std::string(t && *t ? t : "/tmp") + "/onnx-compress-boundary-XXXXXX";
    std::vector<char> buf(path.begin(), path.end());
    buf.push_back('\0');
    fd = ::mkstemp(buf.data());
    if (fd < 0) throw Error(std::string("boundary cache: cannot create a temporary file in ") + (t && *t ? t : "/tmp") + ": " + std::strerror(errno));
    ::unlink(buf.data());  // gone with the descriptor
  }
  void write_all(const uint8_t* p, uint64_t n) {
    uint64_t off = file_bytes;
    while (n > 0) {
      const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw Error(std::string("boundary cache: writing the temporary file failed: ") + std::strerror(errno));
      p += w, n -= static_cast<uint64_t>(w), off += static_cast<uint64_t>(w);
    }
    file_bytes = off;
  }
};

BoundaryCache::BoundaryCache(size_t memory_budget) : impl_(std::make_unique<Impl>()) { impl_->budget = memory_budget; }
BoundaryCache::~BoundaryCache() = default;
BoundaryCache::BoundaryCache(BoundaryCache&&) noexcept = default;
BoundaryCache& BoundaryCache::operator=(BoundaryCache&&) noexcept = default;

void BoundaryCache::push(std::map<std::string, Tensor> batch) {
  uint64_t bytes = 0;
  for (const auto& [n, t] : batch) bytes += t.nbytes();
  int64_t rows = 1;
  if (!batch.empty() && !batch.begin()->second.dims.empty()) rows = batch.begin()->second.dims[0];
  impl_->rows.push_back(rows);
  if (impl_->spilled.empty() && impl_->mem_bytes + bytes <= impl_->budget) {
    impl_->mem_bytes += bytes;
    impl_->mem.push_back(std::move(batch));
    return;
  }
  if (impl_->fd < 0) impl_->open_file();
  std::vector<Impl::Entry> es;
  for (const auto& [n, t] : batch) {
    if (t.dtype == DType::String) throw UnsupportedError("boundary cache: string tensor " + n);
    Impl::Entry e{n, t.dtype, t.dims, impl_->file_bytes, t.nbytes()};
    t.bytes.view([&](const uint8_t* p) { impl_->write_all(p, t.nbytes()); });
    es.push_back(std::move(e));
  }
  impl_->spilled.push_back(std::move(es));
}

size_t BoundaryCache::size() const { return impl_->mem.size() + impl_->spilled.size(); }
uint64_t BoundaryCache::memory_bytes() const { return impl_->mem_bytes; }
uint64_t BoundaryCache::spilled_bytes() const { return impl_->file_bytes; }
int64_t BoundaryCache::samples(size_t i) const { return impl_->rows.at(i); }

std::map<std::string, Tensor> BoundaryCache::get(size_t i) const {
  if (i < impl_->mem.size()) return impl_->mem[i];
  const auto& es = impl_->spilled.at(i - impl_->mem.size());
  std::map<std::string, Tensor> out;
  for (const auto& e : es) {
    Tensor t;
    t.name = e.name;
    t.dtype = e.dtype;
    t.dims = e.dims;
    std::vector<uint8_t> b(e.length);
    uint64_t got = 0;
    while (got < e.length) {
      const ssize_t r = ::pread(impl_->fd, b.data() + got, e.length - got, static_cast<off_t>(e.offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw Error(std::string("boundary cache: reading the temporary file failed: ") + (r < 0 ? std::strerror(errno) : "short read"));
      got += static_cast<uint64_t>(r);
    }
    t.bytes = std::move(b);
    out.emplace(e.name, std::move(t));
  }
  return out;
}

BoundaryCache cache_source(CalibrationSource& source, size_t memory_budget) {
  BoundaryCache c(memory_budget);
  source.rewind();
  std::map<std::string, Tensor> batch;
  while (source.next(batch)) c.push(batch);
  return c;
}

// ---------------------------------------------------------------- BlockRunner

BlockRunner::BlockRunner(const Model& model, GraphSegment segment, ExecutorOptions exec)
    : segment_(std::move(segment)), model_(std::make_unique<Model>()), exec_(std::move(exec)) {
  const Graph& g = model.graph;
  Model& m = *model_;
  m.ir_version = model.ir_version;
  m.opset_imports = model.opset_imports;
  m.raw_functions = model.raw_functions;
  Graph& sg = m.graph;
  sg.name = g.name + "_segment";
  std::unordered_set<std::string> needed;
  for (size_t i : segment_.nodes) {
    const Node& n = g.nodes.at(i);
    sg.nodes.push_back(n);
    for (const auto& v : n.inputs) needed.insert(v);
    for (const auto& s : n.subgraphs())
      for (const auto& v : outer_scope_inputs(*s)) needed.insert(v);
  }
  for (const auto& t : g.initializers)
    if (needed.count(t.name)) sg.initializers.push_back(t);  // mapped bytes are shared, not read
  for (const auto& v : segment_.inputs) {
    const ValueInfo* vi = g.find_value_info(v);
    ValueInfo in;
    in.name = v;
    in.dtype = vi ? vi->dtype : DType::Undefined;
    in.has_shape = false;  // batch sizes differ; the cached tensors carry the shapes
    sg.inputs.push_back(in);
  }
  std::unordered_set<std::string> produced;
  for (const auto& n : sg.nodes)
    for (const auto& o : n.outputs) produced.insert(o);
  for (const auto& v : segment_.outputs) {
    if (!produced.count(v)) continue;  // a boundary input handed on (run() passes it through)
    const ValueInfo* vi = g.find_value_info(v);
    ValueInfo o;
    o.name = v;
    o.dtype = vi ? vi->dtype : DType::Undefined;
    sg.outputs.push_back(o);
  }
  for (const auto& vi : g.value_info) sg.value_info.push_back(vi);
  sg.invalidate();
}

BlockRunner::~BlockRunner() = default;

BoundaryCache BlockRunner::run(const BoundaryCache& in, const ValueHook& hook, const std::set<std::string>& watch,
                               const std::function<void()>& end_batch, size_t memory_budget) {
  BoundaryCache out(memory_budget);
  {
  Executor ex(*model_, exec_);
  for (size_t b = 0; b < in.size(); ++b) {
    std::map<std::string, Tensor> batch = in.get(b), feed;
    for (const auto& v : segment_.inputs) {
      auto it = batch.find(v);
      if (it == batch.end()) throw InvalidArgument("block runner: batch " + std::to_string(b) + " has no value " + v);
      feed.emplace(v, std::move(it->second));
    }
    std::map<std::string, Tensor> res = watch.empty() || !hook ? ex.run(feed) : ex.run(feed, hook, watch);
    if (end_batch) end_batch();
    // Boundary inputs handed on to later segments pass through unchanged.
    for (const auto& v : segment_.outputs)
      if (!res.count(v) && feed.count(v)) res.emplace(v, std::move(feed.at(v)));
    out.push(std::move(res));
  }
  }
  // The weight pages the executor read stay mapped while the caller's model shares them: drop them
  // from the resident set now (issue 18: ffn671m's block-sequential GPTQ kept every segment's
  // 256 MiB of read weights resident, 2.5 GiB by the last segment).
  for (const auto& t : model_->graph.initializers) release_pages(t.bytes);
  return out;
}

}  // namespace oc
