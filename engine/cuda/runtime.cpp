// CUDA runtime plumbing (runtime.h). Row-major GEMM through column-major cuBLAS: a row-major
// C = A·B is the column-major Cᵀ = Bᵀ·Aᵀ, so the operands swap and keep their transposes.
#include "engine/cuda/runtime.h"

#include <dlfcn.h>

#include <climits>
#include <mutex>

#include "graph/errors.h"

namespace oc::cuda {

void fail(cudaError_t e, const char* what) {
  throw Error(std::string("CUDA error: ") + cudaGetErrorString(e) + " (" + what + ")");
}

void fail_blas(cublasStatus_t e, const char* what) {
  throw Error("cuBLAS error " + std::to_string(static_cast<int>(e)) + " (" + what + ")");
}

bool device_usable(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    if (why) *why = e != cudaSuccess ? std::string(cudaGetErrorString(e)) : std::string("no CUDA device");
    cudaGetLastError();  // clear the sticky error
    return false;
  }
  return true;
}

DevicePool::~DevicePool() {
  for (auto& [bytes, list] : free_)
    for (void* p : list) cudaFree(p);
}

void* DevicePool::get(size_t bytes) {
  in_use_ += bytes;
  auto it = free_.find(bytes);
  if (it != free_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    // Give cached blocks back and try once more before failing.
    cudaGetLastError();
    for (auto& [b, list] : free_) {
      for (void* q : list) cudaFree(q);
      held_ -= b * list.size();
      list.clear();
    }
    e = cudaMalloc(&p, bytes);
  }
  if (e != cudaSuccess) {
    in_use_ -= bytes;
    throw Error("CUDA: cannot allocate " + std::to_string(bytes) + " bytes on the device (" + cudaGetErrorString(e) +
                ")");
  }
  held_ += bytes;
  peak_ = std::max(peak_, held_);
  return p;
}

void DevicePool::put(void* p, size_t bytes) {
  in_use_ -= bytes;
  free_[bytes].push_back(p);
}

namespace {

template <typename F>
void resolve(void* lib, F& fn, const char* name, std::string& missing) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) missing += std::string(missing.empty() ? "" : ", ") + name;
}

}  // namespace

const Blas& Blas::get() {
  static std::once_flag once;
  static Blas blas;
  static std::string error;
  std::call_once(once, [] {
    const char* names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", "/usr/local/cuda/lib64/libcublas.so.13",
                           "/usr/local/cuda/lib64/libcublas.so"};
    void* lib = nullptr;
    for (const char* n : names)
      if ((lib = dlopen(n, RTLD_NOW | RTLD_LOCAL))) break;
    if (!lib) {
      error = "cuBLAS not found (tried libcublas.so.13, .so.12, .so and /usr/local/cuda/lib64; set LD_LIBRARY_PATH)";
      return;
    }
    std::string missing;
    resolve(lib, blas.create, "cublasCreate_v2", missing);
    resolve(lib, blas.destroy, "cublasDestroy_v2", missing);
    resolve(lib, blas.set_stream, "cublasSetStream_v2", missing);
    resolve(lib, blas.set_math_mode, "cublasSetMathMode", missing);
    resolve(lib, blas.sgemm, "cublasSgemm_v2", missing);
    resolve(lib, blas.sgemm_strided_batched, "cublasSgemmStridedBatched", missing);
    resolve(lib, blas.dsyrk, "cublasDsyrk_v2", missing);
    resolve(lib, blas.dgemv, "cublasDgemv_v2", missing);
    if (!missing.empty()) error = "cuBLAS lacks " + missing;
  });
  if (!error.empty()) throw UnsupportedError(error);
  return blas;
}

DeviceContext::DeviceContext() {
  std::string why;
  if (!device_usable(&why)) throw UnsupportedError("device cuda: no usable GPU (" + why + ")");
  blas_ = &Blas::get();
  OC_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  OC_BLAS_CHECK(blas_->create(&handle_));
  OC_BLAS_CHECK(blas_->set_stream(handle_, stream_));
  OC_BLAS_CHECK(blas_->set_math_mode(handle_, CUBLAS_PEDANTIC_MATH));
}

DeviceContext::~DeviceContext() {
  if (stream_) cudaStreamSynchronize(stream_);
  if (handle_) blas_->destroy(handle_);
  if (stream_) cudaStreamDestroy(stream_);
}

void DeviceContext::sync() const { OC_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void DeviceContext::upload(void* dst, const void* src, size_t bytes) const {
  if (bytes) OC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  // The host buffer may be freed right after: wait for the copy (pageable memory is staged anyway).
  sync();
}

void DeviceContext::download(void* dst, const void* src, size_t bytes) const {
  if (bytes) OC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  sync();
}

namespace {
int narrow(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) throw UnsupportedError(std::string("cuBLAS: ") + what + " exceeds 2^31");
  return static_cast<int>(v);
}
}  // namespace

void DeviceContext::gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                         int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) const {
  if (m == 0 || n == 0) return;
  OC_BLAS_CHECK(blas_->sgemm(handle_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                             narrow(n, "n"), narrow(m, "m"), narrow(k, "k"), &alpha, b, narrow(ldb, "ldb"), a,
                             narrow(lda, "lda"), &beta, c, narrow(ldc, "ldc")));
}

void DeviceContext::gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                                 int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float* c,
                                 int64_t ldc, int64_t stride_c, int64_t batch) const {
  if (m == 0 || n == 0 || batch == 0) return;
  const float one = 1.f, zero = 0.f;
  OC_BLAS_CHECK(blas_->sgemm_strided_batched(handle_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                             trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, narrow(n, "n"), narrow(m, "m"),
                                             narrow(k, "k"), &one, b, narrow(ldb, "ldb"), stride_b, a,
                                             narrow(lda, "lda"), stride_a, &zero, c, narrow(ldc, "ldc"), stride_c,
                                             narrow(batch, "batch")));
}

}  // namespace oc::cuda
