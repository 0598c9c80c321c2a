"""Replicates: a configuration trained over several seeds as ONE trial, its value and each pruning step the
aggregate of its members'; members packed, resumed each from its own checkpoint, bad input refused."""

import csv
import json
import os
import signal
from pathlib import Path

import optuna
import pytest

from support import EXACT, load, states, wait_for_rows
from sweeplab.packed import train_pack
from sweeplab.sweeper.replicates import Aggregator, Replication, combine

RUN = ["trainer.max_steps=60", "trainer.eval_every=20", "trainer.batch_size=32", "trainer.progress=false"]
GRID = ["optimizer.lr=choice(0.001,0.003)", "hydra.sweeper.sampler=grid"]


def history(folder: Path) -> list[dict]:
    with open(folder / "history.csv") as file:
        return [{k: float(v) for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(file)]


def same_rows(packed: list[dict], alone: list[dict]) -> None:
    """The packing's tolerances (tests/packed/test_packed.py): losses to rounding, accuracies to 2 samples (at
    these rates; Adam at 0.03 can grow a difference in the last bit to 0.04 of accuracy in 60 steps)."""
    assert len(packed) == len(alone)
    for p, a in zip(packed, alone, strict=True):
        assert p["step"] == a["step"]
        for key in ("train_loss", "val_loss", "lr"):
            assert p[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
        for key in ("train_acc", "val_acc"):
            assert p[key] == pytest.approx(a[key], abs=2 / 400), key


def test_a_replicated_trial_is_its_members_single_runs_and_their_mean(tmp_path, sweeplab):
    rep = sweeplab(
        "train",
        "-m",
        *RUN,
        *GRID,
        "hydra.sweeper.replicates=3",
        "hydra.sweeper.study_name=rep",
        "trainer.seed=5",
    )
    assert rep.returncode == 0, rep.stdout
    single = sweeplab(
        "train", "-m", *RUN, *GRID, "trainer.seed=choice(5,6,7)", "hydra.sweeper.study_name=one"
    )
    assert single.returncode == 0, single.stdout
    study, alone = load(tmp_path, "rep"), load(tmp_path, "one")
    assert states(study) == {"COMPLETE": 2} and states(alone) == {"COMPLETE": 6}  # a trial per configuration
    runs = {(t.params["optimizer.lr"], t.params["trainer.seed"]): t for t in alone.trials}
    for trial in study.trials:
        lr, folder = trial.params["optimizer.lr"], Path(trial.user_attrs["output_dir"])
        members = trial.user_attrs["replicates"]
        assert [m["trainer.seed"] for m in members] == [5, 6, 7]  # the config's seed + 0, 1, 2
        for member in members:
            single_run = runs[(lr, member["trainer.seed"])]
            assert member["output_dir"] == str(folder / f"seed_{member['trainer.seed']}")
            same_rows(history(Path(member["output_dir"])), history(Path(single_run.user_attrs["output_dir"])))
            assert member["test_acc"] == pytest.approx(single_run.user_attrs["metrics"]["test_acc"], abs=2e-3)
            assert (Path(member["output_dir"]) / "best.pt").is_file()
        values = [m["val_acc"] for m in members]
        assert trial.value == pytest.approx(sum(values) / 3)
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["seeds"] == [5, 6, 7] and summary["aggregate"] == "mean"
        assert summary["metrics"]["val_acc"]["n"] == 3
        assert summary["metrics"]["val_acc"]["mean"] == pytest.approx(trial.value)
    # every format of the report carries each row's interval over its three members
    report = sweeplab("report", "rep", "--out", "rep_report")
    assert report.returncode == 0, report.stdout
    table = (tmp_path / "rep_report" / "table.md").read_text()
    assert table.count(" | 3 |") == 2 and "95% confidence interval (Student's t)" in table
    with open(tmp_path / "rep_report" / "table.csv") as file:
        rows = list(csv.DictReader(file))
    assert [r["n"] for r in rows] == ["3", "3"] and all(r["val_acc_ci_low"] < r["val_acc"] for r in rows)
    for name in ("table.tex", "table.html"):
        assert "confidence interval" in (tmp_path / "rep_report" / name).read_text()
    shown = sweeplab("studies", "show", "rep")
    assert "replicates 3 of trainer.seed (its value + 0..2), aggregate mean" in shown.stdout
    # the study's replicates are part of what it is: a rerun with others is refused, nothing changed
    other = sweeplab("train", "-m", *RUN, *GRID, "hydra.sweeper.replicates=2", "hydra.sweeper.study_name=rep")
    assert other.returncode == 2
    assert (
        "was run with replicates 3 of trainer.seed (its value + 0..2), aggregate mean, "
        "not replicates 2 of trainer.seed (its value + 0..1), aggregate mean" in other.stdout
    )
    assert len(load(tmp_path, "rep").trials) == 2


@pytest.mark.parametrize(
    ("aggregate", "value"),
    [("mean", 0.5375), ("median", 0.55), ("iqm", 0.575), ("min", 0.0), ("max", 1.0)],
)
def test_each_aggregate_of_the_members_values(aggregate, value, tmp_path):
    members = [0.0, 0.1, 0.4, 0.5, 0.6, 0.8, 0.9, 1.0]
    replication = Replication("trainer.seed", None, len(members), aggregate)
    results = [{"status": "completed", "val_acc": v, "steps": 100} for v in members]
    metrics = combine(replication, list(range(8)), results, tmp_path)
    assert metrics["val_acc"] == pytest.approx(value) and metrics["status"] == "completed"
    assert [m["trainer.seed"] for m in metrics["replicates"]] == list(range(8))


def trial_reporter(study: optuna.Study):
    trial = study.ask()

    def report(step: int, row: dict[str, float]) -> bool:  # as sweeplab.sweeper.job's reporter does
        trial.report(row["val_acc"], step)
        return trial.should_prune()

    return trial, report


def test_a_pruner_decides_on_the_configurations_mean_never_on_one_seed():
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    )
    for value in (0.5, 0.6):  # two finished configurations: the median at step 10 is 0.55
        trial, report = trial_reporter(study)
        report(10, {"val_acc": value})
        study.tell(trial, value)
    replication = Replication("trainer.seed", None, 3)

    def members_report(values: list[float]) -> list[bool]:
        _, report = trial_reporter(study)
        aggregator = Aggregator(report, "val_acc", 3, replication)
        members = [aggregator.member(k) for k in range(3)]
        said = [member(10, {"val_acc": v}) for member, v in zip(members, values, strict=True)]
        # in a pack, a member that reported before the last learns the decision from stops()
        assert said[:2] == [False, False] and [m.stops() for m in members] == [said[2]] * 3
        return said

    assert members_report([0.9, 0.1, 0.9]) == [False, False, False]  # one bad seed, a mean of 0.63: kept
    assert members_report([0.4, 0.45, 0.5]) == [False, False, True]  # a mean of 0.45: pruned
    assert study.trials[-1].intermediate_values == {10: pytest.approx(0.45)}  # the mean, reported once


def test_a_pack_of_members_stops_together_when_pruned_or_when_one_diverges(make_cfg):
    cfgs = [make_cfg(*RUN, f"trainer.seed={seed}") for seed in range(3)]
    replication = Replication("trainer.seed", None, 3)
    asked: list[tuple[int, float]] = []

    def prune_at_40(step: int, row: dict[str, float]) -> bool:
        asked.append((step, row["val_acc"]))
        return step == 40

    aggregator = Aggregator(prune_at_40, "val_acc", 3, replication)
    results = train_pack(cfgs, [None] * 3, [aggregator.member(k) for k in range(3)])
    assert [r.status for r in results] == ["pruned"] * 3 and [len(r.history) for r in results] == [2, 2, 2]
    assert [step for step, _ in asked] == [20, 40]  # once per step, with the mean of the three
    mean_at_20 = sum(r.history[0]["val_acc"] for r in results) / 3
    assert asked[0][1] == pytest.approx(mean_at_20)
    # a member whose loss becomes NaN ends the trial: the others stop with it, and it is named
    cfgs[1] = make_cfg(*RUN, "trainer.seed=1", "optimizer=sgd", "optimizer.lr=1e6")
    cfgs = [make_cfg(*RUN, "trainer.seed=0", "optimizer=sgd", "optimizer.lr=0.01"), cfgs[1]]
    aggregator = Aggregator(lambda step, row: False, "val_acc", 2, Replication("trainer.seed", None, 2))
    results = train_pack(cfgs, [None] * 2, [aggregator.member(k) for k in range(2)])
    assert [r.status for r in results] == ["pruned", "diverged"]
    metrics = combine(Replication("trainer.seed", None, 2), [0, 1], [r.metrics for r in results], Path("t"))
    assert metrics["status"] == "diverged" and metrics["replicate"] == "trainer.seed=1"


def test_members_that_cannot_pack_run_one_after_another_checked_on_the_aggregate(make_cfg, monkeypatch):
    monkeypatch.setattr("sweeplab.packed.run._refused", lambda cfg: "a model the packing cannot handle")
    cfgs = [make_cfg(*RUN, f"trainer.seed={seed}") for seed in range(3)]
    asked: list[int] = []

    def prune_at_40(step: int, row: dict[str, float]) -> bool:
        asked.append(step)
        return step == 40

    aggregator = Aggregator(prune_at_40, "val_acc", 3, Replication("trainer.seed", None, 3))
    results = train_pack(cfgs, [None] * 3, [aggregator.member(k) for k in range(3)])
    # the first two ran their whole budget before the last one reached step 20; the aggregate is
    # reported as the last one reaches each step, and the pruner can stop only that one
    assert [r.status for r in results] == ["completed", "completed", "pruned"]
    assert [len(r.history) for r in results] == [3, 3, 2] and asked == [20, 40]


def test_bad_replicates_are_refused_before_anything_is_stored(tmp_path, sweeplab):
    cases = {
        ("hydra.sweeper.replicates=0", "hydra.sweeper.aggregate=avg"): [
            "hydra.sweeper.replicates: must be at least 1, got 0",
            "hydra.sweeper.aggregate: unknown aggregate 'avg'; one of mean, median, iqm, min, max",
        ],
        ("hydra.sweeper.replicates=2", "hydra.sweeper.replicate_key=trainer.sead"): [
            "hydra.sweeper.replicate_key: 'trainer.sead' is not an integer key of the config (did you mean "
            "trainer.seed?); the members set it to their seeds"
        ],
        ("hydra.sweeper.replicates=2", "hydra.sweeper.replicate_key=../x"): [
            "hydra.sweeper.replicate_key: '../x' is not a config key: a dotted name, e.g. trainer.seed"
        ],
        ("hydra.sweeper.replicates=2", "trainer.seed=choice(0,1)"): [
            "hydra.sweeper.replicate_key: trainer.seed is swept (params or setups) and replicated both: "
            "sweep it or replicate it, not both"
        ],
        ("hydra.sweeper.replicates=2", "hydra.sweeper.replicate_seeds=[1,2,3]"): [
            "hydra.sweeper.replicate_seeds: lists 3 seeds but replicates is 2: set replicates to 3, "
            "or leave it out"
        ],
    }
    for overrides, messages in cases.items():
        done = sweeplab("train", "-m", *RUN, *overrides, "hydra.sweeper.study_name=bad")
        assert done.returncode == 2, done.stdout
        assert "sweep refused" in done.stdout and "(nothing was run or stored)" in done.stdout
        for message in messages:
            assert message in done.stdout
        assert "Traceback" not in done.stdout
    assert not (tmp_path / "studies").exists() or not list((tmp_path / "studies").iterdir())


@pytest.mark.slow
def test_a_killed_replicated_trial_resumes_each_member_from_its_checkpoint(tmp_path, sweeplab):
    same = [
        "optimizer.lr=choice(0.02)",  # a searched value: a killed trial is queued again with it
        "hydra.sweeper.n_trials=1",
        "trainer.max_steps=1500",
        "trainer.eval_every=100",
        "hydra.sweeper.replicates=2",
        "trainer.progress=false",
        "trainer.checkpoint_every=0",  # a checkpoint at each evaluation (by default, once a minute)
        *EXACT,
    ]
    whole = sweeplab("train", "-m", *same, "hydra.sweeper.study_name=whole")
    assert whole.returncode == 0, whole.stdout
    run = sweeplab("train", "-m", *same, "hydra.sweeper.study_name=cut", background=True, new_group=True)
    folder = tmp_path / "outputs" / "sweeps" / "cut" / "0"
    wait_for_rows(folder / "seed_1" / "history.csv", 5)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    again = sweeplab("train", "-m", *same, "hydra.sweeper.study_name=cut")
    assert again.returncode == 0, again.stdout
    assert again.stdout.count("resuming from step ") == 2  # each member, from its own checkpoint
    for seed in ("seed_0", "seed_1"):
        assert history(folder / seed) == history(tmp_path / "outputs" / "sweeps" / "whole" / "0" / seed)
        assert not (folder / seed / "resume.pt").exists()
    cut, reference = load(tmp_path, "cut"), load(tmp_path, "whole")
    assert states(cut) == {"COMPLETE": 1, "FAIL": 1}  # the killed trial, and its retry that finished it
    assert cut.best_value == reference.best_value
