// ONNX element types (values match TensorProto.DataType, including the INT4/UINT4 of
// newer ONNX that Debian's onnx 1.12 headers do not name).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace oc {

enum class DType : int32_t {
  Undefined = 0, Float = 1, UInt8 = 2, Int8 = 3, UInt16 = 4, Int16 = 5, Int32 = 6, Int64 = 7,
  String = 8, Bool = 9, Float16 = 10, Double = 11, UInt32 = 12, UInt64 = 13,
  Complex64 = 14, Complex128 = 15, BFloat16 = 16,
  Float8E4M3FN = 17, Float8E4M3FNUZ = 18, Float8E5M2 = 19, Float8E5M2FNUZ = 20,
  UInt4 = 21, Int4 = 22,
};

// Bits per element (4 for the packed 4-bit types, 0 for strings/unknown).
int dtype_bits(DType t);
// Bytes taken by n elements, rounding packed 4-bit types up.
size_t dtype_storage_bytes(DType t, int64_t n);
std::string dtype_name(DType t);
bool dtype_is_float(DType t);
bool dtype_is_integer(DType t);

}  // namespace oc
