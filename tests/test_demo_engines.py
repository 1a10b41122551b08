"""The demo's ONNX engines against the PyTorch models they were exported from (golden tests)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from test_demo_fixtures import demo_models  # noqa: F401  (session fixture)

torch = pytest.importorskip("torch")


def _torch_model(models_dir, name):
    from rnnkit.core.models import registry

    run = models_dir.parent / "runs" / name / "model"
    if not run.is_dir():
        pytest.skip(f"{run} not found: the PyTorch model of this bundle is needed for the golden test")
    return registry.load(run)


# The fixture models are untrained (small, nearly flat logits): two tokens may tie to within
# float rounding, and ONNX Runtime and PyTorch may then pick differently without anything being
# wrong. The golden tests demand identical output, except that a first difference must be such
# a tie in PyTorch's own logits (and then nothing after it is compared).
TIE = 1e-4


def first_difference_is_a_tie(want: list[int], got: list[int], logits_after) -> None:
    """``want`` (PyTorch) and ``got`` (ONNX) agree, or first differ where PyTorch's logits after
    the common prefix rate both choices within TIE. ``logits_after(prefix) -> (V,)``."""
    for i, (w, g) in enumerate(zip(want, got)):
        if w != g:
            lg = logits_after(want[:i])
            assert float(lg[w] - lg[g]) <= TIE, (i, w, g, float(lg[w]), float(lg[g]))
            return
    assert len(want) == len(got), (want, got)


def test_a_golden_difference_passes_only_at_a_tie():
    flat = lambda prefix: torch.tensor([0.0, 0.5, 0.5 - TIE / 2, 0.1])  # noqa: E731  1 and 2 tie
    first_difference_is_a_tie([1, 3, 3], [1, 3, 3], flat)
    first_difference_is_a_tie([1, 1, 0], [2, 3], flat)           # differ first at a tie: fine
    for got in ([3, 1], [1, 3, 3, 0], [1, 3]):                    # not a tie / longer / shorter
        with pytest.raises(AssertionError):
            first_difference_is_a_tie([1, 3, 3], got, flat)


def test_greedy_generation_matches_pytorch(demo_models):
    """`rnnkit generate` on the run (PyTorch logits through the one numpy sampler) and the bundle's
    engine start the text the same way (a char model reads "\\n" first) and pick the same tokens."""
    from rnnkit.core.models.sampling import numpy_step
    from rnnkit.edge.npsample import generate, start_ids
    from rnnkit.edge.predict_text import TextGenerator

    gen = TextGenerator(demo_models / "char-shakespeare")
    prompt = "ROMEO: But"
    _, unknown = gen.encode_prompt(prompt)
    assert unknown == 0
    ids = start_ids(gen.tok, prompt)
    assert ids[0] == gen.tok.encode("\n")[0] and ids[1:] == gen.encode_prompt(prompt)[0]
    model = _torch_model(demo_models, "char-shakespeare")
    ref = list(generate(numpy_step(model), ids, 40, greedy=True))
    outs = list(gen.stream(prompt, 40, greedy=True, seed=0))
    assert outs[-1].startswith(prompt)
    assert gen.predict(prompt, length=40, greedy=True)["text"] == outs[-1]
    if outs[-1] != prompt + gen.tok.decode(ref):
        got = gen.encode_prompt(outs[-1])[0][len(ids) - 1:]

        def logits_after(prefix):
            with torch.no_grad():
                return model(torch.tensor([ids + prefix]))[0][0, -1]

        first_difference_is_a_tie(ref, got, logits_after)


def test_sampling_is_seeded_and_streams(demo_models):
    from rnnkit.edge.predict_text import TextGenerator

    gen = TextGenerator(demo_models / "suggest-en")  # int8, sentencepiece, EOS-started
    run = lambda seed: list(gen.stream("the film", 30, temperature=1.0, seed=seed))
    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a[-1] != c[-1]
    assert len(a) >= 2 and all(x.startswith("the film") for x in a)
    assert [len(x) for x in a] == sorted(len(x) for x in a)  # streamed text only grows


def test_sentiment_matches_pytorch(demo_models):
    from rnnkit.edge.predict_text import SentimentScorer

    scorer = SentimentScorer(demo_models / "sentiment-mr")
    text = "a dull film with a moving story"
    r = scorer.analyse(text)
    model = _torch_model(demo_models, "sentiment-mr")
    ids = torch.tensor([scorer.tok.encode(text)])
    with torch.no_grad():
        out, _ = model(ids, torch.tensor([ids.shape[1]]))
        running = model.running(ids)["score"][0, :, 0]
    assert abs(r.score - float(out["score"][0, 0])) < 1e-5
    assert abs(r.positive - float(torch.softmax(out["logits"][0], -1)[1])) < 1e-5
    assert len(r.pieces) == len(r.running) == ids.shape[1]
    assert np.allclose(r.running, running.numpy(), atol=1e-5)
    assert r.running[-1] == pytest.approx(r.score, abs=1e-5)  # the last prefix is the whole text


@pytest.mark.parametrize("beam", [1, 3])
def test_beam_search_matches_pytorch(demo_models, beam):
    from rnnkit.edge.predict_text import LENGTH_PENALTY, Translator

    tr = Translator(demo_models / "translate-en-de")
    model = _torch_model(demo_models, "translate-en-de")
    for text in ["in the beginning god created the earth", "love your neighbor"]:
        src = tr.source_ids(text)
        out = tr.translate(text, beam=beam, max_len=12)
        s, n = torch.tensor([src]), torch.tensor([len(src)])
        with torch.no_grad():
            ref = (model.greedy(s, n, 12) if beam == 1
                   else model.beam_search(s, n, beam, 12, length_penalty=LENGTH_PENALTY))
        want = ref.tokens[0].tolist()
        want = want[:want.index(tr.eos_id) + 1] if tr.eos_id in want else want
        pieces = [tr.tok.id_to_piece(i).replace("\u2581", " ") for i in want]
        if out.tgt_pieces != pieces:  # allowed only where PyTorch itself sees a tie (see TIE)
            ids_of = {tr.tok.id_to_piece(i).replace("\u2581", " "): i for i in range(tr.tok.vocab_size)}
            got = [ids_of[p] for p in out.tgt_pieces]
            assert got != want and len(got) >= 1, (out.tgt_pieces, pieces)
            if beam == 1:
                def logits_after(prefix):
                    with torch.no_grad():
                        return model(s, n, torch.tensor([[tr.bos_id] + prefix]))[0][0, -1]

                first_difference_is_a_tie(want, got, logits_after)
            else:  # beam search: both finals score the same up to rounding (length-normalised)
                from rnnkit.core.models.seq2seq_search import length_normalised

                lp = model.sequence_logprob(s.repeat(2, 1), n.repeat(2), torch.tensor(
                    [want + [tr.eos_id] * (12 - len(want)), got + [tr.eos_id] * (12 - len(got))]))
                lengths = torch.tensor([len(want), len(got)])
                ranked = length_normalised(lp.double(), lengths, LENGTH_PENALTY)
                assert abs(float(ranked[0] - ranked[1])) <= TIE, (want, got, ranked)
            continue
        assert out.text == tr.tok.decode([i for i in want if i != tr.eos_id])
        assert out.attention.shape == (len(want), len(src))
        assert np.allclose(out.attention, ref.attn[0, :len(want)].numpy(), atol=1e-5)
        assert np.allclose(out.attention.sum(1), 1.0, atol=1e-5)


def test_suggestions_come_from_the_edge_session(demo_models):
    from rnnkit.demo.suggest import Suggester

    sug = Suggester(demo_models / "suggest-en")
    typing = sug.new_typing()
    nxt = sug.suggest(typing, "i would like to ", 3)
    part = sug.suggest(typing, "i would like to th", 3)
    assert 1 <= len([r for r in nxt if r["kind"] == "next"]) <= 3
    completions = [r for r in part if r["kind"] == "completion"]
    assert completions and all(r["text"].startswith("th") for r in completions), part
    assert all(0.0 <= r["prob"] <= 1.0 for r in nxt + part)
    assert len(typing.latencies) == 2 and "last keystroke" in typing.summary()


def test_missing_and_broken_bundles_become_messages(demo_models, tmp_path):
    from rnnkit.demo.shelf import ModelUnavailable, load_shelf

    models = tmp_path / "models"
    shutil.copytree(demo_models / "sentiment-mr", models / "sentiment-mr")
    shutil.copytree(demo_models / "translate-en-de", models / "translate-en-de")
    onnx = models / "translate-en-de" / "decoder.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])  # truncated
    shelf = load_shelf(models)
    assert shelf["sentiment"].engine is not None
    assert "decoder.onnx" in shelf["translate"].problem and "truncated" in shelf["translate"].problem
    assert "No bundle at" in shelf["shakespeare"].problem and "rnnkit export" in shelf["shakespeare"].problem
    with pytest.raises(ModelUnavailable, match="decoder.onnx"):
        shelf["translate"].get()
    assert "not available" in shelf["suggest"].status_markdown()


@pytest.mark.slow
def test_the_demo_runs_without_torch(demo_models):
    """Build the demo and use every engine in a process where importing torch fails."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, Block())
        from rnnkit.demo import app
        shelf = app.load_shelf({str(demo_models)!r})
        problems = {{n: s.problem for n, s in shelf.slots.items() if s.problem}}
        assert not problems, problems
        text = list(app.generate(shelf, "English (subwords)", "the film", 0.8, 40, 0.9, 5, 1))[-1]
        assert text.startswith("the film")
        app.translate(shelf, "love your neighbor", 2)
        app.sentiment(shelf, "a good film")
        app.suggest(shelf, None, "i would like to th", 3)
        app.build_demo({str(demo_models)!r})
        assert "torch" not in sys.modules
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_cli_registers_demo_and_rejects_a_missing_models_dir(tmp_path):
    from rnnkit.cli import build_parser, main

    args = build_parser().parse_args(["demo", "--port", "7999", "--models", str(tmp_path)])
    assert (args.host, args.port, args.share, args.models) == ("127.0.0.1", 7999, False, str(tmp_path))
    assert main(["demo", "--models", str(tmp_path / "nope")]) == 2  # one clear line, no traceback


