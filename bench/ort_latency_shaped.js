#!/usr/bin/env node
// tests/node/ort_latency.js with concrete input dims: `--shape NAME=D0,D1,...` (repeatable) gives that
// input seeded uniform [0,1) float32 values of that shape (for models whose spatial dims are symbolic,
// which ort_latency.js would set to 1); every other argument and input goes to ort_latency.js unchanged.
// Each model's entry also gets the process CPU time per run (process.cpuUsage() around session.run,
// user + system, ms): cpu_median_ms / cpu_min_ms. At 1 thread (the pool does not spin) that is the
// run's own work, steady when the shared machine's load stretches the wall times; at 2 threads it is
// the work of both threads, not a latency.
// `--batch N`: every input the shapes above do not set gets N for its first axis when that axis is
// symbolic (other symbolic axes stay 1), e.g. gpt_tiny / bert_tiny tokens [N, 128]; int64 inputs are 0
// as in random_feeds.js, float ones seeded uniform [0,1).
'use strict';
const path = require('path');
const rf = require(path.join(__dirname, '..', 'tests', 'node', 'random_feeds'));
const ort = require(path.join(__dirname, '..', 'tests', 'node', 'node_modules', 'onnxruntime-node'));

const shapes = {};
const rest = [];
let batch = 1;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--batch') {
    batch = Number(args[++i]);
    if (!(batch >= 1)) { console.error('ort_latency_shaped: --batch needs a positive count'); process.exit(2); }
  } else if (args[i] === '--shape') {
    const [name, dims] = args[++i].split('=');
    shapes[name] = dims.split(',').map(Number);
  } else rest.push(args[i]);
}
const original = rf.randomFeeds;
rf.randomFeeds = (session, seed, feeds = {}) => {
  let a = seed | 0;   // mulberry32, as random_feeds.js
  const rnd = () => { a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a);
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296; };
  session.inputMetadata.forEach((meta) => {
    const name = meta.name;
    let dims = shapes[name];
    if (!dims && batch > 1 && meta.shape.length && !(typeof meta.shape[0] === 'number' && meta.shape[0] > 0))
      dims = meta.shape.map((d, k) => (typeof d === 'number' && d > 0) ? d : (k === 0 ? batch : 1));
    if (!dims || feeds[name]) return;
    const n = dims.reduce((x, y) => x * y, 1);
    if ((meta.type || 'float32') === 'int64')
      feeds[name] = new ort.Tensor('int64', new BigInt64Array(n), dims);
    else feeds[name] = new ort.Tensor('float32', Float32Array.from({ length: n }, rnd), dims);
  });
  return original(session, seed, feeds);
};

// CPU time per run, per session in creation order (ort_latency.js creates one per model, in order).
const sessions = [];
const IS = ort.InferenceSession;
const create = IS.create;
IS.create = async function (...a) {
  const s = await create.apply(this, a);
  s.cpuTimes = [];
  sessions.push(s);
  const run = s.run;
  s.run = async function (...b) {
    const c0 = process.cpuUsage();
    const r = await run.apply(this, b);
    const c = process.cpuUsage(c0);
    s.cpuTimes.push((c.user + c.system) / 1000);
    return r;
  };
  return s;
};
let warmup = 5;
for (let i = 0; i < rest.length; i++) if (rest[i] === '--warmup') warmup = Number(rest[i + 1]);
const log = console.log;
console.log = (...a) => {
  try {
    const j = JSON.parse(a[0]);
    if (Array.isArray(j.models) && j.models.length === sessions.length) {
      j.models.forEach((m, k) => {
        const t = sessions[k].cpuTimes.slice(warmup).sort((x, y) => x - y);
        if (!t.length) return;
        m.cpu_median_ms = t[Math.min(t.length - 1, Math.floor(0.5 * t.length))];
        m.cpu_min_ms = t[0];
      });
      return log(JSON.stringify(j));
    }
  } catch (e) { /* not the result line */ }
  return log(...a);
};
process.argv = process.argv.slice(0, 2).concat(rest);
require(path.join(__dirname, '..', 'tests', 'node', 'ort_latency.js'));
