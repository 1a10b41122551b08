"""rnnkit's Gradio demo: Generate, Translate, Sentiment, Suggest, Entities and Forecast, on ONNX bundles.

    python -m rnnkit.demo.app            # or: rnnkit demo [--host 127.0.0.1] [--port 7860] [--share]
                                         #     rnnkit demo --models bundles/ | rnnkit demo BUNDLE...

This file holds the plain functions (validation, inference calls through ``rnnkit.edge.predict``'s
engines, data for the visuals: no gradio) and the launch options; ``demo/tabs.py`` wires them into
``gr.Blocks``, one function per tab. ``build_demo(models_dir)`` is importable (tests launch it on a
free port); ``launch()`` runs only under ``__main__``.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .shelf import ModelUnavailable, Shelf, load_shelf  # noqa: F401  (load_shelf: tests use app.load_shelf)
from .validation import (MAX_ENTITY_CHARS, MAX_HISTORY_CHARS, MAX_HORIZON, MAX_PROMPT_CHARS, MAX_REVIEW_CHARS,
                         MAX_SENTENCE_CHARS, MAX_SUGGESTION_CHARS, MAX_TYPING_CHARS, InputError, check_number,
                         check_text, control_chars)
from .visuals import attention_html, forecast_table, running_table, shade_css, tokens_html

log = logging.getLogger("rnnkit.demo")

MAX_NEW_TOKENS = 1000
MAX_BEAM = 8
DEFAULT_PROMPTS = {"char-shakespeare": "ROMEO:", "char-shakespeare-gpt": "ROMEO:",  # by bundle folder
                   "suggest-en": "The film was"}
OTHER_PROMPT = "The"
STREAM_INTERVAL_S = 0.05  # 20 screen updates a second look smooth; more only costs server CPU per message
# Every event has an api_name; only the four tabs' main ones are public, the rest (Enter key,
# Stop, tapping a suggestion) are api_visibility="private".
# Concurrency per endpoint on a small CPU box: the cheap, latency-bound ones (a keystroke, the
# first generated token) get many slots so they never wait behind a long job; the ones that
# render a figure get few, so they cannot starve the others.
LIMITS = {"generate": 16, "suggest": 16, "sentiment": 2, "translate": 2, "entities": 4, "forecast": 2, "compare": 2}
MAX_COMPARE_TOKENS = 400  # new tokens per model in the Compare tab
SESSIONS_KEPT = 256  # Gradio sessions whose state the server keeps (least recently used dropped)


# --------------------------------------------------------------------------- plain functions
def generator_slot(shelf: Shelf, model: str):
    """The Generate tab's bundle named by its label, its folder or an old slot name."""
    tab = shelf.tabs["generate"]
    if model in ("shakespeare", "english"):
        return shelf[model]
    found = tab.choices.get(model) or tab.by_folder(str(model))
    if found is None:
        raise InputError(f"unknown model {str(model)[:60]!r}; choose one of: {', '.join(tab.choices) or 'none'}")
    return found


def generate(shelf: Shelf, model: str, prompt: str, temperature: float, top_k: int, top_p: float,
             length: int, seed: int, warn=lambda msg: None) -> Iterator[str]:
    """Stream prompt + continuation. ``model`` is a bundle's label (or folder); seed < 0: random."""
    engine = generator_slot(shelf, model).get()
    prompt = check_text(prompt, "prompt", MAX_PROMPT_CHARS)
    temperature = check_number(temperature, "temperature", 0.05, 5.0)
    top_k = check_number(top_k, "top-k", 0, 100_000, integer=True)
    top_p = check_number(top_p, "top-p", 0.01, 1.0)
    length = check_number(length, "length", 1, MAX_NEW_TOKENS, integer=True)
    seed = check_number(seed, "seed", -1, 2**32 - 1, integer=True)
    _, unknown = engine.encode_prompt(prompt)
    if unknown:
        warn(f"{unknown} character(s) or piece(s) of the prompt are unknown to this model; it reads them as <unk>.")
    yield from engine.stream(prompt, length, temperature, top_k, top_p, None if seed < 0 else seed,
                             min_interval=STREAM_INTERVAL_S)


def default_prompt(shelf: Shelf, model: str | None) -> str:
    try:
        folder = generator_slot(shelf, model).directory.name if model else ""
    except InputError:
        folder = ""
    return DEFAULT_PROMPTS.get(folder, OTHER_PROMPT)


