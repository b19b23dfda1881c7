// The executor's CUDA backend, seen from code that has no CUDA headers. Builds without nvcc get
// the same declarations; cuda_usable() then says why there is no device and make_cuda_runner
// throws UnsupportedError.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>

#include "compressor/executor.h"
#include "compressor/observers.h"

namespace oc {

// Whether `--device cuda` can run here; `why` gets the reason when not ("this build has no CUDA
// backend", "no CUDA-capable device is detected", "cuBLAS not found ...").
bool cuda_usable(std::string* why = nullptr);

// Runs the main graph of a model on the GPU with per-node CPU fallback (see compressor/cuda/runner.cpp).
class DeviceRunner {
 public:
  virtual ~DeviceRunner() = default;
  virtual std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs, const ValueHook& hook,
                                            const std::set<std::string>& watch, const DeviceValueHook& device_hook,
                                            Executor::RunStats& stats) = 0;
};
std::unique_ptr<DeviceRunner> make_cuda_runner(Executor& executor);

// Device versions of the observers that dominate calibration cost (min/max, XᵀX); they take the
// value where the runner holds it and fall back to the host path for host values.
std::unique_ptr<Observer> make_cuda_minmax_observer(const std::string& value);
std::unique_ptr<Observer> make_cuda_gram_observer(const std::string& key, const LayerInput& in);

}  // namespace oc
