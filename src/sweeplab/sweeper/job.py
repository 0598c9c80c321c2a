"""One trial as one Hydra job, in the controller's process or in a spawned worker.

The job runs as Hydra's own `run_job` runs it (its output folder, saved config and logging stay Hydra's;
`sweeplab.sweeper.hydra_job`, without Hydra's copies).
It re-attaches to its trial through the storage, so intermediate values and pruning decisions work in
any process: the task function finds the trial's reporter with `current_reporter()`. Whatever happens,
the job returns an outcome: a fault of the machine (disk full) is marked `fatal`, so the sweep stops.
"""

import dataclasses
import functools
import importlib
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobRuntime, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig

from sweeplab.config import SweeplabError
from sweeplab.engine.pareto_pruning import ParetoPruner, pareto_reporter
from sweeplab.engine.records import StudyRecord
from sweeplab.engine.storage import open_storage
from sweeplab.engine.study import optuna_pruner
from sweeplab.files import environment_fault
from sweeplab.paths import register_resolvers
from sweeplab.sweeper.hydra_job import run_job, start_job
from sweeplab.sweeper.replicates import Aggregator, Replication, combine, member_configs, write_summary
from sweeplab.sweeper.task import REPORTER, Packing, Reporter, contract_of

register_resolvers()  # a spawned worker resolves the job config


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
    replication: Replication | None = None  # hydra.sweeper.replicates above 1: the trial's members


@dataclass(frozen=True)
class TrialOutcome:
    value: Any = None  # what the task function returned
    error: str | None = None
    traceback: str | None = None
    fatal: bool = False  # a fault of the machine: every later trial would fail alike


def _failed(err: BaseException) -> TrialOutcome:
    fault = environment_fault(err)
    if fault is not None:
        return TrialOutcome(error=str(fault), fatal=True)
    # the user's input (a missing data file, a bad value) needs its message, not a traceback
    trace = None if isinstance(err, SweeplabError) else traceback.format_exc()
    return TrialOutcome(error=f"{type(err).__name__}: {err}", traceback=trace)


def run_trial(job: TrialJob, reporter: Reporter | None = None) -> TrialOutcome:
    if job.in_worker:
        # What run_job needs of Hydra's process-wide state: its resolvers (now, hydra, ...) and the job
        # name. (Hydra's Singleton.get_state() would carry them too, but its resolvers do not pickle.)
        setup_globals()
        JobRuntime.instance().set("name", job.config.hydra.job.name)
    token = REPORTER.set(reporter)
    try:
        return run_job(_outcome_of(resolve_task(job.task)), job.config, job.hydra_context).return_value
    except Exception as err:  # Hydra's own records of the job (its folder, .hydra/, the log file)
        return _failed(err)
    finally:
        REPORTER.reset(token)


def run_jobs(jobs: list[TrialJob]) -> list[TrialOutcome]:
    """One trial as a Hydra job, or several trials as one packed job; a trial with replicates as its
    members' jobs, packed together when the task can pack (else one after another), its outcome theirs
    combined."""
    storage = open_storage(jobs[0].storage_url) if jobs[0].monitor else None
    reporters = [_reporter(job, storage) if storage else None for job in jobs]
    members: list[tuple[int, TrialJob, Reporter | None]] = []  # (the trial's index, job, reporter)
    seeds: list[list[int]] = []
    for i, (job, reporter) in enumerate(zip(jobs, reporters, strict=True)):
        if job.replication is None:
            members.append((i, job, reporter))
            seeds.append([])
            continue
        configs = member_configs(job.config, job.replication)
        seeds.append([seed for seed, _ in configs])
        aggregator = (
            Aggregator(reporter, job.monitor, len(configs), job.replication)
            if reporter and job.monitor
            else None
        )
        for k, (_, config) in enumerate(configs):
            member = dataclasses.replace(job, config=config)
            members.append((i, member, aggregator.member(k) if aggregator else None))
    contract = contract_of(resolve_task(jobs[0].task))
    if len(members) > 1 and contract is not None and contract.pack is not None:
        outcomes = run_pack([job for _, job, _ in members], [r for _, _, r in members], contract.pack)
    else:
        outcomes = _one_after_another(members)
    ended: list[list[TrialOutcome]] = [[] for _ in jobs]
    for (i, _, _), outcome in zip(members, outcomes, strict=True):
        ended[i].append(outcome)
    return [
        _combined(job, trial_seeds, results) if job.replication else results[0]
        for job, trial_seeds, results in zip(jobs, seeds, ended, strict=True)
    ]


