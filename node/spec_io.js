// What node/conformance.js and node/step_speed.js share: reading the Python side's spec tensors,
// slicing one time step, and a one-thread session in either runtime.
'use strict';
const fs = require('fs');
const path = require('path');

const TYPED = {
  float32: Float32Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array, int8: Int8Array, bool: Uint8Array,
};

function readTensor(ort, spec, base) {
  const buf = fs.readFileSync(path.resolve(base, spec.file));
  const T = TYPED[spec.dtype];
  const data = new T(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return new ort.Tensor(spec.dtype, data, spec.shape);
}

// x[:, t:t+1, ...] of a tensor whose axis 1 is time
function sliceTime(ort, x, t) {
  const [b, T, ...rest] = x.dims;
  const inner = rest.reduce((a, v) => a * v, 1);
  const out = new x.data.constructor(b * inner);
  for (let i = 0; i < b; i++) out.set(x.data.subarray((i * T + t) * inner, (i * T + t + 1) * inner), i * inner);
  return new ort.Tensor(x.type, out, [b, 1, ...rest]);
}

// One intra-op thread in onnxruntime-node; onnxruntime-web's WebAssembly (set ort.env.wasm.numThreads = 1).
function sessionOptions(runtime) {
  return runtime === 'onnxruntime-node'
    ? { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'] }
    : { executionProviders: ['wasm'] };
}

module.exports = { TYPED, readTensor, sliceTime, sessionOptions };
