// Image calibration/evaluation data (engine/image_data.h): PNG/JPEG decoding against known pixels,
// NCHW vs NHWC, mean/std, BGR, resize and centre crop, labels from class folders, bad files; and
// NaN/Inf in calibration data (an error naming input, file and sample, or skipped and counted).
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "compressor/evaluate.h"
#include "engine/calib_data.h"
#include "engine/image_data.h"
#include "engine/npy.h"
#include "graph/errors.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "support.h"

using namespace oc;
using test::error_of;
namespace fs = std::filesystem;

namespace {

Model image_model(std::vector<int64_t> dims, DType dt = DType::Float) {
  Model m = test::new_model(13);
  ValueInfo v = test::tensor_value("x", {}, dt);
  v.has_shape = true;
  v.shape.clear();
  for (auto d : dims) v.shape.push_back(d < 0 ? Dim::sym("N") : Dim::of(d));
  m.graph.inputs.push_back(v);
  return m;
}

// w×h image whose pixel (x, y, c) is f(x, y, c).
Image make_image(int64_t w, int64_t h, int64_t c, const std::function<int(int64_t, int64_t, int64_t)>& f) {
  Image img;
  img.width = w;
  img.height = h;
  img.channels = c;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t k = 0; k < c; ++k) img.pixels.push_back(static_cast<uint8_t>(f(x, y, k)));
  return img;
}

int pattern(int64_t x, int64_t y, int64_t c) { return static_cast<int>((17 * x + 40 * y + 90 * c) % 256); }

std::vector<float> first_sample(const std::string& spec, const Model& m, CalibrationDataOptions o = {}) {
  CalibrationSource src(spec, m, o);
  std::map<std::string, Tensor> b;
  REQUIRE(src.next(b));
  return b.at("x").to_float();
}

// GlobalAveragePool + Flatten: logits = per-channel mean, so the argmax is the dominant colour.
Model colour_classifier() {
  Model m = image_model({-1, 3, 4, 4});
  m.graph.nodes.push_back(test::make_node("GlobalAveragePool", {"x"}, {"p"}, "pool"));
  m.graph.nodes.push_back(test::make_node("Flatten", {"p"}, {"logits"}, "flat"));
  m.graph.outputs.push_back(test::tensor_value("logits", {-1, 3}));
  m.graph.outputs.back().shape[0] = Dim::sym("N");
  return m;
}

}  // namespace

TEST_CASE("PNG and JPEG decode to the pixels that were written", "[images]") {
  auto dir = test::temp_dir("img_decode");
  const Image rgb = make_image(5, 3, 3, pattern), gray = make_image(4, 2, 1, pattern);
  write_png(dir / "rgb.png", rgb);
  write_png(dir / "gray.png", gray);
  Image a = read_image(dir / "rgb.png"), b = read_image(dir / "gray.png");
  CHECK(a.width == 5);
  CHECK(a.height == 3);
  CHECK(a.channels == 3);
  CHECK(a.pixels == rgb.pixels);
  CHECK(b.channels == 1);
  CHECK(b.pixels == gray.pixels);
  // JPEG is lossy: a smooth image at quality 100 comes back within a few levels; the header is exact.
  const Image smooth = make_image(16, 8, 3, [](int64_t x, int64_t y, int64_t c) { return static_cast<int>(40 + 8 * x + 4 * y + 30 * c); });
  write_jpeg(dir / "s.jpg", smooth, 100);
  Image j = read_image(dir / "s.jpg");
  REQUIRE(j.pixels.size() == smooth.pixels.size());
  int worst = 0;
  for (size_t i = 0; i < j.pixels.size(); ++i) worst = std::max(worst, std::abs(int(j.pixels[i]) - int(smooth.pixels[i])));
  CHECK(worst <= 4);
  Image h = read_image_header(dir / "s.jpg");
  CHECK(h.width == 16);
  CHECK(h.height == 8);
  CHECK(h.pixels.empty());
  // Content decides the format, not the extension.
  fs::copy_file(dir / "rgb.png", dir / "named.jpg");
  CHECK(read_image(dir / "named.jpg").pixels == rgb.pixels);
}

