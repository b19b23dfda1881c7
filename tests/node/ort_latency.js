#!/usr/bin/env node
// Latency of several ONNX models in onnxruntime-node, measured interleaved: after the warm-up runs,
// round r runs model 1, model 2, ... once each, so noise from other processes on the machine lands
// on every model alike instead of on whichever happened to run during a busy minute.
//   node ort_latency.js MODEL... [--threads N] [--repeat N] [--warmup N] [--seed S]
// Inputs are seeded uniform [0,1) values (symbolic dims become 1, so batch 1); every model gets the
// same ones. Thread pools do not spin between runs (session.intra_op.allow_spinning = 0), so one
// session's idle workers cannot steal the cores from the next model's run.
// Prints one JSON line: {"threads":N,"repeat":N,"models":[{"model":..,"median_ms":..,"min_ms":..,
// "q1_ms":..,"q3_ms":..}, ...]}.
'use strict';
const ort = require('onnxruntime-node');
const { randomFeeds } = require('./random_feeds');

function quantile(sorted, q) { return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]; }

async function main() {
  const models = [];
  let threads = 1, repeat = 50, warmup = 5, seed = 1;
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--threads') threads = Number(args[++i]);
    else if (args[i] === '--repeat') repeat = Number(args[++i]);
    else if (args[i] === '--warmup') warmup = Number(args[++i]);
    else if (args[i] === '--seed') seed = Number(args[++i]);
    else models.push(args[i]);
  }
  if (models.length === 0 || !(threads >= 1) || !(repeat >= 1) || !(warmup >= 0)) {
    console.error('usage: ort_latency.js MODEL... [--threads N] [--repeat N] [--warmup N] [--seed S]');
    process.exit(2);
  }
  const opts = { graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1,
                 extra: { session: { intra_op: { allow_spinning: '0' } } } };
  const runs = [];
  for (const m of models) {
    const session = await ort.InferenceSession.create(m, opts);
    runs.push({ model: m, session, feeds: randomFeeds(session, seed), times: [] });
  }
  for (let r = 0; r < warmup + repeat; r++) {
    for (const x of runs) {
      const t0 = process.hrtime.bigint();
      await x.session.run(x.feeds);
      if (r >= warmup) x.times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  const out = runs.map((x) => {
    const t = x.times.slice().sort((a, b) => a - b);
    return { model: x.model, median_ms: quantile(t, 0.5), min_ms: t[0], q1_ms: quantile(t, 0.25), q3_ms: quantile(t, 0.75) };
  });
  console.log(JSON.stringify({ threads, repeat, models: out }));
}

main().catch(e => { console.error(`ort_latency: ${e.message.split('\n')[0]}`); process.exit(1); });
