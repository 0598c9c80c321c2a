"""The `sweeplab train -m` controller: keeps up to `n_jobs` trials in flight until the study has
`n_trials` finished or running trials, asking Optuna for each trial's parameters as a slot frees."""

import logging
import math
import os
import shlex
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import optuna
from hydra.types import HydraContext, RunMode, TaskFunction
from omegaconf import DictConfig, open_dict
from optuna.distributions import CategoricalDistribution
from optuna.trial import Trial, TrialState

from sweeplab.config import ConfigError, SweeplabError
from sweeplab.sweep.job import TrialJob, TrialOutcome, open_storage_cached, run_trial, task_reference
from sweeplab.sweep.settings import SweeperSettings
from sweeplab.sweep.setups import expand_setups, plan_trials
from sweeplab.sweep.space import Param, as_scalar, parse_params, space_signature, split_overrides
from sweeplab.sweep.study import (
    DONE,
    PRUNERS,
    SAMPLERS,
    build_from,
    check_same_study,
    count,
    default_storage,
    fail_stale_trials,
)
from sweeplab.sweep.trial_config import absent, plain, with_values
from sweeplab.sweep.workers import start_workers

log = logging.getLogger("sweeplab.sweep")

HISTORY_METRICS = ("val_acc", "val_loss", "train_acc", "train_loss")


