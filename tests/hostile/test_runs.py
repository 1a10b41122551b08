"""Hostile checkpoints, model directories and train settings; runs that must stay recoverable.

Errors are one line from the CLI (exit 2, no traceback) or a ``ValueError`` subclass with a
one-line message, raised before anything large is allocated or anything is written.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import bounded, cli, cli_error, one_line_error

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

SMALL = ["--size", "smoke", "--set", "max_steps=20", "--set", "eval_every=10", "--set", "checkpoint_every=10",
         "--set", "log_every=10", "--quiet"]
NAN = ["--size", "smoke", "--set", "optimizer=sgd", "--set", "lr=1e6", "--set", "grad_clip=0", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished colors run (20 steps, checkpoints at 10 and 20): the source every case copies."""
    from rnnkit.cli import main

    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--recipe", "colors", "--run-dir", str(run), *SMALL]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    return out


def _state(run: Path) -> tuple[Path, dict]:
    path = run / "checkpoints" / "latest" / "state.json"
    return path, json.loads(path.read_text())


# --------------------------------------------------------------------------- tampered checkpoints
STATE_CASES = {
    "step-negative": (lambda s: s.update(step=-1), "step=-1"),
    "step-string": (lambda s: s.update(step="20"), 'step="20"'),
    "step-float": (lambda s: s.update(step=20.5), "step=20.5"),
    "step-bool": (lambda s: s.update(step=True), "step=true"),
    "step-huge": (lambda s: s.update(step=10 ** 13), "step=10000000000000"),
    "epoch-null": (lambda s: s.update(epoch=None), "epoch=null"),
    "batch-in-epoch-1e12": (lambda s: s.update(batch_in_epoch=10 ** 12), "batch_in_epoch=1000000000000"),
    "eval-step-below": (lambda s: s.update(eval_step=-5), "eval_step=-5"),
    "best-metric-string": (lambda s: s.update(best_metric="low"), "best_metric"),
    "best-step-future": (lambda s: s.update(best_step=10 ** 6), "best_step"),
    "elapsed-string": (lambda s: s.update(elapsed="1s"), "elapsed"),
    "last-eval-list": (lambda s: s.update(last_eval=[]), "last_eval"),
    "world-size-zero": (lambda s: s.update(world_size=0), "world_size=0"),
    "format-version": (lambda s: s.update(format_version=9), "checkpoint format 9"),
    "optimizer-empty": (lambda s: s.update(optimizer={}), "optimizer="),
    "optimizer-class": (lambda s: s["optimizer"].update({"class": "SGD"}), "optimizer is SGD"),
    "optimizer-lr-string": (lambda s: s["optimizer"]["param_groups"][0].update(lr="abc"), "optimizer setting lr"),
    "optimizer-betas": (lambda s: s["optimizer"]["param_groups"][0].update(betas=[0.9]), "optimizer setting betas"),
    "optimizer-groups": (lambda s: s["optimizer"].update(param_groups=[]), "parameter group"),
    "rng-numpy-pos": (lambda s: s["rng"]["numpy"].update(pos="x"), "RNG state is damaged"),
    "rng-python-version": (lambda s: s["rng"]["python"].update(version=99), "RNG state is damaged"),
    "rng-missing": (lambda s: s["rng"].pop("numpy"), "RNG state is damaged"),
    "carry-unknown-tensor": (lambda s: s.update(carry={"t": "carry.99"}), "is damaged"),
    "carry-garbage": (lambda s: s.update(carry={"seq": "tuple", "items": 5}), "is damaged"),
    "schedule-scale": (lambda s: s["schedule"].update(scale="big"), "schedule or grad-scaler"),
    "missing-epoch": (lambda s: s.pop("epoch"), "lacks ['epoch']"),
}


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_tampered_state_json(run, capsys, case):
    edit, match = STATE_CASES[case]
    path, state = _state(run)
    edit(state)
    path.write_text(json.dumps(state))
    cli_error(capsys, "train", "--resume", run, "--set", "max_steps=30", "--quiet", match=match)


