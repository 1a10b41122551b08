"""Tiny random-weight bundles for the demo tests, made with the real export path.

``build_models(root)`` trains rnnkit's tokenizers on a few sentences (characters and
SentencePiece), builds small models of each kind the demo uses (GRU and LSTM language
models, a bidirectional classifier with score and polarity heads, a seq2seq with attention),
saves them as run directories with ``registry.save`` and exports each with
``rnnkit.export.build_bundle.export_bundle`` -- the same code ``rnnkit export`` runs. The
directory names are the shipped bundles', so ``build_demo(root)`` finds them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

EN = ["the film is good and the story is moving", "a dull and boring film with a weak story",
      "in the beginning god created the heavens and the earth", "i would like to thank you for the help",
      "love your neighbor as yourself", "the lord is my shepherd", "and god said let there be light",
      "it starts well then falls apart", "what a beautiful and funny movie", "i will see you tomorrow"]
DE = ["im anfang schuf gott die himmel und die erde", "liebe deinen nächsten wie dich selbst",
      "der herr ist mein hirte", "und gott sprach es werde licht", "ich sehe dich morgen"]
SPECIAL = {"pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3}  # train_sentencepiece's ids
_BUILT: dict[str, Path] = {}


def _run_dir(model, tokenizer, root: Path, name: str) -> Path:
    from rnnkit.core.models import registry

    run = root / "runs" / name
    registry.save(model, run / "model")
    tokenizer.save(run)
    return run


def build_models(root: Path) -> Path:
    """Export the four demo bundles under ``root / "models"`` (once per test session)."""
    if str(root) in _BUILT:
        return _BUILT[str(root)]
    import torch

    from rnnkit.core.models.kinds import ClassifierConfig, LanguageModel, LMConfig, SequenceClassifier
    from rnnkit.core.models.seq2seq import Seq2Seq, Seq2SeqConfig
    from rnnkit.export.build_bundle import export_bundle

    from rnnkit.core.text.tokenizers import CharTokenizer, train_sentencepiece

    torch.manual_seed(0)
    chars = CharTokenizer.train(["ROMEO:\nBut soft, what light through yonder window breaks?\n"] + EN)
    en = train_sentencepiece(EN * 4, vocab_size=300, num_threads=1)
    both = train_sentencepiece((EN + DE) * 4, vocab_size=320, num_threads=1)
    V, W = en.vocab_size, both.vocab_size
    lm = dict(embed_size=16, hidden_size=24, num_layers=2, dropout=0.0, tie_weights=False)
    models = {
        "char-shakespeare": (LanguageModel(LMConfig(vocab_size=chars.vocab_size, cell="gru", pad_id=0,
                                                    unk_id=1, **lm)), chars),
        "suggest-en": (LanguageModel(LMConfig(vocab_size=V, cell="lstm", **lm, **SPECIAL)), en),
        "sentiment-mr": (SequenceClassifier(ClassifierConfig(
            vocab_size=V, num_classes=2, num_targets=1, bounded=True, embed_size=16, hidden_size=16,
            dropout=0.0, bidirectional=True, pad_id=0, unk_id=1)), en),
        "translate-en-de": (Seq2Seq(Seq2SeqConfig(
            src_vocab_size=W, tgt_vocab_size=W, embed_size=16, hidden_size=24, dropout=0.0,
            shared_vocab=True, **SPECIAL)), both),
    }
    out = root / "models"
    for name, (model, tok) in models.items():
        model.eval()
        run = _run_dir(model, tok, root, name)
        export_bundle(run, out / name, int8=(name == "suggest-en"), log=lambda *a: None)
    _BUILT[str(root)] = out
    return out


def _source_key() -> str:
    """Hash of everything the bundles depend on: change any of it and they are rebuilt."""
    import torch

    root = Path(__file__).resolve().parents[1]
    files = [Path(__file__)] + sorted((root / "export").glob("*.py")) + [
        root / "core" / f for f in ("models.py", "recurrent.py", "seq2seq.py", "registry.py", "tokenizers.py")]
    h = hashlib.sha256(torch.__version__.encode())
    for f in files:
        h.update(f.read_bytes() if f.is_file() else b"-")
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def demo_models(request, tmp_path_factory) -> Path:
    """The bundles, cached in pytest's cache directory between runs (building takes ~15 s).

    ``RNNKIT_DEMO_MODELS=models`` runs the same tests on the shipped bundles instead."""
    if os.environ.get("RNNKIT_DEMO_MODELS"):
        return Path(os.environ["RNNKIT_DEMO_MODELS"]).resolve()
    if getattr(request.config, "cache", None) is not None:
        cache = Path(request.config.cache.mkdir("rnnkit-demo-bundles"))
    else:  # -p no:cacheprovider: built once for this session
        cache = tmp_path_factory.mktemp("rnnkit-demo-bundles")
    done = cache / _source_key()
    if not (done / "models").is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        build_models(tmp)
        shutil.rmtree(done, ignore_errors=True)
        try:
            os.replace(tmp, done)  # atomic: a parallel run sees all of it or none
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return done / "models"


def test_fixture_bundles_open_and_verify(demo_models):
    from rnnkit.edge.bundle import open_bundle

    kinds = {d.name: open_bundle(d).kind for d in sorted(demo_models.iterdir())}
    assert kinds == {"char-shakespeare": "lm", "sentiment-mr": "classifier", "suggest-en": "lm",
                     "translate-en-de": "seq2seq"}
    assert open_bundle(demo_models / "suggest-en").precision == "int8"
