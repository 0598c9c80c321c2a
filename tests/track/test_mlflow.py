"""logger=mlflow and `sweeplab export mlflow`, against a real `mlflow server` (SQLite backend) started
on a free port: the study a parent run, a nested run per trial's run with its params, its metric
histories equal to history.csv, tags and artifacts; resumed, retried and exported again without a
duplicate; a server that goes away mid-sweep costs nothing that `export` does not fill in."""

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import interrupted_at
from support import needs_slurm, study_args, unique

pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
from mlflow.tracking import MlflowClient

from sweeplab.train import train

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` on a free port, its store in `folder`; start() again after stop() keeps it."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError("mlflow server did not start within 120 s")

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, 9)
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("mlflow"))
    running.start()
    yield running
    running.stop()


def history(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "history.csv").open() as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def runs_of(uri: str, study: str) -> dict[str, object]:
    """The study's MLflow runs by name (the parent by the study's name, trials' by folder)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no experiment {study}"
    runs = client.search_runs([experiment.experiment_id])
    names = [r.info.run_name for r in runs]
    assert len(names) == len(set(names)), f"duplicate runs: {sorted(names)}"
    return {r.info.run_name: r for r in runs}


def assert_run_matches(uri: str, run, run_dir: Path, parent) -> None:
    client = MlflowClient(uri)
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.info.status == "FINISHED" and run.data.tags["sweeplab.state"] == "completed"
    rows = history(run_dir)
    for column in COLUMNS:
        logged = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, column)]
        assert logged == [(int(r["step"]), pytest.approx(r[column], rel=1e-6)) for r in rows], column
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run.data.metrics["test_acc"] == pytest.approx(summary["test_acc"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"config.yaml", "summary.json"}


@pytest.mark.slow  # an MLflow server (10 s to start) and two worker processes
def test_a_packed_sweep_with_workers_logs_the_study_and_one_nested_run_per_trial(tmp_path, sweeplab, server):
    args = [
        "train", "-m", "logger=mlflow", f"logger.mlflow.tracking_uri={server.uri}",
        "optimizer.lr=choice(0.001,0.002,0.003,0.004)", "hydra.sweeper.sampler=grid",
        "hydra.sweeper.pack=2", "hydra.sweeper.n_jobs=2", "trainer.max_steps=30",
        "trainer.eval_every=10", "hydra.sweeper.study_name=packed",
    ]  # fmt: skip
    done = sweeplab(*args)
    assert done.returncode == 0, done.stdout
    assert "logger mlflow failed" not in done.stdout
    runs = runs_of(server.uri, "packed")
    assert sorted(runs) == ["0", "1", "2", "3", "packed"]
    parent = runs["packed"]
    sweep = tmp_path / "outputs" / "sweeps" / "packed"
    for trial in "0123":
        run = runs[trial]
        assert_run_matches(server.uri, run, sweep / trial, parent)
        assert run.data.tags["sweeplab.trial"] == trial and run.data.tags["sweeplab.seed"] == "0"
        assert float(run.data.params["optimizer.lr"]) in (0.001, 0.002, 0.003, 0.004)
        assert run.data.params["model.hidden"] == "[100, 100]"  # fixed values too
    assert len({runs[t].data.params["optimizer.lr"] for t in "0123"}) == 4

    again = sweeplab("export", "mlflow", "packed", "--tracking-uri", server.uri)
    assert again.returncode == 0, again.stdout
    assert "4 runs (0 new, 4 there already), 0 steps added" in again.stdout
    assert sorted(runs_of(server.uri, "packed")) == ["0", "1", "2", "3", "packed"]


@pytest.mark.slow  # an MLflow server (10 s to start); the default suite stays under 6 minutes
def test_a_resumed_run_continues_its_mlflow_run(make_cfg, tmp_path, server) -> None:
    """Stopped after logging step 150 with its checkpoint at 100, and resumed: one run, each step once."""
    cfg = make_cfg(
        "logger=mlflow", f"logger.mlflow.tracking_uri={server.uri}", "trainer.max_steps=200",
        "trainer.eval_every=50",
    )  # fmt: skip

    run_dir = tmp_path / "alone"
    interrupted_at(cfg, run_dir, 150)
    train(cfg, run_dir)
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("sweeplab")  # a run outside a sweep
    [run] = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`sweeplab.folder` = '{run_dir}'"
    )
    # MLflow lists a metric by its timestamp, the run's elapsed time at that step: the resumed part
    # carries on from the checkpoint's (step 100), so its step 200 may come before the first try's 150
    logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_acc"))
    assert [step for step, _ in logged] == [50, 100, 150, 200]  # each step once
    assert [value for _, value in logged] == pytest.approx([r["val_acc"] for r in history(run_dir)])


@pytest.mark.slow
def test_a_server_stopped_mid_sweep_loses_nothing_that_export_does_not_fill_in(tmp_path, sweeplab):
    server = Server(tmp_path / "server")
    server.start()
    try:
        args = [
            "train", "-m", "logger=mlflow", f"logger.mlflow.tracking_uri={server.uri}",
            "optimizer.lr=choice(0.001,0.002,0.003,0.004)", "hydra.sweeper.sampler=grid",
            "trainer.max_steps=600", "trainer.eval_every=100", "hydra.sweeper.study_name=down",
            "trainer.progress=false",
        ]  # fmt: skip
        run = sweeplab(*args, background=True)
        first = tmp_path / "outputs" / "sweeps" / "down" / "0" / "summary.json"
        deadline = time.monotonic() + 300
        while not first.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        server.stop()  # trial 0 is logged; the others run with the server gone
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output
        warnings = [line for line in output.splitlines() if "logger mlflow failed" in line]
        sweep = tmp_path / "outputs" / "sweeps" / "down"
        # at most one per trial that met the stopped server (its tracker is dropped for the rest of the
        # run); trial 0's summary.json is written before its final metrics go out, so it may be one
        met = [next((t for t in "0123" if f"{sweep / t} not logged" in line), None) for line in warnings]
        assert None not in met and 1 <= len(met) == len(set(met)), output
        assert all("sweeplab export mlflow" in line for line in warnings)
        assert all((sweep / t / "summary.json").is_file() for t in "0123")  # every record kept

        server.start()
        exported = sweeplab("export", "mlflow", "down", "--tracking-uri", server.uri)
        assert exported.returncode == 0, exported.stdout
        assert "4 runs" in exported.stdout and "steps added" in exported.stdout
        runs = runs_of(server.uri, "down")
        assert sorted(runs) == ["0", "1", "2", "3", "down"]
        for trial in "0123":
            assert_run_matches(server.uri, runs[trial], sweep / trial, runs["down"])
    finally:
        server.stop()


@needs_slurm
@pytest.mark.slow
def test_slurm_workers_log_each_trial_once_under_one_parent(tmp_path, sweeplab, server) -> None:
    """Two SLURM jobs run the trials (a journal storage): each trial one nested run, one parent run."""
    name = unique("tracked")
    args = study_args(
        tmp_path, name, "hydra.sweeper.slurm.jobs=2", "logger=mlflow",
        f"logger.mlflow.tracking_uri={server.uri}", trials=4, steps=200, journal=True,
    )  # fmt: skip
    done = sweeplab(*args)
    assert done.returncode == 0 and f"study '{name}': done (4 trials finished)" in done.stdout, done.stdout
    runs = runs_of(server.uri, name)
    assert sorted(runs) == ["0", "1", "2", "3", name]
    for trial in "0123":
        assert_run_matches(
            server.uri, runs[trial], tmp_path / "outputs" / "sweeps" / name / trial, runs[name]
        )


TINY = [
    "train",
    "-m",
    "optimizer.lr=choice(0.001,0.002)",
    "hydra.sweeper.sampler=grid",
    "trainer.max_steps=20",
]


def test_a_tracking_uri_mlflow_cannot_use_is_one_line_before_any_work(tmp_path, sweeplab):
    assert sweeplab(*TINY, "hydra.sweeper.study_name=t").returncode == 0
    dead = f"http://127.0.0.1:{free_port()}"
    for uri, said in (
        (f"file://{tmp_path}/mlruns", "is a file store, which MLflow 3 no longer takes; use sqlite:///"),
        (dead, f"the MLflow tracking server {dead} cannot be reached (" + "[Errno 111] Connection refused)"),
        ("foo://x", "foo://x is not an MLflow tracking URI; use sqlite:///PATH.db"),
    ):
        exported = sweeplab("export", "mlflow", "t", "--tracking-uri", uri)
        assert exported.returncode in (1, 2) and said in exported.stdout, exported.stdout
        assert len(exported.stdout.strip().splitlines()) == 1, exported.stdout
        logged = sweeplab(
            *TINY, "logger=mlflow", f"logger.mlflow.tracking_uri={uri}", "hydra.sweeper.study_name=l"
        )
        assert logged.returncode in (1, 2) and "logger.mlflow.tracking_uri: " in logged.stdout
        assert said in logged.stdout and "Traceback" not in logged.stdout and "trial 0" not in logged.stdout
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


def test_an_export_killed_while_mlflow_creates_its_tables_leaves_a_store_the_rerun_uses(tmp_path, sweeplab):
    assert sweeplab(*TINY, "hydra.sweeper.study_name=k").returncode == 0
    store = tmp_path / "elsewhere" / "mlflow.db"
    args = ["export", "mlflow", "k", "--tracking-uri", f"sqlite:///{store}"]
    run = sweeplab(*args, background=True)
    deadline = time.monotonic() + 60
    while not list(store.parent.glob(".mlflow.db.new-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    run.terminate()  # while MLflow creates its tables in the new store
    run.communicate(timeout=60)
    assert not store.exists()  # nothing half made in its place
    again = sweeplab(*args)
    assert again.returncode == 0 and "2 runs (2 new, 0 there already)" in again.stdout, again.stdout
    assert not list(store.parent.glob(".mlflow.db.new-*"))  # the killed one's leftover removed
    # the artifacts lie beside the store, not in the folder the command ran in
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()
    assert len(list((store.parent / "mlartifacts" / "k").rglob("summary.json"))) == 2
    runs = runs_of(f"sqlite:///{store}", "k")
    assert sorted(runs) == ["0", "1", "k"]


def test_a_store_left_half_made_by_an_older_version_is_named(tmp_path, sweeplab):
    import sqlite3

    assert sweeplab(*TINY, "hydra.sweeper.study_name=h").returncode == 0
    with sqlite3.connect(tmp_path / "half.db") as db:  # MLflow's first tables, without its schema version
        db.execute("CREATE TABLE latest_metrics (key VARCHAR(250))")
    exported = sweeplab("export", "mlflow", "h", "--tracking-uri", f"sqlite:///{tmp_path}/half.db")
    assert exported.returncode == 2 and "whose creation was cut short" in exported.stdout
    assert "delete it and run again" in exported.stdout and "the storage" not in exported.stdout


def test_the_loggers_hint_names_the_tracking_uri(tmp_path):
    from omegaconf import OmegaConf

    from sweeplab.track.mlflow import MARKER, MLflowTracker

    (tmp_path / "3").mkdir()
    (tmp_path / "3" / MARKER).write_text(json.dumps({"study": "s", "study_id": "x", "trials": [3]}))
    tracker = MLflowTracker(tmp_path / "3", OmegaConf.create({}), "http://host:5000")
    assert tracker.recovery == "`sweeplab export mlflow s --tracking-uri http://host:5000` fills it in later"
