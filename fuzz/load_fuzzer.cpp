// libFuzzer target for the ONNX loader: bytes -> load_model_from_bytes -> normalize -> serialize.
// Any oc::Error is an accepted answer to hostile input; anything else (crash, sanitizer report,
// foreign exception, huge allocation) is a bug in graph/. Built and run by fuzz/run.sh, not CI.
#include <cstddef>
#include <cstdint>
#include <string>

#include "graph/errors.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    // Empty base_dir: external data is refused, so the fuzzer never reads files.
    oc::Model m = oc::load_model_from_bytes(bytes, {});
    oc::normalize(m);
    std::string out = oc::serialize_model(m);
    // What we write must load again.
    oc::Model back = oc::load_model_from_bytes(out, {});
    (void)back;
  } catch (const oc::Error&) {
  }
  return 0;
}
