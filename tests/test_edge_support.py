"""Tiny suggestion bundles for the edge tests: a SentencePiece tokenizer and a small LSTM LM,
trained for a moment on the text below, saved as a run directory and exported with the
export engineer's ``export_bundle``. Built once per test session (a few seconds) and cached.

Other edge tests import ``tiny_bundle`` / ``tiny_run`` / ``TRAIN_TEXT`` from here.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

TRAIN_TEXT = """\
The cat sat on the mat and the dog sat on the rug.
The weather is nice today, so we will walk to the park.
Thank you for your help with the garden yesterday.
I think the meeting is at three o'clock tomorrow.
Please send me the report before the meeting.
We will meet at the café near the station.
The children played in the garden until the evening.
I would like a cup of tea with milk, please.
She told me that the train was late again.
The naïve plan worked better than anyone expected.
Thank you for the lovely dinner last night.
I think we should leave before the rain starts.
The dog ran across the park to find the ball.
We talked about the weather and the garden.
Please call me when you arrive at the station.
Learning something new every day keeps the mind sharp.
The quick brown fox jumps over the lazy dog.
My favourite season is autumn, when the leaves turn gold.
The library opens at nine in the morning.
Good morning, how are you today?
"""


def write_text(path: Path, repeats: int = 6) -> Path:
    path.write_text(TRAIN_TEXT * repeats, encoding="utf-8")
    return path


def train_tokenizer(out_dir: Path, vocab_size: int = 400) -> Path:
    import sentencepiece as spm

    lines = TRAIN_TEXT.splitlines()
    # character_coverage < 1 leaves the rare accented letters to byte fallback on purpose
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines * 4), model_prefix=str(out_dir / "tokenizer"), vocab_size=vocab_size,
        model_type="unigram", byte_fallback=True, character_coverage=0.995, pad_id=0, unk_id=1, bos_id=2,
        eos_id=3, minloglevel=2, num_threads=1, hard_vocab_limit=False)
    (out_dir / "tokenizer.vocab").unlink(missing_ok=True)
    return out_dir / "tokenizer.model"


def train_tiny_lm(tokenizer_model: Path, cell: str = "lstm", steps: int = 150, seed: int = 0,
                  hidden: int = 32, layers: int = 2):
    """A small LanguageModel fitted for ``steps`` Adam steps on TRAIN_TEXT (ids + eos per line)."""
    import sentencepiece as spm
    import torch

    from rnnkit.core.models.kinds import LanguageModel, LMConfig

    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only add contention on a shared machine
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_model))
    stream = []
    for line in TRAIN_TEXT.splitlines():
        stream += sp.encode(line) + [sp.eos_id()]
    data = torch.tensor(stream * 2)
    cfg = LMConfig(vocab_size=sp.get_piece_size(), cell=cell, embed_size=24, hidden_size=hidden, num_layers=layers,
                   dropout=0.0, tie_weights=False, pad_id=0, bos_id=2, eos_id=3, unk_id=1)
    model = LanguageModel(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    T, B = 12, 32
    g = torch.Generator().manual_seed(seed)
    loss = torch.tensor(float("nan"))  # steps=0: the untrained model
    for _ in range(steps):
        starts = torch.randint(0, len(data) - T - 1, (B,), generator=g)
        x = torch.stack([data[s:s + T] for s in starts])
        y = torch.stack([data[s + 1:s + T + 1] for s in starts])
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"tiny LM: final train loss {loss.item():.3f}")
    torch.set_num_threads(threads)
    model.eval()
    return model


def make_run(run_dir: Path, cell: str = "lstm", steps: int = 150) -> Path:
    """A run directory the exporter accepts: model/ (registry) + tokenizer.model + metrics.jsonl."""
    from rnnkit.core.models import registry

    run_dir.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(run_dir)
    model = train_tiny_lm(tok, cell=cell, steps=steps)
    registry.save(model, run_dir / "model")
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": steps, "val_loss": 0.0}) + "\n")
    return run_dir


@functools.lru_cache(maxsize=None)
def tiny_run(cell: str = "lstm") -> Path:
    base = Path(tempfile.mkdtemp(prefix=f"rnnkit-edge-{cell}-"))
    # The GRU is trained less: the exporter's parity gate is an absolute 1e-5 on the logits, and
    # a sharper model's larger logits can miss it by float32 rounding alone.
    return make_run(base / "run", cell=cell, steps=150 if cell == "lstm" else 40)


@functools.lru_cache(maxsize=None)
def tiny_bundle(cell: str = "lstm", int8: bool = False) -> Path:
    """Path of a cached tiny bundle (exported once per test session)."""
    from rnnkit.export.build_bundle import export_bundle

    run = tiny_run(cell)
    out = run.parent / f"bundle-{'int8' if int8 else 'fp32'}"
    export_bundle(run, out, int8=int8, log=lambda *a: None)
    return out


def test_tiny_bundle_is_a_verified_lm_bundle():
    from rnnkit.edge.bundle import open_bundle

    b = open_bundle(tiny_bundle())
    assert b.kind == "lm"
    assert b.tokenizer_path.name == "tokenizer.model"
    assert set(b.graphs) == {"step"}
