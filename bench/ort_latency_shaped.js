#!/usr/bin/env node
// tests/node/ort_latency.js with concrete input dims: `--shape NAME=D0,D1,...` (repeatable) gives that
// input seeded uniform [0,1) float32 values of that shape (for models whose spatial dims are symbolic,
// which ort_latency.js would set to 1); every other argument and input goes to ort_latency.js unchanged.
'use strict';
const path = require('path');
const rf = require(path.join(__dirname, '..', 'tests', 'node', 'random_feeds'));
const ort = require(path.join(__dirname, '..', 'tests', 'node', 'node_modules', 'onnxruntime-node'));

const shapes = {};
const rest = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--shape') {
    const [name, dims] = args[++i].split('=');
    shapes[name] = dims.split(',').map(Number);
  } else rest.push(args[i]);
}
const original = rf.randomFeeds;
rf.randomFeeds = (session, seed, feeds = {}) => {
  let a = seed | 0;   // mulberry32, as random_feeds.js
  const rnd = () => { a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a);
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296; };
  for (const name of session.inputNames) {
    const dims = shapes[name];
    if (!dims || feeds[name]) continue;
    const n = dims.reduce((x, y) => x * y, 1);
    feeds[name] = new ort.Tensor('float32', Float32Array.from({ length: n }, rnd), dims);
  }
  return original(session, seed, feeds);
};
process.argv = process.argv.slice(0, 2).concat(rest);
require(path.join(__dirname, '..', 'tests', 'node', 'ort_latency.js'));
