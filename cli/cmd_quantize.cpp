// onnx-compress quantize MODEL -o OUT [--bits N | --avg-bits B | --max-bytes N] [--widths 8,6,4,3,2]
//   [--scheme sym|asym] [--granularity tensor|channel|block] [--block-size 32|64|128]
//   [--method rtn|mse|gptq] [--scorer zd|lim|sensitivity|random|FILE.json] [--format qdq|matmulnbits|fake]
//   [--keep-float REGEX]... [--bits-for REGEX=N]... [--no-protect] [--calib SPEC] [--report FILE.json]
#include <algorithm>
#include <fstream>
#include <memory>
#include <set>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "compressor/calibrate.h"
#include "graph/errors.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "quantize/activations.h"
#include "quantize/calib_plan.h"
#include "quantize/quantize.h"

namespace oc::cli {
namespace {

std::vector<int> parse_widths(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    try {
      size_t used = 0;
      int b = std::stoi(tok, &used);
      if (used != tok.size()) throw std::invalid_argument(tok);
      out.push_back(b);
    } catch (const std::exception&) {
      throw InvalidArgument("--widths: '" + tok + "' is not a bit width");
    }
  }
  if (out.empty()) throw InvalidArgument("--widths is empty");
  return out;
}

std::pair<std::string, int> parse_bits_for(const std::string& s) {
  auto eq = s.rfind('=');
  if (eq == std::string::npos || eq == 0) throw InvalidArgument("--bits-for expects REGEX=BITS, got '" + s + "'");
  try {
    return {s.substr(0, eq), std::stoi(s.substr(eq + 1))};
  } catch (const std::exception&) {
    throw InvalidArgument("--bits-for expects REGEX=BITS, got '" + s + "'");
  }
}

void write_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f || !(f << text)) throw SaveError("cannot write " + path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw SaveError("cannot write " + path);
}

// Sensitivity of a layer: Σ‖y_q − y‖² / Σ‖y‖² over the calibration batches, where y_q comes from
// the model with only that layer fake-quantized at the narrowest width.
quant::SensitivityFn make_sensitivity(const Model& m, CalibrationSource& src, const quant::QuantizeOptions& o,
                                      int max_batches) {
  struct Data {
    std::vector<std::map<std::string, Tensor>> inputs, outputs;
  };
  auto d = std::make_shared<Data>();
  src.rewind();
  std::map<std::string, Tensor> batch;
  {
    Executor ex(m);
    while (static_cast<int>(d->inputs.size()) < max_batches && src.next(batch)) {
      d->outputs.push_back(ex.run(batch));
      d->inputs.push_back(batch);
    }
  }
  const int low = *std::min_element(o.widths.begin(), o.widths.end());
  return [&m, d, o, low](const quant::WeightLayer& l) {
    Model mq = m;
    quant::QuantLayout lay = quant::effective_layout(l, o.format, o.layout);
    lay.bits = low;
    std::vector<float> w = quant::layer_matrix(mq.graph, l);
    quant::set_layer_matrix(mq.graph, l, quant::quantize_rtn(w.data(), l.rows, l.cols, lay).dequantize());
    Executor ex(mq);
    double num = 0, den = 0;
    for (size_t b = 0; b < d->inputs.size(); ++b) {
      auto y = ex.run(d->inputs[b]);
      for (const auto& [name, ref] : d->outputs[b]) {
        if (!dtype_is_float(ref.dtype)) continue;
        auto a = y.at(name).to_float(), r = ref.to_float();
        for (size_t i = 0; i < r.size(); ++i) num += (a[i] - r[i]) * (a[i] - r[i]), den += r[i] * r[i];
      }
    }
    return den > 0 ? num / den : num;
  };
}

