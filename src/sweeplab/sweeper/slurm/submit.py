"""`sweeplab train -m ... hydra.sweeper.slurm.jobs=N` on a login node: the study is created (or found) in
its shared storage, then N worker jobs, one job array, are submitted through submitit. Each job runs the
same command as a worker (`sweeplab.sweeper.slurm.worker`). The command then follows the study, from the
storage, until it is done or every job has ended; `--detach` returns at once with the job ids instead.
"""

import logging
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from sweeplab.config import SweeplabError
from sweeplab.engine.lifecycle import DONE, SharedStudy
from sweeplab.engine.progress import Progress
from sweeplab.engine.records import SLURM_JOBS, StudyRecord, TrialRecord
from sweeplab.engine.storage import masked
from sweeplab.files import EnvironmentFault
from sweeplab.sweeper.settings import SweeperSettings
from sweeplab.sweeper.slurm.worker import WorkerSpec, run_worker

log = logging.getLogger("sweeplab.sweeper.slurm")
POLL = 2.0  # seconds between looks at the study
QUEUE_POLL = 15.0  # seconds between looks at the queue (squeue asks the controller: not too often)
SQUEUE_PATIENCE = 600.0  # seconds of failing `squeue` after which the command stops following


def submit_study(shared: SharedStudy, s: SweeperSettings, sweep_dir: Path, task: tuple[str, str]) -> None:
    left = shared.to_start()
    if left <= 0 or shared.exhausted():
        running = shared.count(TrialState.RUNNING)
        log.info(
            "study %r: %d of %d finished%s; nothing to submit",
            s.study_name,
            shared.count(*DONE),
            shared.spec.n_trials,
            f", {running} running in other jobs" if running else "",
        )
        return
    folder = Path(s.slurm.folder or sweep_dir / ".slurm").absolute()
    spec = WorkerSpec(list(sys.argv), os.getcwd(), task, s.slurm.max_requeues)
    count = min(s.slurm.jobs, left)
    jobs = _submit_array(_executor(s, folder), spec, count)
    ids = [job.job_id for job in jobs]
    array = ids[0].split("_")[0]  # one job is submitted alone, several as an array
    shared.study.set_user_attr(SLURM_JOBS, [*StudyRecord.of(shared.study).slurm_jobs, *ids])
    url = masked(shared.url)
    log.info(
        "submitted %d worker job(s) for the %d trial(s) left: SLURM job%s %s (partition %s, %d min each); "
        "their logs: %s",
        count,
        left,
        "s" if count > 1 else "",
        ", ".join(ids),
        s.slurm.partition or "default",
        s.slurm.timeout_min,
        folder,
    )
    hint = (
        f"follow them with `squeue -j {array}` and `sweeplab studies show {s.study_name} --storage '{url}'`; "
        f"cancel them with `scancel {array}`"
    )
    if s.slurm.detach:
        log.info("%s", hint)
        return
    try:
        _follow(shared, ids, folder)
    except KeyboardInterrupt:
        log.warning("stopped following; the jobs go on: %s", hint)
        raise SystemExit(130) from None


def _executor(s: SweeperSettings, folder: Path):
    try:
        import submitit
    except ImportError:
        raise SweeplabError(
            "hydra.sweeper.slurm needs submitit: pip install 'sweeplab[slurm]' (or pip install submitit)"
        ) from None
    slurm = s.slurm
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
    given = {
        "job_name": f"sweeplab-{s.study_name}",
        "time": slurm.timeout_min,
        "signal_delay_s": slurm.signal_delay_s,
        "partition": slurm.partition,
        "cpus_per_task": slurm.cpus_per_task,
        "gpus_per_node": slurm.gpus_per_node,
        "mem": f"{round(slurm.mem_gb * 1024)}M" if slurm.mem_gb else None,
        "account": slurm.account,
        "qos": slurm.qos,
        "array_parallelism": slurm.array_parallelism,
        "setup": list(slurm.setup) or None,
        "additional_parameters": dict(slurm.additional_parameters) or None,
    }
    try:
        executor.update_parameters(**{k: v for k, v in given.items() if v is not None})
    except ValueError as err:  # submitit lists the options it knows
        raise SweeplabError(f"hydra.sweeper.slurm: {err}") from None
    return executor


