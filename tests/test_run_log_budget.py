"""The progress bar tells the budget that binds: with a time budget, no step-based ETA."""

from rnnkit.core.train.run_log import RunLog


def test_time_budget_bar_has_no_step_eta_and_shows_minutes(tmp_path, capsys):
    log = RunLog(tmp_path / "m.jsonl", enabled=True, quiet=False, total_steps=20000, start_step=0,
                 budget_minutes=100)
    try:
        assert log.bar.total is None  # a step total would give a wrong ETA: time binds first
        assert log.budget_text(4.06) == "4.1/100 min, or step 20000"
        log.train_line({"kind": "train", "step": 50, "epoch": 0, "loss": 1.0, "items_per_s": 10.0, "lr": 1e-3,
                        "elapsed": 250.0, "call_minutes": 4.1})
        assert log.bar.postfix and "4.1/100 min" in log.bar.postfix
    finally:
        log.close()
    steps_only = RunLog(tmp_path / "n.jsonl", enabled=True, quiet=False, total_steps=300, start_step=0)
    try:
        assert steps_only.bar.total == 300 and steps_only.budget_text(1.0) == ""
    finally:
        steps_only.close()


def test_plain_log_line_names_the_budget(tmp_path, capsys):
    log = RunLog(tmp_path / "m.jsonl", enabled=True, quiet=True, total_steps=None, start_step=0, budget_minutes=30)
    log.train_line({"kind": "train", "step": 50, "epoch": 0, "loss": 1.0, "items_per_s": 10.0, "lr": 1e-3,
                    "elapsed": 900.0, "call_minutes": 2.5})
    log.close()
    assert "this call 2.5/30 min" in capsys.readouterr().out
