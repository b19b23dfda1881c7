// A float32 value in GPU memory as the CUDA backend holds it, for observers that fold it into
// their statistic on the device instead of copying it to the host.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace oc {

struct DeviceTensorView {
  const float* data = nullptr;
  std::vector<int64_t> dims;
  void* stream = nullptr;  // the backend's cudaStream_t; work on the value must be queued on it
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

// Offered each watched float32 value that lives on the GPU before the host hook: returns true
// when it consumed the value on the device (the value is then not copied to the host for the
// host hook).
using DeviceValueHook = std::function<bool(const std::string& name, const DeviceTensorView& value)>;

}  // namespace oc
