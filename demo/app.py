"""rnnkit's Gradio demo: Generate, Translate, Sentiment and Suggest, all on ONNX bundles.

    python -m rnnkit.demo.app            # or: rnnkit demo [--host 127.0.0.1] [--port 7860] [--share]

The top half is plain functions (validation, inference calls, HTML/data for the visuals: no
gradio); the bottom half only wires them into ``gr.Blocks``. ``build_demo(models_dir)`` is importable
(tests launch it on a free port); ``launch()`` runs only under ``__main__``.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .shelf import GENERATORS, ModelUnavailable, Shelf, load_shelf
from .validation import (MAX_PROMPT_CHARS, MAX_REVIEW_CHARS, MAX_SENTENCE_CHARS, MAX_SUGGESTION_CHARS,
                         MAX_TYPING_CHARS, InputError, check_number, check_text)
from .visuals import attention_html, running_table, shade_css, tokens_html

log = logging.getLogger("rnnkit.demo")

MAX_NEW_TOKENS = 1000
MAX_BEAM = 8
DEFAULT_PROMPTS = {"shakespeare": "ROMEO:", "english": "The film was"}
STREAM_INTERVAL_S = 0.05  # 20 screen updates a second look smooth; more only costs server CPU per message
# Every event has an api_name; only the four tabs' main ones are public, the rest (Enter key,
# Stop, tapping a suggestion) are api_visibility="private".
# Concurrency per endpoint on a small CPU box: the cheap, latency-bound ones (a keystroke, the
# first generated token) get many slots so they never wait behind a long job; the ones that
# render a figure get few, so they cannot starve the others.
LIMITS = {"generate": 16, "suggest": 16, "sentiment": 2, "translate": 2}
SESSIONS_KEPT = 256  # Gradio sessions whose state the server keeps (least recently used dropped)


# --------------------------------------------------------------------------- plain functions
def generate(shelf: Shelf, model: str, prompt: str, temperature: float, top_k: int, top_p: float,
             length: int, seed: int, warn=lambda msg: None) -> Iterator[str]:
    """Stream prompt + continuation. ``model`` is a slot name or its label; seed < 0: random."""
    names = {shelf[g].label: g for g in GENERATORS}
    slot = names.get(model, model)
    if slot not in GENERATORS:
        raise InputError(f"unknown model {model!r}; choose one of: {', '.join(names)}")
    engine = shelf[slot].get()
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


def swap_prompt(shelf: Shelf, model: str, prompt: str) -> str:
    """On a model change, an untouched default prompt becomes the new model's default."""
    if prompt not in DEFAULT_PROMPTS.values():
        return prompt
    slot = next((g for g in GENERATORS if shelf[g].label == model), GENERATORS[0])
    return DEFAULT_PROMPTS[slot]


def translate(shelf: Shelf, text: str, beam: int):
    """English -> German: (translation, attention heatmap HTML, attention as JSON)."""
    engine = shelf["translate"].get()
    text = check_text(text, "sentence", MAX_SENTENCE_CHARS)
    beam = check_number(beam, "beam width", 1, MAX_BEAM, integer=True)
    out = engine.translate(text, beam)
    data = {"source": out.src_pieces, "target": out.tgt_pieces,
            "attention": np.round(out.attention, 4).tolist(), "logprob": round(out.logprob, 4)}
    return out.text, attention_html(out.attention, out.src_pieces, out.tgt_pieces), data


def polarity(positive: float) -> dict[str, float]:
    """gr.Label's value: each polarity with its confidence."""
    return {"positive": round(positive, 4), "negative": round(1.0 - positive, 4)}


def sentiment(shelf: Shelf, text: str):
    """(polarity with confidence, score line, coloured tokens, running-score table, data as JSON)."""
    engine = shelf["sentiment"].get()
    text = check_text(text, "review", MAX_REVIEW_CHARS)
    r = engine.analyse(text)
    mood = "positive" if r.score > 0.05 else "negative" if r.score < -0.05 else "neutral"
    score_md = f"### Score **{r.score:+.2f}** ({mood})\n<small>-1 hate · 0 neutral · +1 love</small>"
    data = {"score": round(r.score, 4), "positive": round(r.positive, 4),
            "tokens": r.pieces, "running": [round(x, 4) for x in r.running]}
    return (polarity(r.positive), score_md, tokens_html(r.pieces, r.running),
            running_table(r.pieces, r.running), data)


def suggest(shelf: Shelf, typing, text: str, k: int):
    """(suggestions as dicts, latency line, typing key). ``typing``: None on first use, then the
    key this returned (the session itself lives in the engine's bounded LRU), or a ``Typing``."""
    engine = shelf["suggest"].get()
    text = check_text(text, "text", MAX_TYPING_CHARS, allow_empty=True)
    k = check_number(k, "k", 1, 10, integer=True)
    if typing is None or isinstance(typing, str):
        typing, session = engine.typing_for(typing)
    else:
        session = typing
    results = engine.suggest(session, text, k)
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
    if len(words) > MAX_SUGGESTION_CHARS or len(text) + len(words) + 2 > MAX_TYPING_CHARS:
        return text
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


