"""`logger=mlflow`: the study as one parent run, each run of a trial nested in it, through MLflow's client.

A run is found again by its key (the study's id and its folder: `3`, or `3/seed_1` for a replicate), so a
resumed trial, a retry in the same folder and `sweeplab export mlflow` all continue the same MLflow run and
never duplicate it; a step already logged is not logged again. The parent run is created once, under a
lock in the study's folder, however many workers (processes, SLURM jobs) start at once.
"""

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweeplab.config import comparable_values
from sweeplab.track import LOGGERS, require_package, run_values

MARKER = ".sweeplab-trial.json"  # sweeplab.engine.folders: which study a trial folder belongs to
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
# the summary's numbers, as the run's last metrics (its val_acc is the best evaluation's)
FINAL = {
    "val_acc": "best_val_acc",
    "best_step": "best_step",
    "test_acc": "test_acc",
    "test_acc_last": "test_acc_last",
    "test_loss": "test_loss",
    "params": "params",
}
PARAM_LIMIT = 6000  # characters MLflow keeps of a param's value


def trial_identity(run_dir: Path) -> dict[str, Any] | None:
    """The study a run belongs to (its trial folder's marker, or its parent's for a replicate), with the
    run's key; None for a run outside a sweep."""
    for folder in (run_dir, run_dir.parent):
        with contextlib.suppress(OSError, ValueError):
            record = json.loads((folder / MARKER).read_text())
            key = f"{record['study_id']}/{run_dir.relative_to(folder.parent).as_posix()}"
            return {**record, "key": key, "sweep_dir": folder.parent, "trial": record["trials"][-1]}
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


class MLflowTracker:
    def __init__(self, run_dir: Path, cfg: DictConfig, tracking_uri: str) -> None:
        self.run_dir, self.cfg, self.uri = run_dir, cfg, tracking_uri
        self.identity = trial_identity(run_dir)
        study = self.identity["study"] if self.identity else None
        self.recovery = f"`sweeplab export mlflow {study}` fills it in later" if study else ""
        self.client: Any = None
        self.run_id = self.parent = ""
        self.logged: set[int] = set()  # steps this run has in MLflow already
        self.created = False  # a new MLflow run (not one resumed, retried or exported before)
        self.finished = False  # its final metrics are there already

    def describe(self, err: Exception) -> str:
        """Why it failed, in a few words: MLflow's own message repeats the whole request."""
        text = str(err)
        for known in ("Connection refused", "Name or service not known", "timed out", "Max retries exceeded"):
            if known in text:
                return f"the tracking server {self.uri} cannot be reached ({known.lower()})"
        return text.splitlines()[0][:200] if text else type(err).__name__

    def open(self) -> None:
        # a tracking server that is down must cost a trial seconds, not MLflow's minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        # each retry's urllib3 warning would bury the one line that says what was not logged
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        # its "View run ... at" line per run would interleave with the sweep's own lines
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        identity = self.identity
        experiment = self._experiment(client, identity["study"] if identity else "sweeplab")
        tags = {"sweeplab.run_key": identity["key"] if identity else str(self.run_dir)}
        if identity is not None:
            with _locked(identity["sweep_dir"] / ".mlflow.lock"):
                parent = self.parent = self._parent(client, experiment, identity)
            client.update_run(parent, status="RUNNING")
            tags |= {
                "mlflow.parentRunId": parent,
                "sweeplab.study": identity["study"],
                "sweeplab.study_id": identity["study_id"],
                "sweeplab.trial": str(identity["trial"]),
            }
        tags |= {"sweeplab.seed": str(self.cfg.trainer.seed), "sweeplab.folder": str(self.run_dir)}
        found = client.search_runs(
            [experiment], filter_string=f"tags.`sweeplab.run_key` = '{tags['sweeplab.run_key']}'"
        )
        if found:  # resumed, retried or exported again: the same run
            self.run_id = found[0].info.run_id
            self.logged = {m.step for m in client.get_metric_history(self.run_id, "val_loss")}
            self.finished = "test_acc" in found[0].data.metrics
            client.update_run(self.run_id, status="RUNNING")
        else:
            name = identity["key"].split("/", 1)[1] if identity else self.run_dir.name
            self.run_id = client.create_run(experiment, run_name=name, tags=tags).info.run_id
            self.created = True
            from mlflow.entities import Param

            params = [
                Param(key, str(value)[:PARAM_LIMIT]) for key, value in comparable_values(self.cfg).items()
            ]
            for start in range(0, len(params), 100):  # MLflow takes 100 params a call
                client.log_batch(self.run_id, params=params[start : start + 100])
        from mlflow.entities import RunTag

        client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client = client

    @staticmethod
    def _experiment(client: Any, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(name)
        except MlflowException:  # another worker created it first
            return client.get_experiment_by_name(name).experiment_id

    @staticmethod
    def _parent(client: Any, experiment: str, identity: dict[str, Any]) -> str:
        query = f"tags.`sweeplab.study_id` = '{identity['study_id']}' and tags.`sweeplab.kind` = 'study'"
        found = client.search_runs([experiment], filter_string=query)
        if found:
            return found[0].info.run_id
        tags = {
            "sweeplab.kind": "study",
            "sweeplab.study": identity["study"],
            "sweeplab.study_id": identity["study_id"],
            "sweeplab.folder": str(identity["sweep_dir"]),
        }
        return client.create_run(experiment, run_name=identity["study"], tags=tags).info.run_id

    def log(self, row: dict[str, float]) -> None:
        if self.client is None:
            self.open()
        step = int(row["step"])
        if step in self.logged:
            return
        from mlflow.entities import Metric

        stamp = int(row.get("elapsed_s", 0) * 1000)  # ms into the run: the same on a second export
        metrics = [Metric(name, float(row[name]), stamp, step) for name in METRICS]
        self.client.log_batch(self.run_id, metrics=metrics)
        self.logged.add(step)

    def finish(self, summary: dict[str, Any]) -> None:
        if self.client is None:
            self.open()
        from mlflow.entities import Metric, RunTag

        step = int(summary.get("steps") or 0)
        final = [
            Metric(shown, float(summary[name]), 0, step)
            for name, shown in FINAL.items()
            if isinstance(summary.get(name), int | float)
        ]
        values = run_values(self.cfg, self.run_dir)
        tags = [
            RunTag("sweeplab.state", str(summary.get("status"))),
            RunTag("sweeplab.values", json.dumps(values)),
        ]
        self.client.log_batch(self.run_id, metrics=[] if self.finished else final, tags=tags)
        self.finished = True
        for name in ("config.yaml", "summary.json"):
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        self.client.set_terminated(self.run_id, "FINISHED")
        if self.parent:  # the study's run shows when its last trial ended (RUNNING again as one starts)
            self.client.set_terminated(self.parent, "FINISHED")


@LOGGERS.register("mlflow")
def mlflow(*, run_dir: Path | None, cfg: DictConfig | None, tracking_uri: str) -> MLflowTracker | None:
    require_package("mlflow", "mlflow", "logger.mlflow")
    return None if run_dir is None or cfg is None else MLflowTracker(run_dir, cfg, tracking_uri)