TEST_CASE("image tensors: NCHW and NHWC, mean and std per channel, BGR", "[images]") {
  auto dir = test::temp_dir("img_layout");
  const int64_t W = 5, H = 4;
  const Image img = make_image(W, H, 3, pattern);
  write_png(dir / "a.png", img);
  const std::string spec = (dir / "a.png").string();
  CalibrationDataOptions o;
  o.image.mean = {0.1f, 0.2f, 0.3f};
  o.image.std = {0.5f};
  const auto nchw = first_sample(spec, image_model({1, 3, H, W}), o);
  const auto nhwc = first_sample(spec, image_model({-1, H, W, 3}), o);
  o.image.bgr = true;
  const auto bgr = first_sample(spec, image_model({1, 3, H, W}), o);
  REQUIRE(nchw.size() == 60);
  REQUIRE(nhwc.size() == 60);
  const float mean[3] = {0.1f, 0.2f, 0.3f};
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        const float want = (static_cast<float>(pattern(x, y, c)) / 255.f - mean[c]) / 0.5f;
        CHECK(nchw[static_cast<size_t>((c * H + y) * W + x)] == Approx(want).margin(1e-6));
        CHECK(nhwc[static_cast<size_t>((y * W + x) * 3 + c)] == Approx(want).margin(1e-6));
        // BGR: channel 0 of the tensor holds blue (the image's channel 2), normalized by mean[0].
        const float want_bgr = (static_cast<float>(pattern(x, y, 2 - c)) / 255.f - mean[c]) / 0.5f;
        CHECK(bgr[static_cast<size_t>((c * H + y) * W + x)] == Approx(want_bgr).margin(1e-6));
      }
  // A gray image feeds a 3-channel input by repetition; a uint8 input takes the raw pixels.
  write_png(dir / "g.png", make_image(W, H, 1, pattern));
  const auto rep = first_sample((dir / "g.png").string(), image_model({1, 3, H, W}));
  CHECK(rep[0] == Approx(pattern(0, 0, 0) / 255.f));
  CHECK(rep[20] == rep[0]);
  CHECK(rep[40] == rep[0]);
  CalibrationSource u8(spec, image_model({1, H, W, 3}, DType::UInt8));
  std::map<std::string, Tensor> b;
  REQUIRE(u8.next(b));
  CHECK(b.at("x").dtype == DType::UInt8);
  CHECK(b.at("x").bytes == img.pixels);
}

TEST_CASE("image resize: shorter side covers and centre-crops, exact scales, none must match", "[images]") {
  auto dir = test::temp_dir("img_resize");
  // 8x4 columns 0,10,...,70 (all rows, all channels).
  write_png(dir / "wide.png", make_image(8, 4, 1, [](int64_t x, int64_t, int64_t) { return static_cast<int>(10 * x); }));
  const std::string spec = (dir / "wide.png").string();
  const Model m = image_model({1, 1, 4, 4});
  // shorter: height 4 already covers, so no scaling; columns 2..5 are the centre.
  auto v = first_sample(spec, m);
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 4; ++x) CHECK(v[static_cast<size_t>(y * 4 + x)] * 255.f == Approx(10.0 * (x + 2)).margin(1e-3));
  // exact: 8 -> 4 columns with the antialiased triangle filter: interior outputs average 4 inputs
  // with weights 1/4, 3/4, 3/4, 1/4 (of 2): column j = 10·(2j + 0.5).
  CalibrationDataOptions o;
  o.image.resize = ImageOptions::Resize::Exact;
  v = first_sample(spec, m, o);
  CHECK(v[1] * 255.f == Approx(25).margin(1e-3));
  CHECK(v[2] * 255.f == Approx(45).margin(1e-3));
  // Upscaling a constant image keeps it constant.
  write_png(dir / "flat.png", make_image(2, 3, 1, [](int64_t, int64_t, int64_t) { return 77; }));
  v = first_sample((dir / "flat.png").string(), image_model({1, 1, 7, 5}));
  for (float x : v) CHECK(x * 255.f == Approx(77).margin(1e-3));
  o.image.resize = ImageOptions::Resize::None;
  CHECK(error_of([&] { CalibrationSource s(spec, m, o); }) ==
        "image '" + spec + "' is 8x4 but the model input 'x' takes 4x4 (--resize none; use --resize shorter or exact)");
}

