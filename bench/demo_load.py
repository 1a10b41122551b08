"""Load test for the Gradio demo: N concurrent clients for a bounded time against 127.0.0.1.

    .venv/bin/python bench/demo_load.py                       # starts `rnnkit demo` on models/, 20 clients, 60 s
    .venv/bin/python bench/demo_load.py --url http://127.0.0.1:7860/ --clients 20 --seconds 60
    .venv/bin/python bench/demo_load.py --models DIR --json out.json
    .venv/bin/python bench/demo_load.py --attack --seconds 30  # benign alone, then with one attacking client

Each client is a thread with its own HTTP connection that loops over the endpoints
(/suggest keystrokes, /generate streamed, /translate, /sentiment) through Gradio's HTTP API
until the time is up; the time to the first token is when the first streamed /generate
output arrives. Reports errors (goal 0), p50/p95 latency per endpoint and the time to the first
streamed token of /generate (goal <= 100 ms). Only loopback URLs are accepted: this is not a
tool for loading other people's servers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["In the beginning God created the heavens and the earth.", "Love your neighbor as yourself.",
             "And the light shines in the darkness.", "Blessed are the meek, for they shall inherit the earth."]
REVIEWS = ["A gorgeous, witty and heartfelt film.", "Dull, lifeless and far too long.",
           "It starts brilliantly, then collapses into a boring, clumsy mess.", "Not bad at all."]
TYPED = "I would like to thank you for the"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_local(url: str) -> None:
    host = urllib.parse.urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"--url must point at this machine (127.0.0.1), got host {host!r}")


def wait_up(url: str, proc: subprocess.Popen | None, timeout: float = 120.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the demo server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the demo at {url} did not come up within {timeout:.0f} s")


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.ttft: list[float] = []

    def ok(self, name: str, seconds: float) -> None:
        with self.lock:
            self.lat[name].append(seconds * 1e3)

    def fail(self, name: str, err: BaseException) -> None:
        with self.lock:
            self.errors[name].append(f"{type(err).__name__}: {str(err)[:200]}")


class CallError(RuntimeError):
    pass


def call(http, url: str, api: str, data: list) -> tuple[float, float, object]:
    """One call through Gradio's HTTP API (what "Use via API" shows for curl): POST the inputs,
    then read the event stream. Returns (seconds to the first output, seconds to the end, output).

    A raw client rather than gradio_client: gradio_client polls its message queue every 50 ms
    and busy-waits in 1 ms steps per job, which with 20 client threads measured the client,
    not the server.
    """
    t0 = time.perf_counter()
    r = http.post(f"{url}gradio_api/call/{api}", json={"data": data})
    r.raise_for_status()
    event_id = r.json()["event_id"]
    first, event, out = None, None, None
    with http.stream("GET", f"{url}gradio_api/call/{api}/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                payload = line[5:].strip()
                if event == "error":
                    raise CallError(payload[:200])
                if event in ("generating", "complete"):
                    first = first if first is not None else time.perf_counter() - t0
                    out = json.loads(payload)
                if event == "complete":
                    return first, time.perf_counter() - t0, out
    raise CallError(f"/{api}: the stream ended without a result")


def client_loop(url: str, idx: int, deadline: float, rec: Recorder, gen_model: str, gen_len: int,
                think: float) -> None:
    """One user. ``think`` > 0: a random pause (mean ``think`` s) between actions and 0.15 s
    between keystrokes, like a person; 0: back-to-back requests (a stress test)."""
    import random

    import httpx

    rng = random.Random(idx)
    pause = lambda s: time.sleep(min(s, max(0.0, deadline - time.time())))
    i = idx
    with httpx.Client(timeout=120) as http:
        while time.time() < deadline:
            i += 1
            job = i % 4
            if think > 0:
                pause(rng.expovariate(1.0 / think))
            try:
                if job == 0:  # typing: a few keystrokes, each one a /suggest call
                    start = (i * 3) % (len(TYPED) - 6)
                    for n in range(start + 1, start + 6):
                        rec.ok("/suggest", call(http, url, "suggest", [TYPED[:n], 3])[1])
                        if think > 0:
                            pause(0.15)
                elif job == 1:
                    prompt = "ROMEO:" if gen_model.startswith("Shakespeare") else "The film was"
                    first, total, out = call(http, url, "generate", [gen_model, prompt, 0.8, 40, 0.95, gen_len, i])
                    if not out or not str(out[0]).startswith(prompt):
                        raise CallError(f"/generate returned {str(out)[:80]!r}")
                    with rec.lock:
                        rec.ttft.append(first * 1e3)
                    rec.ok("/generate", total)
                elif job == 2:
                    rec.ok("/translate", call(http, url, "translate", [SENTENCES[i % len(SENTENCES)], 4])[1])
                else:
                    rec.ok("/sentiment", call(http, url, "sentiment", [REVIEWS[i % len(REVIEWS)]])[1])
            except Exception as e:  # every failure is counted, none stops the run
                rec.fail(["/suggest", "/generate", "/translate", "/sentiment"][job], e)


# The worst inputs the caps allow (demo/validation.py): each is accepted and costs the most a
# request may cost, or is just over a cap and must be refused cheaply.
ATTACK_SENTENCE = "and the word of the lord came " * 18       # ~120 tokens: near MAX_SOURCE_TOKENS
ATTACK_REVIEW = ("it starts brilliantly then collapses into a boring clumsy mess but the end is moving " * 12)[:1000]
ATTACK_PROMPT = ("I would like to thank you for the help with the house and the garden. " * 30)[:2000]
ATTACK_TYPING = ("see you tomorrow at the station, and bring the tickets " * 200)[:10_000]
EMOJI = "\U0001F600"


def attack_loop(url: str, deadline: float, rec: "Recorder", gen_model: str) -> None:
    """One client sending, back to back, the costliest requests the caps allow and requests
    just over the caps (refused: counted as refusals, not errors)."""
    import httpx

    i = 0
    with httpx.Client(timeout=120) as http:
        while time.time() < deadline:
            i += 1
            job = (0, 2, 3, 4, 5, 1)[(i - 1) % 6]  # the long generation last: every kind gets in early
            name = ["attack/translate", "attack/generate", "attack/sentiment", "attack/suggest",
                    "attack/over-cap", "attack/accept-by-number"][job]
            t0 = time.perf_counter()
            try:
                if job == 0:
                    call(http, url, "translate", [ATTACK_SENTENCE, 8])
                elif job == 1:
                    call(http, url, "generate", [gen_model, ATTACK_PROMPT, 2.0, 0, 1.0, 1000, i])
                elif job == 2:
                    call(http, url, "sentiment", [ATTACK_REVIEW])
                elif job == 3:
                    call(http, url, "suggest", [ATTACK_TYPING[: 10_000 - (i % 50)], 5])  # a new text each time
                elif job == 4:
                    for api, data in (("translate", [EMOJI * 1000, 8]), ("sentiment", [EMOJI * 1000]),
                                      ("suggest", ["x" * 100_000, 5])):
                        try:
                            call(http, url, api, data)
                        except CallError:
                            pass  # refused, as it must be
                else:
                    queue_call(http, url, "accept_suggestion_0", ["y" * 100_000, [{"text": "yes"}]], f"atk{i}")
                rec.ok(name, time.perf_counter() - t0)
            except CallError:
                rec.ok(name + " (refused)", time.perf_counter() - t0)
            except Exception as e:
                rec.fail(name, e)


def queue_call(http, url: str, api_name: str, data: list, session: str) -> None:
    """An event called by its number (private events too), as the issue's attacker did."""
    cfg = http.get(f"{url}config").json()
    fn = next(i for i, d in enumerate(cfg["dependencies"]) if d.get("api_name") == api_name)
    r = http.post(f"{url}gradio_api/queue/join", json={"data": data, "fn_index": fn, "session_hash": session})
    r.raise_for_status()
    with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and '"process_completed"' in line:
                if '"success": false' in line or '"success":false' in line:
                    raise CallError("refused")
                return


