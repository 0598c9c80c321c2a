"""What a sweep shows while it runs: a line per finished trial (its number, state, objective and the
study's counts), and the study's progress with the elapsed time and an estimate of the time left, as a
tqdm bar over trials on a terminal and as plain lines otherwise (logs, SLURM, CI)."""

import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator

from tqdm.auto import tqdm

log = logging.getLogger("sweeplab.sweep")
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def clock_text(seconds: float) -> str:
    """1:02:03 or 2:03."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """`total` trials the study should have finished; `done` of them were when this command started.
    The estimate is the study's pace since then (all its processes), so it holds for n_jobs and for
    several commands sharing a study."""

    def __init__(
        self,
        total: int,
        done: int,
        clock: Callable[[], float] = time.monotonic,
        terminal: bool | None = None,
    ) -> None:
        self.total, self.done_before, self.clock = total, done, clock
        self.started = clock()
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.bar: tqdm | None = None

    @contextlib.contextmanager
    def shown(self) -> Iterator["Progress"]:
        if not self.terminal:
            yield self
            return
        self.bar = tqdm(total=self.total, initial=self.done_before, unit="trial", dynamic_ncols=True)
        try:  # log lines print above the bar (sweeplab.logs.BarSafeHandler), not through it
            yield self
        finally:
            self.bar.close()
            self.bar = None

    def trial_ended(
        self, number: int, state: str, detail: str, counts: Counter[str], progress: bool = True
    ) -> None:
        """A trial of this command ended; `counts` are the study's trials per state, this one included.
        `progress`: and the progress line after it (once for several trials that ended together)."""
        done = counts["COMPLETE"] + counts["PRUNED"]
        shown = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s])
        log.info(
            "trial %d %s%s | study: %d/%d finished (%s)",
            number,
            state,
            f" {detail}" if detail else "",
            done,
            self.total,
            shown,
        )
        if not progress:
            return
        elapsed = self.clock() - self.started
        left = self.time_left(done, elapsed)
        estimate = f"about {left} left" if left else "time left not known yet"
        if done >= self.total:
            estimate = "done"
        if self.bar is not None:
            self.bar.n = min(done, self.total)
            self.bar.set_postfix_str(f"~{left} left" if left else "")
        else:
            log.info(
                "progress: %d/%d trials (%d%%), %s elapsed, %s",
                done,
                self.total,
                100 * min(done, self.total) // max(self.total, 1),
                clock_text(elapsed),
                estimate,
            )

    def time_left(self, done: int, elapsed: float) -> str | None:
        finished = done - self.done_before
        if finished <= 0:
            return None
        return clock_text(elapsed / finished * max(self.total - done, 0))
