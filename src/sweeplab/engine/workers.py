"""Where trials run: in the controller's own process (`n_jobs: 1`), or in a pool of worker processes.

Workers are spawned, not forked: a fork would copy the controller's threads and any CUDA state. Each has
its own pipe, so a worker that dies (killed for memory, say) fails only its own trial, and a new worker
takes its place. Workers ignore Ctrl-C (the controller decides what an interrupt means) and die with the
controller, so no worker outlives the command. Each gets an equal share of the CPU threads and, when
there are GPUs, one of them (round-robin), so `n_jobs` trials share the machine instead of
oversubscribing it.
"""

import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from sweeplab.stopping import Interrupted, ask_to_stop

log = logging.getLogger("sweeplab.sweep")

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGUSR2}
# What a runner runs: a job (one trial, or a pack of them) -> one outcome per trial. A module-level
# function, so that a spawned worker can import it by name.
Run = Callable[[Any], list]


@dataclass(frozen=True)
class WorkerDied:
    """The outcome of each trial of a job whose worker process died (killed, out of memory)."""

    error: str


class InlineRunner:
    """`n_jobs: 1`: each trial runs in this process as it is submitted."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._done: list[tuple[tuple[int, ...], list]] = []

    def free(self) -> int:
        return 0 if self._done else 1

    def submit(self, key: tuple[int, ...], job: Any) -> None:
        self._done.append((key, self.run(job)))

    def wait(self, timeout: float) -> list[tuple[tuple[int, ...], list]]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        pass


def cpu_slots() -> int:
    """The CPU cores this process may use: in a SLURM job its share of the node (cpus_per_task), else
    the cores it is allowed to run on."""
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def runner_for(n_jobs: int, jobs: int, run: Run) -> "InlineRunner | WorkerPool":
    """`n_jobs: 1` runs in this process; above, a pool of no more workers than can have work (`jobs`,
    the jobs the trials still to start make) or than the machine has cores, each started when a job
    first needs it. Each worker's threads follow from n_jobs and the cores alone, never from the trials
    left: a run's numbers on CPU depend on its thread count, and a resumed study must compute as before."""
    if n_jobs == 1:
        return InlineRunner(run)
    cores = cpu_slots()
    at_once = min(n_jobs, cores)
    if n_jobs > cores:
        log.warning(
            "hydra.sweeper.n_jobs=%d is more than the %d CPU cores here: %d jobs run at once",
            n_jobs,
            cores,
            at_once,
        )
    return WorkerPool(max(1, min(at_once, jobs)), run, threads=max(1, cores // at_once))


class WorkerPool:
    """Up to `size` worker processes of `threads` CPU threads each, each started when a job first needs
    it: a pool never holds more workers than it has had jobs at once."""

    def __init__(self, size: int, run: Run, threads: int) -> None:
        import torch  # the controller only asks how many GPUs there are; it never initialises CUDA

        self.threads = threads
        self.gpus = torch.cuda.device_count()
        self.context, self.run = mp.get_context("spawn"), run
        self.workers: list[tuple[mp.Process, Connection] | None] = [None] * size
        self.busy: dict[int, tuple[int, ...]] = {}  # slot -> the trials it runs (one, or a pack)

    def _start(self, slot: int) -> tuple[mp.Process, Connection]:
        ours, theirs = self.context.Pipe()
        gpu = str(slot % self.gpus) if self.gpus else None
        process = self.context.Process(
            target=_serve,
            args=(theirs, self.run, self.threads, gpu, os.getpid()),
            name=f"trial-worker-{slot}",
        )
        process.start()
        theirs.close()
        return process, ours

    def free(self) -> int:
        return len(self.workers) - len(self.busy)

    def submit(self, key: tuple[int, ...], job: Any) -> None:
        idle = [s for s in range(len(self.workers)) if s not in self.busy]
        slot = next((s for s in idle if self.workers[s] is not None), idle[0])  # a started one first
        self.busy[slot] = key
        if self.workers[slot] is None:
            # The stop signals wait while a worker starts, which it inherits: a Ctrl-C to the terminal's
            # group must not print its traceback while it starts up (it unblocks them once its handlers
            # are set), and one that reaches this process is handled once the worker is recorded, so
            # close() ends it too, rather than lost as an ignored one would be.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                self.workers[slot] = self._start(slot)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self._worker(slot)[1].send(job)

    def wait(self, timeout: float) -> list[tuple[tuple[int, ...], list]]:
        """The trials that ended within `timeout` seconds, with their outcomes; a worker that died gives
        its trials a `WorkerDied` outcome and is replaced."""
        handles = {}
        for slot in self.busy:
            process, conn = self._worker(slot)
            handles[conn] = handles[process.sentinel] = slot
        done = []
        for slot in {handles[h] for h in wait(list(handles), timeout)}:
            process, conn = self._worker(slot)
            outcome = None
            if conn.poll():
                try:
                    outcome = conn.recv()
                except (EOFError, OSError):
                    outcome = None
            if outcome is None:
                process.join(5)
                outcome = [WorkerDied(_death(process.exitcode))] * len(self.busy[slot])
                conn.close()
                self.workers[slot] = None  # the next job starts another
            done.append((self.busy.pop(slot), outcome))
        return done

    def _worker(self, slot: int) -> tuple[mp.Process, Connection]:
        worker = self.workers[slot]
        assert worker is not None, "a busy slot has a worker"
        return worker

    def close(self) -> None:
        """Stop every worker. An idle one ends by itself once its pipe closes (a signal during its
        interpreter's shutdown would print a traceback); one still running a trial (an interrupted
        sweep) gets SIGTERM; any left after 5 seconds, SIGKILL."""
        started = [(slot, w) for slot, w in enumerate(self.workers) if w is not None]
        for slot, (process, conn) in started:
            conn.close()
            if slot in self.busy and process.is_alive():
                process.terminate()
        deadline = time.monotonic() + 5
        for _, (process, _) in started:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(2)
            if process.is_alive():
                process.kill()
                process.join()


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        why = " (out of memory?)" if exitcode == -signal.SIGKILL else ""
        return f"its worker process was killed by {name}{why}"
    return f"its worker process exited with code {exitcode}"


def _serve(conn: Connection, run: Run, threads: int, gpu: str | None, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # SLURM warns the whole job; the controller acts on it
    # the controller stops a sweep with SIGTERM: a training loop saves its step first (it checkpoints
    # only every `trainer.checkpoint_every` seconds otherwise), anything else exits through Python's
    # own shutdown, which releases what the trial held (tqdm's lock, say)
    signal.signal(signal.SIGTERM, _stop_or_exit)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked while the pool started it
    _die_with(parent)
    if gpu is not None:  # before the first CUDA call, so the trial's "cuda" is this worker's GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    torch.set_num_threads(threads)
    while True:
        try:
            job: Any = conn.recv()
        except (EOFError, OSError):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # nothing left to stop: shut down undisturbed
            return  # the controller closed the pipe
        try:
            outcome = run(job)
        except Interrupted as err:  # its loop saved the step it stopped at; the controller requeues it
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            sys.exit(128 + err.signum)
        conn.send(outcome)


def _stop_or_exit(signum: int, frame: Any) -> None:
    if not ask_to_stop(signum):
        _exit_once(signum, frame)


def _exit_once(signum: int, frame: Any) -> None:
    """SIGTERM: exit through Python's shutdown, which a second SIGTERM must not interrupt."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(128 + signum)


def _die_with(parent: int) -> None:
    """End this worker when the controller ends, however it ends (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the controller died before the line above took effect
        os._exit(1)
