#include "engine/npy.h"
#include "graph/file_io.h"

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

size_t npy_header_size(const std::string& b) {
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) return 0;
  const int major = static_cast<unsigned char>(b[6]);
  const size_t hstart = major == 1 ? 10 : 12;
  if (b.size() < hstart) return 0;
  return hstart + (major == 1 ? le16(b, 8) : le32(b, 8));
}

NpyHeader parse_npy_header(const std::string& b, const std::string& what) {
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
  NpyHeader h;
  std::stringstream shape(m[1].str());
  std::string item;
  while (std::getline(shape, item, ',')) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    h.dims.push_back(std::stoll(item));
  }
  bool found = false;
  for (const auto& ty : kTypes)
    if (descr == ty.descr) { h.dtype = ty.dtype; found = true; }
  if (!found) throw InvalidArgument(what + ": .npy dtype '" + descr + "' is not supported (use float32, int64, ...)");
  h.data_offset = hstart + hlen;
  return h;
}

Tensor parse_npy(const std::string& b, const std::string& what) {
  const NpyHeader h = parse_npy_header(b, what);
  Tensor t;
  t.name = what;
  t.dims = h.dims;
  t.dtype = h.dtype;
  const size_t need = dtype_storage_bytes(t.dtype, t.numel());
  if (b.size() < h.data_offset + need)
    throw InvalidArgument(what + ": .npy data is truncated (" + std::to_string(b.size() - h.data_offset) + " of " +
                          std::to_string(need) + " bytes)");
  t.bytes.assign(b.begin() + static_cast<std::ptrdiff_t>(h.data_offset),
                 b.begin() + static_cast<std::ptrdiff_t>(h.data_offset + need));
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

}  // namespace oc
