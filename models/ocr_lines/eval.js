#!/usr/bin/env node
// Character accuracy of a PP-OCR recognition model (PP-OCRv4 rec or a compressed copy of it) on
// the rendered lines in this folder, run in onnxruntime-node.
//   node models/ocr_lines/eval.js MODEL [--keys FILE] [--limit N] [--threads N]
// Prints one JSON line: {"lines", "char_accuracy", "char_accuracy_no_space", "line_accuracy",
// "errors": [[truth, predicted], ...first 10]}.
// Decoding is CTC greedy: argmax per time step, merge repeats, drop the blank (class 0); class k
// in 1..K is line k of the key file, class K+1 is the space (PaddleOCR's use_space_char).
// char_accuracy = 1 - sum(edit distance(pred, truth)) / sum(|truth|).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', '..', 'tests', 'node', 'node_modules', 'onnxruntime-node'));

const H = 48, W = 320;

// uint8 .npy only (that is what lines_u8.npy is); refuses anything else rather than misreading it.
function readU8Npy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const v1 = buf[6] === 1;
  const hlen = v1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (v1 ? 10 : 12) + hlen;
  const header = buf.toString('latin1', v1 ? 10 : 12, start);
  if (!/'descr':\s*'\|u1'/.test(header) || /True/.test(header)) throw new Error(`${file}: want C-order uint8`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').filter(s => s.trim()).map(Number);
  return { data: buf.subarray(start), shape };
}

function editDistance(a, b) {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

function ctcGreedy(probs, t, c, keys) {
  let out = '', last = -1;
  for (let s = 0; s < t; s++) {
    let best = 0;
    for (let k = 1; k < c; k++) if (probs[s * c + k] > probs[s * c + best]) best = k;
    if (best !== last && best !== 0) out += best <= keys.length ? keys[best - 1] : ' ';
    last = best;
  }
  return out;
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 1) { console.error('usage: eval.js MODEL [--keys FILE] [--limit N] [--threads N]'); process.exit(2); }
  let keysFile = path.join(__dirname, '..', 'corpus', 'ppocr_keys_v1.txt'), limit = Infinity, threads = 0;
  for (let i = 1; i < args.length; i++) {
    if (args[i] === '--keys') keysFile = args[++i];
    else if (args[i] === '--limit') limit = Number(args[++i]);
    else if (args[i] === '--threads') threads = Number(args[++i]);
    else { console.error(`eval.js: unknown argument ${args[i]}`); process.exit(2); }
  }
  const keys = fs.readFileSync(keysFile, 'utf8').split('\n');
  if (keys[keys.length - 1] === '') keys.pop();
  const { texts, widths } = JSON.parse(fs.readFileSync(path.join(__dirname, 'lines_text.json'), 'utf8'));
  const img = readU8Npy(path.join(__dirname, 'lines_u8.npy'));
  if (img.shape[1] !== H || img.shape[2] !== W) throw new Error('lines_u8.npy: want [N, 48, 320]');
  const n = Math.min(limit, texts.length, img.shape[0]);

  const opts = { graphOptimizationLevel: 'all' };
  if (threads > 0) { opts.intraOpNumThreads = threads; opts.interOpNumThreads = 1; }
  const session = await ort.InferenceSession.create(args[0], opts);
  const preds = [];
  const BATCH = 25;
  for (let b0 = 0; b0 < n; b0 += BATCH) {
    const nb = Math.min(BATCH, n - b0);
    const x = new Float32Array(nb * 3 * H * W);  // zero = PaddleOCR's right padding
    for (let i = 0; i < nb; i++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < widths[b0 + i]; xx++) {
          const v = img.data[((b0 + i) * H + y) * W + xx] / 255 * 2 - 1;
          for (let ch = 0; ch < 3; ch++) x[((i * 3 + ch) * H + y) * W + xx] = v;
        }
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [nb, 3, H, W]) });
    const y = out[session.outputNames[0]];
    const [, t, c] = y.dims;
    for (let i = 0; i < nb; i++) preds.push(ctcGreedy(y.data.subarray(i * t * c, (i + 1) * t * c), t, c, keys));
  }

  let dist = 0, total = 0, distNs = 0, totalNs = 0, exact = 0;
  const errors = [];
  for (let i = 0; i < n; i++) {
    const truth = [...texts[i]], pred = [...preds[i]];
    dist += editDistance(pred, truth); total += truth.length;
    const ts = truth.filter(ch => ch !== ' '), ps = pred.filter(ch => ch !== ' ');
    distNs += editDistance(ps, ts); totalNs += ts.length;
    if (preds[i] === texts[i]) exact++;
    else if (errors.length < 10) errors.push([texts[i], preds[i]]);
  }
  console.log(JSON.stringify({ lines: n, char_accuracy: 1 - dist / total,
    char_accuracy_no_space: 1 - distNs / totalNs, line_accuracy: exact / n, errors }));
}

main().catch(e => { console.error(`eval.js: ${e.message.split('\n')[0]}`); process.exit(1); });