int run_quantize(const std::vector<std::string>& args) {
  po::options_description opts("quantize options");
  std::string model, out, widths = "8,6,4,3,2", scheme = "sym", gran, method = "rtn", scorer = "zd", format = "qdq";
  std::string calib, report, activations, calib_method = "minmax";
  int bits = 8;
  double avg_bits = 0;
  int64_t max_bytes = 0, block_size = 32;
  uint64_t seed = 0;
  std::vector<std::string> keep_float, bits_for;
  opts.add_options()
    ("model", po::value(&model)->required(), "input ONNX model")
    ("output,o", po::value(&out)->required(), "output ONNX file")
    ("bits", po::value(&bits), "uniform width for every layer (2-8; default 8)")
    ("avg-bits", po::value(&avg_bits), "target mean width (params-weighted); widths chosen per layer by importance")
    ("max-bytes", po::value(&max_bytes), "budget for all weight bytes of the output; widths chosen per layer")
    ("widths", po::value(&widths), "widths the allocator may choose (default 8,6,4,3,2)")
    ("scheme", po::value(&scheme), "sym (default) or asym")
    ("granularity", po::value(&gran), "tensor, channel or block (default: block for matmulnbits, channel otherwise)")
    ("block-size", po::value(&block_size), "block length along the reduction axis (32, 64, 128; default 32)")
    ("method", po::value(&method), "rtn (default), mse (clipping search) or gptq (needs --calib)")
    ("scorer", po::value(&scorer), "layer importance: zd (default), lim, sensitivity, random or FILE.json")
    ("format", po::value(&format), "qdq (default), matmulnbits or fake")
    ("keep-float", po::value(&keep_float)->composing(), "leave layers whose node or weight name matches REGEX in float (repeatable)")
    ("bits-for", po::value(&bits_for)->composing(), "REGEX=N: fixed width for matching layers (repeatable)")
    ("no-protect", po::bool_switch(), "do not keep the first and last weight layers at >= 8 bits")
    ("calib", po::value(&calib), "calibration data (FILE.npy, FILE.npz, DIR or random:N[:SEED]) for gptq/lim/sensitivity")
    ("activations", po::value(&activations), "int8: static uint8 QuantizeLinear/DequantizeLinear on layer inputs (needs --calib, --format qdq)")
    ("calib-method", po::value(&calib_method), "activation ranges: minmax (default), percentile or entropy")
    ("seed", po::value(&seed), "seed of the random scorer")
    ("report", po::value(&report), "write a JSON report of the per-layer plan");
  po::variables_map vm;
  if (!parse_args(args,
                  "onnx-compress quantize MODEL -o OUT [--bits N | --avg-bits B | --max-bytes N] [--widths LIST] "
                  "[--scheme sym|asym] [--granularity tensor|channel|block] [--block-size N] [--method rtn|mse|gptq] "
                  "[--scorer NAME|FILE.json] [--format qdq|matmulnbits|fake] [--report FILE.json]",
                  opts, {{"model", 1}}, vm))
    return 0;
  quant::QuantizeOptions o;
  int targets = static_cast<int>(vm.count("bits") + vm.count("avg-bits") + vm.count("max-bytes"));
  if (targets > 1) throw InvalidArgument("give only one of --bits, --avg-bits, --max-bytes");
  if (vm.count("avg-bits")) o.target = quant::QuantizeOptions::Target::AvgBits, o.avg_bits = avg_bits;
  if (vm.count("max-bytes")) o.target = quant::QuantizeOptions::Target::MaxBytes, o.max_bytes = max_bytes;
  o.bits = bits;
  o.widths = parse_widths(widths);
  o.format = quant::parse_format(format);
  o.layout.scheme = quant::parse_scheme(scheme);
  o.layout.granularity = gran.empty() ? (o.format == quant::Format::MatMulNBits ? quant::Granularity::Block
                                                                                 : quant::Granularity::Channel)
                                      : quant::parse_granularity(gran);
  if (block_size < 16 || block_size > 4096) throw InvalidArgument("--block-size must be between 16 and 4096");
  o.layout.block_size = block_size;
  o.method = quant::parse_method(method);
  o.scorer = scorer;
  o.keep_float = keep_float;
  for (const auto& s : bits_for) o.bits_for.push_back(parse_bits_for(s));
  o.protect_ends = !vm["no-protect"].as<bool>();
  o.score_inputs.seed = seed;

  if (!activations.empty() && activations != "int8") throw InvalidArgument("--activations supports only int8");
  if (!activations.empty() && calib.empty()) throw InvalidArgument("--activations int8 needs calibration data (--calib)");
  if (!activations.empty() && o.format != quant::Format::QDQ) throw InvalidArgument("--activations int8 needs --format qdq");
  const quant::CalibMethod cmethod = quant::parse_calib_method(calib_method);
  Model m = load_model(model);
  normalize(m);
  // Calibration: one pass collecting what the method and scorer need, then (sensitivity) one
  // extra executor pass per layer over the first batches.
  CalibrationStats stats;
  std::unique_ptr<CalibrationSource> src;
  const bool wants_calib = o.method == quant::Method::GPTQ || scorer == "lim" || scorer == "sensitivity";
  if (!calib.empty()) {
    CalibrationDataOptions co;
    co.batch_size = 8;
    src = std::make_unique<CalibrationSource>(calib, m, co);
    quant::CalibrationNeeds needs;
    needs.grams = o.method == quant::Method::GPTQ;
    needs.lim = scorer == "lim";
    needs.activation_minmax = !activations.empty() && cmethod == quant::CalibMethod::MinMax;
    needs.activation_histograms = !activations.empty() && cmethod != quant::CalibMethod::MinMax;
    auto plan = quant::quantize_calibration_plan(m, quant::find_weight_layers(m.graph), needs);
    stats = calibrate(m, *src, plan);
    o.score_inputs.stats = &stats;
    if (scorer == "sensitivity") o.score_inputs.sensitivity = make_sensitivity(m, *src, o, 4);
  } else if (wants_calib && o.target != quant::QuantizeOptions::Target::Uniform) {
    throw InvalidArgument("--scorer " + scorer + " and --method " + method + " need calibration data (--calib)");
  } else if (o.method == quant::Method::GPTQ) {
    throw InvalidArgument("--method gptq needs calibration data (--calib)");
  }
  const size_t before = model_weight_bytes(m);
  quant::QuantizeReport rep = quant::quantize_model(m, o);
  int act_pairs = 0;
  if (!activations.empty()) {
    std::set<std::string> names;
    for (const auto& l : rep.layers) names.insert(l.node);
    act_pairs = quant::add_activation_qdq(m, names, stats, cmethod);
  }
  save_model(m, out);
  const size_t after = model_weight_bytes(m);
  std::cout << "quantized " << rep.layers.size() << " layers (" << rep.quantized_params << " params, mean "
            << std::fixed << std::setprecision(2) << rep.avg_bits << " bits, format " << rep.format << "); weights "
            << before << " -> " << after << " bytes; wrote " << out << "\n";
  for (const auto& l : rep.layers)
    std::cout << "  " << l.node << " " << l.op << " [" << l.rows << "x" << l.cols << "] " << l.bits << " bits ("
              << l.decided_by << "), " << std::setprecision(1) << l.sqnr_db << " dB\n";
  if (!report.empty()) {
    nlohmann::json j = rep.to_json();
    j["model"] = model;
    j["output"] = out;
    j["weight_bytes_before"] = before;
    j["weight_bytes_after"] = after;
    if (!activations.empty()) j["activation_qdq"] = {{"pairs", act_pairs}, {"calib_method", calib_method}};
    write_atomic(report, j.dump(2) + "\n");
  }
  return 0;
}

RegisterCommand reg({"quantize", "layer-wise mixed-bit weight quantization (QDQ, MatMulNBits or fake-quantized)",
                     run_quantize});

}  // namespace
}  // namespace oc::cli
