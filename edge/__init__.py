"""rnnkit.edge: on-device next-word suggestion with onnxruntime on the CPU (torch-free).

runner.py (stateful ONNX step runner) -> session.py (keystroke session: next word, completion,
phrase; incremental state) using pieces.py, search.py, phrase.py; cli.py (`rnnkit suggest`,
`rnnkit eval-suggest`) and eval.py. Imports only numpy, onnxruntime and sentencepiece.
"""
