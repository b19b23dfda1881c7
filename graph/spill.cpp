// Page release is in bytes.cpp (it needs the mapping registry); the rest of graph/spill.h here.
#include "graph/spill.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "graph/errors.h"

namespace oc {

std::string memory_status_line() {
  std::ifstream f("/proc/self/status");
  std::string line;
  long long rss = -1, anon = -1, file = -1, peak = -1;
  while (std::getline(f, line)) {
    auto val = [&](const char* key, long long& v) {
      if (line.rfind(key, 0) == 0) v = std::atoll(line.c_str() + std::strlen(key)) / 1024;
    };
    val("VmRSS:", rss), val("RssAnon:", anon), val("RssFile:", file), val("VmHWM:", peak);
  }
  return "VmRSS " + std::to_string(rss) + " MiB (anon " + std::to_string(anon) + ", file " + std::to_string(file) +
         ", peak " + std::to_string(peak) + "), mapped tensors " + std::to_string((bytes_stats().mapped_now >> 20)) + " MiB";
}

void release_free_heap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

bool trace_memory() {
  static const bool on = [] {
    const char* e = std::getenv("OC_TRACE_MEMORY");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

SpillFile::SpillFile() : file_(std::make_shared<MappedFile>()) {
  const char* t = std::getenv("TMPDIR");
  const std::string dir = t && *t ? t : "/tmp";
  std::string path = dir + "/onnx-compress-spill-XXXXXX";
  std::vector<char> buf(path.begin(), path.end());
  buf.push_back('\0');
  const int fd = ::mkstemp(buf.data());
  if (fd < 0) throw SaveError("cannot create a temporary file in " + dir + " for finished layers: " + std::strerror(errno));
  ::unlink(buf.data());  // gone with the last tensor mapping it
  file_->fd = fd;
  file_->path = dir + "/(spill file)";
}

uint64_t SpillFile::bytes() const { return file_->size; }

Bytes SpillFile::append(const Bytes& b) {
  const uint64_t at = file_->size, n = b.size();
  b.view([&](const uint8_t* p) {
    uint64_t done = 0;
    while (done < n) {
      const ssize_t w = ::pwrite(file_->fd, p + done, static_cast<size_t>(std::min<uint64_t>(n - done, 64u << 20)),
                                 static_cast<off_t>(at + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        throw SaveError(std::string("writing finished layers to the temporary file failed: ") +
                        (w < 0 ? std::strerror(errno) : "no progress"));
      done += static_cast<uint64_t>(w);
    }
  });
  file_->size = at + n;
  return Bytes::mapped(file_, at, n);
}

int spill_owned_tensors(Graph& g, SpillFile& f, size_t min_bytes) {
  int n = 0;
  for (Tensor& t : g.initializers)
    if (!t.bytes.is_mapped() && t.dtype != DType::String && t.nbytes() >= min_bytes) {
      t.bytes = f.append(t.bytes);
      ++n;
    }
  return n;
}

}  // namespace oc
