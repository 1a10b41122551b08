"""The demo's tabs: each function lays out one tab in the current ``gr.Blocks`` and wires its events
to the plain functions of ``demo/app.py`` (which do the checking and call the engines).

Every tab lists all bundles of its kind in a picker; the picker is the last input of the tab's
public endpoint, so API callers that leave it out get the default bundle (the shipped one).
"""

from __future__ import annotations

import functools

from . import app as A
from .shelf import Shelf, Tab
from .validation import (MAX_ENTITY_CHARS, MAX_HISTORY_CHARS, MAX_PROMPT_CHARS, MAX_REVIEW_CHARS,
                         MAX_SENTENCE_CHARS, MAX_TYPING_CHARS)

ENTITY_COLORS = {"PER": "#fca5a5", "ORG": "#93c5fd", "LOC": "#86efac", "MISC": "#fde68a"}
# The airline passengers series (Box & Jenkins, monthly 1949-1960): the forecast tab's example.
AIRLINE = """112 118 132 129 121 135 148 148 136 119 104 118
115 126 141 135 125 149 170 170 158 133 114 140
145 150 178 163 172 178 199 199 184 162 146 166
171 180 193 181 183 218 230 242 209 191 172 194
196 196 236 235 229 243 264 272 237 211 180 201
204 188 235 227 234 264 302 293 259 229 203 229
242 233 267 269 270 315 364 347 312 274 237 278
284 277 317 313 318 374 413 405 355 306 271 306
315 301 356 348 355 422 465 467 404 347 305 336
340 318 362 348 363 435 491 505 404 359 310 337
360 342 406 396 420 472 548 559 463 407 362 405
417 391 419 461 472 535 622 606 508 461 390 432"""


def _status(tab: Tab):
    import gradio as gr

    return gr.Markdown(tab.status_markdown(), elem_classes="model-status")


def _picker(tab: Tab, elem_id: str, status):
    """A dropdown of the tab's bundles; choosing one shows its status line."""
    import gradio as gr

    pick = gr.Dropdown(list(tab.choices), value=tab.default, label="Model", elem_id=elem_id,
                       interactive=True, scale=0, min_width=320)
    pick.change(A._guard(tab.status_markdown), pick, status, api_name=f"{tab.name}_model",
                api_visibility="private", show_progress="hidden")
    return pick


def _named(fn, name: str):
    fn.__name__ = name
    return fn


def generate_tab(shelf: Shelf) -> None:
    import gradio as gr

    tab = shelf.tabs["generate"]
    with gr.Tab("Generate", id="generate"):
        status = _status(tab)
        with gr.Row():
            with gr.Column(scale=2):
                model = gr.Radio(list(tab.choices), value=tab.default, label="Model")
                prompt = gr.Textbox(A.default_prompt(shelf, tab.default), label="Prompt", lines=3,
                                    max_length=MAX_PROMPT_CHARS, elem_id="gen-prompt")
                with gr.Row():
                    go = gr.Button("Generate", variant="primary", elem_id="gen-go")
                    stop = gr.Button("Stop", variant="stop", elem_id="gen-stop")
            with gr.Column(scale=1):
                temperature = gr.Slider(0.05, 2.0, value=0.8, step=0.05, label="Temperature")
                top_k = gr.Slider(0, 200, value=40, step=1, label="Top-k (0 = off)")
                top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.01, label="Top-p (nucleus)")
                length = gr.Slider(1, A.MAX_NEW_TOKENS, value=300, step=1, label="Length (new tokens)")
                seed = gr.Number(1234, precision=0, label="Seed (-1 = random)", minimum=-1)
        generated = gr.Textbox(label="Generated text", lines=14, elem_id="gen-out", buttons=["copy"], autoscroll=True)

        def run_generate(model, prompt, temperature, top_k, top_p, length, seed):
            yield from A.generate(shelf, model, prompt, temperature, top_k, top_p, length, seed, warn=gr.Warning)

        inputs = [model, prompt, temperature, top_k, top_p, length, seed]
        gen_event = go.click(A._guard(run_generate), inputs, generated, api_name="generate",
                             concurrency_limit=A.LIMITS["generate"], concurrency_id="generate", show_progress="minimal")
        enter_event = prompt.submit(A._guard(run_generate), inputs, generated, api_name="generate_on_enter",
                                    api_visibility="private", concurrency_id="generate")
        stop.click(None, None, None, cancels=[gen_event, enter_event], api_name="stop", api_visibility="private")
        model.change(functools.partial(A.swap_prompt, shelf), [model, prompt], prompt,
                     api_name="swap_prompt", api_visibility="private", show_progress="hidden")
        model.change(A._guard(tab.status_markdown), model, status, api_name="generate_model",
                     api_visibility="private", show_progress="hidden")


