#include "graph/bytes.h"
#include "graph/spill.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <ostream>
#include <list>
#include <mutex>
#include <string>
#include <unordered_set>

#include "graph/errors.h"

namespace oc {

namespace {
std::mutex g_written_mu;
std::unordered_set<const uint8_t*> g_written;
std::atomic<uint64_t> g_mapped_now{0}, g_mapped_peak{0}, g_mapped_total{0}, g_streamed{0}, g_materialized{0};

size_t page_size() {
  static const size_t p = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return p;
}

void note_mapped(uint64_t n) {
  const uint64_t now = g_mapped_now.fetch_add(n) + n;
  g_mapped_total += n;
  uint64_t peak = g_mapped_peak.load();
  while (now > peak && !g_mapped_peak.compare_exchange_weak(peak, now)) {}
}

// Maps [offset, offset+length) of fd with a page-aligned start; returns the base and the length mapped.
uint8_t* map_range(const MappedFile& f, uint64_t offset, uint64_t length, int prot, void** base, size_t* len,
                   int extra_flags = 0) {
  const uint64_t start = offset - offset % page_size();
  *len = static_cast<size_t>(offset - start + length);
  void* p = ::mmap(nullptr, *len, prot, MAP_PRIVATE | extra_flags, f.fd, static_cast<off_t>(start));
  if (p == MAP_FAILED)
    throw LoadError("cannot map " + std::to_string(length) + " bytes of '" + f.path + "' at offset " +
                    std::to_string(offset) + ": " + std::strerror(errno));
  *base = p;
  return static_cast<uint8_t*>(p) + (offset - start);
}

// pread of the whole range into dst (short reads retried; EOF is an error: the file shrank).
void read_range(const MappedFile& f, uint64_t offset, uint64_t length, uint8_t* dst) {
  uint64_t done = 0;
  while (done < length) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(length - done, 16u << 20));
    const ssize_t got = ::pread(f.fd, dst + done, want, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      throw LoadError("cannot read '" + f.path + "' at offset " + std::to_string(offset + done) + ": " +
                      (got < 0 ? std::strerror(errno) : "the file is shorter than its tensors claim"));
    done += static_cast<uint64_t>(got);
  }
}
}  // namespace

BytesStats bytes_stats() {
  BytesStats s;
  s.mapped_now = g_mapped_now;
  s.mapped_peak = g_mapped_peak;
  s.mapped_total = g_mapped_total;
  s.streamed_total = g_streamed;
  s.materialized_total = g_materialized;
  return s;
}

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  auto f = std::make_shared<MappedFile>();
  f->path = path;
  f->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) throw LoadError("cannot open external data '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(f->fd, &st) != 0) throw LoadError("cannot stat external data '" + path + "': " + std::strerror(errno));
  f->size = static_cast<uint64_t>(st.st_size);
  return f;
}

MappedFile::~MappedFile() {
  if (fd >= 0) ::close(fd);
}

void lru_remove(Bytes::Range* r);

struct Bytes::Range {
  std::shared_ptr<MappedFile> file;
  uint64_t offset = 0, length = 0;
  std::once_flag once;
  std::atomic<uint8_t*> ptr{nullptr};
  std::atomic<bool> written{false};  // mutable access handed out the mapping itself
  void* base = nullptr;
  size_t len = 0;
  std::list<Range*>::iterator lru_it;  // its place in the budget's order (while counted)
  bool in_lru = false;

  uint8_t* get() {
    uint8_t* p = ptr.load(std::memory_order_acquire);
    if (p || length == 0) return p;
    std::call_once(once, [this] {
      uint8_t* q = map_range(*file, offset, length, PROT_READ | PROT_WRITE, &base, &len);
      note_mapped(length);
      ptr.store(q, std::memory_order_release);
      lru_add(this);
    });
    return ptr.load(std::memory_order_acquire);
  }
  static void lru_add(Range* r);
  ~Range() {
    lru_remove(this);
    if (written) {
      std::lock_guard<std::mutex> lock(g_written_mu);
      g_written.erase(ptr.load());
    }
    if (base) {
      ::munmap(base, len);
      g_mapped_now -= length;
    }
  }
};

// Resident budget of persistent mappings: ranges join in the order they are first mapped; when the
// ones counted pass the budget (OC_MAPPED_BUDGET_MIB, default 1024), the oldest unwritten ones'
// pages are dropped (MADV_DONTNEED: a later read faults them in from the file again, so this is
// safe while a kernel still reads them) and they leave the count. A calibration or reconstruction
// pass that walks a model larger than memory block by block therefore keeps about the budget of
// read weights resident instead of every block it has passed (issue 18).
namespace {
std::mutex g_lru_mu;
std::list<Bytes::Range*> g_lru;
uint64_t g_lru_bytes = 0;
uint64_t lru_budget() {
  static const uint64_t b = [] {
    const char* e = std::getenv("OC_MAPPED_BUDGET_MIB");
    const long long v = e && *e ? std::atoll(e) : 1024;
    return static_cast<uint64_t>(std::max(v, 1LL)) << 20;
  }();
  return b;
}
}  // namespace

