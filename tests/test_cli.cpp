// The command line as a user meets it: inspect, convert, errors, no partial outputs.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "graph/onnx_io.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

TEST_CASE("inspect prints a summary and JSON of a corpus model", "[cli]") {
  auto r = run_cli({"inspect", corpus_model("ppocr2_cls.onnx").string()});
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("params"));
  CHECK_THAT(r.out, Catch::Contains("Conv"));
  auto j = run_cli({"inspect", corpus_model("ppocr2_cls.onnx").string(), "--json"});
  REQUIRE(j.rc == 0);
  auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["params"].get<int64_t>() > 100000);
  CHECK(doc["constants_lifted"].get<int>() > 10);
  CHECK(doc["inputs"][0]["name"] == "x");
}

TEST_CASE("convert writes a loadable model - errors are one line with non-zero exit and no output", "[cli][errors]") {
  fs::path dir = temp_dir("cli");
  auto ok = run_cli({"convert", corpus_model("ppocr4_det.onnx").string(), "-o", (dir / "det.onnx").string(),
                     "--external-data"});
  REQUIRE(ok.rc == 0);
  CHECK(fs::exists(dir / "det.onnx.data"));
  Model m = load_model(dir / "det.onnx");
  CHECK(!m.graph.initializers.empty());

  std::ofstream(dir / "junk.onnx") << "garbage";
  auto bad = run_cli({"convert", (dir / "junk.onnx").string(), "-o", (dir / "out.onnx").string()});
  CHECK(bad.rc != 0);
  CHECK_THAT(bad.out, Catch::Contains("not an ONNX model"));
  CHECK(std::count(bad.out.begin(), bad.out.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(dir / "out.onnx"));

  auto nodir = run_cli({"convert", corpus_model("ppocr2_cls.onnx").string(), "-o", (dir / "no/such/dir.onnx").string()});
  CHECK(nodir.rc != 0);
  CHECK_THAT(nodir.out, Catch::Contains("folder does not exist"));

  auto badopt = run_cli({"inspect", corpus_model("ppocr2_cls.onnx").string(), "--input-shape", "x=1,three"});
  CHECK(badopt.rc == 2);
  CHECK_THAT(badopt.out, Catch::Contains("not a dimension"));
  CHECK(run_cli({"frobnicate"}).rc == 2);
}