def translate_tab(shelf: Shelf) -> None:
    import gradio as gr

    tab = shelf.tabs["translate"]
    with gr.Tab("Translate", id="translate"):
        status = _status(tab)
        pick = _picker(tab, "tr-model", status)
        with gr.Row():
            with gr.Column():
                src = gr.Textbox("How heavy is the parcel?", label="English", lines=3,
                                 max_length=MAX_SENTENCE_CHARS, elem_id="tr-in")
                beam = gr.Slider(1, A.MAX_BEAM, value=4, step=1, label="Beam width")
                go = gr.Button("Translate", variant="primary", elem_id="tr-go")
                # (sentences this small model gets right; its figures, weak spots included, are on its card)
                gr.Examples([["I don't have time today."], ["Thank you for your help."],
                             ["I have two brothers."], ["God is love."]],
                            [src])
            with gr.Column():
                tgt = gr.Textbox(label="German", lines=3, elem_id="tr-out", buttons=["copy"])
        heat = gr.HTML(elem_id="tr-attn", label="attention")
        attention = gr.JSON(visible=False, label="attention data")
        run = A._guard(_named(functools.partial(A.translate, shelf), "translate"))
        go.click(run, [src, beam, pick], [tgt, heat, attention], api_name="translate",
                 concurrency_limit=A.LIMITS["translate"], concurrency_id="translate")
        src.submit(run, [src, beam, pick], [tgt, heat, attention], api_name="translate_on_enter",
                   api_visibility="private", concurrency_id="translate")


def sentiment_tab(shelf: Shelf) -> None:
    import gradio as gr

    tab = shelf.tabs["sentiment"]
    with gr.Tab("Sentiment", id="sentiment"):
        status = _status(tab)
        pick = _picker(tab, "se-model", status)
        with gr.Row():
            with gr.Column():
                review = gr.Textbox("The first hour is slow and predictable, but the ending is surprisingly moving "
                                    "and beautifully acted.", label="Review", lines=4, max_length=MAX_REVIEW_CHARS,
                                    elem_id="se-in")
                go = gr.Button("Analyse", variant="primary", elem_id="se-go")
                gr.Examples([["A gorgeous, witty and heartfelt film."], ["Dull, lifeless and far too long."],
                             ["It starts brilliantly, then collapses into a boring, clumsy mess."]], [review])
            with gr.Column():
                label = gr.Label(label="Polarity", num_top_classes=2, elem_id="se-label")
                score = gr.Markdown(elem_id="se-score", label="score")
        gr.Markdown("**The score after each token** (red −1 … green +1; hover a token for its value)")
        tokens = gr.HTML(elem_id="se-tokens", label="tokens")
        trajectory = gr.LinePlot(x="token", y="score", y_lim=[-1, 1], tooltip=["token", "score"], x_title="",
                                 y_title="score so far", x_label_angle=-50, height=320,
                                 label="How the score turns, token by token", elem_id="se-plot")
        details = gr.JSON(visible=False, label="details")

        def run_sentiment(text, model=None):
            *head, table, data = A.sentiment(shelf, text, model)
            # the tokens in reading order (a nominal axis would sort them alphabetically)
            return *head, gr.LinePlot(table, sort=list(table["token"])), data

        run = A._guard(run_sentiment)
        outputs = [label, score, tokens, trajectory, details]
        go.click(run, [review, pick], outputs, api_name="sentiment", concurrency_limit=A.LIMITS["sentiment"],
                 concurrency_id="sentiment")
        review.submit(run, [review, pick], outputs, api_name="sentiment_on_enter", api_visibility="private",
                      concurrency_id="sentiment")


