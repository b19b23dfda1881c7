#include "engine/npy.h"
#include "graph/file_io.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

namespace oc {
namespace fs = std::filesystem;

namespace {

struct NpyType { const char* descr; DType dtype; };
const NpyType kTypes[] = {
  {"<f4", DType::Float}, {"<f8", DType::Double}, {"<f2", DType::Float16}, {"<i8", DType::Int64},
  {"<i4", DType::Int32}, {"<i2", DType::Int16}, {"|i1", DType::Int8}, {"|u1", DType::UInt8},
  {"|b1", DType::Bool}, {"<u2", DType::UInt16}, {"<u4", DType::UInt32}, {"<u8", DType::UInt64},
};

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw InvalidArgument("cannot open '" + p.string() + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint32_t le32(const std::string& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}
uint16_t le16(const std::string& b, size_t off) {
  uint16_t v;
  std::memcpy(&v, b.data() + off, 2);
  return v;
}

}  // namespace

std::string safe_file_name(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  return out;
}

Tensor parse_npy(const std::string& b, const std::string& what) {
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) throw InvalidArgument(what + ": not a .npy file");
  const int major = static_cast<unsigned char>(b[6]);
  const size_t hstart = major == 1 ? 10 : 12;
  if (b.size() < hstart) throw InvalidArgument(what + ": truncated .npy header");
  const size_t hlen = major == 1 ? le16(b, 8) : le32(b, 8);
  if (b.size() < hstart + hlen) throw InvalidArgument(what + ": truncated .npy header");
  const std::string header = b.substr(hstart, hlen);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([^']+)'")))
    throw InvalidArgument(what + ": .npy header has no dtype");
  const std::string descr = m[1];
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True")))
    throw InvalidArgument(what + ": Fortran-ordered arrays are not supported (save with np.ascontiguousarray)");
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    throw InvalidArgument(what + ": .npy header has no shape");
  Tensor t;
  t.name = what;
  std::stringstream shape(m[1].str());
  std::string item;
  while (std::getline(shape, item, ',')) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    t.dims.push_back(std::stoll(item));
  }
  bool found = false;
  for (const auto& ty : kTypes)
    if (descr == ty.descr) { t.dtype = ty.dtype; found = true; }
  if (!found) throw InvalidArgument(what + ": .npy dtype '" + descr + "' is not supported (use float32, int64, ...)");
  const size_t need = dtype_storage_bytes(t.dtype, t.numel());
  if (b.size() < hstart + hlen + need)
    throw InvalidArgument(what + ": .npy data is truncated (" + std::to_string(b.size() - hstart - hlen) + " of " +
                          std::to_string(need) + " bytes)");
  t.bytes.assign(b.begin() + static_cast<std::ptrdiff_t>(hstart + hlen),
                 b.begin() + static_cast<std::ptrdiff_t>(hstart + hlen + need));
  return t;
}

Tensor read_npy(const fs::path& path) { return parse_npy(read_file(path), path.string()); }

std::string serialize_npy(const Tensor& t) {
  const char* descr = nullptr;
  for (const auto& ty : kTypes)
    if (ty.dtype == t.dtype) descr = ty.descr;
  if (!descr) throw InvalidArgument("cannot write " + dtype_name(t.dtype) + " tensor '" + t.name + "' as .npy");
  std::string shape = "(";
  for (size_t i = 0; i < t.dims.size(); ++i) shape += std::to_string(t.dims[i]) + (t.dims.size() == 1 ? "," : (i + 1 < t.dims.size() ? ", " : ""));
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  uint16_t hl = static_cast<uint16_t>(header.size());
  out.append(reinterpret_cast<const char*>(&hl), 2);
  out += header;
  out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return out;
}

void write_npy(const fs::path& path, const Tensor& t) {
  write_file_atomic(path, serialize_npy(t));
}

std::map<std::string, Tensor> read_npz(const fs::path& path) {
  const std::string b = read_file(path);
  std::map<std::string, Tensor> out;
  // Walk the central directory (sizes in local headers may be deferred to data descriptors).
  size_t eocd = std::string::npos;
  for (size_t i = b.size() >= 22 ? b.size() - 22 : 0;; --i) {
    if (b.compare(i, 4, "PK\x05\x06") == 0) { eocd = i; break; }
    if (i == 0 || b.size() - i > 66000) break;
  }
  if (eocd == std::string::npos) throw InvalidArgument(path.string() + ": not an .npz (zip) file");
  const uint16_t count = le16(b, eocd + 10);
  size_t cd = le32(b, eocd + 16);
  for (uint16_t e = 0; e < count; ++e) {
    if (cd + 46 > b.size() || b.compare(cd, 4, "PK\x01\x02") != 0) throw InvalidArgument(path.string() + ": corrupt zip directory");
    const uint16_t method = le16(b, cd + 10);
    uint64_t csize = le32(b, cd + 20), usize = le32(b, cd + 24);
    const uint16_t nlen = le16(b, cd + 28), xlen = le16(b, cd + 30), clen = le16(b, cd + 32);
    uint64_t local = le32(b, cd + 42);
    std::string name = b.substr(cd + 46, nlen);
    // zip64 extra field (numpy writes it for large arrays)
    for (size_t x = cd + 46 + nlen; x + 4 <= cd + 46 + nlen + xlen;) {
      uint16_t id = le16(b, x), sz = le16(b, x + 2);
      if (id == 1) {
        size_t p = x + 4;
        auto rd64 = [&](uint64_t& v) { std::memcpy(&v, b.data() + p, 8); p += 8; };
        if (usize == 0xFFFFFFFF) rd64(usize);
        if (csize == 0xFFFFFFFF) rd64(csize);
        if (local == 0xFFFFFFFF) rd64(local);
      }
      x += 4 + sz;
    }
    cd += 46 + nlen + xlen + clen;
    if (local + 30 > b.size()) throw InvalidArgument(path.string() + ": corrupt zip entry " + name);
    const size_t data = local + 30 + le16(b, local + 26) + le16(b, local + 28);
    if (data + csize > b.size()) throw InvalidArgument(path.string() + ": truncated zip entry " + name);
    std::string raw;
    if (method == 0) {
      raw = b.substr(data, csize);
    } else if (method == 8) {
      raw.resize(usize);
      z_stream zs{};
      inflateInit2(&zs, -MAX_WBITS);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b.data() + data));
      zs.avail_in = static_cast<uInt>(csize);
      zs.next_out = reinterpret_cast<Bytef*>(raw.data());
      zs.avail_out = static_cast<uInt>(usize);
      int rc = inflate(&zs, Z_FINISH);
      inflateEnd(&zs);
      if (rc != Z_STREAM_END) throw InvalidArgument(path.string() + ": cannot inflate entry " + name);
    } else {
      throw InvalidArgument(path.string() + ": zip compression method " + std::to_string(method) + " not supported");
    }
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    Tensor t = parse_npy(raw, path.string() + ":" + name);
    t.name = name;
    out[name] = std::move(t);
  }
  return out;
}

}  // namespace oc