def test_cli_reports_a_busy_port(demo_models, capsys):
    import socket

    from rnnkit.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--models", str(demo_models), "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.fixture(scope="module")
def shelf(demo_models):
    from rnnkit.demo.shelf import load_shelf

    return load_shelf(demo_models)


@pytest.mark.slow
def test_nothing_typed_crashes_a_handler(shelf):
    """Random text (control characters, surrogates, emoji, RTL, huge) either works or is an
    InputError with a message -- never another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from rnnkit.demo import app
    from rnnkit.demo.validation import InputError

    texts = st.one_of(st.text(max_size=60), st.text(alphabet="ab \u200f\u05d0😀\x00\n\t", max_size=30),
                      st.just("x" * 3000), st.just("\ud800 lone"))

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(texts)
    def check(text):
        calls = [lambda: list(app.generate(shelf, "Shakespeare (characters)", text, 0.8, 40, 0.9, 5, 1)),
                 lambda: list(app.generate(shelf, "English (subwords)", text, 1.0, 0, 1.0, 3, -1)),
                 lambda: app.translate(shelf, text, 2),
                 lambda: app.sentiment(shelf, text),
                 lambda: app.suggest(shelf, None, text, 3)]
        for call in calls:
            try:
                call()
            except InputError as e:
                assert str(e)  # a message for the user

    check()


def test_long_reviews_sample_the_running_score_exactly(demo_models):
    from rnnkit.edge.predict_text import SentimentScorer

    scorer = SentimentScorer(demo_models / "sentiment-mr")
    text = "a dull film with a moving story and a good end " * 3
    full = scorer.analyse(text, max_points=10_000)     # every prefix, the running graph
    sampled = scorer.analyse(text, max_points=8)      # ~8 prefixes through the classify graph
    T = len(full.running)
    stride = -(-T // 8)
    ends = list(range(stride, T, stride)) + [T]
    assert T > 8 and len(sampled.running) == T
    for end in ends:  # at the sampled positions the values are the exact ones
        assert sampled.running[end - 1] == pytest.approx(full.running[end - 1], abs=1e-5)
    assert sampled.running[0] == pytest.approx(full.running[stride - 1], abs=1e-5)  # filled from its stretch
    assert sampled.score == pytest.approx(full.score, abs=1e-6)
