"""Tiny bundles of the two kinds the demo fixtures lack (tagger, forecaster) and small synthetic
files in each task's format, for the predict / eval / demo-tab tests.

``tiny_models(root)`` saves random-weight models as run directories (``registry.save`` plus the
tagger's vocabulary / the forecaster's series record in ``config.json``) and exports each with
``export_bundle``, the code ``rnnkit export`` runs: ``root/models/{ner-tiny,ts-tiny}``.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

PER = ["John Smith", "Mary Jones", "Angela Merkel", "Peter Blackburn", "Anna Berg"]
LOC = ["Paris", "Berlin", "London", "New York", "Brussels"]
ORG = ["Reuters", "European Commission", "Google", "Manchester United"]
TEMPLATES = ["{PER} visited {LOC} .", "{PER} works for {ORG} in {LOC} .", "{ORG} said on Monday that {PER} left .",
             "In {LOC} , {PER} met {PER} ."]
SERIES = {"airline": {"period": 12, "log": True, "mu": 0.1, "sd": 0.05, "points": 144}}


def ner_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        toks, tags = [], []
        for part in rng.choice(TEMPLATES).split():
            if part.strip("{}") in ("PER", "LOC", "ORG"):
                kind = part.strip("{}")
                words = rng.choice({"PER": PER, "LOC": LOC, "ORG": ORG}[kind]).split()
                toks += words
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
            else:
                toks.append(part)
                tags.append("O")
        out.append((toks, tags))
    return out


def write_conll(path: Path, sents) -> Path:
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in zip(*s)) + "\n" for s in sents), encoding="utf-8")
    return path


def write_series(path: Path, n: int = 120, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = [f"2000-{i:04d},{100 + 0.5 * i + 10 * math.sin(2 * math.pi * i / 12) + rng.gauss(0, 1):.3f}"
            for i in range(n)]
    path.write_text("date,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_sentiment(path: Path, n: int = 240, seed: int = 0) -> Path:
    rng = random.Random(seed)
    good, bad = ["good", "great", "moving", "witty", "lovely"], ["bad", "dull", "boring", "awful", "weak"]
    lines = []
    for i in range(n):
        pos = i % 2 == 0
        words = [rng.choice(good if pos else bad) for _ in range(rng.randint(1, 3))]
        lines.append(f"{0.75 if pos else -0.75}\ta {' and '.join(words)} film with a story")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_text(path: Path, n: int = 200, seed: int = 0) -> Path:
    rng = random.Random(seed)
    subj, verb, obj = ["the cat", "a dog", "my friend", "the king"], ["sees", "loves", "finds"], ["the bird", "a ball", "home"]
    path.write_text("\n".join(f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)}." for _ in range(n)) + "\n",
                    encoding="utf-8")
    return path


def write_pairs(path: Path, n: int = 200, seed: int = 0, distinct: int = 24) -> Path:
    """source<TAB>target pairs: ``distinct`` word-for-word sentences, repeated (a tiny model learns them)."""
    rng = random.Random(seed)
    lex = {"the": "der", "dog": "hund", "cat": "katze", "sees": "sieht", "loves": "liebt", "man": "mann",
           "house": "haus", "big": "grosse", "small": "kleine"}
    en = list(lex)
    pool = [[rng.choice(en) for _ in range(rng.randint(2, 5))] for _ in range(distinct)]
    lines = [" ".join(w) + "\t" + " ".join(lex[x] for x in w) for w in (rng.choice(pool) for _ in range(n))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _tagger_run(root: Path) -> Path:
    import torch

    from rnnkit.core.models import registry
    from rnnkit.core.models.kinds import Tagger, TaggerConfig
    from rnnkit.core.tasks.tagger import TaggerVocab

    vocab = TaggerVocab.build(ner_sentences(60))
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(vocab_size=len(vocab.words), num_tags=len(vocab.tags), embed_size=12, hidden_size=12,
                                dropout=0.0, char_vocab_size=len(vocab.chars), char_embed_size=6, char_filters=6))
    run = root / "runs" / "ner-tiny"
    registry.save(model.eval(), run / "model")
    vocab.save(run)
    return run


def _forecaster_run(root: Path) -> Path:
    import torch

    from rnnkit.core.models import registry
    from rnnkit.core.models.kinds import Forecaster, ForecasterConfig

    torch.manual_seed(0)
    model = Forecaster(ForecasterConfig(input_size=3, output_size=1, hidden_size=8))
    run = root / "runs" / "ts-tiny"
    registry.save(model.eval(), run / "model")
    (run / "config.json").write_text(json.dumps({"task": {"task": "timeseries", "series": SERIES}}))
    return run


def tiny_models(root: Path) -> Path:
    from rnnkit.export.build_bundle import export_bundle

    out = root / "models"
    export_bundle(_tagger_run(root), out / "ner-tiny", log=lambda *a: None)
    export_bundle(_forecaster_run(root), out / "ts-tiny", int8=True, log=lambda *a: None)
    return out
