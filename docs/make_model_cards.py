"""Write models/<recipe>/README.md for the shipped bundles from their manifests and runs.

    python docs/make_model_cards.py            # after exporting the runs into models/
    python docs/make_model_cards.py ner-conll=/work/runs/ner   # one card, its run elsewhere

The figures come from each bundle's manifest.json (training metrics, parity, int8 checks) and
the run's recipe.json / results.json; nothing is typed by hand except the commands below.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rnnkit.edge.eval import savings
from rnnkit.edge.phrase import MIN_PROB as PHRASE_MIN_PROB

from make_everyday_results import pct as _pct, phrase_at_default  # (docs/, beside this file)

ROOT = Path(__file__).resolve().parents[1]

# recipe -> (run dir, the commands that reproduce the bundle)
SHIPPED = {
    "char-shakespeare": ("runs/char-shakespeare", [
        "rnnkit data fetch",
        "# on a GPU: one H200, the recipe's defaults, 4.6 minutes of training beside eight other jobs "
        "(bench/gpu_recipes.py job char-shakespeare); on a CPU core the same recipe reached 1.526 in 87 minutes",
        "rnnkit train --recipe char-shakespeare --run-dir runs/char-shakespeare --device cuda --quiet "
        "--set train.max_minutes=4.6",
        "rnnkit export runs/char-shakespeare --out models/char-shakespeare --int8 --int8-only"]),
    "char-shakespeare-gpt": ("runs/char-shakespeare-gpt", [
        "rnnkit data fetch --only shakespeare",
        "# nanoGPT's split of the same text: the first 90 % of characters train, the last 10 % validate",
        "python -c \"t = open('$HOME/.cache/rnnkit/corpora/shakespeare/train.txt').read(); n = int(len(t) * 0.9); "
        "open('train90.txt', 'w').write(t[:n]); open('valid10.txt', 'w').write(t[n:])\"",
        "rnnkit train --recipe char-shakespeare-gpt --run-dir runs/char-shakespeare-gpt --threads 1 --quiet "
        "--set precision=fp32 --set data.train_file=train90.txt --set data.valid_file=valid10.txt "
        "--set data.batch_size=12 --set data.bptt=64 --set data.carry=false --set model.window=64 "
        "--set train.max_steps=2000 --set train.eval_every=2000 --set train.checkpoint_every=0 "
        "--set data.sample_length=100",
        "rnnkit export runs/char-shakespeare-gpt --out models/char-shakespeare-gpt   # fp32: see below"]),
    "suggest-en": ("runs/suggest-en", [
        "rnnkit data fetch",
        "# the tokenizer: the SentencePiece 8k that `rnnkit train --recipe suggest-en` trains on everyday_en's train "
        "split; the one used is that of the earlier CPU run, runs/suggest-en-cpu (its first command: "
        "`rnnkit train --recipe suggest-en --run-dir runs/suggest-en-cpu --threads 1 --quiet --set precision=fp32 "
        "--set max_minutes=100`)",
        "# the model: on a GPU (one H200, 4.6 minutes of training beside eight other jobs; bench/gpu_recipes.py job "
        "suggest-s3, chosen among three on validation perplexity)",
        "rnnkit train --recipe suggest-en --run-dir runs/suggest-en --tokenizer-from runs/suggest-en-cpu --device cuda "
        "--quiet --set train.max_minutes=4.6 --set train.schedule=plateau --set train.max_steps=10000000 "
        "--set train.plateau_patience=1 --set data.batch_size=128 --set model.dropout=0.3 --set train.lr=0.003 "
        "--set train.eval_every=800 --set train.checkpoint_every=4000",
        "# the background word n-gram (a run started today writes it when training starts; this one predates it)",
        "python -m rnnkit.core.text.word_ngram runs/suggest-en ~/.cache/rnnkit/corpora/everyday_en/train.txt",
        "rnnkit export runs/suggest-en --out models/suggest-en --int8 --int8-only"]),
    "sentiment-mr": ("runs/sentiment-mr", [
        "rnnkit data fetch",
        "# 1. the everyday suggestion LM of models/suggest-en (its commands there) -> runs/suggest-en",
        "# 2. fine-tune it on MR's training sentences (train split only): 400 steps -> runs/mr-lm; "
        "a copy of that run continued to 1,600 steps -> runs/mr-lm-long",
        "python -c \"from rnnkit.core.data.loaders import load_sentiment; from rnnkit.core.tasks.classify import "
        "clean_mr_text; open('mr_train.txt', 'w').write(''.join(clean_mr_text(t) + chr(10) for _, t in "
        "load_sentiment('train')))\"",
        "rnnkit train --recipe suggest-en --run-dir runs/mr-lm --threads 1 --quiet --set data.train_file=mr_train.txt "
        "--set data.pretrained=runs/suggest-en --set train.max_steps=400 --set train.lr=0.001 "
        "--set train.eval_every=100 --set precision=fp32",
        "cp -r runs/mr-lm runs/mr-lm-long && rnnkit train --resume runs/mr-lm-long --set train.max_steps=1600 "
        "--threads 1 --quiet",
        "# 3. classifiers that start from an LM's tokenizer, embedding and LSTM (ULMFiT's route)",
        "rnnkit train --recipe sentiment-mr --run-dir runs/sent-a --threads 1 --quiet "
        "--set data.pretrained=runs/mr-lm --set train.lr=0.001 --set train.max_minutes=15 --set precision=fp32",
        "cp -r runs/sent-a runs/sent-b && rnnkit train --resume runs/sent-b --threads 1 --quiet "
        "--set train.max_minutes=0 --set train.max_cpu_seconds=2700   # until early stopping",
        "rnnkit train --recipe sentiment-mr --run-dir runs/sent-c --threads 1 --quiet --set data.pretrained=runs/mr-lm "
        "--set train.lr=0.001 --set train.max_minutes=0 --set train.max_cpu_seconds=2700 --set train.average=ema "
        "--set train.average_start=500 --set train.ema_decay=0.998 --set precision=fp32",
        "rnnkit train --recipe sentiment-mr --run-dir runs/sent-d --threads 1 --quiet "
        "--set data.pretrained=runs/mr-lm-long --set train.lr=0.001 --set train.max_minutes=0 "
        "--set train.max_cpu_seconds=2700 --set precision=fp32",
        "# 4. the greedy model soup of the four, chosen on validation accuracy (soup.json says who went in; the "
        "table above names the runs as they were made: sent-gpulm = sent-a, sent-gpulm-long = sent-b, "
        "sent-ema = sent-c, sent-lmlong = sent-d)",
        "rnnkit soup runs/sent-b runs/sent-a runs/sent-c runs/sent-d --out runs/sentiment-mr",
        "rnnkit export runs/sentiment-mr --out models/sentiment-mr --int8 --int8-only --eval-task"]),
    "translate-en-de": ("runs/translate-en-de", [
        "rnnkit data fetch",
        "# the tokenizer: the joint SentencePiece 4k of the bundle before (the recipe's CPU run on the Bible and "
        "Ding's examples); any run's would do",
        "# the model: 45 minutes on one CPU thread, 18,000 steps, cosine schedule; Ding's examples x4 and the "
        "course sentences (phrasebook_en_de) x8 beside the Bible; the best checkpoint by validation loss (step 15,000)",
        "rnnkit train --recipe translate-en-de --run-dir runs/translate-en-de --tokenizer-from models/translate-en-de "
        "--threads 1 --quiet --set train.max_minutes=0 --set train.max_steps=18000 --set train.eval_every=1500 "
        "--set train.checkpoint_every=1000 "
        "--set 'data.extra_corpora={\"everyday_en_de\": 4, \"phrasebook_en_de\": 8}'",
        "rnnkit export runs/translate-en-de --out models/translate-en-de --int8 --int8-only --eval-task"]),
    "ner-conll": ("runs/ner-conll", [
        "rnnkit data fetch",
        "# the recipe first learns skip-gram word vectors on the everyday_en + PTB + CoNLL-2003 train splits, every",
        "# word (once, ~12 CPU-minutes, kept in ~/.cache/rnnkit/vectors), then trains with the CRF output layer for",
        "# 3,600 CPU-seconds (the cosine decays on that clock); these settings were chosen on validation F1 by",
        "# held-out runs (docs/RESULTS.md, ner-conll); the shipped model is then trained once more with the",
        "# validation sentences added to training (data.train_on_valid) and is the run's last model",
        "rnnkit train --recipe ner-conll --run-dir runs/ner-conll --threads 1 --quiet --set model.crf=true "
        "--set train.max_epochs=0 --set train.max_minutes=0 --set train.max_cpu_seconds=3600 "
        "--set train.early_stop_patience=0 --set precision=fp32 --set data.train_on_valid=true",
        "rnnkit export runs/ner-conll --out models/ner-conll --int8 --int8-only --eval-task",
        "rnnkit eval models/ner-conll --data ~/.cache/rnnkit/corpora/conll2003/test.txt --json "
        "> docs/results/ner-conll-eval.json"]),
    "timeseries": ("runs/timeseries", [
        "rnnkit data fetch",
        "rnnkit train --recipe timeseries --run-dir runs/timeseries --threads 1 --quiet",
        "rnnkit export runs/timeseries --out models/timeseries --int8 --int8-only --eval-task",
        "rnnkit eval models/timeseries --data ~/.cache/rnnkit/corpora/timeseries/airline.csv --horizon 24 --json "
        "> docs/results/timeseries-eval-airline.json",
        "rnnkit eval models/timeseries --data ~/.cache/rnnkit/corpora/timeseries/co2.csv --series co2 --horizon 104 "
        "--json > docs/results/timeseries-eval-co2.json"]),
}

# Figures measured on the bundle itself (not in the manifest): read from the JSON that the
# command writes (docs/results/), so no figure is typed by hand.
RESULTS = ROOT / "docs" / "results"
C = "~/.cache/rnnkit/corpora"
EVAL_CMD = (f"rnnkit eval-suggest models/suggest-en --text {C}/everyday_en/test.txt --spread --max-chars 8000 "
            f"--train-text {C}/everyday_en/train.txt --reference-words {C}/wordfreq_en/words.txt "
            f"--out docs/results/suggest-en-eval.json")
ADAPT_CMD = (f"rnnkit eval-suggest models/suggest-en --text {C}/everyday_en/people/FILE --max-chars 20000 "
             f"--adapt --prefetch 0 --phrase-every 1000000 --out docs/results/suggest-en-adapt-FILE.json")


def suggest_extra() -> str:
    """The on-device tables of suggest-en from eval-suggest's JSON outputs."""
    path = RESULTS / "suggest-en-eval.json"
    if not path.exists():
        return ""
    r = json.loads(path.read_text())
    lstm, kn, pf = r["lstm"], r.get("kneser_ney", {}), r.get("lstm_prefetch", {})
    row = lambda label, key: f"| {label} | {_pct(lstm.get(key))} | {_pct(kn.get(key))} |"  # noqa: E731
    out = ["## On-device suggestion (the edge runner on this bundle, int8, one thread)", "",
           f"`{EVAL_CMD}`", "",
           f"({r['chars']:,} characters, {lstm['words']:,} scored words of the everyday_en test split; "
           "KN-3 = Kneser-Ney trigram trained on the same training text)", "",
           "| | this bundle (LSTM + its word n-gram) | KN-3 |", "|---|---|---|",
           row("next-word top-1", "next_word_top1"), row("next-word top-3", "next_word_top3"),
           row("completion top-3 after 1 char", "completion_1_top3"),
           row("completion top-3 after 2 chars", "completion_2_top3"),
           row("completion top-3 after 3 chars", "completion_3_top3"),
           f"| keystroke savings (a tap inserts the word and its space) | {_pct(savings(lstm))} | "
           f"{_pct(savings(kn) if kn else None)} |",
           f"| keystroke savings (every space typed) | {_pct(savings(lstm, False))} | "
           f"{_pct(savings(kn, False) if kn else None)} |",
           f"| offered strings that are not words (training text's words + wordfreq) | {_pct(lstm.get('not_words'))} "
           f"(next word {_pct(lstm.get('not_words_next'))}, completions {_pct(lstm.get('not_words_completion'))}) | - |",
           f"| per keystroke p50 / p99 (wall) | {lstm['latency_ms_p50']:.2f} / {lstm['latency_ms_p99']:.2f} ms | - |"]
    if pf:
        out.append(f"| per keystroke p50 / p99 with idle-time prefetch of {pf['prefetch_keys']} keys | "
                   f"{pf['latency_ms_p50']:.2f} / {pf['latency_ms_p99']:.2f} ms "
                   f"({100 * pf['no_call_keystrokes']:.0f} % of keystrokes make no model call) | - |")
    big = RESULTS / "suggest-en-eval-40k.json"
    if big.exists():  # an 8,000-character sample moves by points with the lines it takes
        b = json.loads(big.read_text())
        bl, bk = b["lstm"], b.get("kneser_ney", {})
        out += ["", f"The same command with `--max-chars 40000 --prefetch 0` ({b['chars']:,} characters, "
                f"{bl['words']:,} scored words; `docs/results/suggest-en-eval-40k.json`), the steadier sample: "
                f"next-word top-3 {_pct(bl.get('next_word_top3'))} (KN-3 {_pct(bk.get('next_word_top3'))}), "
                f"keystroke savings {_pct(savings(bl))} (KN-3 {_pct(savings(bk) if bk else None)}), "
                f"{_pct(savings(bl, False))} with every space typed (KN-3 {_pct(savings(bk, False) if bk else None)})."]
        out += phrase_at_default(b.get("phrase", {}), "On that sample, Smart Compose")
    out += ["", "Smart Compose phrases at word starts (every 2nd), by threshold (the phrase's probability; the session's "
            f"default is {PHRASE_MIN_PROB}, `--phrase-min-prob`):", "",
            "| threshold | trigger | exact | precision |", "|---|---|---|---|"]
    out += [f"| {t['threshold']} | {_pct(t['trigger_rate'])} | {_pct(t['exact_match_rate'])} | {_pct(t['precision'])} |"
            for t in r["phrase"]["thresholds"]]
    inside = r["phrase"].get("inside_words")
    if inside:
        out += ["", "As the user meets them, inside a word, at the session's bar (P >= "
                f"{inside[0]['min_prob']} of what the letters typed allow; the phrase completes the word and goes on): "
                + "; ".join(f"after {t['typed']} letter{'s' if t['typed'] > 1 else ''} trigger {_pct(t['trigger_rate'])}, "
                            f"exactly right {_pct(t['precision'])} of the time "
                            f"({round(t['trigger_rate'] * t['positions'])} phrases)" for t in inside) + "."]
    people = sorted(RESULTS.glob("suggest-en-adapt-*.json"))
    if people:
        out += ["", "## Learning its user (adaptation on the device)", "",
                f"`{ADAPT_CMD}` for each writer of the test split (everyday_en/people/; every conversation "
                "or mail thread of these writers is held out of training):", "",
                "| writer | characters | keystroke savings off | on | gain | keystroke p99 on |", "|---|---|---|---|---|---|"]
        gains = []
        for f in people:  # keystroke savings with a tap inserting the space (files from before: every space typed)
            a = json.loads(f.read_text())
            tap = savings(a["lstm"]) is not None
            off, on = savings(a["lstm"], tap), savings(a["lstm_adapt"], tap)
            gains.append(on - off)
            out.append(f"| {f.stem.replace('suggest-en-adapt-', '')} | {a['chars']:,} | {_pct(off)} | {_pct(on)} | "
                       f"{100 * (on - off):+.1f} points | {a['lstm_adapt']['latency_ms_p99']:.2f} ms |")
        out.append(f"| mean of {len(gains)} | | | | {100 * sum(gains) / len(gains):+.1f} points | |")
    return "\n".join(out) + "\n"


