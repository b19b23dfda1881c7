// Reports: schema round trip, summary, self-contained HTML, comparison across runs.
#include <catch2/catch.hpp>

#include <fstream>

#include "compressor/compare.h"
#include "compressor/report.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {
Report sample_report(const std::string& sha, int64_t bytes, double cosine, double bits) {
  Report r;
  r.command = "quantize";
  r.input = {"m.onnx", "/x/m.onnx", sha, 1000};
  r.output = {"out.onnx", "/x/out.onnx", "ff", static_cast<uint64_t>(bytes)};
  r.before = {100, 1000, 1000, 400};
  r.after = {100, 1000, static_cast<uint64_t>(bytes), static_cast<uint64_t>(bytes) - 50};
  LayerRow l;
  l.name = "fc";
  l.op = "MatMul";
  l.weight_shape_before = l.weight_shape_after = {10, 10};
  l.params_before = l.params_after = 100;
  l.bits = bits;
  l.scores["zd"] = 0.25;
  r.layers.push_back(l);
  r.fidelity["y"] = {{"cosine", cosine}, {"sqnr_db", 20.0}, {"max_abs", 0.1}, {"top1_agreement", 0.9}};
  r.seconds = 1.5;
  r.peak_rss_bytes = 1 << 20;
  return r;
}
}  // namespace

TEST_CASE("report JSON round-trips and rejects other schema versions", "[report]") {
  Report r = sample_report("abc", 300, 0.99, 4);
  fs::path dir = temp_dir("report");
  write_report(r, dir / "r.json");
  Report back = read_report(dir / "r.json");
  CHECK(back.layers.size() == 1);
  CHECK(back.layers[0].bits == 4);
  CHECK(back.layers[0].scores.at("zd") == 0.25);
  CHECK(back.after.file_bytes == 300);
  CHECK(back.fidelity["y"]["cosine"].get<double>() == 0.99);
  auto j = report_to_json(r);
  j["schema_version"] = 99;
  try {
    report_from_json(j, "r2");
    FAIL("expected InvalidArgument");
  } catch (const InvalidArgument& e) {
    CHECK_THAT(e.what(), Catch::Contains("schema version 99"));
  }
  CHECK_THROWS_AS(report_from_json(nlohmann::json{{"a", 1}}), InvalidArgument);
}

TEST_CASE("summary and HTML show the numbers and need no network", "[report]") {
  Report r = sample_report("abc", 300, 0.99, 4);
  std::string s = report_summary(r);
  CHECK_THAT(s, Catch::Contains("file size"));
  CHECK_THAT(s, Catch::Contains("0.30x"));
  std::string h = report_html(r);
  CHECK_THAT(h, Catch::Contains("<svg"));
  CHECK_THAT(h, Catch::Contains("Weight bits per layer"));
  CHECK(h.find("<script") == std::string::npos);
  // Nothing is fetched: no external resources of any kind (the SVG xmlns is a name, not a fetch).
  CHECK(h.find("src=") == std::string::npos);
  CHECK(h.find("<link") == std::string::npos);
  CHECK(h.find("url(") == std::string::npos);
  CHECK(h.find("@import") == std::string::npos);
}

