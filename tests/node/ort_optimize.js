#!/usr/bin/env node
// Writes the graph ONNX Runtime actually runs (after its level-2 fusions, CPU EP) to OUT.onnx, so
// tests and benchmarks can count which nodes became integer kernels (QLinearConv, QGemm, ...).
//   node ort_optimize.js MODEL OUT.onnx
'use strict';
const ort = require('onnxruntime-node');

async function main() {
  const [model, out] = process.argv.slice(2);
  if (!model || !out) {
    console.error('usage: ort_optimize.js MODEL OUT.onnx');
    process.exit(2);
  }
  // 'extended' = ORT's level 2 (the QDQ fusions); 'all' adds layout transforms (NCHWc) that
  // cannot be serialized for every node.
  await ort.InferenceSession.create(model, { graphOptimizationLevel: 'extended', intraOpNumThreads: 1,
                                             optimizedModelFilePath: out });
}

main().catch((e) => { console.error(String(e.message || e).split('\n')[0]); process.exit(1); });
