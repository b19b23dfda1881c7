// Shared oneDNN plumbing for the CPU kernels: one engine, a stream per thread, plain (row-major)
// memory descriptors over oc::Tensor storage, and a primitive cache keyed by shapes + attributes
// so that repeated calibration batches of the same shape reuse the compiled primitives.
//
// Private to the library (DNNL is a private dependency): include only from engine/kernels/*.cpp.
#pragma once
#include "engine/kernel.h"
#include <dnnl.hpp>

#include <charconv>
#include <cstdint>
#include <type_traits>
#include <functional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/tensor.h"

namespace oc::dnnl_util {

using dims_t = dnnl::memory::dims;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::engine& engine();
// One stream per calling thread (a stream is not safe to share between threads).
dnnl::stream& stream();

dims_t to_dims(const std::vector<int64_t>& d);
// Row-major ("abc..") descriptor of any rank 1..6.
dnnl::memory::desc plain_desc(const dims_t& dims, dt type = dt::f32);
// Row-major storage addressed through a permuted logical order: logical dim i lives at
// physical position perm[i] (e.g. ConvTranspose weights, transposed Gemm operands).
dnnl::memory::desc permuted_desc(const dims_t& logical, const std::vector<int>& perm, dt type = dt::f32);
// Wraps existing storage; oneDNN never writes through a source handle, hence the const_cast.
dnnl::memory wrap(const dnnl::memory::desc& md, const void* data);

// Builds a cache key from strings, numbers and other streamable values ("conv|1x3x16x16|...").
// Built on every kernel call, so strings and numbers are appended directly (an ostringstream per
// key was a tenth of a small CNN's run time).
namespace key_detail {
inline void put(std::string& s, const std::string& v) { s += v; }
inline void put(std::string& s, const char* v) { s += v; }
inline void put(std::string& s, char v) { s += v; }
inline void put(std::string& s, bool v) { s += v ? '1' : '0'; }
template <typename T>
void put(std::string& s, const T& v) {
  if constexpr (std::is_arithmetic_v<T>) {
    char buf[40];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    s.append(buf, r.ptr);
  } else {
    std::ostringstream os;
    os << v;
    s += os.str();
  }
}
}  // namespace key_detail
template <typename... Ts>
std::string key(const Ts&... parts) {
  std::string s;
  s.reserve(96);
  ((key_detail::put(s, parts), s += '|'), ...);
  return s;
}
std::string dims_key(const std::vector<int64_t>& d);

// Returns the primitive cached under `k`, creating it with `make` on first use. Thread-safe.
// `make` may throw dnnl::error (no implementation); nothing is cached then.
dnnl::primitive cached(const std::string& k, const std::function<dnnl::primitive()>& make);
size_t cache_size();

// Like cached(), for any value built once per key (a primitive with the layouts it chose). The
// reference is valid until the next call on this thread.
template <typename T>
T& cached_value(const std::string& k, const std::function<T()>& make) {
  thread_local std::unordered_map<std::string, T> c;
  auto it = c.find(k);
  if (it != c.end()) return it->second;
  if (c.size() >= 4096) c.clear();  // see cached()
  return c.emplace(k, make()).first->second;
}

// Per-thread scratch storage of at least `bytes`, one buffer per `slot`, reused across calls.
void* scratch(int slot, size_t bytes);

// Copies `from` storage into `to` storage between two layouts of the same logical tensor with
// a reorder primitive cached under `k`.
void reorder(const dnnl::memory::desc& from_md, const void* from, const dnnl::memory::desc& to_md, void* to,
             const std::string& k);

// Executes on this thread's stream and waits.
void run(dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args);

// Wraps a kernel so oneDNN's errors surface as UnsupportedError naming the node.
KernelFn guarded(void (*fn)(KernelContext&));

}  // namespace oc::dnnl_util