def _one_after_another(members: list[tuple[int, TrialJob, Reporter | None]]) -> list[TrialOutcome]:
    """Members run one at a time; once one of a trial's fails, diverges or is pruned, the trial's others
    are not run (their outcome is that one's)."""
    outcomes: list[TrialOutcome] = []
    stopped: dict[int, TrialOutcome] = {}
    for i, job, reporter in members:
        if i in stopped:
            outcomes.append(stopped[i])
            continue
        outcome = run_trial(job, reporter)
        outcomes.append(outcome)
        status = outcome.value.get("status") if isinstance(outcome.value, dict) else None
        if job.replication is not None and (outcome.error is not None or status in ("diverged", "pruned")):
            stopped[i] = outcome
    return outcomes


def _combined(job: TrialJob, seeds: list[int], outcomes: list[TrialOutcome]) -> TrialOutcome:
    """A replicated trial's outcome: the first member's error (naming its seed), or the members' metrics
    combined (`replicates.combine`) and the trial folder's summary written."""
    replication = job.replication
    assert replication is not None
    for seed, outcome in zip(seeds, outcomes, strict=True):
        if outcome.error is not None:
            error = f"replicate {replication.label(seed)}: {outcome.error}"
            return dataclasses.replace(outcome, error=error)
    values = [o.value for o in outcomes]
    if not all(isinstance(v, dict) for v in values):
        return TrialOutcome(
            error=f"replicates need a task that returns its metrics as a dict, got {values[0]!r}"
        )
    folder = Path(str(job.config.hydra.sweep.dir), str(job.config.hydra.sweep.subdir)).absolute()
    metrics = combine(replication, seeds, values, folder)
    try:
        write_summary(folder, replication, metrics)
    except Exception as err:
        return _failed(err)
    return TrialOutcome(value=metrics)


def run_pack(jobs: list[TrialJob], reporters: list[Reporter | None], packing: Packing) -> list[TrialOutcome]:
    """Several runs trained as one (the task's `Packing`): each keeps its own Hydra job folder, its
    .hydra/ records, its log file and its reporter; one training runs them all."""
    first = jobs[0]
    if first.in_worker:
        setup_globals()
        JobRuntime.instance().set("name", first.config.hydra.job.name)
    previous = HydraConfig.instance().cfg
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    try:
        prepared = [start_job(job.config, configure_logging=i == 0) for i, job in enumerate(jobs)]
        template = next((h for h in root.handlers if isinstance(h, logging.FileHandler)), None)
        for _, output_dir in prepared[1:] if template else []:  # the pack's lines in every member's log
            handlers.append(logging.FileHandler(output_dir / Path(template.baseFilename).name))
            handlers[-1].setFormatter(template.formatter)
            root.addHandler(handlers[-1])
        values = packing.run(
            [cfg for cfg, _ in prepared],
            [output_dir for _, output_dir in prepared],
            reporters,
            [_label(job) for job in jobs],
        )
        return [TrialOutcome(value=value) for value in values]
    except Exception as err:
        return [_failed(err)] * len(jobs)
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        HydraConfig.instance().cfg = previous


def _label(job: TrialJob) -> str:
    """How the pack's log names a run: its trial's number, and a member's folder (`3/seed_1`)."""
    number = str(job.config.hydra.job.num)
    return f"{number}/{Path(str(job.config.hydra.sweep.subdir)).name}" if job.replication else number


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
    """Reports the monitored metric to the trial and asks its pruner (through the storage); in a study of
    several objectives, sweeplab's rule (engine.pareto_pruning) decides."""
    study = optuna.load_study(study_name=job.study_name, storage=storage)
    if len(study.directions) > 1:
        contract = contract_of(resolve_task(job.task))
        known = contract.known if contract is not None else ()
        pruner = ParetoPruner.of(job.pruner, StudyRecord.of(study).objectives, known)
        return pareto_reporter(pruner, study, job.trial_id)
    study.pruner = optuna_pruner(job.pruner, 1)
    trial = optuna.trial.Trial(study, job.trial_id)

    def report(step: int, row: dict[str, float]) -> bool:
        trial.report(row[job.monitor], step)
        return trial.should_prune()

    return report