def suggest_tab(shelf: Shelf) -> None:
    import gradio as gr

    tab = shelf.tabs["suggest"]
    with gr.Tab("Suggest", id="suggest"):
        status = _status(tab)
        pick = _picker(tab, "su-model", status)
        typing = gr.State(None, time_to_live=1800)  # a key into the engine's bounded LRU
        results = gr.JSON(visible=False, label="suggestions")
        with gr.Row():
            box = gr.Textbox(label="Type here — suggestions update on every keystroke", lines=4, scale=4,
                             placeholder="I would like to", max_length=MAX_TYPING_CHARS, elem_id="su-in")
            k = gr.Slider(1, 5, value=3, step=1, label="Suggestions", scale=1)
        with gr.Row(elem_classes="picks"):
            picks = [gr.Button(visible=False, elem_id=f"su-pick{i}", scale=0, min_width=90) for i in range(6)]
        caption = gr.Markdown("Start typing: suggestions appear here.", elem_id="su-latency", label="latency")

        def run_suggest(text, k, typing, model=None):
            found, lat, typing = A.suggest(shelf, typing, text, k, model)
            buttons = [gr.Button(A.pick_label(found[i]), visible=True,
                                 variant="primary" if found[i]["kind"] == "phrase" else "secondary")
                       if i < len(found) else gr.Button(visible=False) for i in range(len(picks))]
            return [found, A.suggest_caption(text, found, lat), typing, *buttons]

        inputs, outputs = [box, k, typing, pick], [results, caption, typing, *picks]
        box.input(A._guard(run_suggest), inputs, outputs, api_name="suggest", trigger_mode="always_last",
                  concurrency_limit=A.LIMITS["suggest"], concurrency_id="suggest", show_progress="hidden")
        for i, b in enumerate(picks):
            accept = A._guard(_named(functools.partial(A.accept_pick, i), f"accept_pick_{i}"))
            tap = b.click(accept, [box, results], box, show_progress="hidden",
                          api_name=f"accept_suggestion_{i}", api_visibility="private")
            tap.then(A._guard(run_suggest), inputs, outputs, show_progress="hidden",
                     api_name=f"suggest_after_accept_{i}", api_visibility="private", concurrency_id="suggest")


def entities_tab(shelf: Shelf) -> None:
    import gradio as gr

    tab = shelf.tabs["entities"]
    with gr.Tab("Entities", id="entities"):
        status = _status(tab)
        pick = _picker(tab, "ne-model", status)
        with gr.Row():
            with gr.Column():
                text = gr.Textbox("Angela Merkel met Barack Obama in Paris before flying back to Berlin on Monday.",
                                  label="Text", lines=4, max_length=MAX_ENTITY_CHARS, elem_id="ne-in")
                go = gr.Button("Find entities", variant="primary", elem_id="ne-go")
                gr.Examples([["EU rejects German call to boycott British lamb."],
                             ["Peter Blackburn of the European Commission spoke in Brussels."],
                             ["Manchester United beat Real Madrid 3-1 at Old Trafford on Saturday."]], [text])
            with gr.Column():
                marked = gr.HighlightedText(label="Entities (PER person · ORG organisation · LOC place · MISC other)",
                                            color_map=ENTITY_COLORS, show_legend=True, elem_id="ne-out")
        details = gr.JSON(visible=False, label="entities")
        run = A._guard(_named(functools.partial(A.entities, shelf), "entities"))
        go.click(run, [text, pick], [marked, details], api_name="entities", concurrency_limit=A.LIMITS["entities"],
                 concurrency_id="entities")
        text.submit(run, [text, pick], [marked, details], api_name="entities_on_enter", api_visibility="private",
                    concurrency_id="entities")


