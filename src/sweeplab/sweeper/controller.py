"""The `sweeplab train -m` controller: keeps up to `n_jobs` jobs in flight until the study has
`n_trials` finished, claiming each job's trials from the shared study (`lifecycle`) as a slot frees: one
trial, or with `pack` above 1 up to `pack` trials of one structure trained as one (`sweeplab.packed`).

It ends in every case: when the study is done (waiting, if need be, for trials other processes run, and
reclaiming those whose process is gone); after `max_failures` failed trials or a failure rate above
`max_failure_rate` (exit 1); at a fault of the machine such as a full disk (exit 1); and at SIGINT or
SIGTERM (exit 130 or 143), its running trials marked FAIL and queued again to resume where they were.
"""

import contextlib
import logging
import math
import signal
import time
from collections import Counter
from pathlib import Path

from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig
from optuna.trial import Trial

from sweeplab.config import SweeplabError
from sweeplab.engine.attrs import set_user_attrs
from sweeplab.engine.folders import FolderTaken, TrialFolders
from sweeplab.engine.lifecycle import DONE, SharedStudy
from sweeplab.engine.progress import Progress
from sweeplab.engine.records import (
    OUTPUT_DIR,
    PACKED_WITH,
    REUSED_FROM,
    SLURM_JOB,
    TrialRecord,
)
from sweeplab.engine.storage import masked, open_storage, study_in_use
from sweeplab.engine.study import pareto_front, ranked
from sweeplab.engine.workers import InlineRunner, WorkerDied, WorkerPool, runner_for
from sweeplab.files import EnvironmentFault, environment_fault, writable_or_fault
from sweeplab.stopping import Interrupted, signals_raise
from sweeplab.sweeper.job import TrialJob, TrialOutcome, run_jobs, task_reference
from sweeplab.sweeper.packs import PackMatcher
from sweeplab.sweeper.preview import preview
from sweeplab.sweeper.results import write_results
from sweeplab.sweeper.reuse import Twins, reused_value
from sweeplab.sweeper.settings import SweeperSettings
from sweeplab.sweeper.slurm import check_cluster, in_slurm_worker, job_record, submit_study
from sweeplab.sweeper.spec import SweepPlan, plan_sweep
from sweeplab.sweeper.task import contract_of
from sweeplab.sweeper.verdict import judge

log = logging.getLogger("sweeplab.sweep")

MIN_TRIALS_FOR_RATE = 10  # the failure rate stops a run only once this many of its trials have ended
POLL = 2.0  # seconds between looks at a study whose last trials run in other processes


