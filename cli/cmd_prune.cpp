// onnx-compress prune MODEL -o OUT (--ratio R | --target-macs F | --target-params F) [options]
// A one-step recipe: the options below are exactly the `prune` step's (compressor/step_prune.cpp).
#include "cli/command.h"
#include "cli/step_command.h"

namespace oc::cli {
namespace {

const char* kUsage =
    "onnx-compress prune MODEL -o OUT (--ratio R | --target-macs F | --target-params F)\n"
    "  [--criterion l1|l2|bn|random|activation|obs|obs-diag|cfsp] [--allocate uniform|sensitivity] [--calib SPEC] [--compensate] [--heads|--no-heads] [--scope local|global]\n"
    "  [--blocks REGEX] [--cfsp-sharpness A]\n"
    "  [--max-layer-ratio R] [--round-to N] [--best-effort] [--ignore REGEX ...] [--input-shape NAME=DIMS ...] [--report FILE.json]";

int run_prune(const std::vector<std::string>& args) {
  po::options_description opts("prune options");
  add_common_step_options(opts);
  using S = std::string;
  opts.add_options()
    ("ratio", po::value<S>(), "fraction of channels removed per group (local) or overall (global)")
    ("target-macs", po::value<S>(), "fraction of MACs to keep (batch-only symbolic inputs count at batch 1)")
    ("target-params", po::value<S>(), "fraction of parameters to keep")
    ("best-effort", po::bool_switch(), "when the target is out of reach, write the most-pruned model the rules allow (and say so) instead of failing")
    ("criterion", po::value<S>(), "l1, l2, bn, random, activation, obs (structured OBS), obs-diag, cfsp; default: the measured best (docs/PRUNING.md), data-aware with --calib")
    ("stat-correction", po::value<S>(), "after sequential reconstruction: none, mean (output means moved to the original's; MatMul+Add bias) or variance (also Conv/Gemm output variance)")
    ("allocate", po::value<S>(), "uniform (the --scope/--criterion allocation) or sensitivity (per group loss measured at eighths 0.125..0.875 on --calib, solved for the target)")
    ("sensitivity-samples", po::value<S>(), "--allocate sensitivity: calibration samples each probe runs (default 16)")
    ("sensitivity-ratios", po::value<S>(), "--allocate sensitivity: comma-separated ratios each group is probed at (default 0.125,0.25,...,0.875)")
    ("sensitivity-loss", po::value<S>(), "--allocate sensitivity: mse (relative squared output error) or kl (softmax KL over the last axis of logits outputs)")
    ("aggregate", po::value<S>(), "combine group members' scores: mean (default), sum, max")
    ("compensate", po::bool_switch(), "re-solve kept weights by least squares on calibration data")
    ("heads", po::bool_switch(), "prune whole attention heads (Q/K/V/O and the head Reshapes together); on by default with --calib and a MACs/params target")
    ("no-heads", po::bool_switch(), "keep every attention head (the data-aware default prunes heads too)")
    ("reconstruct", po::value<S>(), "compensation with --calib: sequential (default: each layer re-solved against the original's output from the pruned model's input) or one-shot")
    ("damping", po::value<S>(), "compensation damping λ as a fraction of mean(diag XᵀX) (default 0.01)")
    ("scope", po::value<S>(), "local (same ratio per group, default) or global (one ranking)")
    ("max-layer-ratio", po::value<S>(), "most of one group that may go (default 0.9)")
    ("round-to", po::value<S>(), "kept channels per group are a multiple of N (default 8)")
    ("ignore", po::value<std::vector<S>>()->composing(), "leave groups touching nodes whose name or op type matches (repeatable)")
    ("blocks", po::value<S>(), "cfsp: blocks are the nodes sharing a match of REGEX (default: residual Adds)")
    ("cfsp-scores", po::value<S>(), "cfsp: units inside blocks by activation (Wanda) or obs (structured OBS, needs compensation)")
    ("cfsp-sharpness", po::value<S>(), "cfsp: a in sigmoid(a*z), how far block ratios spread (default 1, 0 = uniform)")
    ("stats", po::value<S>(), "calib (default) or batchnorm: score and compensate from statistics predicted from BatchNorm, no data")
    ("recalibrate-bn", po::value<S>(), "N: re-measure BatchNorm statistics on the pruned model in N calibration passes (default 0 = off)")
    ("gram-budget-mib", po::value<S>(), "calibration Grams held at once (default 1024); a model needing more is calibrated block by block")
    ("gram-max-positions", po::value<S>(), "Conv Grams from about N output positions per sample (a fixed pseudo-random subset of larger feature maps, sums scaled to every position; default 0 = every position)")
    ("stream-above-mib", po::value<S>(), "models with more weights (default 1024 MiB) are calibrated block by block and their pruned tensors written to a temporary file as they are made")
    ("seed", po::value<S>(), "seed of the random criterion");
  po::variables_map vm;
  if (!parse_args(args, kUsage, opts, {{"model", 1}}, vm)) return 0;
  return run_step_command("prune", vm);
}

RegisterCommand reg({"prune", "structured group pruning of channels, filters and neurons", run_prune});

}  // namespace
}  // namespace oc::cli
