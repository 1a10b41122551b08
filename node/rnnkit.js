// Use an rnnkit bundle from a Node (or browser-bundled) app: open it with every file checked against
// its manifest, tokenize with its SentencePiece model, step the graph with its state. No Python needed.
//
//   const rk = require('./rnnkit');
//   const bundle = rk.openBundle('models/suggest-en');          // throws if any file's size / sha256 differ
//   const tok = rk.sentencePiece(bundle.read(bundle.manifest.tokenizer.file));
//   const lm = await rk.StepModel.create(require('onnxruntime-node'), bundle);
//   const logits = await lm.feed(tok.encode('Thank you for the'));   // state kept inside; lm.reset() to start over
//
// See docs/APP.md.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

// ----------------------------------------------------------------------------- the bundle
class BundleError extends Error {}

/** Read manifest.json and check every listed file: exact size, then sha256. Nothing unlisted is read. */
const FORMAT_VERSION = 1;  // rnnkit.edge.names.FORMAT_VERSION

function openBundle(dir) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  if (!manifest.files || !manifest.graphs || !manifest.sizes) throw new BundleError(`${dir}: manifest.json lists no files / sizes / graphs`);
  if (manifest.format_version !== FORMAT_VERSION) throw new BundleError(`${dir}: bundle format ${manifest.format_version}; this reader knows ${FORMAT_VERSION}`);
  const cache = new Map();
  for (const [name, digest] of Object.entries(manifest.files)) {
    if (name.includes('/') || name.includes('\\') || name.startsWith('.')) throw new BundleError(`${dir}: bad file name ${name}`);
    const file = path.join(dir, name);
    let data;
    try {
      // a link could lead out of the bundle: only regular files (as the Python reader)
      if (!fs.lstatSync(file).isFile()) throw new BundleError(`${file}: not a regular file (a link or a device)`);
      data = fs.readFileSync(file);
    } catch (e) { throw e instanceof BundleError ? e : new BundleError(`${file}: missing (listed in manifest.json)`); }
    const size = manifest.sizes[name];
    if (data.length !== size) throw new BundleError(`${file}: ${data.length} bytes, the manifest says ${size}`);
    const got = crypto.createHash('sha256').update(data).digest('hex');
    if (got !== digest) throw new BundleError(`${file}: sha256 ${got} differs from the manifest's ${digest}`);
    cache.set(name, data);
  }
  for (const [job, file] of Object.entries(manifest.graphs)) {
    if (!cache.has(file)) throw new BundleError(`${dir}: graph ${job} = ${file} is not a listed file`);
  }
  return {
    dir, manifest,
    /** bytes of a listed (hence checked) file */
    read(name) {
      if (!cache.has(name)) throw new BundleError(`${dir}: ${name} is not listed in manifest.json`);
      return cache.get(name);
    },
  };
}

// ----------------------------------------------------------------------------- SentencePiece (unigram)
// The bundle's tokenizer.model is a SentencePiece ModelProto. We read its pieces (protobuf wire format:
// ModelProto{1: pieces {1: piece, 2: score, 3: type}, 3: normalizer_spec {3: add_dummy_prefix}}) and
// encode with the unigram model's Viterbi search, bytes of unknown characters as <0xNN> pieces (byte_fallback).
function* fields(buf, start = 0, end = buf.length) {
  let i = start;
  const varint = () => {
    let x = 0n; let shift = 0n;
    for (;;) { const b = buf[i++]; x |= BigInt(b & 0x7f) << shift; if (!(b & 0x80)) return x; shift += 7n; }
  };
  while (i < end) {
    const key = Number(varint()); const field = key >> 3; const wire = key & 7;
    if (wire === 0) yield { field, value: varint() };
    else if (wire === 1) { yield { field, start: i, end: i + 8 }; i += 8; }
    else if (wire === 2) { const n = Number(varint()); yield { field, start: i, end: i + n }; i += n; }
    else if (wire === 5) { yield { field, start: i, end: i + 4 }; i += 4; }
    else throw new Error(`tokenizer.model: unsupported protobuf wire type ${wire}`);
  }
}

const NORMAL = 1; const UNKNOWN = 2; const CONTROL = 3; const USER_DEFINED = 4; const BYTE = 6;

