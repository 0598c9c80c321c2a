"""What a running sweep prints: a line per finished trial and the study's progress (a fake clock makes
the times exact), and `hydra.sweeper.timeout`."""

import io
import logging
from collections import Counter

from tqdm import tqdm

from support import LR, load, states
from sweeplab.engine.progress import Progress, clock_text
from sweeplab.logs import BarSafeHandler


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_are_golden(caplog):
    clock = FakeClock()
    progress = Progress(total=10, done=2, clock=clock, terminal=False)  # a resumed study: 2 done before
    caplog.set_level(logging.INFO, logger="sweeplab.sweep")
    with progress.shown():
        clock.now += 12.4
        progress.trial_ended(2, "COMPLETE", "val_acc=0.7125", Counter(COMPLETE=3, RUNNING=1))
        clock.now += 30
        progress.trial_ended(3, "PRUNED", "(pruned at step 300)", Counter(COMPLETE=3, PRUNED=1, FAIL=1))
        clock.now += 3600
        progress.trial_ended(4, "FAIL", "ValueError: boom", Counter(COMPLETE=3, PRUNED=1, FAIL=2))
        clock.now += 5
        progress.trial_ended(9, "COMPLETE", "val_acc=0.8", Counter(COMPLETE=9, PRUNED=1, FAIL=2))
    assert caplog.messages == [
        "trial 2 COMPLETE val_acc=0.7125 | study: 3/10 finished (3 COMPLETE, 1 RUNNING)",
        "progress: 3/10 trials (30%), 0:12 elapsed, about 1:27 left",
        "trial 3 PRUNED (pruned at step 300) | study: 4/10 finished (3 COMPLETE, 1 PRUNED, 1 FAIL)",
        "progress: 4/10 trials (40%), 0:42 elapsed, about 2:07 left",
        "trial 4 FAIL ValueError: boom | study: 4/10 finished (3 COMPLETE, 1 PRUNED, 2 FAIL)",
        "progress: 4/10 trials (40%), 1:00:42 elapsed, about 3:02:07 left",
        "trial 9 COMPLETE val_acc=0.8 | study: 10/10 finished (9 COMPLETE, 1 PRUNED, 2 FAIL)",
        "progress: 10/10 trials (100%), 1:00:47 elapsed, done",
    ]


def test_before_any_trial_ends_the_time_left_is_not_guessed(caplog):
    progress = Progress(total=4, done=0, clock=FakeClock(), terminal=False)
    caplog.set_level(logging.INFO, logger="sweeplab.sweep")
    progress.trial_ended(0, "FAIL", "boom", Counter(FAIL=1))
    assert caplog.messages[-1] == "progress: 0/4 trials (0%), 0:00 elapsed, time left not known yet"
    assert clock_text(59.6) == "1:00" and clock_text(3600) == "1:00:00"


def test_on_a_terminal_the_progress_is_a_bar_over_trials(capsys):
    clock = FakeClock()
    progress = Progress(total=5, done=1, clock=clock, terminal=True)
    with progress.shown():
        clock.now += 10
        progress.trial_ended(1, "COMPLETE", "", Counter(COMPLETE=2))
        assert progress.bar is not None and progress.bar.n == 2 and progress.bar.total == 5
    assert progress.bar is None
    assert "2/5" in capsys.readouterr().err


def test_no_trial_starts_after_the_timeout(tmp_path, sweeplab):
    # the first trial (3,000 steps: longer than the timeout on any machine) starts at once and ends
    done = sweeplab(
        "train", "-m", LR, "hydra.sweeper.n_trials=5", "hydra.sweeper.timeout=0.3", "trainer.max_steps=3000"
    )
    assert done.returncode == 0, done.stdout
    assert "timeout: 0.3 s have passed (hydra.sweeper.timeout); no new trial starts" in done.stdout
    assert states(load(tmp_path, "default")) == {"COMPLETE": 1}  # the first ran to its end
    assert "trial 0 COMPLETE val_acc=" in done.stdout and "| study: 1/5 finished (1 COMPLETE)" in done.stdout


def test_a_log_line_prints_above_a_progress_bar_not_over_it():
    stream = io.StringIO()
    handler = BarSafeHandler(stream)
    bar = tqdm(total=3, file=stream, desc="trials")
    bar.update(1)
    handler.emit(logging.LogRecord("sweeplab", logging.INFO, __file__, 1, "trial 0 COMPLETE", None, None))
    bar.close()
    out = stream.getvalue()
    before = out[: out.index("trial 0 COMPLETE")]
    assert before.endswith("\r") and "trials" in before  # the bar's line was cleared first
    assert "trial 0 COMPLETE\n" in out and "trials" in out[out.index("trial 0 COMPLETE") :]  # then redrawn
