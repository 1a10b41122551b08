"""rnnkit.edge: what a device runs, with onnxruntime on the CPU (torch-free).

names.py (every tensor, job and metadata name, once) -> bundle.py (open a bundle after checking
every file's size and sha256; onnx_scan.py reads a graph before onnxruntime does) -> runner.py (the
one way to run a graph: ``load_session``, ``Runner`` with the state layout from the graph's
metadata, ``StepRunner`` for token step graphs) -> session.py (keystroke session: next word,
completion, phrase; incremental state) using pieces.py, search.py, phrase.py; words.py (what a
word is, once), lexicon.py (which spelled strings are words), adapt.py (the user's own words,
learned on the device); npsample.py (the one sampler, generation loop and beam search);
predict*.py (every bundle kind: ``rnnkit predict``, the demo's engines); cli.py (`rnnkit suggest`,
`rnnkit eval-suggest`), terminal.py (the interactive editor) and eval.py. Imports only numpy,
onnxruntime and sentencepiece; never rnnkit.export (which writes bundles), rnnkit.demo or torch.
"""