def rss_mb(pid: int) -> dict:
    """Resident and peak resident memory of a process (Linux /proc), in MB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


BENIGN = ("/generate", "/translate", "/sentiment", "/suggest")


def summarize(rec: Recorder, seconds: float, clients: int) -> dict:
    benign_errors = sum(len(v) for k, v in rec.errors.items() if k in BENIGN)
    out = {"clients": clients, "seconds": seconds, "endpoints": {}, "errors": benign_errors,
           # the machine is shared: the load average says how much CPU the figures had
           "cpus": os.cpu_count(), "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}
    every = [x for k in BENIGN for x in rec.lat.get(k, [])]
    if every:
        p50, p95 = np.percentile(every, [50, 95])
        out["benign_all"] = {"calls": len(every), "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1)}
    attack = {k: {"calls": len(v), "p50_ms": round(float(np.percentile(v, 50)), 1)}
              for k, v in rec.lat.items() if k.startswith("attack")}
    attack_errors = {k: sorted(set(v))[:3] for k, v in rec.errors.items() if k.startswith("attack")}
    if attack or attack_errors:
        out["attacker"] = {"requests": attack, "errors": attack_errors}
    for name in BENIGN:
        lat = rec.lat.get(name, [])
        row = {"calls": len(lat), "errors": len(rec.errors.get(name, [])),
               "error_examples": sorted(set(rec.errors.get(name, [])))[:3]}
        if lat:
            p50, p95 = np.percentile(lat, [50, 95])
            row.update(p50_ms=round(float(p50), 1), p95_ms=round(float(p95), 1))
        out["endpoints"][name] = row
    if rec.ttft:
        p50, p95 = np.percentile(rec.ttft, [50, 95])
        out["generate_first_token_ms"] = {"p50": round(float(p50), 1), "p95": round(float(p95), 1),
                                          "n": len(rec.ttft)}
    return out


def run_phase(url: str, args, proc, attacker: bool) -> dict:
    """``args.clients`` benign clients (and, with ``attacker``, one attacking client) for ``args.seconds``."""
    rec = Recorder()
    deadline = time.time() + args.seconds
    threads = [threading.Thread(target=client_loop, daemon=True,
                                args=(url, i, deadline, rec, args.gen_model, args.gen_len, args.think))
               for i in range(args.clients)]
    if attacker:
        threads.append(threading.Thread(target=attack_loop, daemon=True, args=(url, deadline, rec, args.gen_model)))
    t0 = time.time()
    cpu0 = cpu_seconds(proc.pid) if proc is not None else 0.0
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.seconds + 120)
    result = summarize(rec, round(time.time() - t0, 1), args.clients)
    if proc is not None:  # how much CPU the server actually got on this (shared) machine
        result["server_cpu_cores_used"] = round((cpu_seconds(proc.pid) - cpu0) / result["seconds"], 2)
        result["server_mb"] = rss_mb(proc.pid)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running demo on this machine; default: start one")
    ap.add_argument("--models", default=str(ROOT / "models"), help="bundles for the demo this script starts")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--gen-model", default="English (subwords)", help="the Generate tab's model choice")
    ap.add_argument("--gen-len", type=int, default=60, help="new tokens per /generate call")
    ap.add_argument("--think", type=float, default=0.0,
                    help="mean pause between a user's actions in s (0: back-to-back, a stress test)")
    ap.add_argument("--attack", action="store_true",
                    help="two phases of --seconds each: the benign clients alone, then with one more client "
                         "sending the worst inputs the caps allow (and some just over them); reports benign "
                         "p50/p95 for both, and the server's memory before, after and at its peak")
    ap.add_argument("--settle", type=float, default=160.0,
                    help="with --attack: idle seconds after the burst before the server's memory is read again "
                         "(default 160: the demo drops typing sessions idle for 120 s)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    if not 1 <= args.clients <= 200 or not 1 <= args.seconds <= 3600:
        raise SystemExit("--clients must be in 1..200 and --seconds in 1..3600")
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        log = open(os.environ.get("DEMO_LOG", "/tmp/demo_load_server.log"), "w")
        proc = subprocess.Popen([sys.executable, "-m", "rnnkit.cli", "demo", "--models", args.models,
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = url if url.endswith("/") else url + "/"
    check_local(url)
    try:
        wait_up(url, proc)
        if args.attack:
            result = {"phases": {}}
            if proc is not None:
                result["server_mb_start"] = rss_mb(proc.pid)
            for phase, attacker in (("benign", False), ("under_attack", True)):
                result["phases"][phase] = run_phase(url, args, proc, attacker)
            base, hit = (result["phases"][p].get("benign_all", {}) for p in ("benign", "under_attack"))
            if base and hit:
                result["benign_p95_ratio"] = round(hit["p95_ms"] / max(base["p95_ms"], 1e-9), 2)
            result["errors"] = sum(p["errors"] for p in result["phases"].values())
            if proc is not None:
                time.sleep(args.settle)  # the burst is over: what does the server keep once idle?
                result["server_mb_after_idle"] = {"seconds": args.settle, **rss_mb(proc.pid)}
            result.update(think_s=args.think, gen_len=args.gen_len, gen_model=args.gen_model, models=args.models)
        else:
            result = run_phase(url, args, proc, False)
            result.update(think_s=args.think, gen_len=args.gen_len, gen_model=args.gen_model, models=args.models)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    print(json.dumps(result, indent=2))
    if args.json:
        from rnnkit.core.atomic import atomic_write_json

        atomic_write_json(args.json, result)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
