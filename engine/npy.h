// NumPy .npy files: how run inputs, outputs and evaluation labels enter and leave the toolkit. The
// calibration reader (engine/calib_data.cpp) reads .npy and .npz data in ranges, with the header
// parser below.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "graph/tensor.h"

namespace oc {

Tensor read_npy(const std::filesystem::path& path);
Tensor parse_npy(const std::string& bytes, const std::string& what);
// A .npy header; `bytes` starts at the magic and holds at least the whole header (the data may be
// cut off). `what` names the array in errors. The calibration reader reads data ranges itself.
struct NpyHeader {
  DType dtype = DType::Undefined;
  std::vector<int64_t> dims;
  size_t data_offset = 0;  // header bytes before the data
};
NpyHeader parse_npy_header(const std::string& bytes, const std::string& what);
// Size of the whole header from a file's first 12 bytes; 0 when they do not start a .npy.
size_t npy_header_size(const std::string& first_bytes);
void write_npy(const std::filesystem::path& path, const Tensor& t);  // atomic
std::string serialize_npy(const Tensor& t);
// `name` with every character outside [A-Za-z0-9._-] replaced by '_' (output file names).
std::string safe_file_name(const std::string& name);

}  // namespace oc