TEST_CASE("image folders: sorted class folders give labels and evaluate reports accuracy from them", "[images]") {
  auto dir = test::temp_dir("img_labels");
  auto solid = [](int r, int g, int b) {
    return make_image(6, 4, 3, [=](int64_t, int64_t, int64_t c) { return c == 0 ? r : c == 1 ? g : b; });
  };
  // Class names sort as 0_red, 1_green, 2_blue; one green image is filed under red.
  fs::create_directories(dir / "data" / "1_green");
  fs::create_directories(dir / "data" / "0_red");
  fs::create_directories(dir / "data" / "2_blue");
  write_png(dir / "data" / "0_red" / "a.png", solid(200, 10, 10));
  write_jpeg(dir / "data" / "0_red" / "b.jpg", solid(180, 30, 20));
  write_png(dir / "data" / "0_red" / "c.png", solid(10, 220, 10));  // mislabelled
  write_png(dir / "data" / "1_green" / "a.png", solid(10, 200, 10));
  write_png(dir / "data" / "2_blue" / "z.png", solid(0, 0, 250));
  const Model m = colour_classifier();
  CalibrationSource src((dir / "data").string(), m, {2, 0, {}});
  CHECK(src.classes() == std::vector<std::string>{"0_red", "1_green", "2_blue"});
  // Round robin over classes: red/a, green/a, blue/z, red/b, red/c.
  CHECK(src.labels() == std::vector<int64_t>{0, 1, 2, 0, 0});
  CHECK(src.num_samples() == 5);
  EvaluateOptions eo;
  eo.data_spec = (dir / "data").string();
  EvaluateResult r = evaluate_models(m, m, eo);
  REQUIRE(r.accuracy_reference);
  CHECK(*r.accuracy_reference == Approx(4.0 / 5.0));
  CHECK(r.labels_from == "class folders");
  // The CLI: evaluate --data DIR without --labels.
  save_model(m, dir / "m.onnx");
  auto cli = test::run_cli({"evaluate", (dir / "m.onnx").string(), (dir / "m.onnx").string(), "--data",
                            (dir / "data").string(), "--json"});
  REQUIRE(cli.rc == 0);
  auto j = nlohmann::json::parse(cli.out);
  CHECK(j["accuracy"]["reference"].get<double>() == Approx(0.8));
  CHECK(j["accuracy"]["labels_from"] == "class folders");
  // Top-level images and class folders together are refused; so is an empty class folder.
  write_png(dir / "data" / "loose.png", solid(1, 2, 3));
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "data").string(), m); }),
             Catch::Contains("has images both at the top (loose.png) and in class sub-folders"));
  fs::remove(dir / "data" / "loose.png");
  fs::create_directories(dir / "data" / "3_empty");
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "data").string(), m); }),
             Catch::Contains("3_empty' has no .png/.jpg images"));
}

