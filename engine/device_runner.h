// The executor's device backend as the executor sees it: an interface with no CUDA headers.
// Builds without nvcc get the same declarations; cuda_usable() then says why there is no device
// and make_cuda_runner throws UnsupportedError.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>

#include "engine/executor.h"

namespace oc {

// Whether `--device cuda` can run here; `why` gets the reason when not ("this build has no CUDA
// backend", "no CUDA-capable device is detected", "cuBLAS not found ...").
bool cuda_usable(std::string* why = nullptr);

// Runs the main graph of a model on the GPU with per-node CPU fallback (see engine/cuda/runner.cpp).
class DeviceRunner {
 public:
  virtual ~DeviceRunner() = default;
  virtual std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs, const ValueHook& hook,
                                            const std::set<std::string>& watch, const DeviceValueHook& device_hook,
                                            Executor::RunStats& stats) = 0;
};
std::unique_ptr<DeviceRunner> make_cuda_runner(Executor& executor);

}  // namespace oc