def forecast_tab(shelf: Shelf) -> None:
    import gradio as gr

    tab = shelf.tabs["forecast"]
    with gr.Tab("Forecast", id="forecast"):
        status = _status(tab)
        pick = _picker(tab, "fc-model", status)
        with gr.Row():
            with gr.Column(scale=1):
                history = gr.Textbox(AIRLINE, label="History (numbers, oldest first; or CSV date,value)", lines=8,
                                     max_length=MAX_HISTORY_CHARS, elem_id="fc-in")
                horizon = gr.Slider(1, 120, value=24, step=1, label="Forecast horizon (steps)")
                go = gr.Button("Forecast", variant="primary", elem_id="fc-go")
            with gr.Column(scale=2):
                plot = gr.LinePlot(x="step", y="value", color="part", tooltip=["step", "value", "part"], height=360,
                                   color_map={"history": "#64748b", "forecast": "#4f46e5"},
                                   label="History and forecast", elem_id="fc-plot")
                caption = gr.Markdown(elem_id="fc-caption", label="caption")
        data = gr.JSON(visible=False, label="forecast")
        run = A._guard(_named(functools.partial(A.forecast, shelf), "forecast"))
        go.click(run, [history, horizon, pick], [plot, caption, data], api_name="forecast",
                 concurrency_limit=A.LIMITS["forecast"], concurrency_id="forecast")


def _compare_pair(labels: list[str]) -> tuple[str | None, str | None]:
    """The shipped LSTM and Transformer on the same text when both are there, else the first and last."""
    from .shelf import LABELS

    lstm, gpt = LABELS["char-shakespeare"], LABELS["char-shakespeare-gpt"]
    if lstm in labels and gpt in labels:
        return lstm, gpt
    return (labels[0], labels[-1]) if labels else (None, None)


def compare_tab(shelf: Shelf) -> None:
    """The same prompt through a recurrent and a Transformer bundle, per-token latency as the context grows."""
    import gradio as gr

    tab = shelf.tabs["generate"]
    labels = list(tab.choices)
    with gr.Tab("Compare", id="compare"):
        gr.Markdown("The same prompt through two language models (e.g. an LSTM and a Transformer bundle), "
                    "and the time of each one-token step as the context grows.", elem_classes="model-status")
        with gr.Row():
            a, b = _compare_pair(labels)
            model_a = gr.Dropdown(labels, value=a, label="Model A", elem_id="cmp-a")
            model_b = gr.Dropdown(labels, value=b, label="Model B", elem_id="cmp-b")
        with gr.Row():
            prompt = gr.Textbox(A.default_prompt(shelf, tab.default), label="Prompt", lines=2,
                                max_length=MAX_PROMPT_CHARS, elem_id="cmp-prompt", scale=3)
            length = gr.Slider(10, A.MAX_COMPARE_TOKENS, value=200, step=10, label="New tokens", scale=1)
            seed = gr.Number(1234, precision=0, label="Seed", minimum=0, scale=1)
        go = gr.Button("Run both", variant="primary", elem_id="cmp-go")
        with gr.Row():
            text_a = gr.Textbox(label="Model A", lines=10, elem_id="cmp-out-a")
            text_b = gr.Textbox(label="Model B", lines=10, elem_id="cmp-out-b")
        plot = gr.LinePlot(x="tokens of context", y="ms per token", color="model", height=320,
                           tooltip=["tokens of context", "ms per token", "model"],
                           label="Per-token step latency (onnxruntime, one thread)", elem_id="cmp-plot")
        caption = gr.Markdown(elem_id="cmp-caption")
        run = A._guard(_named(functools.partial(A.compare, shelf), "compare"))
        go.click(run, [model_a, model_b, prompt, length, seed], [text_a, text_b, plot, caption], api_name="compare",
                 concurrency_limit=A.LIMITS["compare"], concurrency_id="compare")
