// Typed errors. The library never exits; the CLI turns these into one-line messages.
#pragma once
#include <stdexcept>
#include <string>

namespace oc {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The input file is not a usable ONNX model (not protobuf, truncated, bad external data).
struct LoadError : Error { using Error::Error; };
// A valid model uses something this toolkit does not handle (operator, dtype, layout).
struct UnsupportedError : Error { using Error::Error; };
// The caller asked for something impossible or malformed (bad option, impossible target, wrong shape).
struct InvalidArgument : Error { using Error::Error; };
// Writing an output failed.
struct SaveError : Error { using Error::Error; };
// The operation was cancelled through a progress callback.
struct Cancelled : Error { using Error::Error; };

}  // namespace oc