class SweepController:
    def __init__(
        self, settings: SweeperSettings, hydra_context: HydraContext, task: TaskFunction, config: DictConfig
    ) -> None:
        self.s, self.hydra_context, self.config = settings, hydra_context, config
        self.task = task_reference(task)
        self._bases: dict[tuple[str, ...], DictConfig] = {}

    def run(self, arguments: list[str]) -> None:
        s = self.s
        for name, value in (("n_trials", s.n_trials), ("n_jobs", s.n_jobs)):
            if value is not None and value < 1:
                raise ConfigError(f"hydra.sweeper.{name}", f"must be at least 1, got {value}")
        cli_sweeps, self.fixed = split_overrides(arguments)
        loader = self.hydra_context.config_loader
        expressions = {**s.params, **cli_sweeps}  # the command line wins over the sweep file
        self.setups = {setup.label: setup for setup in expand_setups(s.setups, s.ablation)}
        set_keys = {key for setup in self.setups.values() for key in setup.overrides}
        self.groups = {
            key for key in [*expressions, *set_keys] if "." not in key and loader.get_group_options(key)
        }
        self.params = parse_params(expressions, self.groups)
        if self.setups:
            both = sorted(set_keys & set(self.params))
            if both:
                raise ConfigError("hydra.sweeper.setups", f"{', '.join(both)}: set by setups and params both")
            self.params = {"setup": Param("setup", CategoricalDistribution(list(self.setups))), **self.params}
        self.plan = plan_trials(self.setups, self.params)
        self.n_trials = s.n_trials or len(self.plan) or self._grid_size() or 20
        self.objectives = self._objectives()
        self.monitor = self._monitor()
        self.storage_url = s.storage or default_storage(s.study_name)
        self.study = self._open_study()
        self._run_trials()
        self._summarise()

    def _grid_size(self) -> int:
        if self.s.sampler.get("name") != "grid":
            return 0
        return math.prod(len(p.grid_values()) for p in self.params.values())

    def _objectives(self) -> dict[str, str]:
        """metric -> direction, in the order given."""
        metrics, directions = list(self.s.objectives), list(self.s.directions)
        if not metrics or len(metrics) != len(directions) or len(set(metrics)) != len(metrics):
            raise ConfigError(
                "hydra.sweeper.objectives",
                f"name distinct metrics, one direction each; got "
                f"objectives={metrics}, directions={directions}",
            )
        for direction in directions:
            if direction not in ("maximize", "minimize"):
                raise ConfigError(
                    "hydra.sweeper.directions", f"each is maximize or minimize, got {direction!r}"
                )
        return dict(zip(metrics, directions, strict=True))

    def _monitor(self) -> str | None:
        if self.s.pruner.get("name", "none") == "none":
            return None
        first = next(iter(self.objectives))
        if len(self.objectives) > 1:
            raise ConfigError(
                "hydra.sweeper.pruner", "Optuna prunes single-objective studies only; use pruner none"
            )
        if first not in HISTORY_METRICS:
            raise ConfigError(
                "hydra.sweeper.pruner",
                f"pruning needs an objective measured during training "
                f"({', '.join(HISTORY_METRICS)}), not {first!r}",
            )
        return first

    def _open_study(self) -> optuna.Study:
        s = self.s
        context = {}
        if s.sampler.get("name") in ("grid", "bruteforce"):
            grid = {key: p.grid_values() for key, p in self.params.items()}  # raises for continuous ones
            context = {"search_space": grid} if s.sampler["name"] == "grid" else {}
        sampler = build_from(SAMPLERS, s.sampler, "hydra.sweeper.sampler", **context)
        pruner = build_from(PRUNERS, s.pruner, "hydra.sweeper.pruner")
        storage = open_storage_cached(self.storage_url)
        study = optuna.create_study(
            storage=storage,
            study_name=s.study_name,
            sampler=sampler,
            pruner=pruner,
            directions=list(self.objectives.values()),
            load_if_exists=True,
        )
        space = space_signature(self.params)
        if self.setups:  # a setup's contents are part of the space
            space["setup"] = "; ".join(
                f"{label}: {' '.join(f'{k}={v}' for k, v in setup.overrides.items())}"
                for label, setup in self.setups.items()
            )
        check_same_study(study, {"space": space, "objectives": self.objectives}, self.storage_url)
        overrides = [*self.config.hydra.overrides.hydra, *self.config.hydra.overrides.task]
        command = shlex.join(["sweeplab", "train", "-m", *overrides])
        commands = study.user_attrs.get("commands", [])
        if command not in commands:  # the report shows how the study was made
            study.set_user_attr("commands", [*commands, command])
        for params in s.enqueue:
            study.enqueue_trial({k: as_scalar(v) for k, v in params.items()}, skip_if_exists=True)
        self._enqueue_plan(study)
        fail_stale_trials(study, s.stale_after, s.max_retries)
        log.info(
            "study %r in %s: %d trials stored, %d of %d finished",
            s.study_name,
            self.storage_url,
            len(study.trials),
            count(study, DONE),
            self.n_trials,
        )
        return study

    def _enqueue_plan(self, study: optuna.Study) -> None:
        """Queue each planned trial that has not run or is not under way: a rerun carries on, and tries
        again the setups whose trials failed (once the data are there, say)."""
        live = (*DONE, TrialState.RUNNING, TrialState.WAITING)
        taken = [t.system_attrs.get("fixed_params", t.params) for t in study.get_trials(False, states=live)]
        for params in self.plan:
            wanted = {k: as_scalar(v) for k, v in params.items()}
            if wanted not in taken:
                study.enqueue_trial(wanted)

    def _exhausted(self) -> bool:
        if self.plan and not count(self.study, (TrialState.WAITING,)):
            return True  # every setup has been taken
        sampler = self.study.sampler
        if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(self.study):
            return True
        return bool(self.study.user_attrs.get("sampler_exhausted"))

    def _budget_left(self) -> int:
        """Trials still to start: every process on this storage counts the same stored trials."""
        return self.n_trials - count(self.study, (*DONE, TrialState.RUNNING))

    def _run_trials(self) -> None:
        self.ran: Counter[str] = Counter()
        self._asked: Trial | None = None  # asked of Optuna, not yet running
        running: dict[Future, Trial] = {}
        pool = start_workers(self.s.n_jobs) if self.s.n_jobs > 1 else None
        try:
            while True:
                while len(running) < self.s.n_jobs and self._budget_left() > 0 and not self._exhausted():
                    self._asked = self.study.ask()
                    if self._surplus(self._asked):
                        self._fail(
                            self._asked, "surplus: another process took the last place first", count=False
                        )
                        self._asked = None
                        continue
                    running[self._submit(pool, self._job_for(self._asked))] = self._asked
                    self._asked = None
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    trial = running.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:  # the OS killed a worker (out of memory?): the pool is gone
                        outcome = TrialOutcome(error="its worker process died (killed, or out of memory)")
                        pool = start_workers(self.s.n_jobs) if pool is not None else None
                    self._finish(trial, outcome)
        except BaseException as err:
            # This process's trials need not wait for their heartbeat to go stale: fail and requeue them.
            reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"the sweep stopped ({err!r})"
            for trial in [*running.values(), *([self._asked] if self._asked else [])]:
                self._fail(trial, reason, retry=True)
            raise
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _submit(self, pool: ProcessPoolExecutor | None, job: TrialJob) -> Future:
        if pool is not None:
            return pool.submit(run_trial, job)
        future: Future = Future()
        future.set_result(run_trial(job))
        return future

    def _job_for(self, trial: Trial) -> TrialJob:
        """Suggest the trial's values (only for keys its config has) and compose its job config."""
        setup = self.setups[str(self.params["setup"].suggest(trial))] if self.setups else None
        set_by_setup = setup.overrides if setup else {}
        groups = [f"{k}={v}" for k, v in set_by_setup.items() if k in self.groups]
        groups += [p.override(p.suggest(trial)) for p in self.params.values() if p.is_group]
        try:
            base = self._composed(tuple([*self.fixed, *groups]))
            set_values = {k: v for k, v in set_by_setup.items() if k not in self.groups}
            lacking = [k for k in set_values if absent(base, k)]
            if setup and lacking:  # unlike a searched key, a setup's key is meant for every trial of it
                raise ConfigError(f"setup {setup.label}", f"sets {', '.join(lacking)}; the config lacks it")
            values = [f"{k}={v}" for k, v in set_values.items()]
            values += [
                p.override(p.suggest(trial))
                for p in self.params.values()
                if not p.is_group and p.key != "setup" and not absent(base, p.key)
            ]
            config = with_values(base, values)
            with open_dict(config):
                config.hydra.job.id = f"{self.s.study_name}_{trial.number}"
                config.hydra.job.num = trial.number
                config.hydra.mode = RunMode.MULTIRUN  # Hydra composes each sweep job as a RUN
            # Hydra's node resolves only inside the job; the rest resolves in place, without copies
            task_config = {key: plain(config[key]) for key in config if key != "hydra"}
        except Exception as err:  # the command or the sweep file is wrong: every trial would fail alike
            self._fail(trial, f"the config does not compose: {err}")
            self._asked = None
            raise SweeplabError(f"trial {trial.number}: the config does not compose: {err}") from err
        overrides = list(config.hydra.overrides.task)
        output_dir = os.path.abspath(
            os.path.join(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir))
        )
        for key, value in (("overrides", overrides), ("config", task_config), ("output_dir", output_dir)):
            trial.set_user_attr(key, value)
        if setup is not None:
            trial.set_user_attr("setup", setup.record())
        shown = " ".join([*groups, *values]) or "(no searched values)"
        log.info("trial %d: %s%s", trial.number, f"setup {setup.label}: " if setup else "", shown)
        return TrialJob(
            config=config,
            task=self.task,
            hydra_context=self.hydra_context,
            storage_url=self.storage_url,
            study_name=self.s.study_name,
            trial_id=trial._trial_id,
            pruner=dict(self.s.pruner),
            monitor=self.monitor,
            heartbeat_interval=self.s.heartbeat_interval,
            in_worker=self.s.n_jobs > 1,
        )

    def _composed(self, overrides: tuple[str, ...]) -> DictConfig:
        """Hydra's composition of the fixed and group overrides, once per combination of group choices."""
        if overrides not in self._bases:
            self._bases[overrides] = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
        return self._bases[overrides]

    def _finish(self, trial: Trial, outcome: TrialOutcome) -> None:
        if outcome.error is not None:
            log.error("trial %d failed: %s", trial.number, (outcome.traceback or outcome.error).rstrip())
            return self._fail(trial, outcome.error)
        metrics = (
            outcome.value if isinstance(outcome.value, dict) else {next(iter(self.objectives)): outcome.value}
        )
        trial.set_user_attr("metrics", _json_safe(metrics))
        status = metrics.get("status", "completed")
        if status == "pruned":
            self.ran["PRUNED"] += 1
            log.info("trial %d pruned at step %s", trial.number, metrics.get("steps"))
            return self._tell(trial, state=TrialState.PRUNED)
        if status == "diverged":
            return self._fail(trial, "diverged: the loss became NaN or infinite")
        missing = [m for m in self.objectives if not isinstance(metrics.get(m), int | float)]
        if missing:
            return self._fail(
                trial, f"the run reported no {', '.join(missing)}; it reported {', '.join(metrics)}"
            )
        values = [float(metrics[m]) for m in self.objectives]
        if not all(math.isfinite(v) for v in values):
            return self._fail(trial, f"objective values are not finite: {values}")
        self.ran["COMPLETE"] += 1
        log.info(
            "trial %d: %s",
            trial.number,
            ", ".join(f"{m}={v:.4g}" for m, v in zip(self.objectives, values, strict=True)),
        )
        self._tell(trial, values=values)

    def _surplus(self, trial: Trial) -> bool:
        """Whether `trial` overshoots the budget: controllers sharing the storage may ask at the same
        moment; the one holding the newest trial gives it up, so together they stop at `n_trials`."""
        if self._budget_left() >= 0:
            return False
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return trial.number == max(t.number for t in running)

    def _fail(self, trial: Trial, error: str, retry: bool = False, count: bool = True) -> None:
        self.ran["FAIL"] += count
        trial.set_user_attr("error", error)
        self._tell(trial, state=TrialState.FAIL)
        if retry:
            self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})

    def _tell(self, trial: Trial, **kwargs: Any) -> None:
        try:
            self.study.tell(trial, **kwargs)
        except RuntimeError as err:
            # The grid and brute-force samplers call `study.stop()` once every point is taken, which
            # raises outside `optimize` (the result is stored before that): remember the study is done.
            if "Study.stop" not in str(err):
                raise
            self.study.set_user_attr("sampler_exhausted", True)

    def _summarise(self) -> None:
        study, s = self.study, self.s
        states = Counter(t.state.name for t in study.get_trials(deepcopy=False))
        ran = sum(self.ran.values())
        log.info(
            "this run: %d trials (%s)",
            ran,
            ", ".join(f"{n} {k}" for k, n in sorted(self.ran.items())) or "none",
        )
        log.info(
            "study %r: %s; storage %s; outputs in %s",
            s.study_name,
            ", ".join(f"{n} {k}" for k, n in sorted(states.items())),
            self.storage_url,
            os.path.abspath(str(self.config.hydra.sweep.dir)),
        )
        if states["COMPLETE"]:
            best = study.best_trials if len(self.objectives) > 1 else [study.best_trial]
            for t in best[:5]:
                values = ", ".join(f"{m}={v:.4g}" for m, v in zip(self.objectives, t.values, strict=True))
                log.info(
                    "best: trial %d, %s, %s -> %s",
                    t.number,
                    values,
                    " ".join(t.user_attrs.get("overrides", [])[len(self.fixed) :]),
                    t.user_attrs.get("output_dir"),
                )
        failure_rate = self.ran["FAIL"] / ran if ran else 0.0
        if failure_rate > s.max_failure_rate:
            log.error(
                "%d of %d trials failed this run (%.0f%% > max_failure_rate %.0f%%)",
                self.ran["FAIL"],
                ran,
                100 * failure_rate,
                100 * s.max_failure_rate,
            )
            raise SystemExit(1)


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
