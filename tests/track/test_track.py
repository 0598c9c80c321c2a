"""Trackers (`logger=...`): TensorBoard event files equal to the run's history, HParams equal to its
values, one run per trial, member and replicate; a failing tracker never costs the run."""

import csv
import logging
from pathlib import Path

import pytest

from conftest import interrupted_at
from sweeplab.config import ConfigError, comparable_values
from sweeplab.train import train
from sweeplab.train.check import check_config

tensorboard = pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

COLUMNS = {"train/loss": "train_loss", "train/acc": "train_acc", "val/loss": "val_loss", "val/acc": "val_acc"}


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def history(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "history.csv").open() as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def scalars(accumulator: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def hparams_of(accumulator: EventAccumulator) -> dict:
    """The run's HParams as TensorBoard's HParams plugin reads them (its session start info)."""
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.string_value or v.number_value or v.bool_value for k, v in info.hparams.items()}


def assert_matches_history(run_dir: Path) -> None:
    rows, accumulator = history(run_dir), events(run_dir)
    assert rows, run_dir
    for tag, column in {**COLUMNS, "lr": "lr"}.items():
        logged = scalars(accumulator, tag)
        assert [step for step, _ in logged] == [int(r["step"]) for r in rows], tag
        assert [v for _, v in logged] == pytest.approx([r[column] for r in rows], rel=1e-6), tag


def test_a_run_logs_every_evaluation_and_its_hparams_to_tensorboard(make_cfg, tmp_path) -> None:
    cfg = make_cfg("logger=tensorboard", "trainer.max_steps=60", "trainer.eval_every=20", "trainer.seed=3")
    result = train(cfg, tmp_path / "run")
    assert_matches_history(tmp_path / "run")
    accumulator = events(tmp_path / "run")
    assert hparams_of(accumulator) == {"trainer.seed": 3}  # no .hydra/overrides.yaml: only its seed
    final = scalars(accumulator, "hparams/test_acc")
    assert final == [(60, pytest.approx(result.metrics["test_acc"]))]


def test_the_logger_is_where_a_run_is_shown_not_what_it_computes(make_cfg) -> None:
    assert comparable_values(make_cfg("logger=tensorboard")) == comparable_values(make_cfg())
    both = make_cfg("logger=[tensorboard]", "logger.tensorboard.flush_secs=3")
    assert both.logger.tensorboard.flush_secs == 3


def test_a_wrong_logger_option_is_refused_before_any_work(make_cfg) -> None:
    refused = {
        "logger.tensorboard.flush_secs=0": "logger.tensorboard.flush_secs: must be positive, got 0",
        "+logger.tensorboard.flush=3": "logger.tensorboard.flush: unknown option; logger.tensorboard takes",
        "+logger.wandb={}": "logger.wandb: unknown logger 'wandb'; choose one of: mlflow, tensorboard",
    }
    for override, message in refused.items():
        with pytest.raises(ConfigError) as err:
            check_config(make_cfg("logger=tensorboard", override))
        assert message in str(err.value)


@pytest.mark.parametrize("package", ["tensorboard", "mlflow"])
def test_a_missing_package_is_refused_with_the_line_that_installs_it(make_cfg, monkeypatch, package) -> None:
    import importlib.util

    real = importlib.util.find_spec
    missing = lambda name, *args: None if name == package else real(name, *args)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    with pytest.raises(ConfigError) as err:
        check_config(make_cfg(f"logger={package}"))
    assert f"logger.{package}: needs the {package} package" in str(err.value)
    assert f"pip install 'sweeplab[{package}]'" in str(err.value)


def test_a_failing_tracker_costs_nothing_but_a_warning(make_cfg, tmp_path, monkeypatch, caplog) -> None:
    from sweeplab.track import tensorboard as tb

    def broken(self, row):
        raise OSError("the event file's disk went away")

    monkeypatch.setattr(tb.TensorBoardTracker, "log", broken)
    cfg = make_cfg("logger=tensorboard", "trainer.max_steps=40", "trainer.eval_every=10")
    with caplog.at_level(logging.WARNING):
        result = train(cfg, tmp_path / "run")
    assert result.status == "completed" and len(history(tmp_path / "run")) == 4
    assert (tmp_path / "run" / "summary.json").is_file()
    warnings = [r.getMessage() for r in caplog.records if "logger tensorboard failed" in r.getMessage()]
    assert len(warnings) == 1 and "step 10 and after" in warnings[0], warnings


def test_a_resumed_run_shows_each_step_once(make_cfg, tmp_path) -> None:
    """Killed after logging step 150 with its checkpoint at 100: the resumed run logs 150 again and
    TensorBoard shows it once (purge_step), as history.csv has it."""
    cfg = make_cfg("logger=tensorboard", "trainer.max_steps=200", "trainer.eval_every=50")

    interrupted_at(cfg, tmp_path / "run", 150)
    train(cfg, tmp_path / "run")
    assert_matches_history(tmp_path / "run")
    assert [s for s, _ in scalars(events(tmp_path / "run"), "val/acc")] == [50, 100, 150, 200]


def test_a_sweep_logs_one_run_per_trial_and_replicate_with_its_searched_values(tmp_path, sweeplab) -> None:
    done = sweeplab(
        "train",
        "-m",
        "logger=tensorboard",
        "optimizer.lr=choice(0.001,0.003)",
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.replicates=2",
        "hydra.sweeper.pack=2",  # each trial's replicates a pack, the two trials in two workers
        "hydra.sweeper.n_jobs=2",
        "trainer.max_steps=30",
        "trainer.eval_every=10",
        "hydra.sweeper.study_name=tb",
    )
    assert done.returncode == 0, done.stdout
    sweep = tmp_path / "outputs" / "sweeps" / "tb"
    runs = sorted(p.parent.relative_to(sweep).as_posix() for p in sweep.glob("**/events.out.tfevents.*"))
    assert runs == ["0/seed_0", "0/seed_1", "1/seed_0", "1/seed_1"]
    seen = set()
    for run in runs:
        assert_matches_history(sweep / run)
        values = hparams_of(events(sweep / run))
        assert values["trainer.seed"] == int(run[-1])
        seen.add(values["optimizer.lr"])
        assert {"trainer.max_steps", "trainer.eval_every"} <= set(values)
    assert seen == {0.001, 0.003}
