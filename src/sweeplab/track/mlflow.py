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
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweeplab.config import ConfigError, comparable_values
from sweeplab.engine.owner import pid_exists
from sweeplab.files import EnvironmentFault
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


SCHEMES = "sqlite:///PATH.db, postgresql://..., mysql://... or http(s)://HOST:PORT (a tracking server)"


def check_tracking_uri(uri: str, field: str, reach: bool = True) -> None:
    """Refuse, before any run, a tracking URI MLflow cannot use: a file store (MLflow 3 takes none), an
    unknown scheme, a server that cannot be reached (`reach`: before a sweep or an export, not in each
    trial, where a server gone mid-sweep costs a warning, never the trial), an SQLite store whose
    creation was cut short. A new SQLite store is created whole here (`create_sqlite_store`)."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme in ("", "file"):
        raise ConfigError(
            field,
            f"{uri} is a file store, which MLflow 3 no longer takes; use sqlite:///PATH/mlflow.db (a file) "
            "or a tracking server's http://HOST:PORT",
        )
    if scheme == "sqlite":
        create_sqlite_store(uri, field)
    elif scheme in ("http", "https"):
        if reach:
            _reachable(uri, field)
    elif scheme not in ("postgresql", "mysql", "mssql", "databricks"):
        raise ConfigError(field, f"{uri} is not an MLflow tracking URI; use {SCHEMES}")


def _reachable(uri: str, field: str) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5):
            return
    except urllib.error.HTTPError:
        return  # it answers: a server (behind a proxy, say) that has no /health
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise EnvironmentFault(
            f"{field}: the MLflow tracking server {uri} cannot be reached ({reason}); start it, or choose "
            "another tracking URI"
        ) from None


def create_sqlite_store(uri: str, field: str) -> None:
    """The SQLite tracking store at `uri`, with MLflow's tables: a new one is built under a temporary
    name and linked into place whole (a kill while MLflow creates its tables once left a store no rerun
    could use); one that exists must hold MLflow's schema version."""
    path = Path(uri.split(":///", 1)[1])
    if path.exists():
        _check_store(path, field)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EnvironmentFault(f"{field}: cannot create the folder of {path} ({err.strerror})") from None
    for left in path.parent.glob(f".{path.name}.new-*"):  # of a creation killed before it ended
        pid = re.match(r"\d+", left.name.removeprefix(f".{path.name}.new-"))
        if pid and not pid_exists(int(pid[0])):  # its SQLite -journal too
            left.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore(f"sqlite:///{tmp}", artifacts_beside(path).as_uri()).engine.dispose()
        os.link(tmp, path)  # never over a store another process made meanwhile
    except FileExistsError:
        pass
    except OSError as err:
        raise EnvironmentFault(f"{field}: cannot create the MLflow store {path} ({err.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _check_store(path: Path, field: str) -> None:
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = (
                db.execute("SELECT * FROM alembic_version").fetchall() if "alembic_version" in tables else []
            )
    except sqlite3.Error as err:
        raise ConfigError(field, f"{path} is not an MLflow store SQLite can read ({err})") from None
    if tables and not version:
        raise ConfigError(
            field,
            f"{path} is an MLflow store whose creation was cut short (tables without MLflow's schema "
            "version): it holds no runs; delete it and run again, or choose another tracking URI",
        )


def artifacts_beside(store: Path) -> Path:
    """Where the runs' artifacts of an SQLite store go: beside it, not in the folder a command runs in."""
    return store.absolute().parent / "mlartifacts"


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
        command = (
            shlex.join(["sweeplab", "export", "mlflow", study, "--tracking-uri", tracking_uri])
            if study
            else ""
        )
        self.recovery = f"`{command}` fills it in later" if study else ""
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
        first = text.splitlines()[0] if text else type(err).__name__
        if len(first) <= 300:  # MLflow's messages can repeat a whole request: its first sentence
            return first
        end = first.rfind(". ", 0, 300)
        return first[: end + 1] if end > 0 else first[:300] + " ..."

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
        experiment = self._experiment(client, identity["study"] if identity else "sweeplab", self.uri)
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
    def _experiment(client: Any, name: str, uri: str) -> str:
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        # MLflow puts an SQLite store's artifacts under the current folder (./mlruns) unless told
        where = None
        if uri.startswith("sqlite:///"):
            where = (artifacts_beside(Path(uri.removeprefix("sqlite:///"))) / name).as_uri()
        try:
            return client.create_experiment(name, artifact_location=where)
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
    if run_dir is None or cfg is None:  # the check of each run's config (the server: `reachable`)
        check_tracking_uri(tracking_uri, "logger.mlflow.tracking_uri", reach=False)
        return None
    return MLflowTracker(run_dir, cfg, tracking_uri)


def reachable(cfg: DictConfig) -> None:
    """Before a sweep's first trial: the tracking server of `logger=mlflow` answers (EnvironmentFault)."""
    node = cfg.get("logger") or {}
    if "mlflow" in node:
        check_tracking_uri(str(node.mlflow.tracking_uri), "logger.mlflow.tracking_uri")
