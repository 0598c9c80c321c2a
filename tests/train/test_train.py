"""End to end: train(cfg) learns, leaves complete records, stops on NaN, and refuses bad configs early."""

import json

import pytest
import torch

import sweeplab.train.resume as resume_module
from conftest import MNIST_T10K, needs_mnist_t10k
from support import EXACT
from sweeplab.config import ConfigError
from sweeplab.data import build_inputs, load_data
from sweeplab.models import create_model
from sweeplab.train import train
from sweeplab.train.records import HISTORY_FIELDS, RunRecorder


def test_mlp_learns_mnist1d_and_a_cnn_learns_more(make_cfg):
    budget = ["trainer.max_steps=600", "trainer.eval_every=100"]
    mlp = train(make_cfg(*budget))
    cnn = train(make_cfg("model=cnn", *budget))
    assert mlp.status == cnn.status == "completed"
    assert mlp.metrics["val_acc"] > 0.4 and mlp.metrics["test_acc"] > 0.4  # chance is 0.1
    assert cnn.metrics["test_acc"] > mlp.metrics["test_acc"] + 0.1


@needs_mnist_t10k
def test_small_cnn_beats_linear_on_the_genuine_mnist_test_set(make_cfg):
    data = [
        "dataset=mnist",
        f"dataset.root={MNIST_T10K}",
        "dataset.source=test_only",
        "dataset.download=false",
        "trainer.max_steps=300",
        "trainer.eval_every=100",
    ]
    linear = train(make_cfg(*data, "model=linear"))
    cnn = train(make_cfg(*data, "model=cnn", "model.channels=[8,16]", "model.hidden=[32]"))
    assert linear.metrics["test_acc"] > 0.8
    assert cnn.metrics["test_acc"] > linear.metrics["test_acc"]


def test_run_records_config_history_summary_and_best_checkpoint(make_cfg, tmp_path):
    cfg = make_cfg("model=cnn", "trainer.max_steps=30", "trainer.eval_every=10")
    result = train(cfg, output_dir=tmp_path)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0].split(",") == HISTORY_FIELDS and [int(r.split(",")[0]) for r in lines[1:]] == [10, 20, 30]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "status",
        "val_acc",
        "best_step",
        "test_acc",
        "test_acc_last",
        "per_class_test_acc",
        "params",
        "train_seconds",
        "samples_per_s",
        "wall_seconds",
        "device",
    ):
        assert key in summary
    assert summary["samples"] == 30 * 128 and len(summary["per_class_test_acc"]) == 10
    assert "${" not in (tmp_path / "config.yaml").read_text()  # resolved

    # the checkpoint is the best-validation model: reloaded, it gives the recorded test accuracy
    state = torch.load(tmp_path / "best.pt")
    assert state["step"] == result.metrics["best_step"] and state["val_acc"] == result.metrics["val_acc"]
    data = load_data(cfg.dataset)
    inputs = build_inputs(cfg.preprocess, cfg.augment, data.input_shape)
    inputs.load_state_dict(state["inputs"])
    model = create_model(cfg.model, data.input_shape, 10)
    model.load_state_dict(state["model"])
    model.eval()
    with torch.no_grad():
        acc = (model(inputs(data.x_test)).argmax(1) == data.y_test).float().mean().item()
    assert acc == pytest.approx(result.metrics["test_acc"], abs=1e-6)


def test_nan_loss_stops_the_run_as_diverged(make_cfg, tmp_path, caplog):
    cfg = make_cfg("optimizer=sgd", "optimizer.lr=1e6", "trainer.max_steps=500", "trainer.eval_every=50")
    with caplog.at_level("INFO"):
        result = train(cfg, output_dir=tmp_path)
    assert result.status == "diverged" and result.metrics["steps"] == 50  # NaN by its first evaluation
    summary = json.loads((tmp_path / "summary.json").read_text())
    # no evaluation to keep: neither a best value nor a best step (it said "val_acc nan (step 0)")
    assert summary["status"] == "diverged" and summary["val_acc"] is None and summary["best_step"] is None
    assert "diverged: no evaluation to keep (the loss was NaN or infinite by step 50)" in caplog.text


def test_reporter_sees_every_evaluation_and_can_stop_the_run(make_cfg):
    seen = []

    def reporter(step, row):
        seen.append((step, round(row["val_acc"], 6)))
        return step >= 20

    result = train(make_cfg("trainer.max_steps=50"), reporter=reporter)
    assert result.status == "pruned" and [s for s, _ in seen] == [10, 20] and result.metrics["steps"] == 20
    assert [round(r["val_acc"], 6) for r in result.history] == [v for _, v in seen]


def test_same_seed_same_history_other_seed_other_history(make_cfg):
    runs = [train(make_cfg(f"trainer.seed={s}", *EXACT)).history for s in (3, 3, 4)]
    assert runs[0] == [{**r, "elapsed_s": runs[0][i]["elapsed_s"]} for i, r in enumerate(runs[1])]
    assert [r["train_loss"] for r in runs[0]] != [r["train_loss"] for r in runs[2]]