# --------------------------------------------------------------------------- gradio wiring
TITLE = "rnnkit — recurrent networks in your browser"
INTRO = ("Four small RNNs trained with rnnkit and exported to ONNX. Everything here runs with "
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


def build_demo(models_dir: str | Path = "models") -> "gr.Blocks":
    import gradio as gr

    shelf = load_shelf(models_dir)
    status = lambda name: gr.Markdown(shelf[name].status_markdown(), elem_classes="model-status")

    # delete_cache: Gradio's temporary files (none expected: uploads are off) go after 10 minutes.
    with gr.Blocks(title="rnnkit demo", analytics_enabled=False, delete_cache=(600, 600)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="title")
        with gr.Tabs():
            # ---------------------------------------------------------------- Generate
            with gr.Tab("Generate", id="generate"):
                gr.Markdown("  \n".join(shelf[g].status_markdown() for g in GENERATORS), elem_classes="model-status")
                with gr.Row():
                    with gr.Column(scale=2):
                        model = gr.Radio([shelf[g].label for g in GENERATORS], value=shelf[GENERATORS[0]].label,
                                         label="Model")
                        prompt = gr.Textbox(DEFAULT_PROMPTS[GENERATORS[0]], label="Prompt", lines=3,
                                            max_length=MAX_PROMPT_CHARS,
                                            elem_id="gen-prompt")
                        with gr.Row():
                            go = gr.Button("Generate", variant="primary", elem_id="gen-go")
                            stop = gr.Button("Stop", variant="stop", elem_id="gen-stop")
                    with gr.Column(scale=1):
                        temperature = gr.Slider(0.05, 2.0, value=0.8, step=0.05, label="Temperature")
                        top_k = gr.Slider(0, 200, value=40, step=1, label="Top-k (0 = off)")
                        top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.01, label="Top-p (nucleus)")
                        length = gr.Slider(1, MAX_NEW_TOKENS, value=300, step=1, label="Length (new tokens)")
                        seed = gr.Number(1234, precision=0, label="Seed (-1 = random)", minimum=-1)
                generated = gr.Textbox(label="Generated text", lines=14, elem_id="gen-out",
                                       buttons=["copy"], autoscroll=True)

                def run_generate(model, prompt, temperature, top_k, top_p, length, seed):
                    yield from generate(shelf, model, prompt, temperature, top_k, top_p, length, seed,
                                        warn=gr.Warning)

                gen_event = go.click(_guard(run_generate), [model, prompt, temperature, top_k, top_p, length, seed],
                                     generated, api_name="generate", concurrency_limit=LIMITS["generate"],
                                     concurrency_id="generate", show_progress="minimal")
                enter_event = prompt.submit(_guard(run_generate), [model, prompt, temperature, top_k, top_p, length, seed],
                              generated, api_name="generate_on_enter", api_visibility="private",
                              concurrency_id="generate")
                stop.click(None, None, None, cancels=[gen_event, enter_event], api_name="stop",
                           api_visibility="private")
                model.change(functools.partial(swap_prompt, shelf), [model, prompt], prompt,
                             api_name="swap_prompt", api_visibility="private", show_progress="hidden")

            # ---------------------------------------------------------------- Translate
            with gr.Tab("Translate", id="translate"):
                status("translate")
                with gr.Row():
                    with gr.Column():
                        src = gr.Textbox("In the beginning God created the heavens and the earth.",
                                         label="English", lines=3, max_length=MAX_SENTENCE_CHARS, elem_id="tr-in")
                        beam = gr.Slider(1, MAX_BEAM, value=4, step=1, label="Beam width")
                        tr_go = gr.Button("Translate", variant="primary", elem_id="tr-go")
                        gr.Examples([["And God said, Let there be light, and there was light."],
                                     ["Love your neighbor as yourself."],
                                     ["The Lord is my shepherd; I shall not want."]], [src])
                    with gr.Column():
                        tgt = gr.Textbox(label="German", lines=3, elem_id="tr-out", buttons=["copy"])
                heat = gr.HTML(elem_id="tr-attn", label="attention")
                attention = gr.JSON(visible=False, label="attention data")
                run_translate = _guard(functools.partial(translate, shelf))
                run_translate.__name__ = "translate"
                tr_go.click(run_translate, [src, beam], [tgt, heat, attention], api_name="translate",
                            concurrency_limit=LIMITS["translate"], concurrency_id="translate")
                src.submit(run_translate, [src, beam], [tgt, heat, attention], api_name="translate_on_enter",
                           api_visibility="private", concurrency_id="translate")

            # ---------------------------------------------------------------- Sentiment
            with gr.Tab("Sentiment", id="sentiment"):
                status("sentiment")
                with gr.Row():
                    with gr.Column():
                        review = gr.Textbox("The first hour is slow and predictable, but the ending is "
                                            "surprisingly moving and beautifully acted.", label="Review",
                                            lines=4, max_length=MAX_REVIEW_CHARS, elem_id="se-in")
                        se_go = gr.Button("Analyse", variant="primary", elem_id="se-go")
                        gr.Examples([["A gorgeous, witty and heartfelt film."],
                                     ["Dull, lifeless and far too long."],
                                     ["It starts brilliantly, then collapses into a boring, clumsy mess."]], [review])
                    with gr.Column():
                        label = gr.Label(label="Polarity", num_top_classes=2, elem_id="se-label")
                        score = gr.Markdown(elem_id="se-score", label="score")
                gr.Markdown("**The score after each token** (red −1 … green +1; hover a token for its value)")
                tokens = gr.HTML(elem_id="se-tokens", label="tokens")
                trajectory = gr.LinePlot(x="token", y="score", y_lim=[-1, 1], tooltip=["token", "score"],
                                         x_title="", y_title="score so far", x_label_angle=-50, height=320,
                                         label="How the score turns, token by token", elem_id="se-plot")
                details = gr.JSON(visible=False, label="details")
                def run_sentiment(text):
                    *head, table, data = sentiment(shelf, text)
                    # the tokens in reading order (a nominal axis would sort them alphabetically)
                    return *head, gr.LinePlot(table, sort=list(table["token"])), data

                run_sentiment = _guard(run_sentiment)
                outputs = [label, score, tokens, trajectory, details]
                se_go.click(run_sentiment, review, outputs, api_name="sentiment",
                            concurrency_limit=LIMITS["sentiment"], concurrency_id="sentiment")
                review.submit(run_sentiment, review, outputs, api_name="sentiment_on_enter", api_visibility="private",
                              concurrency_id="sentiment")

            # ---------------------------------------------------------------- Suggest
            with gr.Tab("Suggest", id="suggest"):
                status("suggest")
                typing = gr.State(None, time_to_live=1800)  # a key into the engine's bounded LRU
                results = gr.JSON(visible=False, label="suggestions")
                with gr.Row():
                    box = gr.Textbox(label="Type here — suggestions update on every keystroke", lines=4, scale=4,
                                     placeholder="I would like to", max_length=MAX_TYPING_CHARS, elem_id="su-in")
                    k = gr.Slider(1, 5, value=3, step=1, label="Suggestions", scale=1)
                with gr.Row(elem_classes="picks"):
                    picks = [gr.Button(visible=False, elem_id=f"su-pick{i}", scale=0, min_width=90) for i in range(6)]
                caption = gr.Markdown("Start typing: suggestions appear here.", elem_id="su-latency", label="latency")

                def run_suggest(text, k, typing):
                    found, lat, typing = suggest(shelf, typing, text, k)
                    buttons = [gr.Button(pick_label(found[i]), visible=True,
                                         variant="primary" if found[i]["kind"] == "phrase" else "secondary")
                               if i < len(found) else gr.Button(visible=False) for i in range(len(picks))]
                    return [found, suggest_caption(text, found, lat), typing, *buttons]

                outputs = [results, caption, typing, *picks]
                box.input(_guard(run_suggest), [box, k, typing], outputs, api_name="suggest",
                          trigger_mode="always_last", concurrency_limit=LIMITS["suggest"], concurrency_id="suggest",
                          show_progress="hidden")
                for i, b in enumerate(picks):
                    pick = _guard(functools.partial(accept_pick, i))
                    pick.__name__ = f"accept_pick_{i}"
                    tap = b.click(pick, [box, results], box, show_progress="hidden",
                                  api_name=f"accept_suggestion_{i}", api_visibility="private")
                    tap.then(_guard(run_suggest), [box, k, typing], outputs, show_progress="hidden",
                             api_name=f"suggest_after_accept_{i}", api_visibility="private", concurrency_id="suggest")
        gr.Markdown("<small>Each model's card (data, metric, the command that made it): `models/*/MODEL_CARD.md`. "
                    "Source: `demo/app.py`.</small>")
    demo.queue(default_concurrency_limit=4, max_size=128)
    return demo


def launch(models_dir: str | Path = "models", host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           allow_hosts: tuple[str, ...] = (), **kwargs: Any):
    """Build and serve the demo (blocks until stopped unless ``prevent_thread_lock=True``)."""
    from .suggest import limit_malloc_arenas

    limit_malloc_arenas()  # before Gradio's worker threads exist: memory returns after a burst
    demo = build_demo(models_dir)
    demo.launch(server_name=host, server_port=port, share=share, **launch_options(host, share, allow_hosts), **kwargs)
    return demo


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    launch()
