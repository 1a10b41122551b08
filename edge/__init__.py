"""rnnkit.edge: on-device next-word suggestion with onnxruntime on the CPU (torch-free).

runner.py (stateful ONNX step runner) -> session.py (keystroke session: next word, completion,
phrase; incremental state) using pieces.py, search.py, phrase.py; words.py (what a word is,
once), lexicon.py (which spelled strings are words), adapt.py (the user's own words, learned
on the device); cli.py (`rnnkit suggest`, `rnnkit eval-suggest`), terminal.py (the
interactive editor) and eval.py. Imports only numpy, onnxruntime and sentencepiece.
"""
