'use strict';
const ort = require('onnxruntime-node');
const fs = require('fs');
async function main() {
  const [model, prefix, reps] = process.argv.slice(2);
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, enableProfiling: true, profileFilePrefix: prefix });
  const name = s.inputNames[0];
  const x = new ort.Tensor('float32', new Float32Array(3*224*224).map(() => Math.random()), [1,3,224,224]);
  for (let i = 0; i < Number(reps || 30); i++) await s.run({ [name]: x });
  s.endProfiling();
}
main();
