#!/usr/bin/env node
// The next word after a text, from an rnnkit language-model bundle (docs/APP.md):
//
//   node app_example.js ../models/suggest-en "Thank you for the"          # onnxruntime-node
//   node app_example.js ../models/suggest-en "Thank you for the" --web    # onnxruntime-web (WebAssembly)
//
// Prints one JSON line: {"ids", "next_word", "top3", "runtime", "ms"}. Exits 1 with one line on stderr
// if the bundle fails its manifest check (a file's size or sha256) or the graph does not run.
'use strict';
const { openBundle, sentencePiece, StepModel, argmax, topk } = require('./rnnkit');

async function nextWord(bundleDir, text, runtime) {
  const ort = require(runtime);
  if (runtime === 'onnxruntime-web') ort.env.wasm.numThreads = 1;
  const bundle = openBundle(bundleDir); // every listed file: exact size and sha256, or it throws
  const tok = sentencePiece(bundle.read(bundle.manifest.tokenizer.file));
  const cfg = bundle.manifest.model.config;
  const lm = await StepModel.create(ort, bundle, {
    sessionOptions: runtime === 'onnxruntime-node' ? { intraOpNumThreads: 1, interOpNumThreads: 1 } : {},
  });
  // The models were trained on lines that end with EOS, so a fresh text starts after an EOS.
  const ids = tok.encode(text.trimEnd());
  const t0 = process.hrtime.bigint();
  let logits = await lm.feed([cfg.eos_id, ...ids]);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  // Greedy: the best piece that starts a word, then the best continuations until the next word starts.
  const control = new Set([cfg.pad_id, cfg.bos_id, cfg.eos_id, cfg.unk_id].filter((i) => i >= 0));
  // a word starts with a piece "▁..." that holds more than the space itself
  const notWordStart = new Set([...Array(tok.size).keys()].filter((i) => !tok.startsWord(i) || control.has(i)
    || tok.pieces[i] === '\u2581'));
  const top3 = topk(logits.map((v, i) => (notWordStart.has(i) ? -Infinity : v)), 3).map((i) => tok.decode([i]).trim());
  const word = [argmax(logits, notWordStart)];
  for (let n = 0; n < 8; n++) {
    logits = await lm.feed([word[word.length - 1]]);
    const next = argmax(logits, control);
    if (tok.startsWord(next) || !/\p{L}|\p{N}|['-]/u.test(tok.decode([next]))) break;
    word.push(next);
  }
  return { ids, next_word: tok.decode(word).trim(), top3, runtime, ms };
}

async function main() {
  const args = process.argv.slice(2);
  const web = args.includes('--web');
  const [bundleDir, text] = args.filter((a) => !a.startsWith('--'));
  if (!bundleDir || text === undefined) {
    console.error('usage: node app_example.js BUNDLE_DIR "text" [--web]');
    process.exit(2);
  }
  const out = await nextWord(bundleDir, text, web ? 'onnxruntime-web' : 'onnxruntime-node');
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(`app_example: ${String(e && e.message || e).split('\n')[0]}`); process.exit(1); });