def _submit_array(executor, spec: WorkerSpec, count: int) -> list:
    """`count` worker jobs as one array; sbatch's refusal (a bad account, QoS or option) in one line."""
    from submitit.core.utils import FailedJobError

    try:
        return executor.map_array(run_worker, [spec] * count)
    except FailedJobError as err:
        raise SweeplabError(f"sbatch refused the jobs, nothing was submitted: {err}") from None
    except OSError as err:
        raise EnvironmentFault(f"could not submit the jobs: {err}") from None


def _follow(shared: SharedStudy, ids: list[str], folder: Path) -> None:
    """Progress lines as the jobs finish trials, until the study is done or no job is left."""
    spec = shared.spec
    seen = {t.number for t in _ended(shared)}
    progress = Progress(spec.n_trials, shared.count(*DONE))
    unsure_since: float | None = None  # squeue has failed since then
    looked = time.monotonic()  # at the queue
    with progress.shown():
        while True:
            time.sleep(POLL)
            ended = _ended(shared)
            counts = Counter(t.state.name for t in shared.study.get_trials(deepcopy=False))
            new = sorted((t for t in ended if t.number not in seen), key=lambda t: t.number)
            for trial in new:
                seen.add(trial.number)
                last = trial is new[-1]
                progress.trial_ended(trial.number, trial.state.name, _detail(trial, spec), counts, last)
            if shared.count(*DONE) >= spec.n_trials or shared.exhausted():
                log.info("study %r: done (%d trials finished)", spec.name, shared.count(*DONE))
                return
            if time.monotonic() - looked < QUEUE_POLL:
                continue
            looked = time.monotonic()
            queued = _queued(ids)
            unsure_since = None if queued is not None else unsure_since or time.monotonic()
            if unsure_since is not None and time.monotonic() - unsure_since > SQUEUE_PATIENCE:
                raise EnvironmentFault(
                    f"SLURM's squeue has failed for {SQUEUE_PATIENCE:.0f} s; the jobs ({', '.join(ids)}) may "
                    "still run: check them with squeue, and the study with `sweeplab studies show`"
                )
            if queued is False and not (shared.count(*DONE) >= spec.n_trials or shared.exhausted()):
                raise EnvironmentFault(
                    f"every job ({', '.join(ids)}) has ended with the study at {shared.count(*DONE)} of "
                    f"{spec.n_trials} finished; their logs are in {folder}{_last_words(folder, ids[0])}. "
                    "Rerun the same command to submit workers for the rest"
                )


def _last_words(folder: Path, job: str) -> str:
    """The last line the sweep logged in the first job, which says why it ended."""
    try:
        lines = (folder / f"{job}_0_log.out").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    said = [line for line in lines if line.strip() and not line.startswith("submitit ")]
    return f" (job {job} said: {said[-1]})" if said else ""


def _ended(shared: SharedStudy) -> list[FrozenTrial]:
    return shared.study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    )


def _detail(trial: FrozenTrial, spec) -> str:
    if trial.state == TrialState.COMPLETE:
        names = list(spec.signature.get("objectives") or {})
        return ", ".join(f"{m}={v:.4g}" for m, v in zip(names, trial.values, strict=False))
    return TrialRecord.of(trial).error_line


def _queued(ids: list[str]) -> bool | None:
    """Whether one of the jobs is pending or running; None when `squeue` fails (a busy controller)."""
    try:
        out = subprocess.run(
            ["squeue", "--noheader", "--jobs", ",".join(ids), "--format=%i"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return False if "Invalid job id" in out.stderr else None  # a job long gone is invalid
    return bool(out.stdout.strip())
