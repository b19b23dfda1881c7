#include "engine/buffer_pool.h"

#include <algorithm>
#include <cstring>

namespace oc::buffer_pool {

namespace {
struct Pool {
  std::vector<std::vector<uint8_t>> kept;
  size_t bytes = 0;
};
Pool& pool() {
  thread_local Pool p;
  return p;
}
}  // namespace

std::vector<uint8_t> take(size_t n, bool zero) {
  Pool& p = pool();
  if (n >= kMinBytes) {
    auto best = p.kept.end();
    for (auto it = p.kept.begin(); it != p.kept.end(); ++it)
      if (it->capacity() >= n && it->capacity() <= 2 * n && (best == p.kept.end() || it->capacity() < best->capacity()))
        best = it;
    if (best != p.kept.end()) {
      std::vector<uint8_t> v = std::move(*best);
      p.kept.erase(best);
      p.bytes -= v.capacity();
      const size_t had = v.size();
      v.resize(n);  // shrinking writes nothing; growing within capacity zeroes the new tail
      if (zero) std::memset(v.data(), 0, std::min(had, n));
      return v;
    }
  }
  return std::vector<uint8_t>(n);
}

void give(std::vector<uint8_t>&& v) {
  Pool& p = pool();
  const size_t c = v.capacity();
  if (c < kMinBytes || c > kMaxBytes) return;
  while (!p.kept.empty() && (p.kept.size() >= kMaxBuffers || p.bytes + c > kMaxBytes)) {
    p.bytes -= p.kept.front().capacity();  // the oldest goes first
    p.kept.erase(p.kept.begin());
  }
  p.bytes += c;
  p.kept.push_back(std::move(v));
}

void clear() {
  Pool& p = pool();
  p.kept.clear();
  p.kept.shrink_to_fit();
  p.bytes = 0;
}

size_t kept_bytes() { return pool().bytes; }

}  // namespace oc::buffer_pool
