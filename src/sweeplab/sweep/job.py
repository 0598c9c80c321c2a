"""One trial as one Hydra job, in the controller's process or in a spawned worker.

The job runs through Hydra's own `run_job` (its output folder, saved config and logging stay Hydra's).
It re-attaches to its trial through the storage, so intermediate values and pruning decisions work in
any process: the task function finds the trial's reporter with `current_reporter()`. Whatever happens,
the job returns an outcome: a fault of the machine (disk full) is marked `fatal`, so the sweep stops.
"""

import copy
import functools
import importlib
import logging
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobRuntime, _save_config, configure_log, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict, read_write

from sweeplab.config import SweeplabError
from sweeplab.files import environment_fault
from sweeplab.paths import register_resolvers
from sweeplab.sweep.storage import open_storage
from sweeplab.sweep.study import PRUNERS, build_from
from sweeplab.sweep.task import contract_of

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


def run_jobs(jobs: list[TrialJob]) -> list[TrialOutcome]:
    """One trial as a Hydra job, or several trials as one packed job."""
    return [run_trial(jobs[0])] if len(jobs) == 1 else run_pack(jobs)


def run_pack(jobs: list[TrialJob]) -> list[TrialOutcome]:
    """Several trials trained as one (the task's `Packing`): each keeps its own Hydra job folder, its
    .hydra/ records, its log file and its reporter; one training runs them all."""
    first = jobs[0]
    if first.in_worker:
        setup_globals()
        JobRuntime.instance().set("name", first.config.hydra.job.name)
    previous = HydraConfig.instance().cfg
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    try:
        packing = contract_of(resolve_task(first.task)).pack  # type: ignore[union-attr]
        prepared = [_prepare(job, configure_logging=i == 0) for i, job in enumerate(jobs)]
        template = next((h for h in root.handlers if isinstance(h, logging.FileHandler)), None)
        for _, output_dir in prepared[1:] if template else []:  # the pack's lines in every member's log
            handlers.append(logging.FileHandler(output_dir / Path(template.baseFilename).name))
            handlers[-1].setFormatter(template.formatter)
            root.addHandler(handlers[-1])
        storage = open_storage(first.storage_url) if first.monitor else None
        values = packing.run(  # type: ignore[union-attr]
            [cfg for cfg, _ in prepared],
            [output_dir for _, output_dir in prepared],
            [_reporter(job, storage) if storage else None for job in jobs],
            [str(job.config.hydra.job.num) for job in jobs],
        )
        return [TrialOutcome(value=value) for value in values]
    except Exception as err:
        return [_failed(err)] * len(jobs)
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        HydraConfig.instance().cfg = previous


def _prepare(job: TrialJob, configure_logging: bool) -> tuple[DictConfig, Path]:
    """What Hydra's `run_job` does before it calls the task: the job's folder and records, its logging."""
    config = job.config
    output_dir = Path(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir)).absolute()
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(config)
    task_cfg = copy.deepcopy(config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    output_dir.mkdir(parents=True, exist_ok=True)
    if configure_logging:
        configure_log(config.hydra.job_logging, config.hydra.verbose)
    if config.hydra.output_subdir is not None:
        records = output_dir / str(config.hydra.output_subdir)
        _save_config(task_cfg, "config.yaml", records)
        _save_config(copy.deepcopy(HydraConfig.instance().cfg), "hydra.yaml", records)
        _save_config(config.hydra.overrides.task, "overrides.yaml", records)
    return task_cfg, output_dir


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
