'use strict';
const ort = require('onnxruntime-node');
const { randomFeeds } = require('./random_feeds.js');
async function main() {
  const [model, prefix, reps] = process.argv.slice(2);
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, enableProfiling: true, profileFilePrefix: prefix });
  const feeds = randomFeeds(s, 1);
  for (let i = 0; i < Number(reps || 30); i++) await s.run(feeds);
  s.endProfiling();
}
main();