TEST_CASE("fashion_cnn test images as PNG folders give the npy tensors and the same accuracy", "[images][models]") {
  auto dir = test::temp_dir("img_fashion");
  const Tensor x = read_npy(test::source_path("models/fashion_cnn/test_x.npy"));
  const auto labels = read_npy(test::source_path("models/fashion_cnn/test_y.npy")).to_int64();
  const auto xv = x.to_float();
  const int64_t n = 40, px = 28 * 28;
  // The npy holds (pixel/255 - 0.2860)/0.3530: recover the pixels, file them by class.
  for (int64_t s = 0; s < n; ++s) {
    Image img = make_image(28, 28, 1, [&](int64_t c, int64_t r, int64_t) {
      return static_cast<int>(std::lround((xv[static_cast<size_t>(s * px + r * 28 + c)] * 0.3530f + 0.2860f) * 255.f));
    });
    const fs::path cls = dir / "test" / ("class" + std::to_string(labels[static_cast<size_t>(s)]));
    fs::create_directories(cls);
    char name[32];
    std::snprintf(name, sizeof name, "%04lld.png", static_cast<long long>(s));
    write_png(cls / name, img);
  }
  Model m = load_model(test::source_path("models/fashion_cnn/model.onnx"));
  normalize(m);
  CalibrationDataOptions o;
  o.image.mean = {0.2860f};
  o.image.std = {0.3530f};
  CalibrationSource src((dir / "test").string(), m, o);
  REQUIRE(src.num_samples() == n);
  // Expected order: round robin over class0..class9, files by name (= npy index) within a class.
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (int64_t s = 0; s < n; ++s) by_class[labels[static_cast<size_t>(s)]].push_back(s);
  std::vector<int64_t> order;
  for (size_t i = 0; order.size() < static_cast<size_t>(n); ++i)
    for (const auto& [cls, idx] : by_class)
      if (i < idx.size()) order.push_back(idx[i]);
  std::map<std::string, Tensor> b;
  double worst = 0;
  size_t k = 0;
  while (src.next(b)) {
    const auto v = b.at("x").to_float();
    REQUIRE(v.size() == static_cast<size_t>(px * src.last_batch_samples()));
    for (int64_t j = 0; j < src.last_batch_samples(); ++j, ++k) {
      CHECK(src.labels()[k] == labels[static_cast<size_t>(order[k])]);
      for (int64_t i = 0; i < px; ++i)
        worst = std::max(worst, static_cast<double>(std::fabs(v[static_cast<size_t>(j * px + i)] -
                                                              xv[static_cast<size_t>(order[k] * px + i)])));
    }
  }
  CHECK(k == static_cast<size_t>(n));
  CHECK(worst < 1e-5);
  // Accuracy from class folders equals accuracy from the npy with its labels on the same samples.
  EvaluateOptions from_png, from_npy;
  from_png.threads = from_npy.threads = 1;  // steady on a loaded CI machine
  from_png.data_spec = (dir / "test").string();
  from_png.image = o.image;
  write_npy(dir / "x.npy", test::first_rows(x, n));
  write_npy(dir / "y.npy", Tensor::from_int64("y", {n}, std::vector<int64_t>(labels.begin(), labels.begin() + n)));
  from_npy.data_spec = (dir / "x.npy").string();
  from_npy.labels_path = (dir / "y.npy").string();
  EvaluateResult a = evaluate_models(m, m, from_png), c = evaluate_models(m, m, from_npy);
  REQUIRE(a.accuracy_reference);
  REQUIRE(c.accuracy_reference);
  CHECK(*a.accuracy_reference == Approx(*c.accuracy_reference));
  CHECK(*c.accuracy_reference > 0.8);
}

TEST_CASE("bad images are one-line errors naming the file", "[images][errors]") {
  auto dir = test::temp_dir("img_bad");
  const Model m = image_model({-1, 3, 8, 8});
  fs::create_directories(dir / "junk");
  write_png(dir / "junk" / "a.png", make_image(8, 8, 3, pattern));
  std::ofstream(dir / "junk" / "b.png") << "this is not an image";
  CHECK(error_of([&] { CalibrationSource s((dir / "junk").string(), m); }) ==
        "image '" + (dir / "junk" / "b.png").string() + "' is neither PNG nor JPEG (unreadable or corrupt)");
  // A PNG cut short: the header reads, the data does not (found when the batch is read).
  fs::create_directories(dir / "cut");
  write_png(dir / "cut" / "a.png", make_image(8, 8, 3, pattern));
  {
    std::ifstream f(dir / "cut" / "a.png", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), {});
    std::ofstream(dir / "cut" / "a.png", std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
  }
  CalibrationSource cut((dir / "cut").string(), m);
  std::map<std::string, Tensor> b;
  CHECK_THAT(error_of([&] { cut.next(b); }), Catch::StartsWith("image '" + (dir / "cut" / "a.png").string() + "' is not a readable PNG"));
  // Colour into a 1-channel model; mean with the wrong count; symbolic H/W; not an image input.
  CHECK(error_of([&] { CalibrationSource s((dir / "junk" / "a.png").string(), image_model({1, 1, 8, 8})); }) ==
        "image '" + (dir / "junk" / "a.png").string() + "' is colour (RGB) but the model input 'x' takes 1 channel: convert the images to grayscale");
  CalibrationDataOptions o;
  o.image.mean = {0.5f, 0.5f};
  CHECK(error_of([&] { CalibrationSource s((dir / "junk" / "a.png").string(), m, o); }) ==
        "--mean has 2 values but the model input has 3 channels (give one value or one per channel)");
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "junk" / "a.png").string(), image_model({-1, 3, -1, -1})); }),
             Catch::Contains("has a symbolic height or width: give --input-shape x=1,3,H,W"));
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "junk" / "a.png").string(), image_model({-1, 10})); }),
             Catch::Contains("is not an image input"));
  // The CLI: one line, exit 2, nothing written.
  const Model clf = colour_classifier();
  save_model(clf, dir / "m.onnx");
  auto r = test::run_cli({"quantize", (dir / "m.onnx").string(), "-o", (dir / "out.onnx").string(), "--bits", "8",
                          "--method", "gptq", "--calib", (dir / "junk").string()});
  CHECK(r.rc == 2);  // bad data is InvalidArgument, as every calibration data error
  CHECK(r.out == "onnx-compress quantize: error: image '" + (dir / "junk" / "b.png").string() +
                     "' is neither PNG nor JPEG (unreadable or corrupt)\n");
  CHECK_FALSE(fs::exists(dir / "out.onnx"));
}

