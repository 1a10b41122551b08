"""Moved to ``rnnkit.edge.npsample`` (shared with ``rnnkit predict``); kept as an alias."""

from rnnkit.edge.npsample import (Hypothesis, State, StepFn, beam_search, filter_logits,  # noqa: F401
                                  greedy_tokens, length_normalised, log_softmax, pad_batch, sample_next)
