#include "graph/file_io.h"

#include <unistd.h>

#include <fstream>

#include "graph/errors.h"

namespace oc {

namespace fs = std::filesystem;

fs::path temp_path_for(const fs::path& p) {
  return p.parent_path() / (p.filename().string() + ".tmp-" + std::to_string(::getpid()));
}

void write_file_atomic(const fs::path& p, const std::string& bytes) {
  const fs::path tmp = temp_path_for(p);
  std::error_code ec;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw SaveError("cannot write '" + p.string() + "'");
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) {
      f.close();
      fs::remove(tmp, ec);
      throw SaveError("writing '" + p.string() + "' failed");
    }
  }
  fs::rename(tmp, p, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw SaveError("cannot write '" + p.string() + "': " + ec.message());
  }
}

}  // namespace oc
