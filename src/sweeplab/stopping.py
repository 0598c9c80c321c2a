"""Stopping a run between two steps, with a checkpoint of the step it stopped at.

A signal that ends a sweep (Ctrl-C, SIGTERM, SLURM's SIGUSR2 warning of a time limit or preemption)
raises `Interrupted` where the process is, and the interrupted trial's retry resumes from its last
checkpoint. While a training loop runs its steps (`steps_running`), the sweep's signal handler asks it
to stop instead (`ask_to_stop`): at the end of the step the loop saves its resume checkpoint at that step
and raises `Interrupted` itself, so the retry loses nothing. A second signal, or one that comes while
no loop runs steps (loading data, composing), raises at once.
"""

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class Interrupted(BaseException):
    """A signal that ends the sweep: raised where the process is, like KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    def describe(self) -> str:
        if self.signum == signal.SIGUSR2:
            return "interrupted (SIGUSR2: SLURM's warning of the job's time limit or of its preemption)"
        return f"interrupted ({self})"


@contextlib.contextmanager
def signals_raise(worker: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM (and in a SLURM worker, SIGUSR2: its time limit is near, or it is preempted)
    raise Interrupted in the main thread, so the sweep fails and requeues what was running; a training
    loop running steps in this process stops at the end of its step first, saving it."""

    def handler(signum: int, frame: Any) -> None:
        if not ask_to_stop(signum):
            raise Interrupted(signum)

    signals = (signal.SIGINT, signal.SIGTERM, *((signal.SIGUSR2,) if worker else ()))
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


_running = False  # a training loop runs steps and looks at `_asked` after each
_asked: int | None = None  # the signal it was asked to stop for


@contextlib.contextmanager
def steps_running() -> Iterator[None]:
    """Around a training loop's steps. A stop asked for and not acted on (the last step had run)
    raises Interrupted as the loop ends."""
    global _running, _asked
    _running, _asked = True, None
    try:
        yield
        signum = _asked
    finally:
        _running, _asked = False, None
    if signum is not None:
        raise Interrupted(signum)


def ask_to_stop(signum: int) -> bool:
    """For a signal handler: True when a training loop will stop at the end of its step; False when the
    handler must raise now (no loop runs steps, or it was asked already)."""
    global _asked
    if not _running or _asked is not None:
        return False
    _asked = signum
    return True


def stop_asked() -> int | None:
    """The signal the running loop is asked to stop for, or None; clears it (the loop acts on it now)."""
    global _asked
    signum, _asked = _asked, None
    return signum