def _eval_json(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def ner_extra() -> str:
    """How to use the tagger, and its entity F1 on the test split measured on this bundle."""
    r = _eval_json("ner-conll-eval")
    out = ["## Use it (torch-free)", "", "```bash",
           'rnnkit predict models/ner-conll --text "EU rejects German call to boycott British lamb."',
           "# EU/B-ORG rejects German/B-MISC call to boycott British/B-MISC lamb .",
           'echo \'{"text": "Angela Merkel met Barack Obama in Paris."}\' | rnnkit predict models/ner-conll --json',
           '# {"tokens": [...], "tags": [...], "entities": [{"text": "Angela Merkel", "type": "PER", "start": 0, '
           '"end": 13}, ...]}', "```", "",
           "Words are split CoNLL-style (punctuation apart); " + (
               "tags are the best sequence under the model's CRF (Viterbi over the graph's emission scores and "
               "the transition scores in manifest.json, `rnnkit.edge.viterbi`)."
               if json.loads((ROOT / "models" / "ner-conll" / "manifest.json").read_text()).get("crf")
               else "tags are the argmax per word (no CRF).")]
    vectors = (json.loads((ROOT / "models" / "ner-conll" / "manifest.json").read_text()).get("task") or {}).get(
        "word_vectors")
    if vectors:
        src = vectors["source"]
        names = list(src["corpora"]) if isinstance(src, dict) else []
        where = (f"the train splits of {', '.join(names[:-1]) + ' and ' if len(names) > 1 else ''}{names[-1]}"
                 if names else f"`{src}`")
        out += ["", f"The word embeddings started from skip-gram vectors learnt on {where} "
                f"({vectors['words']:,} words, `rnnkit data vectors`); the {vectors['rows_initialised']:,} vector "
                "words include many the CoNLL training sentences lack, so a name seen only in news text still has "
                "a learnt vector instead of the unknown-word one."]
    if r:
        out += ["", f"On this int8 bundle (`rnnkit eval`, CoNLL-2003 test, {r['sentences']:,} sentences): entity F1 "
                f"**{r['f1']:.1f}** (precision {r['precision']:.1f}, recall {r['recall']:.1f}); per type "
                + ", ".join(f"{k[3:]} {v:.1f}" for k, v in sorted(r.items()) if k.startswith("f1_")) + "."]
    return "\n".join(out) + "\n"


def sentiment_extra() -> str:
    """What the soup is made of (chosen on validation) and its test accuracy measured on this bundle."""
    soup, r = _eval_json("sentiment-mr-soup"), _eval_json("sentiment-mr-eval")
    out = []
    if soup:
        metric = soup["metric"]
        kept = set(soup["members"])
        out += ["## A model soup", "",
                f"The weights are the mean of {len(kept)} classifiers fine-tuned from the same language model "
                "(`rnnkit soup`, greedy: runs ranked by validation accuracy, each averaged in only if validation "
                "accuracy does not drop; Wortsman et al. 2022). The test split was not used to choose.", "",
                f"| run | validation {metric.replace('val_', '')} | in the soup |", "|---|---|---|"]
        out += [f"| {Path(x['run']).name} | {x[metric]:.2f} | {'yes' if x['run'] in kept else 'no'} |"
                for x in soup["runs"]]
        out += [f"| **soup** | **{soup[f'soup_{metric}']:.2f}** | |"]
    if r:
        out += ["", f"On this int8 bundle (`rnnkit eval models/sentiment-mr --data mr_test.tsv`, MR test split, "
                f"{r['rows']:,} reviews): accuracy **{r['acc']:.2f} %**, score MAE {r['score_mae']:.3f}."]
    return "\n".join(out) + "\n" if out else ""


def timeseries_extra() -> str:
    """How to forecast, and the held-out RMSE measured on this bundle."""
    out = ["## Use it (torch-free)", "", "```bash",
           "rnnkit predict models/timeseries --file ~/.cache/rnnkit/corpora/timeseries/airline.csv --horizon 12",
           "rnnkit predict models/timeseries --file my_series.csv --series co2 --horizon 52   # weekly, like co2",
           'echo \'{"history": [112, 118, 132, ...], "horizon": 12}\' | rnnkit predict models/timeseries --json',
           "```", "",
           "A history takes the period and log transform of a series this model was trained on (`--series`; "
           "default airline: monthly, period 12, in logs) and is normalised by its own seasonal differences "
           "unless `--series` names one (then that series' training figures are used). Give at least one "
           "season plus two values."]
    rows = [(n, _eval_json(f"timeseries-eval-{n}")) for n in ("airline", "co2")]
    rows = [(n, r) for n, r in rows if r]
    if rows:
        out += ["", "On this int8 bundle (`rnnkit eval`, the last values of each series held out):", "",
                "| series | held out | RNN one-step RMSE | RNN recursive RMSE | seasonal-naive one-step | ratio |",
                "|---|---|---|---|---|---|"]
        out += [f"| {n} | last {r['horizon']} | {r['rmse_1step']:.3g} | {r['rmse_multi']:.3g} | "
                f"{r['snaive_rmse_1step']:.3g} | {r['rel_rmse']:.2f}× |" for n, r in rows]
    return "\n".join(out) + "\n"


EXTRA = {"suggest-en": suggest_extra, "ner-conll": ner_extra, "timeseries": timeseries_extra,
         "sentiment-mr": sentiment_extra}

LIMITS = {
    "char-shakespeare-gpt": "nanoGPT's CPU-sized Transformer (4 layers, 4 heads, 128 wide) trained for 2,000 steps "
                            "(about 4 CPU-minutes): it sees only the last 64 characters (a fixed-window KV cache), so "
                            "it cannot keep a name or a rhyme longer than that. It is here to compare with the "
                            "recurrent models on the same text (the demo's Compare tab, RESULTS.md \"RNN vs "
                            "Transformer\"), not as a generator: char-shakespeare writes better. It ships fp32 (3.4 MB): "
                            "its int8 graph was slower (0.89 vs 0.70 ms a step at export; attention, not the weight "
                            "matrices, dominates) and its one-shot and stepped logits differed by 3.2e-4, over the "
                            "1e-4 every shipped graph keeps.",
    "sentiment-mr": "One-sentence movie reviews (MR, 2005) on top of a language model of everyday English "
                    "(chat, mail, news): the weight average of three fine-tuned classifiers. It reads left to "
                    "right only; sarcasm, negation far from the word it flips, long reviews (it was trained on "
                    "sentences under 80 pieces) and anything but English are weak spots. The score in [-1, 1] "
                    "follows VADER's ratings, not a human's.",
    "suggest-en": "Trained for 4.6 minutes on a GPU (37,850 steps of 128 x 35 pieces, about 30 passes over "
                  "everyday_en; the CPU run before it had 3.5 hours of one core for three passes): a small model, "
                  "sized for a phone. Its English is 2018 student chat, 2002 tech mailing lists, dictionary "
                  "example sentences and 2004-05 BBC news: it knows little of other registers, of names after "
                  "2005, or of any language but English. It offers only words it saw at least twice (or that you "
                  "typed, or that it is sure of); a new word takes a few uses before `--user-dir` offers it. "
                  "Its word n-gram (1.9 MB of the bundle) knows only the word pairs and triples seen at least "
                  "twice in that text, and no punctuation. "
                  "Smart Compose phrases are rarely exactly right (see the curve above). A keystroke costs 2.5-4.5 ms "
                  "at the median and 7-15 ms at p99 on one core of a 2020s server CPU (slower on a phone), against "
                  "a 3 ms p99 goal: the word search reads the model 1-5 times a keystroke, and idle-time prefetch "
                  "spares most keystrokes but not the slowest (docs/RESULTS.md, what a keystroke costs).",
    "ner-conll": "Trained on CoNLL-2003: Reuters news of 1996, four entity types (PER, LOC, ORG, MISC). On its test "
                 "split it finds 88 % of entities (F1); miscellaneous names (events, nationalities, titles) are "
                 "its weakest type (F1 78). Names its training sentences never showed are found far less well "
                 "(test F1 79, against 95 for names it was trained on; 44 % of the test's names are new to it). Text far from news (chat, lower-case typing, tweets), names that appear "
                 "in neither the training sentences nor its word vectors' text, other languages, and entity types "
                 "beyond those four are out of its reach. Words are split CoNLL-style, so \"Germany's\" is two "
                 "tokens.",
    "translate-en-de": "A 1.6 M-parameter model trained for 45 minutes on one CPU thread (18,000 steps): Bible "
                       "verses (31 k), 14 k everyday dictionary examples (Ding, seen four times as often) and 1.6 k "
                       "course sentences of A1-A2 German (auf-deutsch, eight times). Short everyday sentences like "
                       "the course's translate best (test BLEU about 22); Ding's examples, each written around one "
                       "rarer word, much worse (BLEU about 7), often as broken German. Long or technical "
                       "sentences, names and anything outside these registers fail. Not for real translation work.",
}


def _arch(kind: str | None, cfg: dict) -> str:
    """The cell of a recurrent model, or what a Transformer is (its state: a KV cache of ``window``)."""
    if kind == "transformer_lm":
        return f"Transformer ({cfg.get('num_heads')} heads, KV cache of {cfg.get('window')} positions)"
    return str(cfg.get("cell"))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _data(data: dict) -> str:
    if data.get("corpus"):
        extra = "".join(f" + `{c}` (×{n})" for c, n in (data.get("extra_corpora") or {}).items())
        return f"corpus `{data['corpus']}`{extra}"
    if data.get("series"):
        return "series " + ", ".join(f"`{x}`" for x in data["series"])
    return "?"


def _trained_on(run_dir: Path) -> str:
    """Where the run trained, from its config.json (a GPU was lent once; the rest is the 2-core CPU)."""
    config = run_dir / "config.json"
    hw = json.loads(config.read_text()).get("hardware", {}) if config.exists() else {}
    if hw.get("device") == "cuda":
        return f"Trained on a GPU ({hw.get('gpu', 'CUDA')}, {hw.get('precision', '')}), exported and checked on the CPU"
    return "Trained on a shared 2-core CPU machine (no GPU)"


def card(name: str, run_dir: Path, commands: list[str]) -> str:
    bundle = ROOT / "models" / name
    m = json.loads((bundle / "manifest.json").read_text())
    recipe = json.loads((run_dir / "recipe.json").read_text()) if (run_dir / "recipe.json").exists() else {}
    results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else {}
    final = m.get("metrics", {}).get("final") or {}
    cfg = m["model"]["config"]
    size = sum(m.get("sizes", {}).values()) + (bundle / "manifest.json").stat().st_size  # as `describe` (not this card)
    lines = [f"# {name}", "", recipe.get("description", ""), "",
             "| | |", "|---|---|",
             f"| model | `{m['kind']}`: {_arch(m['model'].get('kind'), cfg)} {cfg.get('num_layers')}×{cfg.get('hidden_size')}"
             f"{' bidirectional' if cfg.get('bidirectional') else ''}, {final.get('params', '?'):,} parameters |"
             if isinstance(final.get('params'), int) else f"| model | `{m['kind']}` |",
             f"| data | {_data(recipe.get('data', {}))} (see docs/CONTRACTS.md, Corpora) |",
             f"| graphs | {', '.join(f'`{f}`' for f in m['graphs'].values())} ({m['precision']}) |",
             f"| bundle size | {f'{size / 1e6:.1f} MB' if size >= 100_000 else f'{size / 1e3:.0f} kB'} |",
             f"| parity, fp32 ONNX vs PyTorch | max abs diff {m['parity']['max_abs_diff']:.1e} |"]
    # The training-time next-word figure is a cheaper proxy (core/tasks/next_word_proxy.py): named apart from
    # eval-suggest's, which types the text through the real session (the figure that counts).
    metrics = {(k if "_next_proxy_" in k else k.replace("_next_", "_next_proxy_")): v for k, v in final.items()
               if k not in ("kind", "params") and isinstance(v, (int, float))}
    seen_valid = bool(recipe.get("data", {}).get("train_on_valid"))
    which = ("the run's last model: it also trained on the validation split (data.train_on_valid), so the "
             "val_ figures are not held out" if seen_valid else "best checkpoint by validation")
    lines += ["", f"## Metrics ({which}; fp32 PyTorch)", "",
              "| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in sorted(metrics.items())]
    int8 = m.get("int8", {})
    text = (int8.get("step") or {}).get("text")
    if text:
        lines += ["", f"int8 vs fp32 on {text['source']} ({text['tokens']:,} tokens): top-1 agreement "
                      f"{text['top1_agreement']:.2%}, perplexity {text['fp32_ppl']:.2f} → {text['int8_ppl']:.2f} "
                      f"({text['ppl_change']:+.2%})."]
    task = int8.get("task")
    if task:
        lines += ["", "Recipe metrics of the graphs: " + ", ".join(
            f"{k} torch {task['torch'][k]:.4g} / fp32 {task['fp32'][k]:.4g} / int8 {task['int8'][k]:.4g}"
            for k in task["fp32"] if k.startswith("val_"))
            + (" (validation rows the model trained on: these compare the graphs, they do not measure the model)"
               if seen_valid else "")]
    for source, picks in (results.get("samples_by_source") or {}).items():
        lines += ["", f"## Samples from the {source} test split", ""] + [
            f"- {p['src']} → {p['hyp']}  (reference: {p['ref']})" for p in picks[:8]]
    samples = results.get("samples")
    if isinstance(samples, list) and samples:
        lines += ["", "## Samples", ""] + [f"- `{json.dumps(s, ensure_ascii=False)[:300]}`" for s in samples[:5]]
    elif (run_dir / "samples.txt").exists():
        lines += ["", "## Samples", "", "```", (run_dir / "samples.txt").read_text()[:1200].rstrip(), "```"]
    from rnnkit.export.runtimes import card_section
    if card_section(m):
        lines += ["", card_section(m)]
    if name in EXTRA:
        lines += ["", EXTRA[name]().rstrip()]
    if name in LIMITS:
        lines += ["", "## What it is not good at", "", LIMITS[name]]
    lines += ["", "## Reproduce", "", "```bash"] + commands + ["```", "",
              _trained_on(run_dir) + "; see docs/RESULTS.md for every recipe.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    # recipe names (none: every shipped bundle); NAME=RUN_DIR also reads that bundle's run from RUN_DIR
    runs = dict(a.split("=", 1) for a in args if "=" in a)
    only = {a.split("=", 1)[0] for a in args}
    for name, (run, commands) in SHIPPED.items():
        if only and name not in only:
            continue
        run_dir, bundle = ROOT / runs.get(name, run), ROOT / "models" / name
        if not (bundle / "manifest.json").exists():
            print(f"skip {name}: no bundle in models/", file=sys.stderr)
            continue
        (bundle / "README.md").write_text(card(name, run_dir, commands), encoding="utf-8")
        print(f"wrote {bundle / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

