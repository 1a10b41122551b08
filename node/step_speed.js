#!/usr/bin/env node
// Time one-token steps of several graphs side by side (interleaved: A, B, A, B, ... then B, A, B, A, ...),
// one thread, in onnxruntime-node or onnxruntime-web (WebAssembly). The Python side (bench/step_speed.py)
// writes the spec and the inputs in node/conformance.js's format.
//
//   node --no-liftoff step_speed.js SPEC.json OUT.json onnxruntime-web|onnxruntime-node [STEPS] [WARMUP]
//
// SPEC.json: {"cases": [{"name", "graph", "feeds": {input: {"dtype", "shape", "file"}},
//             "state": {input: output} | null, "timed": [inputs sliced along time]}]}
// OUT.json: {"runtime", "version", "node", "cases": {name: {"step_ms": [...], "p50_ms", "p10_ms", "p90_ms",
//            "cpu_p50_ms"}}}: wall time, and this process's CPU time per call (process.cpuUsage: immune to other
//            processes taking the core, but counts V8's helper threads)
'use strict';
const fs = require('fs');
const path = require('path');

const { readTensor, sliceTime, sessionOptions } = require('./spec_io');

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))];
}

async function main() {
  const [specFile, outFile, runtime, stepsArg, warmArg] = process.argv.slice(2);
  if (!specFile || !outFile || !runtime) {
    console.error('usage: node step_speed.js SPEC.json OUT.json onnxruntime-web|onnxruntime-node [STEPS] [WARMUP]');
    process.exit(2);
  }
  const steps = Number(stepsArg || 2000);
  const warm = Number(warmArg || 300);
  const ort = require(runtime);
  if (runtime === 'onnxruntime-web') ort.env.wasm.numThreads = 1;
  const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'));
  const base = path.dirname(path.resolve(specFile));
  const opts = sessionOptions(runtime);
  const runs = [];
  for (const c of spec.cases) {
    const sess = await ort.InferenceSession.create(fs.readFileSync(path.resolve(base, c.graph)), opts);
    const feeds = {};
    for (const [k, v] of Object.entries(c.feeds)) feeds[k] = readTensor(ort, v, base);
    runs.push({ c, sess, feeds, f: { ...feeds }, times: [], cpu: [] });
  }
  for (let n = 0; n < warm + steps; n++) {
    const order = n % 2 === 0 ? runs : [...runs].reverse();
    for (const r of order) {
      const { c, feeds, f } = r;
      const timed = c.timed || [];
      const T = timed.length ? feeds[timed[0]].dims[1] : 1;
      for (const k of timed) f[k] = sliceTime(ort, feeds[k], n % T);
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const out = await r.sess.run(f);
      const dt = Number(process.hrtime.bigint() - t0) / 1e6;
      const dc = process.cpuUsage(c0);
      if (n >= warm) {
        r.times.push(dt);
        r.cpu.push((dc.user + dc.system) / 1e3);
      }
      for (const [i, o] of Object.entries(c.state || {})) f[i] = out[o];
      if (n % T === T - 1) for (const i of Object.keys(c.state || {})) f[i] = feeds[i];
    }
  }
  const version = JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', runtime, 'package.json'), 'utf8')).version;
  const report = { runtime, version, node: process.version, cases: {} };
  for (const r of runs) {
    report.cases[r.c.name] = { step_ms: r.times, p50_ms: quantile(r.times, 0.5), p10_ms: quantile(r.times, 0.1),
      p90_ms: quantile(r.times, 0.9), cpu_p50_ms: quantile(r.cpu, 0.5) };
  }
  fs.writeFileSync(outFile, JSON.stringify(report));
}

main().catch((e) => { console.error(String(e && e.stack || e).split('\n').slice(0, 3).join('\n')); process.exit(1); });