def swap_prompt(shelf: Shelf, model: str, prompt: str) -> str:
    """On a model change, an untouched default prompt becomes the new model's default."""
    if prompt not in (*DEFAULT_PROMPTS.values(), OTHER_PROMPT):
        return prompt
    return default_prompt(shelf, model)


def translate(shelf: Shelf, text: str, beam: int, model: str | None = None):
    """English -> German: (translation, attention heatmap HTML, attention as JSON)."""
    engine = shelf.tabs["translate"].slot(model).get()
    text = check_text(text, "sentence", MAX_SENTENCE_CHARS)
    beam = check_number(beam, "beam width", 1, MAX_BEAM, integer=True)
    out = engine.translate(text, beam)
    data = {"source": out.src_pieces, "target": out.tgt_pieces,
            "attention": np.round(out.attention, 4).tolist(), "logprob": round(out.logprob, 4)}
    return out.text, attention_html(out.attention, out.src_pieces, out.tgt_pieces), data


def polarity(positive: float) -> dict[str, float]:
    """gr.Label's value: each polarity with its confidence."""
    return {"positive": round(positive, 4), "negative": round(1.0 - positive, 4)}


def sentiment(shelf: Shelf, text: str, model: str | None = None):
    """(polarity with confidence, score line, coloured tokens, running-score table, data as JSON)."""
    engine = shelf.tabs["sentiment"].slot(model).get()
    text = check_text(text, "review", MAX_REVIEW_CHARS)
    r = engine.analyse(text)
    mood = "positive" if r.score > 0.05 else "negative" if r.score < -0.05 else "neutral"
    score_md = f"### Score **{r.score:+.2f}** ({mood})\n<small>-1 hate · 0 neutral · +1 love</small>"
    data = {"score": round(r.score, 4), "positive": round(r.positive, 4),
            "tokens": r.pieces, "running": [round(x, 4) for x in r.running]}
    return (polarity(r.positive), score_md, tokens_html(r.pieces, r.running),
            running_table(r.pieces, r.running), data)


def suggest(shelf: Shelf, typing, text: str, k: int, model: str | None = None):
    """(suggestions as dicts, latency line, typing key). ``typing``: None on first use, then the
    key this returned (the session itself lives in the engine's bounded LRU), or a ``Typing``."""
    engine = shelf.tabs["suggest"].slot(model).get()
    text = check_text(text, "text", MAX_TYPING_CHARS, allow_empty=True)
    k = check_number(k, "k", 1, 10, integer=True)
    if typing is None or isinstance(typing, str):
        typing, session = engine.typing_for(typing)
    else:
        session = typing
    # each suggestion remembers the text it was made for: a tap that arrives after the text
    # changed (a key typed before the new suggestions showed) must not insert it there
    results = [{**r, "typed": text} for r in engine.suggest(session, text, k)]
    return results, session.summary(), typing


def partial_word(text: str) -> str:
    """The word being typed at the end of ``text`` ("" after whitespace). rsplit scans from the
    end and stops at the first whitespace: linear in the word, whatever the text's length
    (``re.search(r"\\S*\\Z", text)`` retries at every position: quadratic)."""
    if not text or text[-1].isspace():
        return ""
    return text.rsplit(None, 1)[-1]


def accept(text: str, suggestion: dict | None) -> str:
    """The text after tapping a suggestion: one that starts with the partial word replaces it
    (completions, and phrases that begin by completing it); others are appended.
    Both come from the browser: checked and capped before any work."""
    text = check_text(text, "text", MAX_TYPING_CHARS, allow_empty=True)
    if not isinstance(suggestion, dict) or not isinstance(suggestion.get("text"), str) or not suggestion["text"]:
        return text
    words = suggestion["text"]
    if len(words) > MAX_SUGGESTION_CHARS or len(text) + len(words) + 2 > MAX_TYPING_CHARS or control_chars(words):
        return text
    if isinstance(suggestion.get("typed"), str) and suggestion["typed"] != text:
        return text  # made for another text: stale (the user typed on before tapping)
    partial = partial_word(text)
    if partial and words.startswith(partial):
        return text[:len(text) - len(partial)] + words + " "
    return text + ("" if not text or text[-1].isspace() else " ") + words + " "


def accept_pick(i: int, text: str, found: list[dict] | None) -> str:
    """Tap on the i-th suggestion button."""
    pick = found[i] if isinstance(found, list) and 0 <= i < len(found) else None
    return accept(text, pick)


def percent(p: float) -> str:
    return "<1%" if p < 0.01 else f"{100 * p:.0f}%"


