#!/usr/bin/env node
// Reference runner: runs an ONNX model in onnxruntime-node on .npy inputs and writes each output
// as .npy. Used by the tests (numerical agreement) and the benchmarks (latency).
//   node ort_run.js MODEL OUTDIR [NAME=FILE.npy ...] [--repeat N] [--threads N] [--random-seed S]
// Prints one JSON line: {"outputs":[...], "latency_ms":{"median":..,"runs":N}}.
// --random-seed fills inputs that were not given with seeded uniform values in [0,1) (symbolic
// dims become 1), so a model can be timed without data.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const { randomFeeds } = require('./random_feeds');

const DTYPES = {
  '<f4': ['float32', Float32Array, 4], '<f8': ['float64', Float64Array, 8],
  '<f2': ['float16', Uint16Array, 2], '<i8': ['int64', BigInt64Array, 8],
  '<i4': ['int32', Int32Array, 4], '<i2': ['int16', Int16Array, 2], '|i1': ['int8', Int8Array, 1],
  '|u1': ['uint8', Uint8Array, 1], '|b1': ['bool', Uint8Array, 1], '<u2': ['uint16', Uint16Array, 2],
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: fortran order not supported`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const dt = DTYPES[descr];
  if (!dt) throw new Error(`${file}: dtype ${descr} not supported`);
  const n = shape.reduce((a, b) => a * b, 1);
  const start = hstart + hlen;
  const bytes = buf.subarray(start, start + n * dt[2]);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  let data = new dt[1](copy.buffer);
  if (dt[0] === 'bool') data = Uint8Array.from(data, v => v ? 1 : 0);
  return new ort.Tensor(dt[0], data, shape);
}

function writeNpy(file, tensor) {
  const entry = Object.entries(DTYPES).find(([, v]) => v[0] === tensor.type);
  if (!entry) throw new Error(`output type ${tensor.type} not supported`);
  const shape = tensor.dims.length === 1 ? `(${tensor.dims[0]},)` : `(${tensor.dims.join(', ')})`;
  let header = `{'descr': '${entry[0]}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}

function safeName(name) { return name.replace(/[^A-Za-z0-9._-]/g, '_'); }

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 2) { console.error('usage: ort_run.js MODEL OUTDIR [NAME=FILE.npy ...] [--repeat N] [--threads N]'); process.exit(2); }
  const [model, outdir] = args;
  let repeat = 1, threads = 0, seed = null;
  const feeds = {};
  for (let i = 2; i < args.length; i++) {
    if (args[i] === '--repeat') repeat = Number(args[++i]);
    else if (args[i] === '--threads') threads = Number(args[++i]);
    else if (args[i] === '--random-seed') seed = Number(args[++i]);
    else { const eq = args[i].indexOf('='); feeds[args[i].slice(0, eq)] = readNpy(args[i].slice(eq + 1)); }
  }
  const opts = { graphOptimizationLevel: 'all' };
  if (threads > 0) { opts.intraOpNumThreads = threads; opts.interOpNumThreads = 1; }
  const session = await ort.InferenceSession.create(model, opts);
  if (seed !== null) randomFeeds(session, seed, feeds);
  let result;
  const times = [];
  for (let r = 0; r < Math.max(1, repeat); r++) {
    const t0 = process.hrtime.bigint();
    result = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  fs.mkdirSync(outdir, { recursive: true });
  const names = session.outputNames;
  for (const name of names) writeNpy(path.join(outdir, safeName(name) + '.npy'), result[name]);
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ outputs: names, latency_ms: { median: times[Math.floor(times.length / 2)], min: times[0], runs: times.length } }));
}

main().catch(e => { console.error(`ort_run: ${e.message.split('\n')[0]}`); process.exit(1); });