@pytest.mark.parametrize("text, match", [
    ("{not json", "is unreadable"),
    ('{"step": ' + "1" * 5000 + "}", "is unreadable"),
    ("[" * 100_000, "is unreadable"),
    ('{"format_version": 1, "step": NaN}', "step=NaN"),
])
def test_state_json_that_is_not_a_state(run, capsys, text, match):
    _state(run)[0].write_text(text)
    cli_error(capsys, "train", "--resume", run, "--set", "max_steps=30", "--quiet", match=match)


def test_batch_skip_beyond_the_epoch_stops_at_once(run, capsys):
    """--resume with batch_in_epoch=1e12 ran on past 120 s; a count the epoch lacks is an error."""
    path, state = _state(run)
    state.update(step=10 ** 12, batch_in_epoch=10 ** 12 - 1, eval_step=10 ** 12)
    path.write_text(json.dumps(state))
    cli_error(capsys, "train", "--resume", run, "--set", f"max_steps={2 * 10 ** 12}", "--quiet",
              match="batch_in_epoch=999999999999, but epoch", seconds=20)


def _edit_tensors(run: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    path = run / "checkpoints" / "latest" / "state.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize("case, edit, match", [
    ("optimizer-shape", lambda t: t.update({k: torch.zeros(3) for k in t if k.startswith("optim.0.exp_avg")}),
     "has shape [3]"),
    ("optimizer-nan", lambda t: t.update({k: v * float("nan") for k, v in t.items() if k.startswith("optim.1.exp_avg")}),
     "holds NaN"),
    ("optimizer-foreign", lambda t: t.update({"optim.999.exp_avg": torch.zeros(2)}), "names no parameter"),
    ("rng-torch-short", lambda t: t.update({"rng.torch_cpu": torch.zeros(7, dtype=torch.uint8)}), "RNG state is damaged"),
    ("rng-python-short", lambda t: t.update({"rng.python": torch.zeros(3, dtype=torch.int64)}), "RNG state is damaged"),
    ("rng-missing", lambda t: t.pop("rng.numpy_keys"), "RNG state is damaged"),
])
def test_tampered_checkpoint_tensors(run, capsys, case, edit, match):
    _edit_tensors(run, edit)
    cli_error(capsys, "train", "--resume", run, "--set", "max_steps=30", "--quiet", match=match)


@pytest.mark.parametrize("name", ["state.safetensors", "model.safetensors"])
def test_truncated_checkpoint_files(run, capsys, name):
    path = run / "checkpoints" / "latest" / name
    path.write_bytes(path.read_bytes()[:100])
    cli_error(capsys, "train", "--resume", run, "--set", "max_steps=30", "--quiet", match="checkpoint")


# --------------------------------------------------------------------------- tampered model directories
def _config(run: Path) -> tuple[Path, dict]:
    path = run / "model" / "config.json"
    return path, json.loads(path.read_text())


