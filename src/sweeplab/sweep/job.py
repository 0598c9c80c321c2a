"""One trial as one Hydra job, in the controller's process or in a spawned worker.

The job runs through Hydra's own `run_job` (its output folder, saved config and logging stay Hydra's).
It re-attaches to its trial through the storage, so intermediate values and pruning decisions work in
any process: the task function finds the trial's reporter with `current_reporter()`. Whatever happens,
the job returns an outcome: a fault of the machine (disk full) is marked `fatal`, so the sweep stops.
"""

import functools
import importlib
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.utils import JobRuntime, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig

from sweeplab.config import SweeplabError
from sweeplab.files import environment_fault
from sweeplab.paths import register_resolvers
from sweeplab.sweep.storage import open_storage
from sweeplab.sweep.study import PRUNERS, build_from

register_resolvers()  # a spawned worker resolves the job config
Reporter = Callable[[int, dict[str, float]], bool]
_REPORTER: ContextVar[Reporter | None] = ContextVar("sweeplab_reporter", default=None)


def current_reporter() -> Reporter | None:
    """The running trial's reporter, for a task function launched by the sweeper (None otherwise)."""
    return _REPORTER.get()


@dataclass(frozen=True)
class TrialJob:
    config: DictConfig  # the job's composed config, Hydra's node included
    task: tuple[str, str]  # module and name of the Hydra task function
    hydra_context: HydraContext
    storage_url: str
    study_name: str
    trial_id: int
    pruner: dict[str, Any]
    monitor: str | None  # the history column reported to the pruner; None: nothing to report
    in_worker: bool = False  # a spawned process, which starts with none of Hydra's global state


@dataclass(frozen=True)
class TrialOutcome:
    value: Any = None  # what the task function returned
    error: str | None = None
    traceback: str | None = None
    fatal: bool = False  # a fault of the machine: every later trial would fail alike
    worker_died: bool = False


def _failed(err: BaseException) -> TrialOutcome:
    fault = environment_fault(err)
    if fault is not None:
        return TrialOutcome(error=str(fault), fatal=True)
    # the user's input (a missing data file, a bad value) needs its message, not a traceback
    trace = None if isinstance(err, SweeplabError) else traceback.format_exc()
    return TrialOutcome(error=f"{type(err).__name__}: {err}", traceback=trace)


def run_trial(job: TrialJob) -> TrialOutcome:
    if job.in_worker:
        # What run_job needs of Hydra's process-wide state: its resolvers (now, hydra, ...) and the job
        # name. (Hydra's Singleton.get_state() would carry them too, but its resolvers do not pickle.)
        setup_globals()
        JobRuntime.instance().set("name", job.config.hydra.job.name)
    token = _REPORTER.set(_reporter(job, open_storage(job.storage_url)) if job.monitor else None)
    try:
        ret = run_job(
            task_function=_outcome_of(resolve_task(job.task)),
            config=job.config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
            hydra_context=job.hydra_context,
        )
        return ret.return_value
    except Exception as err:  # Hydra's own records of the job (its folder, .hydra/, the log file)
        return _failed(err)
    finally:
        _REPORTER.reset(token)


def _outcome_of(task: Callable) -> Callable[[DictConfig], TrialOutcome]:
    """The task, returning a TrialOutcome whether it returns or raises (Hydra's JobReturn re-raises a
    failed job's exception when its value is read)."""

    def run(cfg: DictConfig) -> TrialOutcome:
        try:
            return TrialOutcome(value=task(cfg))
        except Exception as err:
            return _failed(err)

    return run


def task_reference(task: Callable) -> tuple[str, str]:
    return task.__module__, task.__qualname__


def resolve_task(ref: tuple[str, str]) -> Callable:
    """The task function by name. `@hydra.main` replaces the module attribute with its wrapper, which is
    why a task cannot be pickled as it is; the original is the wrapper's `__wrapped__`."""
    module, name = ref
    task = functools.reduce(getattr, name.split("."), importlib.import_module(module))
    return getattr(task, "__wrapped__", task)


def _reporter(job: TrialJob, storage: optuna.storages.BaseStorage) -> Reporter:
    pruner = build_from(PRUNERS, job.pruner, "hydra.sweeper.pruner")
    study = optuna.load_study(study_name=job.study_name, storage=storage, pruner=pruner)
    trial = optuna.trial.Trial(study, job.trial_id)

    def report(step: int, row: dict[str, float]) -> bool:
        trial.report(row[job.monitor], step)
        return trial.should_prune()

    return report
