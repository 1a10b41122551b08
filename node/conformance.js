#!/usr/bin/env node
// Run rnnkit graphs on fixed inputs under onnxruntime-node and onnxruntime-web (WebAssembly), write
// every output, and time a one-token step. The Python side (rnnkit.export.conformance) writes the
// inputs and the spec, runs the same graphs itself and compares.
//
//   node conformance.js SPEC.json OUT_DIR [onnxruntime-node|onnxruntime-web ...]
//
// SPEC.json: {"cases": [{"name", "graph", "feeds": {input: {"dtype", "shape", "file"}},
//             "state": {input: output} | null, "timed": [inputs sliced along time] ,
//             "modes": ["whole", "stepped"], "timing_steps": N, "warmup_steps": N}]}
// OUT_DIR/<runtime>/<case>.<mode>.<output>.bin (raw little-endian) and OUT_DIR/<runtime>/report.json
// {"versions", "cases": {name: {"outputs": {mode: {output: {dtype, shape, file}}}, "step_ms": [...],
//  "step_p50_ms"}}}. One thread in both runtimes.
'use strict';
const fs = require('fs');
const path = require('path');

const { readTensor, sliceTime, sessionOptions } = require('./spec_io');

// concatenate tensors [b, 1, ...] along axis 1
function concatTime(ort, parts) {
  const [b, , ...rest] = parts[0].dims;
  const inner = rest.reduce((a, v) => a * v, 1);
  const T = parts.length;
  const out = new parts[0].data.constructor(b * T * inner);
  parts.forEach((p, t) => {
    for (let i = 0; i < b; i++) out.set(p.data.subarray(i * inner, (i + 1) * inner), (i * T + t) * inner);
  });
  return new ort.Tensor(parts[0].type, out, [b, T, ...rest]);
}

function writeTensor(dir, name, t) {
  const file = `${name}.bin`;
  fs.writeFileSync(path.join(dir, file), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return { dtype: t.type, shape: t.dims, file };
}

async function session(ort, runtime, graph) {
  return ort.InferenceSession.create(fs.readFileSync(graph), sessionOptions(runtime));
}

async function runCase(ort, runtime, c, base, dir) {
  const sess = await session(ort, runtime, path.resolve(base, c.graph));
  const feeds = {};
  for (const [k, v] of Object.entries(c.feeds)) feeds[k] = readTensor(ort, v, base);
  const res = { outputs: {} };
  const stateOut = new Set(Object.values(c.state || {}));
  if ((c.modes || []).includes('whole')) {
    const r = await sess.run(feeds);
    res.outputs.whole = {};
    for (const [k, v] of Object.entries(r)) res.outputs.whole[k] = writeTensor(dir, `${c.name}.whole.${k}`, v);
  }
  if ((c.modes || []).includes('stepped') && c.state) {
    const T = feeds[c.timed[0]].dims[1];
    const f = { ...feeds };
    const parts = {};
    let last = {};
    for (let t = 0; t < T; t++) {
      for (const k of c.timed) f[k] = sliceTime(ort, feeds[k], t);
      const r = await sess.run(f);
      for (const [k, v] of Object.entries(r)) {
        if (stateOut.has(k)) last[k] = v; else (parts[k] = parts[k] || []).push(v);
      }
      for (const [i, o] of Object.entries(c.state)) f[i] = r[o];
    }
    res.outputs.stepped = {};
    for (const [k, v] of Object.entries(parts)) res.outputs.stepped[k] = writeTensor(dir, `${c.name}.stepped.${k}`, concatTime(ort, v));
    for (const [k, v] of Object.entries(last)) res.outputs.stepped[k] = writeTensor(dir, `${c.name}.stepped.${k}`, v);
  }
  if (c.timing_steps && c.state) {
    // one token per call, batch 1, the state fed back: what a keyboard does per keystroke
    const f = { ...feeds };
    const T = feeds[c.timed[0]].dims[1];
    const times = [];
    const total = (c.warmup_steps || 0) + c.timing_steps;
    for (let n = 0; n < total; n++) {
      for (const k of c.timed) f[k] = sliceTime(ort, feeds[k], n % T);
      const t0 = process.hrtime.bigint();
      const r = await sess.run(f);
      const dt = Number(process.hrtime.bigint() - t0) / 1e6;
      if (n >= (c.warmup_steps || 0)) times.push(dt);
      for (const [i, o] of Object.entries(c.state)) f[i] = r[o];
      if (n % T === T - 1) for (const i of Object.keys(c.state)) f[i] = feeds[i];
    }
    const sorted = [...times].sort((a, b) => a - b);
    res.step_p50_ms = sorted[Math.floor(sorted.length / 2)];
    res.step_p90_ms = sorted[Math.floor(sorted.length * 0.9)];
  }
  await sess.release?.();
  return res;
}

async function main() {
  const [specFile, outDir, ...runtimes] = process.argv.slice(2);
  if (!specFile || !outDir) {
    console.error('usage: node conformance.js SPEC.json OUT_DIR [onnxruntime-node|onnxruntime-web ...]');
    process.exit(2);
  }
  const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'));
  const base = path.dirname(path.resolve(specFile));
  for (const runtime of (runtimes.length ? runtimes : ['onnxruntime-node', 'onnxruntime-web'])) {
    const ort = require(runtime);
    if (runtime === 'onnxruntime-web') ort.env.wasm.numThreads = 1;
    const dir = path.join(outDir, runtime);
    fs.mkdirSync(dir, { recursive: true });
    const version = JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', runtime, 'package.json'), 'utf8')).version;
    const report = { runtime, version, node: process.version, cases: {} };
    for (const c of spec.cases) report.cases[c.name] = await runCase(ort, runtime, c, base, dir);
    fs.writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report, null, 1));
    console.log(`${runtime} ${report.version}: ${spec.cases.length} case(s) -> ${dir}`);
  }
}

main().catch((e) => { console.error(String(e && e.stack || e).split('\n').slice(0, 3).join('\n')); process.exit(1); });
