// The CUDA backend's observers, seen from code that has no CUDA headers (the runner itself is in
// engine/device_runner.h). Builds without nvcc get the same declarations.
#pragma once
#include <memory>
#include <string>

#include "engine/device_runner.h"
#include "engine/observers.h"

namespace oc {

// Device versions of the observers that dominate calibration cost (min/max, XᵀX); they take the
// value where the runner holds it and fall back to the host path for host values.
std::unique_ptr<Observer> make_cuda_minmax_observer(const std::string& value);
std::unique_ptr<Observer> make_cuda_gram_observer(const std::string& key, const LayerInput& in);

}  // namespace oc