def test_epoch_budget_counts_full_batches(make_cfg):
    result = train(make_cfg("trainer.max_steps=null", "trainer.epochs=2", "trainer.eval_every=1000"))
    assert result.metrics["steps"] == 2 * (3600 // 128) and result.history[-1]["epoch"] == 2


def test_bf16_autocast_trains_on_cpu(make_cfg):
    result = train(make_cfg("trainer.precision=bf16", "trainer.max_steps=100", "trainer.eval_every=50"))
    assert result.status == "completed" and result.metrics["val_acc"] > 0.2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=-1"], r"optimizer\.lr: must be a positive number, got -1"),
        (["trainer.batch_size=5000"], r"trainer\.batch_size: is 5000, larger than the 3600 training samples"),
        (["trainer.epochs=3"], r"trainer: set exactly one of max_steps and epochs"),
        (["preprocess=pca", "model=cnn"], r"model: cnn needs signals \(C, L\) or images \(C, H, W\)"),
        (
            ["trainer.precision=fp16", "trainer.device=cpu"],
            r"trainer\.precision: fp16 autocast needs a CUDA device",
        ),
        (["trainer.device=tpu"], r"trainer\.device: 'tpu' is not a device"),
        (["trainer.eval_every=0"], r"trainer\.eval_every: must be positive, got 0"),
        (["scheduler=cosine", "scheduler.warmup_steps=50"], r"scheduler\.warmup_steps: must be in \[0, 20\)"),
    ],
)
def test_bad_configs_fail_before_training_with_the_field_named(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg(*overrides))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_device_without_a_gpu_is_refused(make_cfg):
    with pytest.raises(ConfigError, match=r"trainer\.device: is cuda but no CUDA GPU is visible"):
        train(make_cfg("trainer.device=cuda"))


def test_cli_trains_and_writes_into_hydras_output_folder(tmp_path, sweeplab):
    done = sweeplab(
        "train",
        "trainer.max_steps=20",
        "trainer.eval_every=10",
        "hydra.run.dir=run",
    )
    assert done.returncode == 0, done.stdout
    assert "completed: val_acc=" in done.stdout
    run = tmp_path / "run"
    assert {"config.yaml", "history.csv", "summary.json", "best.pt", "train.log"} <= {
        p.name for p in run.iterdir()
    }
    assert (run / ".hydra" / "overrides.yaml").is_file()


def test_cli_bad_input_exits_2_with_the_message_and_no_traceback(tmp_path, sweeplab):
    done = sweeplab("train", "optimizer.lr=-0.5")
    assert done.returncode == 2
    output = done.stdout
    assert "optimizer.lr: must be a positive number, got -0.5" in output and "Traceback" not in output


def test_cli_unknown_command(sweeplab):
    done = sweeplab("trian")
    assert done.returncode == 2 and "unknown command 'trian'" in done.stdout


class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    "overrides",
    [
        [
            "optimizer=sgd",
            "optimizer.lr=0.05",
            "optimizer.momentum=0.9",
            "scheduler=step",
            "scheduler.step_size=1",
        ],
        ["optimizer=adam", "scheduler=plateau", "scheduler.patience=0"],
        ["model=cnn", "model.channels=[4,8]", "optimizer=adam", "scheduler=cosine"],
    ],
)
def test_a_run_stopped_after_an_evaluation_resumes_to_the_same_numbers(make_cfg, tmp_path, overrides):
    cfg = make_cfg(
        "trainer.max_steps=200",
        "trainer.eval_every=50",
        "model.dropout=0.2",
        "model.norm=batch",
        *overrides,
        *EXACT,
    )
    whole = train(cfg, tmp_path / "whole")

    def stop_at_150(step: int, row: dict) -> bool:
        if step == 150:
            raise _Stop  # as a kill right after the evaluation of step 150, before its checkpoint
        return False

    every_evaluation = cfg.copy()
    every_evaluation.trainer.checkpoint_every = 0  # where the machine runs: not part of what it computes
    with pytest.raises(_Stop):
        train(every_evaluation, tmp_path / "cut", reporter=stop_at_150)
    assert torch.load(tmp_path / "cut" / "resume.pt", weights_only=False)["step"] == 100
    resumed = train(cfg, tmp_path / "cut")
    strip = lambda history: [{k: v for k, v in row.items() if k != "elapsed_s"} for row in history]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history) and len(whole.history) == 4
    assert resumed.metrics["test_acc"] == whole.metrics["test_acc"]
    assert (tmp_path / "cut" / "history.csv").read_text().count("\n") == 5  # header + 4 rows, none twice
    assert not (tmp_path / "cut" / "resume.pt").exists()


def test_by_default_a_checkpoint_is_written_once_a_minute_not_at_every_evaluation(
    make_cfg, tmp_path, monkeypatch
):
    """`trainer.checkpoint_every` (default 60 s): the first evaluation a minute after the last checkpoint
    (or the start) writes one. A clock that moves 25 s per evaluation: checkpoints at the 3rd and 6th."""
    cfg = make_cfg("trainer.max_steps=80", "trainer.eval_every=10")
    assert cfg.trainer.checkpoint_every == 60
    now = [0.0]
    monkeypatch.setattr(resume_module.time, "perf_counter", lambda: now[0])
    saved: list[int] = []
    real_save = RunRecorder.save_resume
    monkeypatch.setattr(
        RunRecorder, "save_resume", lambda self, state: (saved.append(state["step"]), real_save(self, state))
    )

    def tick(step: int, row: dict) -> bool:
        now[0] += 25.0
        return False

    train(cfg, tmp_path / "run", reporter=tick)
    assert saved == [30, 60]  # 75 s, then 150 s: each 60 s or more after the one before
    assert not (tmp_path / "run" / "resume.pt").exists()  # the run ended: nothing to resume
