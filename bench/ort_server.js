// ort_server.js — ONNX Runtime (npm onnxruntime-node, CPU) as a long-lived
// process for bench/bench_ocr.py's Python pipeline, so sessions are created
// once: node ort_server.js THREADS MODEL.onnx [MODEL.onnx ...]
// Request on stdin: one line "INDEX D0 D1 ...\n" then the float32 input
// bytes; reply on stdout: "D0 D1 ...\n" then the output's float32 bytes.
'use strict';
const path = require('path');
const ort = require(path.join(process.env.RWD_NODE_MODULES || path.join(__dirname, '..', 'node_modules'),
  'onnxruntime-node'));

async function main() {
  const [threads, ...models] = process.argv.slice(2);
  const n = Number(threads);
  const sessions = [];
  for (const m of models)
    sessions.push(await ort.InferenceSession.create(m, { intraOpNumThreads: n, interOpNumThreads: 1 }));
  let buf = Buffer.alloc(0);
  let busy = false;
  process.stdout.write('ready\n');
  async function pump() {
    if (busy)
      return;
    busy = true;
    for (;;) {
      const nl = buf.indexOf(10);
      if (nl < 0)
        break;
      const head = buf.subarray(0, nl).toString().trim().split(/\s+/).map(Number);
      const dims = head.slice(1);
      const bytes = dims.reduce((a, b) => a * b, 1) * 4;
      if (buf.length < nl + 1 + bytes)
        break;
      const data = new Float32Array(bytes / 4);
      Buffer.from(data.buffer).set(buf.subarray(nl + 1, nl + 1 + bytes));
      buf = buf.subarray(nl + 1 + bytes);
      const s = sessions[head[0]];
      const feeds = {};
      feeds[s.inputNames[0]] = new ort.Tensor('float32', data, dims);
      const y = (await s.run(feeds))[s.outputNames[0]];
      process.stdout.write(y.dims.join(' ') + '\n');
      process.stdout.write(Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
    }
    busy = false;
  }
  process.stdin.on('data', (d) => { buf = Buffer.concat([buf, d]); pump(); });
}
main().catch((e) => { console.error(e); process.exit(1); });