TEST_CASE("NaN or Inf in calibration data fails naming input, file and sample, or is skipped and counted", "[calib][errors]") {
  auto dir = test::temp_dir("calib_nan");
  const Model m = image_model({-1, 1, 2, 2});
  std::vector<float> v(6 * 4, 0.25f);
  v[2 * 4 + 3] = std::numeric_limits<float>::quiet_NaN();
  v[4 * 4 + 0] = std::numeric_limits<float>::infinity();
  write_npy(dir / "x.npy", Tensor::from_float("x", {6, 1, 2, 2}, v));
  const std::string spec = (dir / "x.npy").string();
  CHECK(error_of([&] {
          CalibrationSource s(spec, m, {4, 0, {}});
          std::map<std::string, Tensor> b;
          while (s.next(b)) {}
        }) == "calibration input 'x' has NaN in sample 2 of " + spec + " (--skip-bad-samples leaves such samples out)");
  CalibrationDataOptions o;
  o.batch_size = 4;
  o.skip_bad_samples = true;
  CalibrationSource s(spec, m, o);
  std::map<std::string, Tensor> b;
  std::vector<int64_t> ids;
  int64_t rows = 0;
  for (int pass = 0; pass < 2; ++pass, s.rewind())
    while (s.next(b)) {
      ids.insert(ids.end(), s.last_batch_ids().begin(), s.last_batch_ids().end());
      rows += b.at("x").dims[0];
      for (float x : b.at("x").to_float()) CHECK(std::isfinite(x));
    }
  CHECK(ids == std::vector<int64_t>{0, 1, 3, 5, 0, 1, 3, 5});
  CHECK(rows == 8);
  CHECK(s.skipped_samples() == 2);
  // The CLI: one line and nothing written; with --skip-bad-samples the report counts them.
  const Model clf = [] {
    Model c = image_model({-1, 1, 2, 2});
    c.graph.nodes.push_back(test::make_node("Flatten", {"x"}, {"f"}, "flat"));
    c.graph.initializers.push_back(Tensor::from_float("w", {4, 3}, test::random_floats(12, 3)));
    c.graph.nodes.push_back(test::make_node("MatMul", {"f", "w"}, {"y"}, "mm"));
    c.graph.outputs.push_back(test::tensor_value("y", {-1, 3}));
    c.graph.outputs.back().shape[0] = Dim::sym("N");
    return c;
  }();
  save_model(clf, dir / "m.onnx");
  const std::string out = (dir / "out.onnx").string();
  auto r = test::run_cli({"quantize", (dir / "m.onnx").string(), "-o", out, "--bits", "8", "--method", "gptq", "--calib", spec});
  CHECK(r.rc == 2);
  CHECK(r.out == "onnx-compress quantize: error: calibration input 'x' has NaN in sample 2 of " + spec +
                     " (--skip-bad-samples leaves such samples out)\n");
  CHECK_FALSE(fs::exists(out));
  r = test::run_cli({"quantize", (dir / "m.onnx").string(), "-o", out, "--bits", "8", "--method", "gptq", "--calib", spec,
                     "--eval", spec, "--skip-bad-samples", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  std::ifstream f(dir / "r.json");
  auto j = nlohmann::json::parse(f);
  CHECK(j["extra"]["skipped_samples"]["calibration"] == 2);
  CHECK(j["extra"]["skipped_samples"]["evaluation"] == 2);
}
