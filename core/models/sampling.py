"""A PyTorch model's step as numpy arrays, for the one sampler (``rnnkit.edge.npsample``).

Token choice (temperature, top-k, top-p), the generation loop, the start-of-text rule and beam
search live once, in numpy, torch-free: ``rnnkit generate`` on a run hands them the PyTorch step's
logits through ``numpy_step``, ``rnnkit predict`` and the demo the ONNX graph's. So a seed draws the
same tokens from a run and from its bundle (up to float rounding of the logits)::

    from rnnkit.edge.npsample import generate, start_ids
    ids = start_ids(tokenizer, "ROMEO:")
    new = list(generate(numpy_step(model), ids, 100, temperature=0.8, seed=0))
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch


def numpy_step(model) -> Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]:
    """``step(tokens (B, T) int64 array, state) -> (logits (B, T, V) float32 array, state)`` over
    ``model(tokens, state)``, run in eval mode without gradients (the model's mode is restored after
    each call). The state stays a tuple of tensors on the model's device."""
    device = next(model.parameters()).device

    def step(tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits, state = model(torch.as_tensor(tokens, dtype=torch.long, device=device), state)
        finally:
            model.train(was_training)
        return logits.float().cpu().numpy(), state

    return step
