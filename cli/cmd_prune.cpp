// onnx-compress prune MODEL -o OUT (--ratio R | --target-macs F | --target-params F) [options]
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/command.h"
#include "compressor/calibrate.h"
#include "graph/errors.h"
#include "graph/inspect.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "prune/prune.h"

namespace oc::cli {
namespace {

const char* kUsage =
    "onnx-compress prune MODEL -o OUT (--ratio R | --target-macs F | --target-params F)\n"
    "  [--criterion l1|l2|bn|random|activation|obs] [--calib SPEC] [--compensate] [--scope local|global]\n"
    "  [--max-layer-ratio R] [--round-to N] [--ignore REGEX ...] [--input-shape NAME=DIMS ...] [--report FILE.json]";

void write_text_atomic(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::path tmp = p;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    if (!f) throw SaveError("cannot write " + p.string());
  }
  std::filesystem::rename(tmp, p);
}

int run_prune(const std::vector<std::string>& args) {
  po::options_description opts("prune options");
  std::string model, out, criterion = "l1", aggregate = "mean", scope = "local", calib, report;
  std::vector<std::string> ignore, shapes;
  PruneOptions o;
  opts.add_options()
    ("model", po::value(&model)->required(), "input ONNX model")
    ("output,o", po::value(&out)->required(), "output ONNX file")
    ("ratio", po::value(&o.ratio), "fraction of channels removed per group (local) or overall (global)")
    ("target-macs", po::value(&o.target_macs), "fraction of MACs to keep (needs concrete input shapes)")
    ("target-params", po::value(&o.target_params), "fraction of parameters to keep")
    ("criterion", po::value(&criterion), "l1 (default), l2, bn, random, activation, obs")
    ("aggregate", po::value(&aggregate), "combine group members' scores: mean (default), sum, max")
    ("calib", po::value(&calib), "calibration data SPEC (FILE.npy, FILE.npz, DIR, random:N[:SEED]) for activation/obs")
    ("calib-samples", po::value<int64_t>()->default_value(0), "use at most N calibration samples")
    ("compensate", po::bool_switch(), "re-solve kept weights by least squares on calibration data")
    ("scope", po::value(&scope), "local (same ratio per group, default) or global (one ranking)")
    ("max-layer-ratio", po::value(&o.max_layer_ratio), "most of one group that may go (default 0.9)")
    ("round-to", po::value(&o.round_to), "kept channels per group are a multiple of N (default 8)")
    ("ignore", po::value(&ignore)->composing(), "leave groups touching nodes whose name or op type matches (repeatable)")
    ("input-shape", po::value(&shapes)->composing(), "NAME=D0,D1,... concrete input dims (MAC counting)")
    ("seed", po::value(&o.seed), "seed of the random criterion")
    ("report", po::value(&report), "write a JSON report of groups and totals");
  po::variables_map vm;
  if (!parse_args(args, kUsage, opts, {{"model", 1}}, vm)) return 0;
  o.criterion = parse_criterion(criterion);
  o.aggregate = parse_aggregate(aggregate);
  if (scope != "local" && scope != "global") throw InvalidArgument("--scope must be local or global");
  o.global = scope == "global";
  o.ignore = ignore;
  o.compensate = vm["compensate"].as<bool>();
  o.input_shapes = parse_input_shapes(shapes);

  Model m = load_model(model);
  normalize(m);
  CalibrationStats stats;
  bool have_stats = false;
  bool needs = o.criterion == Criterion::Activation || o.criterion == Criterion::OBS || o.compensate;
  if (needs && calib.empty()) throw InvalidArgument(std::string("--criterion ") + criterion_name(o.criterion) +
                                                    (o.compensate ? " with --compensate" : "") + " needs --calib SPEC");
  if (!calib.empty()) {
    PruneNeeds need = prune_needs(m, o);
    CalibrationPlan plan;
    for (const auto& v : need.channel_values) plan.channels[v] = kAutoAxis;
    plan.grams = need.gram_layers;
    CalibrationDataOptions co;
    co.max_samples = vm["calib-samples"].as<int64_t>();
    co.shapes = o.input_shapes;
    CalibrationSource src(calib, m, co);
    stats = calibrate(m, src, plan);
    have_stats = true;
  }
  PruneReport rep = prune_model(m, o, have_stats ? &stats : nullptr);
  save_model(m, out);
  if (!report.empty()) write_text_atomic(report, rep.to_json().dump(2) + "\n");
  int pruned = 0, skipped = 0;
  for (const auto& g : rep.groups) {
    pruned += g.units_after < g.units_before;
    skipped += g.units_before == g.locked || g.skip.rfind("ignored", 0) == 0;
  }
  std::cout << "wrote " << out << ": " << pruned << " of " << rep.groups.size() << " channel groups pruned ("
            << skipped << " skipped), params " << human_count(static_cast<double>(rep.params_before)) << " -> "
            << human_count(static_cast<double>(rep.params_after));
  if (rep.macs_before > 0 && rep.macs_after >= 0)
    std::cout << ", MACs " << human_count(static_cast<double>(rep.macs_before)) << " -> "
              << human_count(static_cast<double>(rep.macs_after)) << " ("
              << 100.0 * static_cast<double>(rep.macs_after) / static_cast<double>(rep.macs_before) << "%)";
  if (rep.layers_compensated) std::cout << ", " << rep.layers_compensated << " layers compensated";
  std::cout << "\n";
  return 0;
}

RegisterCommand reg({"prune", "structured channel pruning with dependency groups (ratio or MAC/param targets)", run_prune});

}  // namespace
}  // namespace oc::cli
