"""What a SLURM worker job runs: the command the user typed on the login node, again, as a worker.

The worker re-runs the same Hydra app with the same arguments in the same folder, so it composes the
same study and takes part in it like any `sweeplab train -m` process on the storage: it claims trials
until none is left to start, then exits 0 (at once, when it finds nothing to do). It does not wait for
trials that other jobs run: a job killed without warning has its trials reclaimed by the next worker
that claims (the heartbeat, or at once on the same host).

SLURM warns a job `signal_delay_s` before its time limit, and on preemption, with SIGUSR2: the worker
then marks its running trials FAIL and queues them again (they resume from their last checkpoint), and
requeues its own job, up to `max_requeues` times, so the study goes on when the job starts again.
"""

import functools
import importlib
import logging
import os
import runpy
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("sweeplab.sweeper.slurm")
WORKER_ENV = "SWEEPLAB_SLURM_WORKER"  # set in a worker job: the sweeper runs trials instead of submitting
PREEMPTED = 128 + signal.SIGUSR2  # the sweep's exit code after SIGUSR2


@dataclass(frozen=True)
class WorkerSpec:
    argv: list[str]  # the submitting command's sys.argv, run again in the job
    cwd: str  # the folder it ran in: relative paths (studies/, outputs/, data/) mean the same there
    task: tuple[str, str]  # module and name of the Hydra app's task function
    max_requeues: int


def in_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def job_record() -> dict[str, str] | None:
    """This SLURM job's id and log file, for the trials it runs; None outside a worker job."""
    if not in_worker():
        return None
    import submitit

    env = submitit.JobEnvironment()
    return {"job_id": env.job_id, "log": str(env.paths.stdout), "host": env.hostname}


def run_worker(spec: WorkerSpec) -> int:
    """Run the sweep as a worker; requeue this job when SLURM warned it of its end (SIGUSR2)."""
    os.chdir(spec.cwd)
    os.environ[WORKER_ENV] = "1"
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus:  # the job's share of the node, not every core of it
        os.environ.setdefault("OMP_NUM_THREADS", cpus)
        import torch

        torch.set_num_threads(int(cpus))
    code = _run_app(spec)
    if code == PREEMPTED:
        _requeue(spec.max_requeues)
    if code:
        raise SystemExit(code)  # the job's state in SLURM says it failed
    return code


def _run_app(spec: WorkerSpec) -> int:
    sys.argv = list(spec.argv)
    module, _ = spec.task
    try:
        if module == "__main__":  # a script: run it as the user did
            runpy.run_path(spec.argv[0], run_name="__main__")
        else:
            app: Any = _hydra_app(spec.task)
            app()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


def _hydra_app(task: tuple[str, str]) -> Any:
    """The `@hydra.main` function of the task: the module attribute, which is Hydra's wrapper."""
    module, name = task
    return functools.reduce(getattr, name.split("."), importlib.import_module(module))


def _requeue(max_requeues: int) -> None:
    import submitit

    job_id = submitit.JobEnvironment().job_id
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    if restarts >= max_requeues:
        log.warning(
            "job %s: not requeued, it was requeued %d times already (hydra.sweeper.slurm.max_requeues); "
            "rerun the submitting command to carry on",
            job_id,
            restarts,
        )
        return
    log.warning(
        "job %s: requeued (%d of at most %d); its trials resume when it starts again",
        job_id,
        restarts + 1,
        max_requeues,
    )
    # SLURM ends this job's processes as it requeues it: nothing may come after this
    try:
        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60, capture_output=True)
    except (OSError, subprocess.SubprocessError) as err:
        log.error("job %s: could not requeue it (%s); rerun the submitting command to carry on", job_id, err)