class SweepController:
    def __init__(
        self, settings: SweeperSettings, hydra_context: HydraContext, task: TaskFunction, config: DictConfig
    ) -> None:
        self.s, self.hydra_context, self.config = settings, hydra_context, config
        self.task, self.contract = task_reference(task), contract_of(task)

    def run(self, arguments: list[str]) -> None:
        submitting = self.s.slurm.jobs != 0 and not in_slurm_worker()
        with contextlib.ExitStack() as held:
            with signals_raise():
                try:
                    plan = plan_sweep(self.s, self.hydra_context, self.config, arguments, self.contract)
                    if self.s.dry_run:
                        return preview(plan, self.s.n_jobs, self.s.pack, self.s.slurm)
                    if submitting:
                        check_cluster(self.s.slurm, plan.spec.storage_url, self._sweep_dir())
                    writable_or_fault(self._sweep_dir())  # before the storage is created
                    open_storage(plan.spec.storage_url)
                    # for as long as this command runs: `sweeplab studies delete` is refused meanwhile
                    held.enter_context(study_in_use(plan.spec.storage_url, self.s.study_name))
                    self._open(plan)
                except Interrupted as err:  # nothing runs yet: nothing to fail or requeue
                    log.warning("interrupted (%s) before any trial started", err)
                    raise SystemExit(128 + err.signum) from None
            try:
                if submitting:
                    return submit_study(self.shared, self.s, self.sweep_dir, self.task)
                self._run_trials()
            finally:
                self.shared.close()
            self._summarise()

    def _sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir)).absolute()

    def _open(self, plan: SweepPlan) -> None:
        s = self.s
        self.sweep_dir = self._sweep_dir()
        self.composer, self.objectives, self.monitor = plan.composer, plan.objectives, plan.monitor
        self.constraints = plan.constraints
        self.replication = plan.replication
        deterministic = self.contract is not None and self.contract.deterministic
        self.reuse = deterministic if s.reuse_results is None else s.reuse_results
        self.twins = Twins()

        def check_folders(study_id: str, trials: list) -> None:  # before a new study is kept
            self.folders = TrialFolders(s.study_name, study_id, masked(plan.spec.storage_url))
            self.folders.check(self.sweep_dir, [TrialRecord.of(t).output_dir or "" for t in trials])

        self.shared = SharedStudy(plan.spec, check=check_folders)
        study = self.shared.study
        planned = len(plan.spec.plan)
        log.info(
            "study %r in %s: %d trials stored, %d of %d finished%s",
            s.study_name,
            masked(self.shared.url),
            len(study.trials),
            self.shared.count(*DONE),
            plan.spec.n_trials,
            f"; its plan has {planned:,} configurations, queued as trials start" if planned else "",
        )

    # --- the loop ---------------------------------------------------------------------------------

    def _run_trials(self) -> None:
        self.ran: Counter[str] = Counter()
        self.reused = 0  # trials that took a completed twin's result (sweeplab.sweeper.reuse)
        self.errors: Counter[str] = Counter()
        self.stop: str | None = None  # why no more trials start (a failure)
        self.timed_out = False  # hydra.sweeper.timeout passed: no more trials start
        self.running: dict[int, Trial] = {}
        self.together = 0  # trials that ended with this one and are still to be recorded
        self.packs = (
            PackMatcher(self.composer, self.contract.pack, self.s.study_name) if self.contract else None
        )
        self.started = time.monotonic()
        self.slurm_job = job_record()  # this SLURM worker job's id and log file; None elsewhere
        self.progress = Progress(self.shared.spec.n_trials, self.shared.count(*DONE))
        runner = self._runner()
        try:
            with signals_raise(worker=self.slurm_job is not None), self.progress.shown():
                self._loop(runner)
        except (Interrupted, SweeplabError) as err:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):  # none may cut the clean-up short
                signal.signal(signum, signal.SIG_IGN)
            why = f"the sweep stopped: {err}" if isinstance(err, SweeplabError) else err.describe()
            for trial in self.running.values():
                self.shared.fail(trial, why, requeue=True)
            if isinstance(err, SweeplabError):
                raise
            resume = f"To resume, run the same command again: {self.shared.spec.command}"
            if self.slurm_job:
                resume = "Another worker of the study, or this job requeued, resumes them"
            running = len(self.running)
            log.warning("%s: %d running trial(s) marked FAIL and queued again. %s", why, running, resume)
            raise SystemExit(128 + err.signum) from None
        finally:
            runner.close()
            if self.ran["COMPLETE"]:
                self._write_results()

    def _write_results(self) -> None:
        """hydra-optuna-sweeper's results file, once the sweep's trials have ended (a few ms a trial when
        rewritten at each); it copies what the study holds, so a fault writing it is a warning."""
        try:
            write_results(self.shared.study, len(self.objectives), self.sweep_dir)
        except (OSError, EnvironmentFault) as err:
            log.warning("optimization_results.yaml was not written: %s", environment_fault(err) or err)

    def _runner(self) -> InlineRunner | WorkerPool:
        trials_a_job = max(1, self.s.pack // (self.replication.n if self.replication else 1))
        jobs = math.ceil(max(1, self.shared.to_start()) / trials_a_job)
        return runner_for(self.s.n_jobs, jobs, run_jobs)

    def _loop(self, runner: InlineRunner | WorkerPool) -> None:
        waited = 0.0
        while True:
            self._check_timeout()
            while runner.free() and self.stop is None and not self.timed_out:
                jobs = self._claim()
                if not jobs:
                    break
                runner.submit(tuple(jobs), list(jobs.values()))
            if self.running:
                for numbers, outcomes in runner.wait(timeout=POLL):
                    for i, (number, outcome) in enumerate(zip(numbers, outcomes, strict=True)):
                        # trials that ended together (a pack): one progress line, after the last
                        self.together = len(numbers) - 1 - i
                        self._finish(self.running.pop(number), outcome)
                continue
            others = self.shared.elsewhere()
            if self.stop is not None or self.timed_out or not others or self.slurm_job:
                return  # a SLURM worker leaves others' trials to their jobs (sweeplab.sweeper.slurm.worker)
            if time.monotonic() - waited > 30:  # say what it waits for, every 30 s
                waited = time.monotonic()
                for t in others:
                    log.info(
                        "waiting for trial %d (%s; last heartbeat %.0f s ago); it is queued again if its "
                        "process ends or stays silent for %g s",
                        t.number,
                        t.owner,
                        t.silent_for,
                        self.s.stale_after,
                    )
            time.sleep(POLL)

    def _check_timeout(self) -> None:
        if self.timed_out or self.s.timeout is None or time.monotonic() - self.started < self.s.timeout:
            return
        self.timed_out = True
        log.info(
            "timeout: %g s have passed (hydra.sweeper.timeout); no new trial starts%s",
            self.s.timeout,
            f", {len(self.running)} running trial(s) finish" if self.running else "",
        )

    def _claim(self) -> dict[int, TrialJob]:
        """The next trial's job, and with `pack` above 1 the jobs of up to pack - 1 more trials that differ
        from it only in packable keys (the task's `Packing.keys`), to run as one packed job. With
        replicates, `pack` counts members: whole trials are added while the pack holds at most `pack`."""
        job = None
        while job is None:  # a trial that reuses a twin's result is done at once: the next one
            first = self.shared.claim() if self.stop is None else None
            if first is None:
                return {}
            self.running[first.number] = first
            job = self._job_for(first)
        jobs = {first.number: job}
        room = self.s.pack // (self.replication.n if self.replication else 1) - 1
        if room < 1 or self.packs is None or self.packs.packing is None:
            return jobs
        fits, structural = self.packs.matcher(first.params, job.config)
        for trial in self.shared.claim_like(room, fits, structural):
            self.running[trial.number] = trial
            job = self._job_for(trial)
            if job is not None:
                jobs[trial.number] = job
        if len(jobs) > 1:
            for number in jobs:
                self.running[number].set_user_attr(PACKED_WITH, [n for n in jobs if n != number])
        return jobs

    def _job_for(self, trial: Trial) -> TrialJob | None:
        """The trial's job; None when it took a completed twin's result instead (sweeplab.sweeper.reuse)."""
        try:
            job, folder = self.composer.job_for(
                trial,
                task=self.task,
                hydra_context=self.hydra_context,
                storage_url=self.shared.url,
                study_name=self.s.study_name,
                pruner=dict(self.s.pruner),
                monitor=self.monitor,
                in_worker=self.s.n_jobs > 1,
                replication=self.replication,
            )
            record = TrialRecord.of(trial)
            twin = self.twins.of(record.config, self.shared.completed()) if self.reuse else None
            if twin is None:
                self.folders.take(
                    folder, trial.number, resuming=record.resume_dir is not None, job=self.slurm_job
                )
                if self.slurm_job:
                    trial.set_user_attr(SLURM_JOB, self.slurm_job)
        except SweeplabError as err:
            self.running.pop(trial.number)
            # a trial is not at fault for a folder in its way or a full disk: it runs once that is fixed
            self.shared.fail(trial, str(err), requeue=isinstance(err, FolderTaken | EnvironmentFault))
            raise
        if twin is None:
            return job
        log.info(
            "trial %d: the config of trial %d, completed: its result taken, not trained again",
            trial.number,
            twin.number,
        )
        set_user_attrs(trial, {REUSED_FROM: twin.number, OUTPUT_DIR: TrialRecord.of(twin).output_dir})
        self.reused += 1
        self._finish(self.running.pop(trial.number), TrialOutcome(value=reused_value(twin)))
        return None

    def _finish(self, trial: Trial, outcome: TrialOutcome | WorkerDied) -> None:
        if isinstance(outcome, WorkerDied):
            log.error("trial %d: %s", trial.number, outcome.error)
            self.shared.fail(trial, str(outcome.error), requeue=True, counts_as_retry=True)
            return self._ended(trial, "FAIL", "(queued again)")
        if outcome.fatal:
            self.shared.fail(trial, str(outcome.error), requeue=True)
            raise EnvironmentFault(
                f"trial {trial.number}: {outcome.error}; fix that, then rerun the same command to resume"
            )
        if outcome.error is not None:
            return self._failed(trial, outcome.error, outcome.traceback)
        verdict = judge(outcome.value, list(self.objectives), self.constraints)
        set_user_attrs(trial, verdict.records)
        if verdict.state == "PRUNED":
            self.ran["PRUNED"] += 1
            self.shared.prune(trial)
            return self._ended(trial, "PRUNED", verdict.detail)
        if verdict.state == "FAIL":
            self._failed(trial, verdict.detail)
            if verdict.objectives_missing:
                raise SweeplabError(
                    f"trial {trial.number}: {verdict.detail}. Set hydra.sweeper.objectives to metrics "
                    "the task returns"
                )
            return
        for metric, violation in verdict.violations.items():
            trial.set_constraint(metric, violation)
        self.ran["COMPLETE"] += 1
        self.shared.complete(trial, verdict.values)
        self._ended(trial, "COMPLETE", verdict.detail)

    def _ended(self, trial: Trial, state: str, detail: str) -> None:
        counts = Counter(t.state.name for t in self.shared.study.get_trials(deepcopy=False))
        self.progress.trial_ended(trial.number, state, detail, counts, progress=not self.together)

    def _failed(self, trial: Trial, error: str, trace: str | None = None) -> None:
        self.ran["FAIL"] += 1
        self.errors[error] += 1
        if trace:
            log.error("trial %d failed: %s", trial.number, trace.rstrip())
        self.shared.fail(trial, error)
        self._ended(trial, "FAIL", error.splitlines()[0])
        ended = sum(self.ran.values())
        if self.ran["FAIL"] >= self.s.max_failures:
            self.stop = f"{self.ran['FAIL']} trials failed in this run (max_failures {self.s.max_failures})"
        elif ended >= MIN_TRIALS_FOR_RATE and self.ran["FAIL"] / ended > self.s.max_failure_rate:
            self.stop = (
                f"{self.ran['FAIL']} of {ended} trials failed in this run "
                f"(more than max_failure_rate {self.s.max_failure_rate:g})"
            )

    # --- the end ----------------------------------------------------------------------------------

    def _summarise(self) -> None:
        study = self.shared.study
        states = Counter(t.state.name for t in study.get_trials(deepcopy=False))
        ran = sum(self.ran.values())
        done = ", ".join(f"{n} {k}" for k, n in sorted(self.ran.items())) or "none"
        reused = f"; {self.reused} of them took a completed twin's result" if self.reused else ""
        log.info("this run: %d trials (%s)%s", ran, done, reused)
        log.info(
            "study %r: %s; storage %s; outputs in %s",
            self.s.study_name,
            ", ".join(f"{n} {k}" for k, n in sorted(states.items())),
            masked(self.shared.url),
            self.sweep_dir,
        )
        if states["COMPLETE"]:
            best = pareto_front(study) if len(self.objectives) > 1 else ranked(study)[:1]
            for t in best[:5]:
                values = ", ".join(f"{m}={v:.4g}" for m, v in zip(self.objectives, t.values, strict=True))
                searched = " ".join(f"{k}={v}" for k, v in t.params.items()) or "(no searched values)"
                log.info(
                    "best: trial %d, %s, %s -> %s", t.number, values, searched, TrialRecord.of(t).output_dir
                )
        rate = self.ran["FAIL"] / ran if ran else 0.0
        if self.stop is None and rate > self.s.max_failure_rate:
            self.stop = (
                f"{self.ran['FAIL']} of {ran} trials failed this run (more than max_failure_rate "
                f"{self.s.max_failure_rate:g})"
            )
        if self.stop is not None:
            error, times = self.errors.most_common(1)[0]
            log.error(
                "stopped: %s; the most common error (%d trials): %s", self.stop, times, error.splitlines()[0]
            )
            raise SystemExit(1)