function sentencePiece(buf) {
  const pieces = []; let addDummyPrefix = true;
  for (const f of fields(buf)) {
    if (f.field === 1) {
      const p = { piece: '', score: 0, type: NORMAL };
      for (const g of fields(buf, f.start, f.end)) {
        if (g.field === 1) p.piece = buf.toString('utf8', g.start, g.end);
        else if (g.field === 2) p.score = buf.readFloatLE(g.start);
        else if (g.field === 3) p.type = Number(g.value);
      }
      pieces.push(p);
    } else if (f.field === 3) {
      for (const g of fields(buf, f.start, f.end)) if (g.field === 3) addDummyPrefix = g.value !== 0n;
    }
  }
  const vocab = new Map(); const bytes = new Map(); let unk = 0; let maxLen = 1;
  pieces.forEach((p, id) => {
    if (p.type === NORMAL || p.type === USER_DEFINED) { vocab.set(p.piece, id); maxLen = Math.max(maxLen, [...p.piece].length); }
    else if (p.type === BYTE) bytes.set(parseInt(p.piece.slice(3, 5), 16), id);
    else if (p.type === UNKNOWN) unk = id;
  });
  const minScore = Math.min(...pieces.filter((p) => p.type === NORMAL).map((p) => p.score));

  function encode(text) {
    if (text.length === 0) return [];  // as SentencePiece: no lone word-start piece for an empty text
    const chars = [...((addDummyPrefix ? ' ' : '') + text).replace(/ /g, '\u2581')];
    const n = chars.length;
    const best = new Array(n + 1).fill(-Infinity); const back = new Array(n + 1); best[0] = 0;
    for (let i = 0; i < n; i++) {
      if (best[i] === -Infinity) continue;
      let s = '';
      for (let j = i; j < Math.min(n, i + maxLen); j++) {
        s += chars[j];
        const id = vocab.get(s);
        if (id !== undefined && best[i] + pieces[id].score > best[j + 1]) { best[j + 1] = best[i] + pieces[id].score; back[j + 1] = [i, id]; }
      }
      // an unknown character: its UTF-8 bytes (scored below every piece, as SentencePiece's unk penalty)
      const pen = best[i] + minScore - 10;
      if (pen > best[i + 1]) { best[i + 1] = pen; back[i + 1] = [i, -1]; }
    }
    const out = [];
    for (let k = n; k > 0;) {
      const [i, id] = back[k];
      if (id >= 0) out.push(id);
      else {
        const ids = [...Buffer.from(chars.slice(i, k).join(''), 'utf8')].map((b) => bytes.get(b) ?? unk);
        out.push(...ids.reverse());
      }
      k = i;
    }
    return out.reverse();
  }

  function decode(ids) {
    const parts = []; let pending = [];
    const flush = () => { if (pending.length) { parts.push(Buffer.from(pending).toString('utf8')); pending = []; } };
    for (const id of ids) {
      const p = pieces[id];
      if (!p || p.type === CONTROL || p.type === UNKNOWN) continue;
      if (p.type === BYTE) pending.push(parseInt(p.piece.slice(3, 5), 16));
      else { flush(); parts.push(p.piece); }
    }
    flush();
    let text = parts.join('').replace(/\u2581/g, ' ');
    if (addDummyPrefix && text.startsWith(' ')) text = text.slice(1);
    return text;
  }

  return { pieces: pieces.map((p) => p.piece), size: pieces.length, encode, decode,
    startsWord: (id) => pieces[id] && pieces[id].piece.startsWith('\u2581') };
}

// ----------------------------------------------------------------------------- the step graph
/** A language model's step graph: tokens[B,T] int64 + state (h0, c0) -> logits[B,T,V] + next state. */
class StepModel {
  static async create(ort, bundle, options = {}) {
    const job = options.job || 'step';
    const file = bundle.manifest.graphs[job];
    if (!file) throw new BundleError(`${bundle.dir}: no ${job} graph (graphs: ${Object.keys(bundle.manifest.graphs)})`);
    const session = await ort.InferenceSession.create(bundle.read(file), options.sessionOptions || {});
    return new StepModel(ort, session, bundle.manifest.model.config);
  }

  constructor(ort, session, config) {
    this.ort = ort; this.session = session; this.config = config;
    // Every input but the tokens is state, each fed back from its next_<name> output: (h0, c0) for
    // an LSTM, h0 for a GRU, (k0, v0, len0) for a Transformer's KV cache. Shapes come from the
    // graph (batch 1 on axis 1); an onnxruntime without inputMetadata gets the recurrent (L, 1, H).
    this.stateNames = session.inputNames.filter((n) => n !== 'tokens');
    const meta = Object.fromEntries((session.inputMetadata || []).map((m) => [m.name, m.shape]));
    const layers = config.num_layers * (config.bidirectional ? 2 : 1);
    this.stateShapes = Object.fromEntries(this.stateNames.map((n) => {
      const shape = meta[n] ? meta[n].map((d, axis) => (axis === 1 ? 1 : d)) : [layers, 1, config.hidden_size];
      if (!shape.every((d) => Number.isInteger(d) && d > 0)) throw new BundleError(`state ${n} has no fixed shape: ${JSON.stringify(meta[n])}`);
      return [n, shape];
    }));
    this.reset();
  }

  reset() {
    this.state = Object.fromEntries(this.stateNames.map((n) => {
      const shape = this.stateShapes[n];
      return [n, new this.ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b, 1)), shape)];
    }));
  }

  /** Feed token ids (one call), keep the state; returns the logits of the last token (Float32Array). */
  async feed(ids) {
    const tokens = new this.ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
    const out = await this.session.run({ tokens, ...this.state });
    for (const n of this.stateNames) this.state[n] = out[`next_${n}`];
    const V = out.logits.dims[2];
    return out.logits.data.slice((ids.length - 1) * V, ids.length * V);
  }

  /** A copy of the state (to try a continuation and come back). */
  save() { return { ...this.state }; }
  restore(state) { this.state = { ...state }; }
}

function argmax(a, skip = new Set()) {
  let best = -1; let v = -Infinity;
  for (let i = 0; i < a.length; i++) if (!skip.has(i) && a[i] > v) { v = a[i]; best = i; }
  return best;
}

function topk(a, k) {
  return [...a.keys()].sort((x, y) => a[y] - a[x]).slice(0, k);
}

module.exports = { openBundle, BundleError, sentencePiece, StepModel, argmax, topk };