CONFIG_CASES = {
    "hidden-12000": (lambda c: c["config"].update(hidden_size=12000), "has shape"),
    "hidden-1e6": (lambda c: c["config"].update(hidden_size=10 ** 6), "hidden_size=1000000"),
    "embed-huge": (lambda c: c["config"].update(embed_size=10 ** 9), "embed_size"),
    "vocab-negative": (lambda c: c["config"].update(vocab_size=-3), "vocab_size=-3"),
    "hidden-string": (lambda c: c["config"].update(hidden_size="abc"), "hidden_size"),
    "layers-list": (lambda c: c["config"].update(num_layers=[2]), "num_layers"),
    "cell-unknown": (lambda c: c["config"].update(cell="transformer"), "cell"),
    "unknown-field": (lambda c: c["config"].update(wings=2), "no field"),
    "missing-vocab": (lambda c: c["config"].pop("vocab_size"), "lacks required field"),
    "kind-unknown": (lambda c: c.update(kind="gpt"), "unknown model kind"),
    "kind-int": (lambda c: c.update(kind=3), "unknown model kind"),
    "config-list": (lambda c: c.update(config=[]), "must be a JSON object"),
    "kind-other": (lambda c: c.update(kind="lm"), "config"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_model_config_that_does_not_fit_the_weights(run, case):
    from rnnkit.core.models import registry

    edit, match = CONFIG_CASES[case]
    path, cfg = _config(run)
    edit(cfg)
    path.write_text(json.dumps(cfg))
    with bounded(10, mb=200), pytest.raises(ValueError) as e:
        registry.load(run / "model")
    assert match in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("text", ["{", '{"kind": "classifier", "config": ' + "[" * 100_000 + "}",
                                  '{"kind": "classifier", "config": {"hidden_size": ' + "9" * 5000 + "}}",
                                  '{"kind": "classifier", "config": {"dropout": NaN}}'])
def test_model_config_that_is_not_json_or_not_finite(run, text):
    from rnnkit.core.models import registry

    _config(run)[0].write_text(text)
    with bounded(10), pytest.raises(ValueError) as e:
        registry.load(run / "model")
    assert "\n" not in str(e.value)


def _weights(run: Path) -> Path:
    return run / "model" / "model.safetensors"


@pytest.mark.parametrize("case", ["truncated", "garbage", "empty", "header-too-long", "offsets-outside",
                                  "other-model", "missing-tensor", "extra-tensor", "bad-header-json"])
def test_weights_file_that_does_not_fit(run, case):
    import struct

    from safetensors.torch import load_file, save_file

    from rnnkit.core.models import registry

    path = _weights(run)
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    if case == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif case == "garbage":
        path.write_bytes(os.urandom(4096))
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "header-too-long":
        path.write_bytes(struct.pack("<Q", 1 << 40) + data[8:])
    elif case == "offsets-outside":
        name = next(k for k in header if k != "__metadata__")
        header[name]["data_offsets"] = [0, 1 << 40]
        raw = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
    elif case == "bad-header-json":
        path.write_bytes(struct.pack("<Q", 5) + b"{oops" + data[8 + n:])
    else:
        tensors = load_file(str(path))
        if case == "other-model":
            tensors = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) for k, v in tensors.items()}
        elif case == "missing-tensor":
            tensors.pop(sorted(tensors)[0])
        else:
            tensors["extra.weight"] = torch.zeros(4)
        save_file(tensors, str(path))
    with bounded(10, mb=200), pytest.raises(ValueError) as e:
        registry.load(run / "model")
    assert "model.safetensors" in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_export_of_a_mismatched_model_is_one_line(run, tmp_path, capsys):
    path, cfg = _config(run)
    cfg["config"]["hidden_size"] = 12000
    path.write_text(json.dumps(cfg))
    cli_error(capsys, "export", run, "--out", tmp_path / "b", match="do not belong together")
    assert not (tmp_path / "b").exists()


def test_export_refuses_nan_weights(run, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(_weights(run)))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] * float("nan")
    save_file(tensors, str(_weights(run)))
    cli_error(capsys, "export", run, "--out", tmp_path / "b", match=f"weight {name} holds")
    assert not (tmp_path / "b").exists()


def test_parity_treats_nan_as_failure():
    import numpy as np

    from rnnkit.export.parity import assert_parity, compare

    a = {"logits": np.array([[1.0, np.nan]], dtype=np.float32)}
    assert compare(a, {"logits": np.array([[1.0, 2.0]], dtype=np.float32)}) == float("inf")
    assert compare(a, a) == float("inf")  # NaN == NaN must not read as "max abs diff 0"
    with pytest.raises(AssertionError, match="non-finite"):
        assert_parity({"max_abs_diff": 0.0, "max_abs_value": float("nan"), "jobs": {}})
    with pytest.raises(AssertionError, match="max abs diff"):
        assert_parity({"max_abs_diff": float("nan"), "max_abs_value": 1.0, "jobs": {}})


