// ort_run.js — the ONNX Runtime oracle (npm onnxruntime-node, CPU) for the
// OCR parity tests: node ort_run.js MODEL.onnx IN.f32 OUT.f32 D0 [D1 ...]
// runs the model's single input on the float32 file and writes its single
// output's float32 bytes; prints the output dims.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(process.env.RWD_NODE_MODULES || path.join(__dirname, '..', '..', 'node_modules'),
  'onnxruntime-node'));

async function main() {
  const [model, inp, out, ...dimStr] = process.argv.slice(2);
  const dims = dimStr.map(Number);
  const buf = fs.readFileSync(inp);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const sess = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const feeds = {};
  feeds[sess.inputNames[0]] = new ort.Tensor('float32', Float32Array.from(data), dims);
  const t0 = process.hrtime.bigint();
  const res = await sess.run(feeds);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const y = res[sess.outputNames[0]];
  fs.writeFileSync(out, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
  console.log('dims ' + y.dims.join(' '));
  console.log('seconds ' + secs.toFixed(4));
}
main().catch((e) => { console.error(e); process.exit(1); });
