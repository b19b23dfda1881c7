// Images as model inputs: PNG (libpng) and JPEG (libjpeg-turbo) files decoded, resized, cropped
// and normalized into one sample of an image-shaped model input.
//
// The model input decides the tensor: rank 4, NCHW when dim 1 is 1 or 3, else NHWC when dim 3 is
// 1 or 3; height and width from the model (or the given shape where they are symbolic). A
// grayscale image feeds a 3-channel input by repetition; a colour image for a 1-channel input is an
// error (convert the images). Alpha is dropped.
//
// Pixels: resized (`shorter`: scaled so the image covers H×W keeping its aspect, then centre-cropped;
// `exact`: scaled to H×W; `none`: the image must be H×W), with a triangle (bilinear) filter widened
// when downscaling (antialiased, as PIL's bilinear resize); then v/255, then (v − mean[c]) / std[c];
// RGB channel order unless `bgr`. A uint8 model input gets the resized 0..255 values unchanged.
//
// Folders (image_folder): images directly in DIR are unlabelled samples in file-name order; or one
// sub-folder per class, whose sorted names give the class indices 0, 1, ... (as torchvision's
// ImageFolder); samples then alternate between classes (first image of each class, then the second
// of each, ...) so the first N samples cover every class.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc {

struct ImageOptions {
  enum class Resize { Shorter, Exact, None };
  std::vector<float> mean;  // empty: 0; one value or one per channel
  std::vector<float> std;   // empty: 1; one value or one per channel (> 0)
  bool bgr = false;
  Resize resize = Resize::Shorter;
};
ImageOptions::Resize parse_resize(const std::string& s);  // shorter | exact | none
const char* resize_name(ImageOptions::Resize r);

// 8-bit interleaved pixels, 1 (gray) or 3 (RGB) channels.
struct Image {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

bool is_image_path(const std::filesystem::path& p);  // .png .jpg .jpeg (any case)
// Decodes a PNG or JPEG (by content, not extension). Throws InvalidArgument naming the file.
Image read_image(const std::filesystem::path& p);
// Width, height and channels from the file's header only. Throws InvalidArgument naming the file.
Image read_image_header(const std::filesystem::path& p);
// Writers (tests, examples): 8-bit gray or RGB.
void write_png(const std::filesystem::path& p, const Image& img);
void write_jpeg(const std::filesystem::path& p, const Image& img, int quality = 95);

// Where the image goes in a model input.
struct ImageLayout {
  bool nchw = true;
  int64_t channels = 3, height = 0, width = 0;
  DType dtype = DType::Float;
  std::vector<int64_t> sample_dims() const;  // [1,C,H,W] or [1,H,W,C]
};
// From the model input (dims as in the model; `given` replaces them when not empty). Throws
// InvalidArgument when the input is not image-shaped or H/W are symbolic and not given.
ImageLayout image_layout(const ValueInfo& input, const std::vector<int64_t>& given = {});
// Checks mean/std counts against the layout's channels (throws InvalidArgument).
void check_image_options(const ImageOptions& opt, const ImageLayout& lay);

Image resize_image(const Image& img, int64_t width, int64_t height);
// One sample, converted to the layout's dtype. `what` names the file in errors.
Tensor image_to_tensor(const Image& img, const ImageLayout& lay, const ImageOptions& opt, const std::string& what);

struct ImageFolder {
  std::vector<std::filesystem::path> files;  // in sample order
  std::vector<int64_t> labels;               // per file; empty when unlabelled
  std::vector<std::string> classes;          // sorted sub-folder names
};
// Empty `files` when the folder holds no images at all. Throws InvalidArgument for a folder that
// mixes top-level images and class sub-folders, or a class folder without images.
ImageFolder image_folder(const std::filesystem::path& dir);

}  // namespace oc
