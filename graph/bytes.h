// Byte storage of a Tensor: either owned (a std::vector) or a range of an external-data file that is
// memory-mapped on first access (MAP_PRIVATE, its own page-aligned mapping) and unmapped when the last
// Bytes sharing it is dropped or replaced. Loading a model with external data therefore reads no
// weight bytes; a pass that replaces weights layer by layer keeps about one layer resident.
//
// The class carries the subset of std::vector<uint8_t>'s API the code base uses. Const access
// (data(), begin(), operator[]) of a mapped range reads the mapping; mutable access writes into the
// private mapping (copy-on-write pages, the file is never changed) when this Bytes is its only user,
// and otherwise first copies the range into owned memory ("materializes") so copies stay independent.
// Size-changing calls (resize, insert, push_back, assign, clear) always materialize.
#pragma once
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace oc {

// An open external-data file shared by the tensors that live in it (the descriptor keeps the file's
// contents reachable even when a save renames a new file over its name).
struct MappedFile {
  int fd = -1;
  std::string path;
  uint64_t size = 0;
  static std::shared_ptr<MappedFile> open(const std::string& path);  // throws LoadError
  ~MappedFile();
};

// Process-wide counters of the mapped storage (tests and benchmarks read them).
struct BytesStats {
  uint64_t mapped_now = 0;         // bytes of tensor ranges mapped at this moment
  uint64_t mapped_peak = 0;        // most of them mapped at once
  uint64_t mapped_total = 0;       // bytes ever mapped
  uint64_t streamed_total = 0;     // bytes read without keeping a mapping (write_to, transient views)
  uint64_t materialized_total = 0; // bytes copied from a file range into owned memory
};
BytesStats bytes_stats();

class Bytes {
 public:
  using value_type = uint8_t;
  using iterator = uint8_t*;
  using const_iterator = const uint8_t*;

  Bytes() = default;
  Bytes(std::vector<uint8_t> v) : vec_(std::move(v)) {}  // NOLINT: implicit, like assigning a vector
  Bytes(std::initializer_list<uint8_t> l) : vec_(l) {}
  Bytes(size_t n, uint8_t v) : vec_(n, v) {}
  template <typename It, typename = decltype(*std::declval<It>())>
  Bytes(It b, It e) : vec_(b, e) {}
  Bytes(const Bytes&) = default;
  Bytes(Bytes&&) noexcept = default;
  Bytes& operator=(const Bytes&) = default;
  Bytes& operator=(Bytes&&) noexcept = default;
  Bytes& operator=(std::vector<uint8_t> v) { map_.reset(); vec_ = std::move(v); return *this; }
  Bytes& operator=(std::initializer_list<uint8_t> l) { map_.reset(); vec_.assign(l); return *this; }

  // `length` bytes of `file` from `offset` (checked against the file's size by the caller).
  static Bytes mapped(std::shared_ptr<MappedFile> file, uint64_t offset, uint64_t length);

  size_t size() const;
  bool empty() const { return size() == 0; }
  const uint8_t* data() const;
  uint8_t* data();
  const uint8_t* begin() const { return data(); }
  const uint8_t* end() const { return data() + size(); }
  uint8_t* begin() { return data(); }
  uint8_t* end() { return data() + size(); }
  const uint8_t& operator[](size_t i) const { return data()[i]; }
  uint8_t& operator[](size_t i) { return data()[i]; }

  void resize(size_t n) { own().resize(n); }
  void resize(size_t n, uint8_t v) { own().resize(n, v); }
  void reserve(size_t n) { own().reserve(n); }
  void clear() { map_.reset(); vec_.clear(); }
  void push_back(uint8_t v) { own().push_back(v); }
  void swap(std::vector<uint8_t>& v) { own().swap(v); }
  void swap(Bytes& o) noexcept { vec_.swap(o.vec_); map_.swap(o.map_); }
  void assign(size_t n, uint8_t v) { map_.reset(); vec_.assign(n, v); }
  template <typename It, typename = decltype(*std::declval<It>())>
  void assign(It b, It e) { std::vector<uint8_t> v(b, e); map_.reset(); vec_ = std::move(v); }
  // Inserting at end() (the only position the code uses) or anywhere: materializes first.
  template <typename It, typename = decltype(*std::declval<It>())>
  void insert(const uint8_t* pos, It b, It e) {
    const size_t at = static_cast<size_t>(pos - data());
    std::vector<uint8_t>& v = own();
    v.insert(v.begin() + static_cast<std::ptrdiff_t>(at), b, e);
  }
  void insert(const uint8_t* pos, size_t n, uint8_t x) {
    const size_t at = static_cast<size_t>(pos - data());
    std::vector<uint8_t>& v = own();
    v.insert(v.begin() + static_cast<std::ptrdiff_t>(at), n, x);
  }

  // Backed by a file range (not yet materialized), and whether that range is mapped now.
  bool is_mapped() const { return static_cast<bool>(map_); }
  bool is_resident() const;
  // Writes the bytes to `out`; a range not mapped now is read with pread in chunks and stays unmapped.
  void write_to(std::ostream& out) const;
  // Calls fn(pointer) with the bytes; a range not mapped now is mapped for the call only.
  template <typename Fn> void view(Fn&& fn) const {
    if (!map_ || is_resident()) { fn(data()); return; }
    TransientView v(*map_);
    fn(v.ptr);
  }

  friend bool operator==(const Bytes& a, const Bytes& b);
  friend bool operator!=(const Bytes& a, const Bytes& b) { return !(a == b); }
  friend bool operator==(const Bytes& a, const std::vector<uint8_t>& b);
  friend bool operator==(const std::vector<uint8_t>& b, const Bytes& a) { return a == b; }

  struct Range;  // one tensor's file range and its lazy mapping

 private:
  struct TransientView {
    explicit TransientView(const Range& r);
    ~TransientView();
    TransientView(const TransientView&) = delete;
    TransientView& operator=(const TransientView&) = delete;
    void* base = nullptr;
    size_t len = 0;
    const uint8_t* ptr = nullptr;
  };
  std::vector<uint8_t>& own();  // materializes a mapped range into vec_
  std::vector<uint8_t> vec_;
  std::shared_ptr<Range> map_;
};

}  // namespace oc
