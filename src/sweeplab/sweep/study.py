"""Opening a study: its storage, sampler and pruner, the check that a resumed study is the same
study, trials left RUNNING by a dead process, and the budget shared by every process on the storage."""

import datetime as dt
import importlib.util
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sweeplab.config import ConfigError, SweeplabError
from sweeplab.registry import Registry

log = logging.getLogger(__name__)

SAMPLERS: Registry = Registry("sampler")
PRUNERS: Registry = Registry("pruner")
HEARTBEAT = "heartbeat"  # trial user attribute: ISO time of the last sign of life of its process
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def default_storage(study_name: str) -> str:
    """`studies/<study_name>.db` under the folder the command runs in (or $SWEEPLAB_STUDIES_DIR)."""
    folder = Path(os.environ.get("SWEEPLAB_STUDIES_DIR", "studies"))
    return f"sqlite:///{folder / study_name}.db"


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage from a URL: any SQLAlchemy URL (sqlite, postgresql, mysql), or
    `journal:///path/to/file.log` for Optuna's journal file."""
    if url.startswith("journal://"):
        path = Path(url.removeprefix("journal://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")  # the driver of sweeplab[postgres]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # SQLite serialises writers: wait for the lock instead of failing when workers write at once.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        storage = RDBStorage(url, engine_kwargs=engine)
    except Exception as err:
        raise SweeplabError(f"hydra.sweeper.storage: cannot open {url}: {err}") from err
    if url.startswith("sqlite"):
        # Write-ahead logging: workers' heartbeats and reports no longer wait behind readers. The mode
        # is stored in the database file, so every process opening it gets it.
        with storage.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    return storage


# Names to Optuna's own classes; the rest of a `sampler` / `pruner` node is passed to them as it is.
for _name, _sampler in {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,  # the controller supplies search_space
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "nsgaii": optuna.samplers.NSGAIISampler,
    "bruteforce": optuna.samplers.BruteForceSampler,
}.items():
    SAMPLERS.register(_name)(_sampler)

for _name, _pruner in {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}.items():
    PRUNERS.register(_name)(_pruner)


@PRUNERS.register("percentile")
def percentile(percentile: float = 25.0, **options: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.PercentilePruner(percentile, **options)  # Optuna requires the percentile


def build_from(registry: Registry, node: Mapping[str, Any], field: str, **context: Any) -> Any:
    """Sampler and pruner options are passed to Optuna's classes as they are; their errors are named."""
    options = dict(node)
    name = options.pop("name", None)
    builder = registry.get(name, f"{field}.name")
    try:
        return builder(**context, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(field, f"{name}: {err}") from err


def check_same_study(study: optuna.Study, signature: Mapping[str, Any], storage_url: str) -> None:
    """A resumed study must have the search space and objectives it was created with."""
    stored = study.user_attrs.get("sweeplab")
    if stored is None:
        if study.trials:
            raise SweeplabError(
                f"study {study.study_name!r} in {storage_url} was not created by sweeplab; "
                "choose another hydra.sweeper.study_name"
            )
        study.set_user_attr("sweeplab", dict(signature))
        return
    for part in ("objectives", "space"):
        if stored[part] != signature[part]:
            raise SweeplabError(
                f"study {study.study_name!r} in {storage_url} has another {part}: "
                f"{_differences(stored[part], signature[part])}. Resume it with the {part} it was created "
                "with, or start a new study with hydra.sweeper.study_name=NEW_NAME "
                "(nothing stored was changed)."
            )


def _differences(stored: Mapping[str, Any], asked: Mapping[str, Any]) -> str:
    lines = [f"{k} is new ({asked[k]})" for k in asked if k not in stored]
    lines += [f"{k} is missing (stored: {stored[k]})" for k in stored if k not in asked]
    lines += [
        f"{k} is {asked[k]}, stored: {stored[k]}" for k in asked if k in stored and asked[k] != stored[k]
    ]
    if list(stored) != list(asked) and not lines:
        lines.append(f"the order differs (stored: {', '.join(stored)})")
    return "; ".join(lines)


def fail_stale_trials(study: optuna.Study, stale_after: float, max_retries: int) -> list[int]:
    """Mark FAIL the RUNNING trials whose process has shown no sign of life for `stale_after` seconds,
    and enqueue their parameters again while they have been retried fewer than `max_retries` times."""
    now = dt.datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get(HEARTBEAT)
        last = dt.datetime.fromisoformat(beat) if beat else trial.datetime_start
        if last is None or (now - last).total_seconds() < stale_after:
            continue
        try:
            study._storage.set_trial_user_attr(
                trial._trial_id, "error", "its process stopped (stale heartbeat)"
            )
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another controller got there first
        failed.append(trial.number)
        retries = trial.user_attrs.get("retries", 0)
        if retries < max_retries:
            study.enqueue_trial(trial.params, user_attrs={"retries": retries + 1, "retry_of": trial.number})
            log.warning(
                "trial %d was left running by a stopped process: marked FAIL, queued again", trial.number
            )
        else:
            log.warning(
                "trial %d was left running by a stopped process: marked FAIL (%d retries used)",
                trial.number,
                retries,
            )
    return failed


def count(study: optuna.Study, states: Sequence[TrialState]) -> int:
    return len(study.get_trials(deepcopy=False, states=tuple(states)))
