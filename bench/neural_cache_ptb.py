"""The continuous-cache paper check: an LM run's perplexity with and without the neural cache.

    .venv/bin/python bench/neural_cache_ptb.py RUN [--out docs/results/neural-cache-ptb.json]

RUN is a word-level LM run (``rnnkit train --recipe ptb-lm``). The valid and test streams are read
as one sequence each (batch 1, state carried), the top-layer hidden state before every token is
kept, and edge/neural_cache.py mixes the cache in. theta, lambda and the cache size are chosen on
VALID; the test figure is printed once, for that choice, beside Grave et al. (2017), Table 1:
PTB, LSTM 82.3 -> 72.1 with a 2,000-state cache (their test perplexity).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.core import recipes as R
from rnnkit.core.atomic import atomic_write_json
from rnnkit.core.models import registry
from rnnkit.edge.neural_cache import cache_target_logprobs, cache_target_probs, mix_target_logprobs

THETAS, LAMBDAS, SIZES = (0.1, 0.2, 0.3, 0.5, 0.8), (0.05, 0.1, 0.15, 0.2, 0.3), (100, 500, 2000)


@torch.no_grad()
def hidden_and_logp(model, stream: torch.Tensor, chunk: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hidden (T, H), targets (T,), model log p(target) (T,)) for one stream read left to right."""
    kept = []
    hook = model.rnn.register_forward_hook(lambda mod, inp, out: kept.append(out[0]))
    state, hs, lps = None, [], []
    try:
        for s in range(0, stream.numel() - 1, chunk):
            x = stream[s:s + chunk + 1]
            inp, tgt = x[:-1].unsqueeze(0), x[1:].unsqueeze(0)
            kept.clear()
            logits, state = model(inp, state)
            hs.append(kept[-1][0].float().numpy())
            lps.append(F.log_softmax(logits[0].float(), -1).gather(1, tgt[0].unsqueeze(1))[:, 0].numpy())
    finally:
        hook.remove()
    return np.concatenate(hs), stream[1:].numpy(), np.concatenate(lps)


def ppl(logp: np.ndarray) -> float:
    return math.exp(-float(np.mean(logp)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a word-level LM run directory (rnnkit train --recipe ptb-lm)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = Path(args.run)
    recipe = R.load_run_recipe(run)
    _, task, _ = R.build(recipe, run)
    model = registry.load(run / "model").eval()
    t0 = time.process_time()
    valid = hidden_and_logp(model, task.valid)
    test = hidden_and_logp(model, task.test)
    grid = []
    for size, theta in itertools.product(SIZES, THETAS):  # the costly part; lambda only mixes
        p_cache, has = cache_target_probs(valid[0], valid[1], size, theta)
        for lam in LAMBDAS:
            grid.append({"size": size, "theta": theta, "lambda": lam,
                         "valid_ppl": ppl(mix_target_logprobs(valid[2], p_cache, has, lam))})
    best = min(grid, key=lambda g: g["valid_ppl"])
    test_cache = ppl(cache_target_logprobs(*test, size=best["size"], theta=best["theta"], lam=best["lambda"]))
    out = {"run": str(run), "valid_ppl": ppl(valid[2]), "test_ppl": ppl(test[2]),
           "chosen_on_valid": best, "test_ppl_with_cache": test_cache,
           "test_tokens": int(len(test[1])), "cpu_seconds": round(time.process_time() - t0, 1),
           "paper": {"PTB LSTM, Grave et al. 2017, test": {"no cache": 82.3, "cache (2000)": 72.1}},
           "grid": grid}
    print(f"{run}: valid {out['valid_ppl']:.1f} -> {best['valid_ppl']:.1f} with the cache "
          f"(size {best['size']}, theta {best['theta']}, lambda {best['lambda']}, chosen on valid)")
    print(f"test perplexity {out['test_ppl']:.1f} -> {test_cache:.1f} "
          f"({100 * (1 - test_cache / out['test_ppl']):.1f} % lower); "
          f"Grave et al. 2017, PTB LSTM: 82.3 -> 72.1 (12.4 % lower)")
    if args.out:
        atomic_write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
