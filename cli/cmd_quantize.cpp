// onnx-compress quantize MODEL -o OUT [--bits N | --avg-bits B | --max-bytes N] [options]
// A one-step recipe: the options below are exactly the `quantize` step's (compressor/step_quantize.cpp).
#include "cli/command.h"
#include "cli/step_command.h"

namespace oc::cli {
namespace {

int run_quantize(const std::vector<std::string>& args) {
  po::options_description opts("quantize options");
  add_common_step_options(opts);
  using S = std::string;
  opts.add_options()
    ("bits", po::value<S>(), "uniform width for every layer, as stored: 2, 4 or 8 (matmulnbits), 4 or 8 (qdq); default 8")
    ("avg-bits", po::value<S>(), "target mean stored width (params-weighted); widths chosen per layer by measured error")
    ("max-bytes", po::value<S>(), "budget for all weight bytes of the output; widths chosen per layer")
    ("widths", po::value<S>(), "widths the allocator may choose (default: all the format stores, 8,4,2 or 8,4)")
    ("scheme", po::value<S>(), "sym (default) or asym")
    ("granularity", po::value<S>(), "tensor, channel or block (default: block for matmulnbits, channel otherwise)")
    ("block-size", po::value<S>(), "block length along the reduction axis (32, 64, 128; default 32)")
    ("method", po::value<S>(), "rtn (default without --calib), mse (clipping search) or gptq (needs --calib); with --calib and no method flags: gptq --bias-correction")
    ("awq", po::bool_switch(), "activation-aware per-input-channel scales for <= 4-bit layers (needs --calib)")
    ("act-order", po::bool_switch(), "gptq: quantize columns by decreasing input energy")
    ("bias-correction", po::bool_switch(), "keep each layer's calibration output mean exact through its bias (needs --calib)")
    ("scorer", po::value<S>(), "layer importance: zd (default), lim, sensitivity, random or FILE.json")
    ("format", po::value<S>(), "qdq (default), matmulnbits or fake")
    ("keep-float", po::value<std::vector<S>>()->composing(), "leave layers whose node or weight name matches REGEX in float (repeatable)")
    ("bits-for", po::value<std::vector<S>>()->composing(), "REGEX=N: fixed width for matching layers (repeatable)")
    ("no-protect", po::bool_switch(), "do not keep the first and last weight layers at >= 8 bits")
    ("float-tables", po::bool_switch(), "matmulnbits: keep embedding tables float32 and constant masks as they are (default: tables quantized like layers, masks compacted)")
    ("gram-budget-mib", po::value<S>(), "calibration Grams held at once (default 1024); a model needing more is calibrated block by block (gptq / bias correction, uniform --bits)")
    ("activations", po::value<S>(), "int8: static uint8 QuantizeLinear/DequantizeLinear on layer inputs (needs --calib, --format qdq)")
    ("smoothquant", po::bool_switch(), "with --activations int8: migrate activation outliers into the weights (SmoothQuant, alpha searched per input)")
    ("act16", po::value<S>(), "with --activations int8: none (default) or N, keep the N activations whose 8 bits cost the most measured output fidelity at uint16 (opset 21; ORT runs their nodes in float)")
    ("weight-range", po::value<S>(), "8-bit weights that meet uint8 activations (--activations int8, and --format matmulnbits 8-bit layers): pairs (the default: [-128, 127] with each pair of codes that ONNX Runtime's x86 AVX2 integer kernels add into a saturating int16 kept within |q1|+|q2| <= 128, exact there and everywhere else), reduced ([-64, 63]: exact, one bit coarser) or full ([-128, 127] unconstrained: AVX-512 VNNI / ARM targets only; the weight-only default)")
    ("deploy-cpu", po::value<S>(), "with --activations int8, the CPU the model will run on: host (default: this machine's), amx (convs with C_in*kh*kw >= 256 and >= 64 outputs written for ONNX Runtime's QGEMM, which runs on AMX tiles), vnni or avx2 (every conv on ORT's direct int8 kernel)")
    ("calib-method", po::value<S>(), "activation ranges: percentile (default, 0.01%/99.99%), minmax, entropy or mse")
    ("seed", po::value<S>(), "seed of the random scorer");
  po::variables_map vm;
  if (!parse_args(args,
                  "onnx-compress quantize MODEL -o OUT [--bits N | --avg-bits B | --max-bytes N] [--widths LIST] "
                  "[--scheme sym|asym] [--granularity tensor|channel|block] [--block-size N] [--method rtn|mse|gptq] [--awq] [--act-order] [--bias-correction] "
                  "[--scorer NAME|FILE.json] [--format qdq|matmulnbits|fake] [--activations int8 [--act16 N]] [--report FILE.json]",
                  opts, {{"model", 1}}, vm))
    return 0;
  return run_step_command("quantize", vm);
}

RegisterCommand reg({"quantize", "layer-wise mixed-bit weight quantization (QDQ, MatMulNBits or fake-quantized)",
                     run_quantize});

}  // namespace
}  // namespace oc::cli
