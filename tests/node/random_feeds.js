// Seeded inputs for an onnxruntime-node session, shared by ort_run.js and ort_latency.js: uniform
// [0,1) float32 values from mulberry32(seed) (symbolic dims become 1), int64 inputs 0. Inputs already
// in `feeds` are kept.
'use strict';
const ort = require('onnxruntime-node');

function mulberry32(a) {
  return () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a);
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296; };
}

function randomFeeds(session, seed, feeds = {}) {
  const rnd = mulberry32(seed);
  session.inputMetadata.forEach((meta) => {
    if (feeds[meta.name]) return;
    const dims = meta.shape.map(d => (typeof d === 'number' && d > 0) ? d : 1);
    const n = dims.reduce((a, b) => a * b, 1);
    const type = meta.type || 'float32';
    if (type === 'float32') feeds[meta.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, rnd), dims);
    else if (type === 'int64') feeds[meta.name] = new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => 0n), dims);
    else throw new Error(`cannot make random input of type ${type} for ${meta.name}`);
  });
  return feeds;
}

module.exports = { randomFeeds };
