// bench/ort_clip_vision.js — ONNX Runtime (npm onnxruntime-node, CPU) images/s
// of an exported CLIP image tower, for bench/bench_clip_vision.py.
//   node bench/ort_clip_vision.js MODEL.onnx THREADS BATCH ITERS
// Prints one JSON line {"batch", "threads", "seconds_per_batch", "images_per_s"}.
'use strict';
const path = require('path');
const ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));

async function main() {
  const [model, threads, batch, iters] = process.argv.slice(2);
  const b = parseInt(batch, 10), n = parseInt(iters, 10), t = parseInt(threads, 10);
  const sess = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: t,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const size = 224;
  const data = new Float32Array(b * 3 * size * size);
  let seed = 1;
  for (let i = 0; i < data.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    data[i] = ((seed >>> 8) & 0xffff) / 32768 - 1;
  }
  const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', data, [b, 3, size, size]) };
  await sess.run(feeds); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await sess.run(feeds);
  const sec = Number(process.hrtime.bigint() - t0) / 1e9 / n;
  console.log(JSON.stringify({ batch: b, threads: t, seconds_per_batch: sec, images_per_s: b / sec }));
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
