// Device observers. Min/max: one block-reduced pass per value into two floats on the GPU.
// Gram: H += XᵀX in double with a cuBLAS rank-k update (DSYRK, lower triangle) and Σ rows with
// DGEMV against a ones vector, where X is the layer input viewed as rows × features:
//   Rows            X[rows, F] row-major = column-major [F, rows]:  H += A·Aᵀ
//   TransposedRows  X[F, M] row-major    = column-major [M, F]:     H += Aᵀ·A
//   Conv            im2col per image and group [F, P] row-major = column-major [P, F]: H += Aᵀ·A
// Values that reach an observer on the host (CPU fallbacks, graph inputs) take the host path of
// the CPU observer, and the two statistics are merged when stored.
#include <cfloat>
#include <mutex>

#include "engine/cuda/launch.h"
#include "engine/cuda/runtime.h"
#include "engine/cuda_backend.h"
#include "graph/errors.h"

namespace oc {
namespace {

using cuda::Blas;

// One cuBLAS handle for all observers, bound to the stream of the value at hand.
cublasHandle_t observer_blas(cudaStream_t s) {
  static std::mutex mu;
  static cublasHandle_t handle = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  const Blas& b = Blas::get();
  if (!handle) {
    OC_BLAS_CHECK(b.create(&handle));
    OC_BLAS_CHECK(b.set_math_mode(handle, CUBLAS_PEDANTIC_MATH));
  }
  OC_BLAS_CHECK(b.set_stream(handle, s));
  return handle;
}

// Plain device array (observers outlive the runner's pool).
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() {
    if (p_) cudaFree(p_);
  }
  T* ensure(size_t n) {
    if (n > n_) {
      if (p_) cudaFree(p_);
      p_ = nullptr;
      OC_CUDA_CHECK(cudaMalloc(&p_, n * sizeof(T)));
      n_ = n;
    }
    return p_;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  std::vector<T> download(size_t n) const {
    std::vector<T> h(n);
    if (n) OC_CUDA_CHECK(cudaMemcpy(h.data(), p_, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

class CudaMinMaxObserver : public Observer {
 public:
  explicit CudaMinMaxObserver(std::string value) : value_(std::move(value)), host_(value_) {}
  std::vector<std::string> watched() const override { return {value_}; }
  void observe(const std::string& name, const Tensor& t) override { host_.observe(name, t); }
  bool on_device() const override { return true; }
  void observe_device(const std::string&, const DeviceTensorView& v) override {
    auto s = static_cast<cudaStream_t>(v.stream);
    if (!mm_.get()) {
      const float init[2] = {FLT_MAX, -FLT_MAX};
      OC_CUDA_CHECK(cudaMemcpy(mm_.ensure(2), init, sizeof(init), cudaMemcpyHostToDevice));
    }
    cuda::minmax_update(s, v.data, v.numel(), mm_.get());
    seen_ += v.numel();
  }
  void store(CalibrationStats& out) const override {
    MinMaxStat st = host_.stat();
    if (seen_) {
      cudaDeviceSynchronize();
      const auto mm = mm_.download(2);
      if (mm[0] <= mm[1]) {  // some finite value was seen
        if (st.count == 0) st.min = mm[0], st.max = mm[1];
        st.min = std::min(st.min, mm[0]);
        st.max = std::max(st.max, mm[1]);
        st.count += seen_;  // elements seen (non-finite ones included on the device)
      }
    }
    out.minmax[value_] = st;
  }

 private:
  std::string value_;
  MinMaxObserver host_;
  DeviceArray<float> mm_;
  int64_t seen_ = 0;
};

class CudaGramObserver : public Observer {
 public:
  CudaGramObserver(std::string key, LayerInput in) : key_(std::move(key)), in_(std::move(in)), host_(key_, in_) {}
  std::vector<std::string> watched() const override { return {in_.value}; }
  void observe(const std::string& name, const Tensor& t) override {
    host_.observe(name, t);
    host_used_ = true;
  }
  bool on_device() const override { return true; }

  void observe_device(const std::string&, const DeviceTensorView& v) override {
    auto s = static_cast<cudaStream_t>(v.stream);
    const Blas& b = Blas::get();
    cublasHandle_t h = observer_blas(s);
    const int64_t F = in_.kind == LayerInput::Kind::TransposedRows ? (v.dims.empty() ? 0 : v.dims.front())
                                                                     : (in_.features > 0 ? in_.features
                                                                                         : (v.dims.empty() ? 0 : v.dims.back()));
    if (F <= 0) throw InvalidArgument("layer input '" + in_.value + "' has no features");
    const int64_t G = in_.groups;
    if (!features_) {
      features_ = F;
      OC_CUDA_CHECK(cudaMemsetAsync(h_.ensure(static_cast<size_t>(G * F * F)), 0, sizeof(double) * G * F * F, s));
      OC_CUDA_CHECK(cudaMemsetAsync(sum_.ensure(static_cast<size_t>(G * F)), 0, sizeof(double) * G * F, s));
    } else if (F != features_) {
      throw InvalidArgument("layer input '" + in_.value + "' changed from " + std::to_string(features_) + " to " +
                            std::to_string(F) + " features between batches");
    }
    const double one = 1.0;
    auto widen = [&](const float* x, int64_t n) {
      double* d = wide_.ensure(static_cast<size_t>(n));
      cuda::to_double(s, x, d, n);
      return d;
    };
    auto ones = [&](int64_t n) {
      if (static_cast<int64_t>(ones_.size()) < n) {
        cuda::fill_double(s, ones_.ensure(static_cast<size_t>(n)), n, 1.0);
      }
      return ones_.get();
    };
    if (in_.kind == LayerInput::Kind::Rows) {
      if (v.dims.empty() || v.dims.back() != F)
        throw InvalidArgument("layer input '" + in_.value + "' does not end in " + std::to_string(F) + " features");
      const int64_t rows = v.numel() / F;
      const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 24) / F);
      for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t n = std::min(chunk, rows - r0);
        const double* a = widen(v.data + r0 * F, n * F);
        OC_BLAS_CHECK(b.dsyrk(h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, int(F), int(n), &one, a, int(F), &one, h_.get(), int(F)));
        OC_BLAS_CHECK(b.dgemv(h, CUBLAS_OP_N, int(F), int(n), &one, a, int(F), ones(n), 1, &one, sum_.get(), 1));
      }
      rows_ += rows;
    } else if (in_.kind == LayerInput::Kind::TransposedRows) {
      if (v.dims.size() != 2) throw InvalidArgument("Gemm input '" + in_.value + "' (transA) is not 2-D");
      const int64_t M = v.dims[1];
      const double* a = widen(v.data, F * M);
      OC_BLAS_CHECK(b.dsyrk(h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, int(F), int(M), &one, a, int(M), &one, h_.get(), int(F)));
      OC_BLAS_CHECK(b.dgemv(h, CUBLAS_OP_T, int(M), int(F), &one, a, int(M), ones(M), 1, &one, sum_.get(), 1));
      rows_ += M;
    } else {
      conv_update(v, s, h, b, F);
    }
  }

  void store(CalibrationStats& out) const override {
    GramStat st;
    if (features_) {
      cudaDeviceSynchronize();
      const int64_t F = features_, G = in_.groups;
      const auto hd = h_.download(static_cast<size_t>(G * F * F));
      st.features = F;
      st.groups = G;
      st.rows = st.sampled_rows = rows_;
      st.xtx.resize(hd.size());
      st.col_sum = sum_.download(static_cast<size_t>(G * F));
      // Column-major lower triangle -> full symmetric row-major.
      for (int64_t gi = 0; gi < G; ++gi) {
        const double* src = hd.data() + gi * F * F;
        double* dst = st.xtx.data() + gi * F * F;
        for (int64_t j = 0; j < F; ++j)
          for (int64_t i = j; i < F; ++i) dst[i * F + j] = dst[j * F + i] = src[j * F + i];
      }
    }
    if (host_used_) {
      GramStat hs = host_.stat();
      if (!features_) st = std::move(hs);
      else if (hs.rows) {
        if (hs.features != st.features || hs.groups != st.groups)
          throw Error("Gram of '" + key_ + "': host and device batches disagree on the features");
        for (size_t i = 0; i < st.xtx.size(); ++i) st.xtx[i] += hs.xtx[i];
        for (size_t i = 0; i < st.col_sum.size(); ++i) st.col_sum[i] += hs.col_sum[i];
        st.rows += hs.rows;
        st.sampled_rows += hs.sampled_rows;
      }
    }
    out.grams[key_] = std::move(st);
  }

 private:
  void conv_update(const DeviceTensorView& v, cudaStream_t s, cublasHandle_t h, const Blas& b, int64_t F) {
    const size_t rank = v.dims.size();
    const bool one_d = in_.kernel[0] == 1 && rank == 3;
    if (!(rank == 4 || one_d) || v.dims[1] != in_.cin)
      throw InvalidArgument("Conv input '" + in_.value + "' does not have " + std::to_string(in_.cin) + " channels");
    const LayerInput::ConvExtent e = in_.conv_extent(v.dims);
    cuda::ConvGeometry g;
    g.c = in_.cin;
    g.h = e.H;
    g.w = e.W;
    g.groups = in_.groups;
    g.kh = in_.kernel[0], g.kw = in_.kernel[1], g.sh = in_.stride[0], g.sw = in_.stride[1];
    g.dh = in_.dilation[0], g.dw = in_.dilation[1];
    g.ph = e.pad_begin[0], g.pw = e.pad_begin[1], g.oh = e.OH, g.ow = e.OW;
    const int64_t P = g.oh * g.ow, cg = in_.cin / in_.groups, N = v.dims[0];
    if (cg * g.kh * g.kw != F) throw InvalidArgument("Conv input '" + in_.value + "': feature count mismatch");
    float* col = col_.ensure(static_cast<size_t>(F * P));
    double* a = wide_.ensure(static_cast<size_t>(F * P));
    const double one = 1.0;
    if (static_cast<int64_t>(ones_.size()) < P) cuda::fill_double(s, ones_.ensure(static_cast<size_t>(P)), P, 1.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t gi = 0; gi < in_.groups; ++gi) {
        cuda::im2col(s, v.data + n * in_.cin * g.h * g.w, col, g, gi * cg, cg);
        cuda::to_double(s, col, a, F * P);
        OC_BLAS_CHECK(b.dsyrk(h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, int(F), int(P), &one, a, int(P), &one,
                              h_.get() + gi * F * F, int(F)));
        OC_BLAS_CHECK(b.dgemv(h, CUBLAS_OP_T, int(P), int(F), &one, a, int(P), ones_.get(), 1, &one, sum_.get() + gi * F, 1));
      }
    rows_ += N * P;
  }

  std::string key_;
  LayerInput in_;
  GramObserver host_;
  bool host_used_ = false;
  int64_t features_ = 0, rows_ = 0;
  DeviceArray<double> h_, sum_, wide_, ones_;
  DeviceArray<float> col_;
};

}  // namespace

std::unique_ptr<Observer> make_cuda_minmax_observer(const std::string& value) {
  return std::make_unique<CudaMinMaxObserver>(value);
}

std::unique_ptr<Observer> make_cuda_gram_observer(const std::string& key, const LayerInput& in) {
  return std::make_unique<CudaGramObserver>(key, in);
}

}  // namespace oc