def pick_label(r: dict) -> str:
    """A suggestion button's text: the words and their probability; phrases get an arrow."""
    return f"{'→ ' if r['kind'] == 'phrase' else ''}{r['text']}   {percent(r.get('p_given_typed', r['prob']))}"


def suggest_caption(text: str, results: list[dict], latency: str) -> str:
    """What the buttons are: completions of the typed word, or next words; then the latency."""
    word = text.split()[-1] if text.strip() and not text[-1].isspace() else ""
    if not results:
        what = "no suggestion"
    elif word:
        what = f"completing **{html.escape(word[:40])}** (tap to insert)"
    else:
        what = "next word (tap to insert)"
    return f"{what}  \n{latency}" if latency else what


def entities(shelf: Shelf, text: str, model: str | None = None):
    """(highlighted segments for gr.HighlightedText, entities as JSON)."""
    from rnnkit.edge.predict_tag import highlighted

    engine = shelf.tabs["entities"].slot(model).get()
    text = check_text(text, "text", MAX_ENTITY_CHARS)
    out = engine.predict(text)
    return highlighted(text, out["entities"]), {"entities": out["entities"], "tokens": out["tokens"], "tags": out["tags"]}


def forecast(shelf: Shelf, history: str, horizon: int, model: str | None = None):
    """(history + forecast as a table for gr.LinePlot, caption, data as JSON)."""
    engine = shelf.tabs["forecast"].slot(model).get()
    history = check_text(history, "history", MAX_HISTORY_CHARS)
    horizon = check_number(horizon, "horizon", 1, MAX_HORIZON, integer=True)
    from rnnkit.edge.predict_series import parse_history

    values = parse_history(history)
    out = engine.forecast(values, horizon)
    caption = (f"{len(values)} values in, {horizon} forecast; season of {out['period']} (like "
               f"`{out['series']}`{', in logs' if out['log'] else ''}), normalised by this history")
    return forecast_table(values, out["forecast"]), caption, {"history": values, **out}


