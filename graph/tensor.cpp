#include "graph/tensor.h"

#include <Eigen/Core>
#include <cstring>

namespace oc {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

void Tensor::check_access(size_t elem_size) const {
  int bits = dtype_bits(dtype);
  if (bits != static_cast<int>(elem_size * 8))
    throw Error("tensor '" + name + "': element type " + dtype_name(dtype) + " accessed as a " +
                std::to_string(elem_size * 8) + "-bit type");
}

float half_to_float(uint16_t h) { return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(h)); }
uint16_t float_to_half(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::half(f)); }

int Tensor::get_4bit(int64_t i) const {
  uint8_t b = bytes[static_cast<size_t>(i / 2)];
  int v = (i % 2 == 0) ? (b & 0x0F) : (b >> 4);
  if (dtype == DType::Int4 && v >= 8) v -= 16;
  return v;
}

template <typename Out, typename Fn>
static std::vector<Out> convert_all(const Tensor& t, const uint8_t* p, Fn&& cast) {
  const int64_t n = t.numel();
  std::vector<Out> out(static_cast<size_t>(n));
  auto load = [&](auto tag, int64_t i) {
    using T = decltype(tag);
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    return v;
  };
  if (t.bytes.size() < dtype_storage_bytes(t.dtype, n))
    throw Error("tensor '" + t.name + "' holds " + std::to_string(t.bytes.size()) + " bytes, shape " +
                shape_str(t.dims) + " needs " + std::to_string(dtype_storage_bytes(t.dtype, n)));
  for (int64_t i = 0; i < n; ++i) {
    double v;
    switch (t.dtype) {
      case DType::Float: v = load(float{}, i); break;
      case DType::Double: v = load(double{}, i); break;
      case DType::Float16: v = half_to_float(load(uint16_t{}, i)); break;
      case DType::BFloat16:
        v = static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(load(uint16_t{}, i)));
        break;
      case DType::Int8: v = load(int8_t{}, i); break;
      case DType::UInt8: v = load(uint8_t{}, i); break;
      case DType::Bool: v = load(uint8_t{}, i) != 0; break;
      case DType::Int16: v = load(int16_t{}, i); break;
      case DType::UInt16: v = load(uint16_t{}, i); break;
      case DType::Int32: v = load(int32_t{}, i); break;
      case DType::UInt32: v = load(uint32_t{}, i); break;
      case DType::Int64: out[static_cast<size_t>(i)] = cast(static_cast<int64_t>(load(int64_t{}, i))); continue;
      case DType::UInt64: v = static_cast<double>(load(uint64_t{}, i)); break;
      case DType::Int4: case DType::UInt4: {
        const uint8_t b = p[i / 2];
        int x = (i % 2 == 0) ? (b & 0x0F) : (b >> 4);
        if (t.dtype == DType::Int4 && x >= 8) x -= 16;
        v = x;
        break;
      }
      default: throw UnsupportedError("tensor '" + t.name + "': cannot convert " + dtype_name(t.dtype) + " values");
    }
    out[static_cast<size_t>(i)] = cast(v);
  }
  return out;
}

std::vector<float> Tensor::to_float() const {
  if (dtype == DType::Float) {
    std::vector<float> out(static_cast<size_t>(numel()));
    if (bytes.size() < out.size() * 4) throw Error("tensor '" + name + "' is shorter than its shape " + shape_str(dims));
    if (!out.empty()) bytes.view([&](const uint8_t* p) { std::memcpy(out.data(), p, out.size() * 4); });
    return out;
  }
  std::vector<float> out;
  bytes.view([&](const uint8_t* p) { out = convert_all<float>(*this, p, [](auto v) { return static_cast<float>(v); }); });
  return out;
}

std::vector<int64_t> Tensor::to_int64() const {
  std::vector<int64_t> out;
  bytes.view([&](const uint8_t* p) { out = convert_all<int64_t>(*this, p, [](auto v) { return static_cast<int64_t>(v); }); });
  return out;
}

template <typename T>
static Tensor make_plain(std::string name, DType t, std::vector<int64_t> dims, const std::vector<T>& v) {
  Tensor out;
  out.name = std::move(name);
  out.dtype = t;
  out.dims = std::move(dims);
  if (static_cast<int64_t>(v.size()) != out.numel())
    throw Error("tensor '" + out.name + "': " + std::to_string(v.size()) + " values for shape " + shape_str(out.dims));
  out.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.bytes.data(), v.data(), out.bytes.size());
  return out;
}

Tensor Tensor::from_float(std::string name, std::vector<int64_t> dims, const std::vector<float>& v) {
  return make_plain(std::move(name), DType::Float, std::move(dims), v);
}
Tensor Tensor::from_int64(std::string name, std::vector<int64_t> dims, const std::vector<int64_t>& v) {
  return make_plain(std::move(name), DType::Int64, std::move(dims), v);
}
Tensor Tensor::from_int32(std::string name, std::vector<int64_t> dims, const std::vector<int32_t>& v) {
  return make_plain(std::move(name), DType::Int32, std::move(dims), v);
}

Tensor Tensor::from_float_as(std::string name, DType t, std::vector<int64_t> dims, const std::vector<float>& v) {
  switch (t) {
    case DType::Float: return from_float(std::move(name), std::move(dims), v);
    case DType::Double: return make_plain(std::move(name), t, std::move(dims), std::vector<double>(v.begin(), v.end()));
    case DType::Float16: {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half(v[i]);
      return make_plain(std::move(name), t, std::move(dims), h);
    }
    case DType::BFloat16: {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) h[i] = Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(v[i]));
      return make_plain(std::move(name), t, std::move(dims), h);
    }
    default: throw UnsupportedError("cannot store float values as " + dtype_name(t));
  }
}

Tensor Tensor::from_4bit(std::string name, DType t, std::vector<int64_t> dims, const std::vector<int8_t>& v) {
  Tensor out;
  out.name = std::move(name);
  out.dtype = t;
  out.dims = std::move(dims);
  if (static_cast<int64_t>(v.size()) != out.numel())
    throw Error("tensor '" + out.name + "': " + std::to_string(v.size()) + " values for shape " + shape_str(out.dims));
  out.bytes.assign((v.size() + 1) / 2, 0);
  for (size_t i = 0; i < v.size(); ++i) {
    uint8_t nib = static_cast<uint8_t>(v[i]) & 0x0F;
    out.bytes[i / 2] |= (i % 2 == 0) ? nib : static_cast<uint8_t>(nib << 4);
  }
  return out;
}

std::string shape_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

}  // namespace oc
