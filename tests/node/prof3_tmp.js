'use strict';
const ort = require('onnxruntime-node');
async function main() {
  const [model, prefix, reps, shape] = process.argv.slice(2);
  const dims = shape.split(',').map(Number);
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, enableProfiling: true, profileFilePrefix: prefix });
  const n = dims.reduce((a, b) => a * b, 1);
  const x = new ort.Tensor('float32', new Float32Array(n).map(() => Math.random()), dims);
  for (let i = 0; i < Number(reps); i++) await s.run({ [s.inputNames[0]]: x });
  s.endProfiling();
}
main();
