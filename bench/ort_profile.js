#!/usr/bin/env node
// Where ONNX Runtime spends a model's run: its own profiler (per node kernel time) over N runs of one
// session, reduced to the median per node, summed per op type, and the slowest nodes with their
// output shapes. The findings in docs/BENCHMARKS.md and docs/QUANTIZATION.md that say "in ORT's
// profile" are read off this.
//   node bench/ort_profile.js MODEL [--shape NAME=D0,D1,...] [--threads N] [--repeat N] [--top N]
// Inputs not given a shape are random_feeds.js's (symbolic dims 1); shaped ones seeded uniform [0,1).
// The model runs warm (the same session back to back), unlike the interleaved latency runs, so per-op
// times here are a little lower than a share of those.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const rf = require(path.join(__dirname, '..', 'tests', 'node', 'random_feeds'));
const ort = require(path.join(__dirname, '..', 'tests', 'node', 'node_modules', 'onnxruntime-node'));

function usage(msg) {
  console.error(`ort_profile: ${msg}\nusage: ort_profile.js MODEL [--shape NAME=DIMS] [--threads N] [--repeat N] [--top N]`);
  process.exit(2);
}

async function main() {
  let model = null, threads = 1, repeat = 50, top = 15;
  const shapes = {};
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--shape') {
      const [name, dims] = (args[++i] || '').split('=');
      if (!dims) usage('--shape needs NAME=D0,D1,...');
      shapes[name] = dims.split(',').map(Number);
    } else if (args[i] === '--threads') threads = Number(args[++i]);
    else if (args[i] === '--repeat') repeat = Number(args[++i]);
    else if (args[i] === '--top') top = Number(args[++i]);
    else if (!model) model = args[i];
    else usage(`unexpected argument '${args[i]}'`);
  }
  if (!model) usage('no model');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-profile-'));
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, enableProfiling: true, profileFilePrefix: path.join(dir, 'p'),
    extra: { session: { intra_op: { allow_spinning: '0' } } } });
  let seed = 1;
  const rnd = () => { seed = seed + 0x6D2B79F5 | 0; let t = Math.imul(seed ^ seed >>> 15, 1 | seed);
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296; };
  const feeds = {};
  for (const [name, dims] of Object.entries(shapes)) {
    const n = dims.reduce((x, y) => x * y, 1);
    feeds[name] = new ort.Tensor('float32', Float32Array.from({ length: n }, rnd), dims);
  }
  rf.randomFeeds(session, 1, feeds);
  for (let i = 0; i < repeat; i++) await session.run(feeds);
  session.endProfiling();
  const file = fs.readdirSync(dir).map((f) => path.join(dir, f))[0];
  const events = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.rmSync(dir, { recursive: true, force: true });
  const perNode = new Map(), runs = [];
  for (const e of events) {
    if (e.cat === 'Session' && e.name === 'model_run') runs.push(e.dur);
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    if (!perNode.has(name)) perNode.set(name, { op: e.args.op_name, shape: JSON.stringify(e.args.output_type_shape || ''), durs: [] });
    perNode.get(name).durs.push(e.dur);
  }
  const median = (v) => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
  const nodes = [...perNode.entries()].map(([name, n]) => ({ name, op: n.op, shape: n.shape, us: median(n.durs) }));
  const total = nodes.reduce((s, n) => s + n.us, 0);
  const byOp = new Map();
  for (const n of nodes) {
    const o = byOp.get(n.op) || { count: 0, us: 0 };
    o.count++; o.us += n.us;
    byOp.set(n.op, o);
  }
  console.log(`${path.basename(model)}: ${repeat} runs at ${threads} thread(s); run ${(median(runs) / 1000).toFixed(3)} ms ` +
              `(median), kernels ${(total / 1000).toFixed(3)} ms (sum of per-node medians)\n`);
  console.log('| op | nodes | µs per run | share |\n|---|---:|---:|---:|');
  for (const [op, o] of [...byOp.entries()].sort((a, b) => b[1].us - a[1].us))
    console.log(`| ${op} | ${o.count} | ${o.us} | ${(100 * o.us / total).toFixed(1)}% |`);
  console.log('\n| node | op | µs | output |\n|---|---|---:|---|');
  for (const n of nodes.sort((a, b) => b.us - a.us).slice(0, top)) console.log(`| ${n.name} | ${n.op} | ${n.us} | ${n.shape} |`);
}

main().catch((e) => { console.error(`ort_profile: ${String(e.message || e).split('\n')[0]}`); process.exit(1); });