def compare(shelf: Shelf, model_a: str, model_b: str, prompt: str, length: int, seed: int):
    """The same prompt through two language-model bundles: (text a, text b, per-token latency table
    for gr.LinePlot, caption). ``model_*``: labels of the Generate tab's bundles."""
    from .compare import latency_table, state_summary, timed_continuation

    prompt = check_text(prompt, "prompt", MAX_PROMPT_CHARS)
    length = check_number(length, "length", 1, MAX_COMPARE_TOKENS, integer=True)
    seed = check_number(seed, "seed", 0, 2**32 - 1, integer=True)
    texts, rows, lines = [], {}, []
    for label in (model_a, model_b):
        engine = generator_slot(shelf, label).get()
        text, times = timed_continuation(engine, prompt, length, seed)
        texts.append(text)
        key = label if label not in rows else f"{label} (2)"
        rows[key] = times
        ms = float(np.median([m for _, m in times])) if times else float("nan")
        lines.append(f"**{html.escape(key)}**: {state_summary(engine)}; median {ms:.2f} ms per token")
    return texts[0], texts[1], latency_table(rows, every=max(1, length // 50)), "  \n".join(lines)


# --------------------------------------------------------------------------- gradio wiring
TITLE = "rnnkit — recurrent networks in your browser"
INTRO = ("Small RNNs trained with rnnkit and exported to ONNX. Everything here runs with "
         "**onnxruntime on the CPU** — no PyTorch at run time; the Suggest tab uses the very bundle a phone would.")
CSS = """
.gradio-container {max-width: 1180px !important; margin: auto;}
#title h1 {margin-bottom: 0;}
.model-status {font-size: 0.9em; opacity: 0.85;}
.picks {min-height: 52px; gap: 10px !important;}
.picks button {font-size: 1.1em !important; border-radius: 999px !important; white-space: pre;
               padding: 6px 18px !important; width: auto !important; min-width: max-content !important;
               flex: 0 0 auto !important;}
.tokens {line-height: 2.1; font-size: 1.05em; padding: 4px 2px;}
.tokens .tok {padding: 3px 1px; border-radius: 4px; white-space: pre;}
.attn {overflow-x: auto; padding: 6px 0;}
.attn-caption {font-size: 0.85em; opacity: 0.75; margin-bottom: 6px;}
.attn table {border-collapse: collapse; width: auto; font-size: 12px; margin: 0;}
.attn td {width: 24px; min-width: 24px; height: 22px; padding: 0; border: 1px solid rgba(148,163,184,0.25);}
.attn th {font-weight: 500; padding: 1px 6px; background: none; border: none;}
.attn th.tgt {text-align: right; white-space: nowrap;}
.attn th.src {vertical-align: bottom; height: 80px; padding: 2px 0;}
.attn th.src span {writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap;}
""" + shade_css() + "\n"


def _theme():
    import gradio as gr

    # System fonts: the default theme's Google fonts cannot load on an offline machine.
    font = gr.themes.Font
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                          font=[font("system-ui"), font("Segoe UI"), font("Roboto"), font("sans-serif")],
                          font_mono=[font("ui-monospace"), font("Menlo"), font("monospace")])


def launch_options(host: str = "127.0.0.1", share: bool = False, allow_hosts: tuple[str, ...] = ()) -> dict[str, Any]:
    """Gradio 6 takes the theme and CSS in ``launch()``; every launcher passes these, and with them
    the request fences: Host / same-origin / body-size checks and no uploads (``demo/guard.py``),
    Gradio's own ``max_file_size`` as a second fence, and a cap on the sessions Gradio keeps."""
    from starlette.middleware import Middleware

    from .guard import RequestGuard, allowed_hosts

    guard = Middleware(RequestGuard, hosts=allowed_hosts(host, allow_hosts),
                       host_suffixes=(".gradio.live",) if share else ())
    # Gradio keeps a config copy per session (~100 kB), and every API call is a session: the default
    # capacity (10,000) let a burst of calls hold a gigabyte. 256 browsers at once is plenty here.
    return {"theme": _theme(), "css": CSS, "max_file_size": "1kb", "state_session_capacity": SESSIONS_KEPT,
            "app_kwargs": {"middleware": [guard]}}


def _guard(fn):
    """Run a plain function for gradio: user mistakes become gr.Error / gr.Warning pop-ups and
    any other exception a short gr.Error (logged with its traceback): nothing typed crashes the server."""
    import gradio as gr

    def convert(e: Exception) -> Exception:
        if isinstance(e, gr.Error):
            return e
        if isinstance(e, (InputError, ModelUnavailable)):
            return gr.Error(str(e), title="Please check the input" if isinstance(e, InputError) else "Model missing",
                            print_exception=False)
        log.exception("demo handler %s failed", getattr(fn, "__name__", "?"))
        return gr.Error("Something went wrong on the server with this input (it was logged). "
                        "Try a shorter or different text.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args):
            try:
                yield from fn(*args)
            except Exception as e:
                raise convert(e) from None
        return gen

    @functools.wraps(fn)
    def call(*args):
        try:
            return fn(*args)
        except Exception as e:
            raise convert(e) from None
    return call


def build_demo(models_dir: str | Path = "models", bundles: list[str | Path] | None = None) -> "gr.Blocks":
    """The demo on every bundle under ``models_dir`` (found by manifest kind), or exactly ``bundles``."""
    import gradio as gr

    from . import tabs

    shelf = load_shelf(models_dir, bundles)
    # delete_cache: Gradio's temporary files (none expected: uploads are off) go after 10 minutes.
    with gr.Blocks(title="rnnkit demo", analytics_enabled=False, delete_cache=(600, 600)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="title")
        if shelf.skipped:
            gr.Markdown("<small>Not shown: " + "; ".join(html.escape(x) for x in shelf.skipped[:8]) + "</small>",
                        elem_classes="model-status")
        with gr.Tabs():
            for tab in (tabs.generate_tab, tabs.translate_tab, tabs.sentiment_tab, tabs.suggest_tab,
                        tabs.entities_tab, tabs.forecast_tab, tabs.compare_tab):
                tab(shelf)
        gr.Markdown("<small>Each model's card (data, metric, the command that made it): `models/*/README.md`. "
                    "Source: `demo/app.py`, `demo/tabs.py`; the engines: `edge/predict*.py`.</small>")
    demo.queue(default_concurrency_limit=4, max_size=128)
    return demo


def launch(models_dir: str | Path = "models", host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           allow_hosts: tuple[str, ...] = (), bundles: list[str | Path] | None = None, **kwargs: Any):
    """Build and serve the demo (blocks until stopped unless ``prevent_thread_lock=True``)."""
    from .suggest import limit_malloc_arenas

    limit_malloc_arenas()  # before Gradio's worker threads exist: memory returns after a burst
    demo = build_demo(models_dir, bundles)
    demo.launch(server_name=host, server_port=port, share=share, **launch_options(host, share, allow_hosts), **kwargs)
    return demo


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    launch()