void Bytes::Range::lru_add(Range* r) {
  std::lock_guard<std::mutex> lock(g_lru_mu);
  g_lru.push_back(r);
  r->lru_it = std::prev(g_lru.end());
  r->in_lru = true;
  g_lru_bytes += r->length;
  while (g_lru_bytes > lru_budget() && g_lru.front() != r) {
    Range* o = g_lru.front();
    g_lru.pop_front();
    o->in_lru = false;
    g_lru_bytes -= o->length;
    if (!o->written && o->base) ::madvise(o->base, o->len, MADV_DONTNEED);
  }
}

void lru_remove(Bytes::Range* r) {
  std::lock_guard<std::mutex> lock(g_lru_mu);
  if (!r->in_lru) return;
  g_lru.erase(r->lru_it);
  r->in_lru = false;
  g_lru_bytes -= r->length;
}

Bytes Bytes::mapped(std::shared_ptr<MappedFile> file, uint64_t offset, uint64_t length) {
  Bytes b;
  b.map_ = std::make_shared<Range>();
  b.map_->file = std::move(file);
  b.map_->offset = offset;
  b.map_->length = length;
  return b;
}

size_t Bytes::size() const { return map_ ? static_cast<size_t>(map_->length) : vec_.size(); }

const uint8_t* Bytes::data() const { return map_ ? map_->get() : vec_.data(); }

uint8_t* Bytes::data() {
  if (!map_) return vec_.data();
  if (map_.use_count() == 1) {  // private mapping: writes never reach the file
    uint8_t* p = map_->get();
    if (!map_->written.exchange(true)) {
      std::lock_guard<std::mutex> lock(g_written_mu);
      g_written.insert(p);
    }
    return p;
  }
  return own().data();
}

bool Bytes::is_resident() const { return map_ && map_->ptr.load(std::memory_order_acquire) != nullptr; }

void release_pages(const Bytes& b) {
  if (!b.is_mapped() || !b.is_resident() || b.size() == 0) return;
  const uint8_t* p = b.data();
  {
    std::lock_guard<std::mutex> lock(g_written_mu);
    if (g_written.count(p)) return;
  }
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), base = a - a % page_size();
  ::madvise(reinterpret_cast<void*>(base), static_cast<size_t>(a - base) + b.size(), MADV_DONTNEED);
}

std::vector<uint8_t>& Bytes::own() {
  if (map_) {
    std::vector<uint8_t> v(static_cast<size_t>(map_->length));
    if (is_resident()) std::memcpy(v.data(), map_->get(), v.size());
    else if (!v.empty()) read_range(*map_->file, map_->offset, map_->length, v.data());
    g_materialized += map_->length;
    map_.reset();
    vec_ = std::move(v);
  }
  return vec_;
}

void Bytes::write_to(std::ostream& out) const {
  if (!map_ || is_resident()) {
    out.write(reinterpret_cast<const char*>(data()), static_cast<std::streamsize>(size()));
    return;
  }
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(map_->length, 16u << 20)));
  for (uint64_t done = 0; done < map_->length && out;) {
    const uint64_t n = std::min<uint64_t>(buf.size(), map_->length - done);
    read_range(*map_->file, map_->offset + done, n, buf.data());
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(n));
    done += n;
  }
  g_streamed += map_->length;
}

Bytes::TransientView::TransientView(const Range& r) {
  if (r.length == 0) return;
  // A transient view is read whole right away (a weight converted or quantized): MAP_POPULATE
  // maps every page in one call instead of one fault per 4 KiB page (a 128 MiB weight took 32K
  // faults, a sixth of an RTN run).
  ptr = map_range(*r.file, r.offset, r.length, PROT_READ, &base, &len, MAP_POPULATE);
  ::madvise(base, len, MADV_SEQUENTIAL);
  g_streamed += r.length;
}

Bytes::TransientView::~TransientView() {
  if (base) ::munmap(base, len);
}

bool operator==(const Bytes& a, const Bytes& b) {
  if (a.size() != b.size()) return false;
  if (a.map_ && a.map_ == b.map_) return true;
  return a.size() == 0 || std::memcmp(a.data(), b.data(), a.size()) == 0;
}

bool operator==(const Bytes& a, const std::vector<uint8_t>& b) {
  return a.size() == b.size() && (b.empty() || std::memcmp(a.data(), b.data(), b.size()) == 0);
}

}  // namespace oc
