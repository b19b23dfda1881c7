// NumPy .npy / .npz files: how calibration data and executor outputs enter and leave the toolkit.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include "graph/tensor.h"

namespace oc {

Tensor read_npy(const std::filesystem::path& path);
Tensor parse_npy(const std::string& bytes, const std::string& what);
void write_npy(const std::filesystem::path& path, const Tensor& t);  // atomic
std::string serialize_npy(const Tensor& t);
// .npz written by numpy.savez (stored) or savez_compressed (deflate); keys without ".npy".
std::map<std::string, Tensor> read_npz(const std::filesystem::path& path);
// `name` with every character outside [A-Za-z0-9._-] replaced by '_' (output file names).
std::string safe_file_name(const std::string& name);

}  // namespace oc
