// The CUDA backend's entry points in builds without nvcc: they say there is no device.
#include "engine/cuda_backend.h"

#include "graph/errors.h"

#ifndef OC_HAVE_CUDA
namespace oc {

bool cuda_usable(std::string* why) {
  if (why) *why = "this build has no CUDA backend (nvcc was not found when it was configured)";
  return false;
}

std::unique_ptr<DeviceRunner> make_cuda_runner(Executor&) {
  throw UnsupportedError("device cuda: this build has no CUDA backend (rebuild with nvcc available)");
}

std::unique_ptr<Observer> make_cuda_minmax_observer(const std::string&) { return nullptr; }
std::unique_ptr<Observer> make_cuda_gram_observer(const std::string&, const LayerInput&) { return nullptr; }

}  // namespace oc
#endif
