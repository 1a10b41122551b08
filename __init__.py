"""rnnkit: recurrent sequence models from PyTorch training to a browser demo and to a device.

Subpackages: ``rnnkit.core`` (models, data, training), ``rnnkit.export`` (ONNX bundles),
``rnnkit.edge`` (torch-free onnxruntime runner), ``rnnkit.demo`` (Gradio app).
Importing ``rnnkit`` itself is cheap and torch-free so the edge runner can use it.
"""

__version__ = "0.1.0"
