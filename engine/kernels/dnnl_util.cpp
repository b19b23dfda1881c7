#include "engine/kernels/dnnl_util.h"
#include <charconv>

#include <mutex>

namespace oc::dnnl_util {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

dims_t to_dims(const std::vector<int64_t>& d) { return dims_t(d.begin(), d.end()); }

dnnl::memory::desc plain_desc(const dims_t& dims, dt type) {
  dims_t strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * std::max<int64_t>(dims[i + 1], 1);
  return dnnl::memory::desc(dims, type, strides);
}

dnnl::memory::desc permuted_desc(const dims_t& logical, const std::vector<int>& perm, dt type) {
  // Physical dims in storage order, then row-major strides, then mapped back to logical order.
  const size_t n = logical.size();
  dims_t phys(n);
  for (size_t i = 0; i < n; ++i) phys[perm[i]] = logical[i];
  dims_t pstride(n, 1);
  for (int i = static_cast<int>(n) - 2; i >= 0; --i) pstride[i] = pstride[i + 1] * std::max<int64_t>(phys[i + 1], 1);
  dims_t strides(n);
  for (size_t i = 0; i < n; ++i) strides[i] = pstride[perm[i]];
  return dnnl::memory::desc(logical, type, strides);
}

dnnl::memory wrap(const dnnl::memory::desc& md, const void* data) {
  return dnnl::memory(md, engine(), const_cast<void*>(data));
}

std::string dims_key(const std::vector<int64_t>& d) {
  std::string s;
  char buf[24];
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) s += 'x';
    s.append(buf, std::to_chars(buf, buf + sizeof buf, d[i]).ptr);
  }
  return s;
}

namespace {
constexpr size_t kMaxCached = 4096;

// One cache per thread: Debian's oneDNN 2.6 (no concurrent-execution build) binds a primitive
// to scratchpad memory of the thread that created it, so a primitive created on one thread and
// executed on another crashes. Threads compressing different models each build their own.
std::unordered_map<std::string, dnnl::primitive>& cache() {
  thread_local std::unordered_map<std::string, dnnl::primitive> c;
  return c;
}
}  // namespace

dnnl::primitive cached(const std::string& k, const std::function<dnnl::primitive()>& make) {
  auto it = cache().find(k);
  if (it != cache().end()) return it->second;
  // Dynamic shapes (e.g. text lines of every width) would grow the cache without bound; a full
  // cache is simply dropped, since calibration batches of one shape refill it at once.
  if (cache().size() >= kMaxCached) cache().clear();
  return cache().emplace(k, make()).first->second;
}

size_t cache_size() { return cache().size(); }

void* scratch(int slot, size_t bytes) {
  thread_local std::vector<std::vector<float>> bufs;
  if (slot >= static_cast<int>(bufs.size())) bufs.resize(static_cast<size_t>(slot) + 1);
  std::vector<float>& b = bufs[static_cast<size_t>(slot)];
  const size_t n = (bytes + sizeof(float) - 1) / sizeof(float);
  if (b.size() < n) b.resize(n);
  return b.data();
}

void reorder(const dnnl::memory::desc& from_md, const void* from, const dnnl::memory::desc& to_md, void* to,
             const std::string& k) {
  dnnl::primitive p = cached(k, [&] {
    return dnnl::reorder(dnnl::reorder::primitive_desc(engine(), from_md, engine(), to_md));
  });
  run(p, {{DNNL_ARG_FROM, wrap(from_md, from)}, {DNNL_ARG_TO, wrap(to_md, to)}});
}

void run(dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args) {
  // Debian's oneDNN 2.6 is built without concurrent-execution support: primitives share a
  // library-managed scratchpad, so executions from two threads (two models compressed at once)
  // corrupt each other. Each execution is already parallel inside (OpenMP), so serializing
  // them costs little.
  static std::mutex exec_mutex;
  std::lock_guard<std::mutex> lock(exec_mutex);
  p.execute(stream(), args);
  stream().wait();
}

// oneDNN reports a missing implementation as dnnl::error; the executor must see UnsupportedError.
KernelFn guarded(void (*fn)(KernelContext&)) {
  return [fn](KernelContext& ctx) {
    try {
      fn(ctx);
    } catch (const dnnl::error& e) {
      ctx.unsupported(std::string("oneDNN: ") + e.what());
    }
  };
}

}  // namespace oc::dnnl_util