TEST_CASE("compare marks the best run per column and diffs layers of the same model", "[report][cli]") {
  fs::path dir = temp_dir("cmp");
  write_report(sample_report("same", 300, 0.99, 4), dir / "w4.json");
  write_report(sample_report("same", 500, 0.999, 8), dir / "w8.json");
  write_report(sample_report("other", 200, 0.9, 2), dir / "x2.json");
  auto r = run_cli({"compare", (dir / "w4.json").string(), (dir / "w8.json").string(), "--json"});
  REQUIRE(r.rc == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["best"]["file_bytes"] == "w4");
  CHECK(j["best"]["cosine"] == "w8");
  auto t = run_cli({"compare", (dir / "w4.json").string(), (dir / "w8.json").string(), "--html", (dir / "c.html").string()});
  REQUIRE(t.rc == 0);
  CHECK_THAT(t.out, Catch::Contains("per-layer: w4 vs w8"));
  std::ifstream hf(dir / "c.html");
  const std::string html((std::istreambuf_iterator<char>(hf)), {});
  // Each run's row marks what it is best at (w4: file size, w8: cosine), and the per-layer table
  // has fc at 4 and 8 bits.
  auto row_of = [&](const std::string& label) {
    size_t a = html.find("<tr><td>" + label + "</td>");
    REQUIRE(a != std::string::npos);
    return html.substr(a, html.find("</tr>", a) - a);
  };
  CHECK_THAT(row_of("w4"), Catch::Contains("class='best'"));
  CHECK_THAT(row_of("w8"), Catch::Contains("class='best'"));
  CHECK_THAT(html, Catch::Contains("Per layer: w4 vs w8"));
  CHECK_THAT(html, Catch::Contains("<tr><td>fc</td><td>4</td><td>8</td>"));
  auto u = run_cli({"compare", (dir / "w4.json").string(), (dir / "x2.json").string()});
  REQUIRE(u.rc == 0);
  CHECK_THAT(u.out, Catch::Contains("different models"));
  std::ofstream(dir / "bad.json") << "{\"schema\": \"onnx-compress-report\", \"schema_version\": 7}";
  auto bad = run_cli({"compare", (dir / "w4.json").string(), (dir / "bad.json").string()});
  CHECK(bad.rc == 2);
  CHECK_THAT(bad.out, Catch::Contains("schema version 7"));
}

TEST_CASE("layer rows and totals come from the models themselves", "[report]") {
  Model a = small_cnn();
  Model b = small_cnn();
  // Halve the first conv's output channels by hand: params and MACs must follow.
  Tensor* w = b.graph.initializer("c1.w");
  REQUIRE(w);
  const int64_t per_out = 3 * 3 * 3;
  w->bytes.resize(static_cast<size_t>(4 * per_out * 4));
  w->dims[0] = 4;
  auto rows = diff_layers(a, b);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].name == a.graph.nodes[0].name);
  CHECK(rows[0].params_before == 8 * per_out);
  CHECK(rows[0].params_after == 4 * per_out);
  CHECK(rows[0].sparsity == Approx(0.5));
  CHECK(rows[0].macs_before == 8 * per_out * 16 * 16);
  CHECK(rows[0].macs_after == 4 * per_out * 16 * 16);
  CHECK(rows[2].op == "Gemm");
  CHECK(rows[2].macs_before == 80);
  Totals t = model_totals(a);
  CHECK(t.macs == 8 * per_out * 256 + 8 * 8 * 9 * 256 + 80);
}

TEST_CASE("the HTML report renders in a real browser", "[report][browser]") {
  // A real run: prune + quantize the bundled Fashion-MNIST CNN, then screenshot its report in
  // headless Chromium (installed by scripts/setup.sh).
  fs::path dir = temp_dir("browser");
  auto r = run_cli({"compress", source_path("models/fashion_cnn/model.onnx").string(), "-o", (dir / "m.onnx").string(),
                    "--recipe", "prune30-int8", "--calib", source_path("models/fashion_cnn/calib.npy").string(),
                    "--html", (dir / "r.html").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const fs::path png = dir / "r.png";
  std::string cmd = "chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                    "--disable-background-networking --disable-component-update --disable-sync --user-data-dir=" +
                    (dir / "profile").string() + " --window-size=1200,1600 --screenshot=" + png.string() + " file://" +
                    (dir / "r.html").string() + " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  REQUIRE(fs::exists(png));
  std::ifstream f(png, std::ios::binary);
  std::string head(24, '\0');
  f.read(head.data(), 24);
  CHECK(head.compare(1, 3, "PNG") == 0);
  auto be32 = [&](size_t off) {
    return (static_cast<uint32_t>(static_cast<unsigned char>(head[off])) << 24) |
           (static_cast<uint32_t>(static_cast<unsigned char>(head[off + 1])) << 16) |
           (static_cast<uint32_t>(static_cast<unsigned char>(head[off + 2])) << 8) |
           static_cast<uint32_t>(static_cast<unsigned char>(head[off + 3]));
  };
  CHECK(be32(16) == 1200);  // IHDR width
  CHECK(be32(20) == 1600);
  // A blank page compresses to a few KiB; tables, labels and bar charts do not.
  CHECK(fs::file_size(png) > 40000);
}
