// A constant tensor (initializer or Constant-node value) as little-endian bytes, exactly as ONNX
// raw_data lays them out (4-bit types packed two per byte, low nibble first). External data stays in
// its file, mapped on first access (graph/bytes.h); to_float/to_int64 of an unmapped range read it
// through a mapping held for the call only, so converting a weight does not keep its bytes resident.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "graph/bytes.h"
#include "graph/dtype.h"
#include "graph/errors.h"

namespace oc {

struct Tensor {
  std::string name;
  DType dtype = DType::Float;
  std::vector<int64_t> dims;
  Bytes bytes;                      // raw storage (owned or a mapped file range); for String tensors unused
  std::vector<std::string> strings; // String tensors only

  int64_t numel() const;
  size_t nbytes() const { return bytes.size(); }

  // Typed access; throws if T does not match the element type's size.
  template <typename T> T* data() { check_access(sizeof(T)); return reinterpret_cast<T*>(bytes.data()); }
  template <typename T> const T* data() const { check_access(sizeof(T)); return reinterpret_cast<const T*>(bytes.data()); }

  // Value conversion for any numeric type (fp16/bf16/ints/packed int4 included).
  std::vector<float> to_float() const;
  std::vector<int64_t> to_int64() const;

  static Tensor from_float(std::string name, std::vector<int64_t> dims, const std::vector<float>& v);
  static Tensor from_int64(std::string name, std::vector<int64_t> dims, const std::vector<int64_t>& v);
  static Tensor from_int32(std::string name, std::vector<int64_t> dims, const std::vector<int32_t>& v);
  // Packs values already in range for Int4 ([-8,7]) or UInt4 ([0,15]).
  static Tensor from_4bit(std::string name, DType t, std::vector<int64_t> dims, const std::vector<int8_t>& v);
  // Converts float values to `t` (Float, Float16, BFloat16, Double).
  static Tensor from_float_as(std::string name, DType t, std::vector<int64_t> dims, const std::vector<float>& v);

  // Unpacked 4-bit element i (sign-extended for Int4).
  int get_4bit(int64_t i) const;

 private:
  void check_access(size_t elem_size) const;
};

std::string shape_str(const std::vector<int64_t>& dims);
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

}  // namespace oc