# --------------------------------------------------------------------------- train settings
@pytest.mark.parametrize("setting, match", [
    ("lr=abc", "TrainConfig.lr: expected a number, got 'abc'"),
    ("lr=1e300", "train.lr=1e+300 is out of range"),
    ("lr=-1", "train.lr=-1 is out of range"),
    ("lr=0", "train.lr=0 is out of range"),
    ("lr=NaN", "TrainConfig.lr: expected a finite number"),
    ("lr=[1, 2]", "TrainConfig.lr: expected a number"),
    ("max_steps=1.5", "TrainConfig.max_steps: expected an integer"),
    ("max_steps=-5", "the run needs an end"),
    ("eval_every=-5", "eval_every must be >= 0"),
    ("seed=true", "TrainConfig.seed: expected an integer"),
    ("quiet=maybe", "TrainConfig.quiet: expected true or false"),
    ("hidden_size=abc", "model.hidden_size: expected an integer"),
    ("hidden_size=1e9", "hidden_size=1000000000.0 is not an integer"),
    ("hidden_size=" + "9" * 5000, "override 'hidden_size': the value is not a usable number"),
    ("num_layers=0.5", "model.num_layers: expected an integer"),
    ("cell=[1]", "model.cell: expected a string"),
    ("dropout=x", "model.dropout: expected a number"),
    ("data.steps_per_epoch=x", "data.steps_per_epoch='x': expected a value like 50"),
    ("grad_clip=1e300", "train.grad_clip"),
])
def test_bad_settings_fail_before_anything_is_written(tmp_path, capsys, setting, match):
    run = tmp_path / "run"
    cli_error(capsys, "train", "--recipe", "colors", "--size", "smoke", "--run-dir", run, "--set", setting, match=match)
    assert not run.exists()


@pytest.mark.parametrize("where", ["/sys/rnnkit-hostile-run", "FILE/run"])
def test_unwritable_run_directory_is_one_error_before_training(tmp_path, capsys, where):
    (tmp_path / "FILE").write_text("a file, not a directory")
    run = where.replace("FILE", str(tmp_path / "FILE"))
    cli_error(capsys, "train", "--recipe", "colors", "--run-dir", run, *SMALL, match="cannot write the run directory")


def test_full_disk_is_one_error_before_training(tmp_path, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    cli_error(capsys, "train", "--recipe", "colors", "--run-dir", tmp_path / "run", *SMALL,
              match="No space left on device")
    assert not (tmp_path / "run" / "checkpoints").exists()


# --------------------------------------------------------------------------- recoverable runs
def test_a_run_stopped_before_its_first_checkpoint_can_be_restarted_or_resumed(tmp_path, capsys):
    run = tmp_path / "nan"
    first = cli_error(capsys, "train", "--recipe", "colors", "--run-dir", run, *NAN, match="non-finite loss",
                      seconds=60)
    assert "no checkpoint was written" in first
    # the same command again: not "already holds a run", it starts over (and meets the NaN again)
    rc, _, err = cli(capsys, "train", "--recipe", "colors", "--run-dir", run, *NAN, seconds=60)
    assert rc == 2 and "starting it over" in err and "already holds" not in err
    # --resume: starts over from its recorded recipe, here with a sane lr for this call only
    rc, out, err = cli(capsys, "train", "--resume", run, "--set", "lr=0.01", "--set", "max_steps=20", "--quiet",
                       seconds=60)
    assert rc == 0 and "starting it over" in err and "max_steps after 20 steps" in out, err
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["train"]["lr"] == 1e6  # the call's override is not written back
    assert len(recipe["commands"]) == 3


def test_resume_overrides_apply_to_that_call_only(run, capsys):
    rc, out, err = cli(capsys, "train", "--resume", run, "--set", "max_steps=30", "--set", "lr=0.5", "--quiet",
                       seconds=60)
    assert rc == 0, err
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["train"]["max_steps"] == 20 and recipe["train"]["lr"] != 0.5
    assert "--set lr=0.5" in recipe["commands"][-1]
    trained = json.loads((run / "config.json").read_text())["train"]
    assert trained["max_steps"] == 30 and trained["lr"] == 0.5  # what this call ran with


def test_kill_9_in_the_first_seconds_leaves_a_restartable_run(tmp_path, capsys):
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit.cli", "train", "--recipe", "colors", "--run-dir", str(run),
                             *SMALL], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (run / "recipe.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rc, out, err = cli(capsys, "train", "--resume", run, "--quiet", seconds=60)
    assert rc == 0 and "run directory" in out, err
    rc, _, err = cli(capsys, "train", "--recipe", "colors", "--run-dir", run, *SMALL)
    assert rc == 2 and "--resume" in one_line_error(err)  # now it has a checkpoint: continue it, not overwrite
