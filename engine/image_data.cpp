// Image decoding (libpng's simplified API, libjpeg-turbo), resampling and normalization; see image_data.h.
#include "engine/image_data.h"

#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "graph/errors.h"

namespace oc {
namespace fs = std::filesystem;

ImageOptions::Resize parse_resize(const std::string& s) {
  if (s == "shorter") return ImageOptions::Resize::Shorter;
  if (s == "exact") return ImageOptions::Resize::Exact;
  if (s == "none") return ImageOptions::Resize::None;
  throw InvalidArgument("--resize expects shorter, exact or none, got '" + s + "'");
}

const char* resize_name(ImageOptions::Resize r) {
  switch (r) {
    case ImageOptions::Resize::Shorter: return "shorter";
    case ImageOptions::Resize::Exact: return "exact";
    case ImageOptions::Resize::None: return "none";
  }
  return "?";
}

bool is_image_path(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

namespace {

enum class Kind { Png, Jpeg };

Kind sniff(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw InvalidArgument("cannot open image '" + p.string() + "'");
  unsigned char b[8] = {};
  f.read(reinterpret_cast<char*>(b), 8);
  if (f.gcount() == 8 && png_sig_cmp(b, 0, 8) == 0) return Kind::Png;
  if (f.gcount() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Kind::Jpeg;
  throw InvalidArgument("image '" + p.string() + "' is neither PNG nor JPEG (unreadable or corrupt)");
}

Image png_read(const fs::path& p, bool header_only) {
  png_image im;
  std::memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  auto fail = [&](const char* stage) {
    std::string msg = im.message[0] ? im.message : stage;
    png_image_free(&im);
    return InvalidArgument("image '" + p.string() + "' is not a readable PNG (" + msg + ")");
  };
  if (!png_image_begin_read_from_file(&im, p.c_str())) throw fail("header");
  Image img;
  img.width = im.width;
  img.height = im.height;
  img.channels = (im.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  if (header_only) {
    png_image_free(&im);
    return img;
  }
  im.format = img.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  img.pixels.resize(PNG_IMAGE_SIZE(im));
  // Alpha is composited onto the buffer (zero-filled: black), libpng's behaviour with no background.
  if (!png_image_finish_read(&im, nullptr, img.pixels.data(), 0, nullptr)) throw fail("data");
  png_image_free(&im);
  return img;
}

struct JpegErr {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErr*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}
void jpeg_quiet(j_common_ptr, int) {}

// Everything with a destructor lives outside the setjmp frame.
struct JpegFile {
  std::FILE* f = nullptr;
  ~JpegFile() { if (f) std::fclose(f); }
};

bool jpeg_decode(std::FILE* f, bool header_only, Image& img, char* message) {
  jpeg_decompress_struct cinfo;
  JpegErr err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_fail;
  err.mgr.emit_message = jpeg_quiet;
  if (setjmp(err.jump)) {
    std::strcpy(message, err.message);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  const bool gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
  cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  img.width = cinfo.image_width;
  img.height = cinfo.image_height;
  img.channels = gray ? 1 : 3;
  if (!header_only) {
    jpeg_start_decompress(&cinfo);
    const size_t stride = static_cast<size_t>(cinfo.output_width) * static_cast<size_t>(cinfo.output_components);
    img.pixels.resize(stride * cinfo.output_height);
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = img.pixels.data() + stride * cinfo.output_scanline;
      jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
  }
  jpeg_destroy_decompress(&cinfo);
  return true;
}

Image jpeg_read(const fs::path& p, bool header_only) {
  JpegFile jf;
  jf.f = std::fopen(p.c_str(), "rb");
  if (!jf.f) throw InvalidArgument("cannot open image '" + p.string() + "'");
  Image img;
  char message[JMSG_LENGTH_MAX] = {};
  if (!jpeg_decode(jf.f, header_only, img, message))
    throw InvalidArgument("image '" + p.string() + "' is not a readable JPEG (" + message + ")");
  return img;
}

}  // namespace

Image read_image(const fs::path& p) { return sniff(p) == Kind::Png ? png_read(p, false) : jpeg_read(p, false); }
Image read_image_header(const fs::path& p) { return sniff(p) == Kind::Png ? png_read(p, true) : jpeg_read(p, true); }

void write_png(const fs::path& p, const Image& img) {
  png_image im;
  std::memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  im.width = static_cast<png_uint_32>(img.width);
  im.height = static_cast<png_uint_32>(img.height);
  im.format = img.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&im, p.c_str(), 0, img.pixels.data(), 0, nullptr))
    throw SaveError("cannot write PNG '" + p.string() + "': " + im.message);
}

namespace {
bool jpeg_encode(std::FILE* f, const Image& img, int quality, char* message) {
  jpeg_compress_struct cinfo;
  JpegErr err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_fail;
  if (setjmp(err.jump)) {
    std::strcpy(message, err.message);
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, f);
  cinfo.image_width = static_cast<JDIMENSION>(img.width);
  cinfo.image_height = static_cast<JDIMENSION>(img.height);
  cinfo.input_components = static_cast<int>(img.channels);
  cinfo.in_color_space = img.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  const size_t stride = static_cast<size_t>(img.width * img.channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(img.pixels.data() + stride * cinfo.next_scanline);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}
}  // namespace

void write_jpeg(const fs::path& p, const Image& img, int quality) {
  JpegFile jf;
  jf.f = std::fopen(p.c_str(), "wb");
  if (!jf.f) throw SaveError("cannot write JPEG '" + p.string() + "'");
  char message[JMSG_LENGTH_MAX] = {};
  if (!jpeg_encode(jf.f, img, quality, message)) throw SaveError("cannot write JPEG '" + p.string() + "': " + message);
}

// ---------------- layout ----------------
std::vector<int64_t> ImageLayout::sample_dims() const {
  return nchw ? std::vector<int64_t>{1, channels, height, width} : std::vector<int64_t>{1, height, width, channels};
}

ImageLayout image_layout(const ValueInfo& in, const std::vector<int64_t>& given) {
  std::vector<int64_t> d;
  if (!given.empty()) d = given;
  else if (in.has_shape)
    for (const Dim& x : in.shape) d.push_back(x.known() ? x.value : -1);
  const std::string shape = in.has_shape ? shape_str(in.shape) : std::string("[?]");
  if (d.size() != 4)
    throw InvalidArgument("model input '" + in.name + "' " + shape +
                          " is not an image input (images feed rank-4 NCHW or NHWC inputs with 1 or 3 channels)");
  if (in.dtype != DType::Float && in.dtype != DType::Float16 && in.dtype != DType::Double && in.dtype != DType::UInt8)
    throw InvalidArgument("model input '" + in.name + "' is " + dtype_name(in.dtype) +
                          ": images feed float or uint8 inputs");
  ImageLayout lay;
  lay.dtype = in.dtype;
  if (d[1] == 1 || d[1] == 3) lay.nchw = true;
  else if (d[3] == 1 || d[3] == 3) lay.nchw = false;
  else
    throw InvalidArgument("model input '" + in.name + "' " + shape +
                          " has no channel axis of 1 or 3 (NCHW dim 1 or NHWC dim 3): not an image input");
  lay.channels = lay.nchw ? d[1] : d[3];
  lay.height = lay.nchw ? d[2] : d[1];
  lay.width = lay.nchw ? d[3] : d[2];
  if (lay.height <= 0 || lay.width <= 0)
    throw InvalidArgument("model input '" + in.name + "' " + shape + " has a symbolic height or width: give --input-shape " +
                          in.name + (lay.nchw ? "=1," + std::to_string(lay.channels) + ",H,W" : "=1,H,W," + std::to_string(lay.channels)));
  return lay;
}

void check_image_options(const ImageOptions& opt, const ImageLayout& lay) {
  auto check = [&](const std::vector<float>& v, const char* name) {
    if (v.size() > 1 && static_cast<int64_t>(v.size()) != lay.channels)
      throw InvalidArgument(std::string("--") + name + " has " + std::to_string(v.size()) + " values but the model input has " +
                            std::to_string(lay.channels) + " channel" + (lay.channels == 1 ? "" : "s") + " (give one value or one per channel)");
  };
  check(opt.mean, "mean");
  check(opt.std, "std");
  for (float s : opt.std)
    if (!(s > 0) || !std::isfinite(s)) throw InvalidArgument("--std values must be positive, got " + std::to_string(s));
  for (float m : opt.mean)
    if (!std::isfinite(m)) throw InvalidArgument("--mean values must be finite");
  if (lay.dtype == DType::UInt8 && (!opt.mean.empty() || !opt.std.empty()))
    throw InvalidArgument("the model input is uint8 (raw 0..255 pixels): --mean and --std do not apply");
}

// ---------------- resampling ----------------
namespace {

// Weights of a 1-D triangle-filter resample from n to m samples (pixel centres at i + 0.5); the
// filter widens by n/m when shrinking, so every source pixel contributes (antialiasing).
struct Taps {
  std::vector<int64_t> first;
  std::vector<std::vector<float>> w;
};

Taps taps(int64_t n, int64_t m) {
  Taps t;
  const double scale = static_cast<double>(n) / static_cast<double>(m);
  const double support = std::max(1.0, scale);
  for (int64_t j = 0; j < m; ++j) {
    const double centre = (static_cast<double>(j) + 0.5) * scale;
    int64_t lo = static_cast<int64_t>(std::floor(centre - support));
    int64_t hi = static_cast<int64_t>(std::ceil(centre + support));
    lo = std::max<int64_t>(lo, 0);
    hi = std::min<int64_t>(hi, n);
    std::vector<float> w;
    double sum = 0;
    for (int64_t i = lo; i < hi; ++i) {
      const double x = (static_cast<double>(i) + 0.5 - centre) / support;
      const double v = std::max(0.0, 1.0 - std::fabs(x));
      w.push_back(static_cast<float>(v));
      sum += v;
    }
    if (sum <= 0) {  // cannot happen for n, m >= 1; keep the nearest pixel
      lo = std::clamp<int64_t>(static_cast<int64_t>(centre), 0, n - 1);
      w.assign(1, 1.f);
      sum = 1;
    }
    for (auto& x : w) x = static_cast<float>(x / sum);
    t.first.push_back(lo);
    t.w.push_back(std::move(w));
  }
  return t;
}

}  // namespace

Image resize_image(const Image& img, int64_t width, int64_t height) {
  if (img.width == width && img.height == height) return img;
  const int64_t c = img.channels;
  const Taps tx = taps(img.width, width), ty = taps(img.height, height);
  // Horizontal pass into floats, then vertical pass with rounding.
  std::vector<float> mid(static_cast<size_t>(img.height * width * c));
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t k = 0; k < c; ++k) {
        float s = 0;
        const auto& w = tx.w[static_cast<size_t>(x)];
        for (size_t i = 0; i < w.size(); ++i)
          s += w[i] * img.pixels[static_cast<size_t>((y * img.width + tx.first[static_cast<size_t>(x)] + static_cast<int64_t>(i)) * c + k)];
        mid[static_cast<size_t>((y * width + x) * c + k)] = s;
      }
  Image out;
  out.width = width;
  out.height = height;
  out.channels = c;
  out.pixels.resize(static_cast<size_t>(width * height * c));
  for (int64_t y = 0; y < height; ++y) {
    const auto& w = ty.w[static_cast<size_t>(y)];
    for (int64_t x = 0; x < width; ++x)
      for (int64_t k = 0; k < c; ++k) {
        float s = 0;
        for (size_t i = 0; i < w.size(); ++i)
          s += w[i] * mid[static_cast<size_t>(((ty.first[static_cast<size_t>(y)] + static_cast<int64_t>(i)) * width + x) * c + k)];
        out.pixels[static_cast<size_t>((y * width + x) * c + k)] = static_cast<uint8_t>(std::clamp(std::lround(s), 0L, 255L));
      }
  }
  return out;
}

Tensor image_to_tensor(const Image& src, const ImageLayout& lay, const ImageOptions& opt, const std::string& what) {
  if (src.channels == 3 && lay.channels == 1)
    throw InvalidArgument("image '" + what + "' is colour (RGB) but the model input takes 1 channel: convert the images to grayscale");
  const int64_t H = lay.height, W = lay.width;
  Image img;
  int64_t x0 = 0, y0 = 0;
  switch (opt.resize) {
    case ImageOptions::Resize::None:
      if (src.width != W || src.height != H)
        throw InvalidArgument("image '" + what + "' is " + std::to_string(src.width) + "x" + std::to_string(src.height) +
                              " but the model input takes " + std::to_string(W) + "x" + std::to_string(H) +
                              " (--resize none; use --resize shorter or exact)");
      img = src;
      break;
    case ImageOptions::Resize::Exact:
      img = resize_image(src, W, H);
      break;
    case ImageOptions::Resize::Shorter: {
      // Scale so the image covers W×H with its aspect kept, then take the centre.
      const double s = std::max(static_cast<double>(W) / static_cast<double>(src.width),
                                static_cast<double>(H) / static_cast<double>(src.height));
      const int64_t nw = std::max<int64_t>(W, std::llround(static_cast<double>(src.width) * s));
      const int64_t nh = std::max<int64_t>(H, std::llround(static_cast<double>(src.height) * s));
      img = resize_image(src, nw, nh);
      x0 = (nw - W) / 2;
      y0 = (nh - H) / 2;
      break;
    }
  }
  const int64_t C = lay.channels;
  auto value_of = [&](int64_t y, int64_t x, int64_t c) -> uint8_t {
    const int64_t sc = img.channels == 1 ? 0 : (opt.bgr ? C - 1 - c : c);
    return img.pixels[static_cast<size_t>(((y + y0) * img.width + (x + x0)) * img.channels + sc)];
  };
  auto index = [&](int64_t y, int64_t x, int64_t c) {
    return static_cast<size_t>(lay.nchw ? (c * H + y) * W + x : (y * W + x) * C + c);
  };
  Tensor t;
  t.dims = lay.sample_dims();
  if (lay.dtype == DType::UInt8) {
    t.dtype = DType::UInt8;
    t.bytes.resize(static_cast<size_t>(C * H * W));
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        for (int64_t c = 0; c < C; ++c) t.bytes[index(y, x, c)] = value_of(y, x, c);
    return t;
  }
  std::vector<float> v(static_cast<size_t>(C * H * W));
  for (int64_t c = 0; c < C; ++c) {
    const float mean = opt.mean.empty() ? 0.f : opt.mean[opt.mean.size() == 1 ? 0 : static_cast<size_t>(c)];
    const float sd = opt.std.empty() ? 1.f : opt.std[opt.std.size() == 1 ? 0 : static_cast<size_t>(c)];
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) v[index(y, x, c)] = (static_cast<float>(value_of(y, x, c)) / 255.f - mean) / sd;
  }
  return Tensor::from_float_as("", lay.dtype, t.dims, v);
}

// ---------------- folders ----------------
ImageFolder image_folder(const fs::path& dir) {
  ImageFolder f;
  std::vector<fs::path> top;
  std::vector<fs::path> subdirs;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (e.is_directory()) subdirs.push_back(e.path());
    else if (e.is_regular_file() && is_image_path(e.path())) top.push_back(e.path());
  }
  auto by_name = [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); };
  std::sort(top.begin(), top.end(), by_name);
  std::sort(subdirs.begin(), subdirs.end(), by_name);
  std::vector<std::vector<fs::path>> per_class;
  bool any_sub = false;
  for (const auto& d : subdirs) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(d))
      if (e.is_regular_file() && is_image_path(e.path()) && e.path().filename().string()[0] != '.') files.push_back(e.path());
    std::sort(files.begin(), files.end(), by_name);
    any_sub |= !files.empty();
    per_class.push_back(std::move(files));
  }
  if (!any_sub) {
    f.files = std::move(top);
    return f;
  }
  if (!top.empty())
    throw InvalidArgument("image folder '" + dir.string() + "' has images both at the top (" + top[0].filename().string() +
                          ") and in class sub-folders: use one or the other");
  for (size_t k = 0; k < subdirs.size(); ++k) {
    if (per_class[k].empty())
      throw InvalidArgument("class folder '" + subdirs[k].string() + "' has no .png/.jpg images (every sub-folder is a class)");
    f.classes.push_back(subdirs[k].filename().string());
  }
  // Round robin over the classes, so the first N samples cover them all.
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (size_t k = 0; k < per_class.size(); ++k)
      if (i < per_class[k].size()) {
        f.files.push_back(per_class[k][i]);
        f.labels.push_back(static_cast<int64_t>(k));
        any = true;
      }
    if (!any) break;
  }
  return f;
}

}  // namespace oc
