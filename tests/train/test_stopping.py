"""A signal that ends a sweep stops a single run at the end of its step, saved (sweeplab.stopping): the
retry resumes from that step, not from the last evaluation, and ends with the numbers of a run that was
never stopped."""

import csv
import signal
from pathlib import Path

import pytest
import torch

import sweeplab.train.fit as loop
from sweeplab.stopping import Interrupted, ask_to_stop, steps_running, stop_asked
from sweeplab.train import train


def test_a_stop_is_deferred_only_while_steps_run_and_only_once() -> None:
    assert not ask_to_stop(signal.SIGTERM)  # no loop: the handler raises at once
    with steps_running():
        assert ask_to_stop(signal.SIGUSR2)
        assert not ask_to_stop(signal.SIGINT)  # a second signal raises at once
        assert stop_asked() == signal.SIGUSR2 and stop_asked() is None
    with pytest.raises(Interrupted, match="SIGTERM"), steps_running():
        ask_to_stop(signal.SIGTERM)  # asked during the last step: raised as the loop ends
    assert not ask_to_stop(signal.SIGTERM)


def rows(folder: Path) -> list[dict]:
    with open(folder / "history.csv") as file:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(file)]


@pytest.mark.parametrize("at", [150, 200])  # between two evaluations, and right after one
def test_a_run_stopped_between_evaluations_resumes_from_that_step(
    make_cfg, tmp_path, monkeypatch, at
) -> None:
    cfg = make_cfg("trainer.max_steps=300", "trainer.eval_every=100", "model.dropout=0.2", "model.norm=batch")
    whole = train(cfg, tmp_path / "whole")
    calls = {"n": 0}

    def stop_at(real=loop.stop_asked):  # a signal arrives during step `at`
        calls["n"] += 1
        return signal.SIGUSR2 if calls["n"] == at + 1 else real()

    monkeypatch.setattr(loop, "stop_asked", stop_at)
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "cut")
    saved = torch.load(tmp_path / "cut" / "resume.pt", weights_only=False)
    assert saved["step"] == at
    monkeypatch.undo()
    resumed = train(cfg, tmp_path / "cut")
    assert rows(tmp_path / "cut") == rows(tmp_path / "whole")
    assert resumed.metrics["test_acc"] == whole.metrics["test_acc"]
    assert not (tmp_path / "cut" / "resume.pt").exists()
