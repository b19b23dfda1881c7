// What the host CPU offers the integer kernels of ONNX Runtime's MLAS (and ours), read once.
#pragma once

namespace oc {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512_vnni = false;
  // AMX tiles with int8 dot products (CPUID.7.0:EDX bits 24 and 25) that the OS has enabled
  // (XCR0 bits 17-18): what MLAS checks before it dispatches QGEMM to AMX.
  bool amx_int8 = false;
};

const CpuFeatures& host_cpu_features();

}  // namespace oc
