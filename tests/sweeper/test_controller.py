"""The sweep controller's verdict on a trial's outcome (sweeplab.sweeper.controller), without a sweep:
what it tells the study, what it records on the trial, when the sweep stops. The study's side is a
stand-in that notes the calls; the trials are real Optuna trials of an in-memory study."""

import math
from collections import Counter
from types import SimpleNamespace

import optuna
import pytest

from sweeplab.config import SweeplabError
from sweeplab.engine.workers import WorkerDied
from sweeplab.files import EnvironmentFault
from sweeplab.sweeper.constraints import parse_constraints
from sweeplab.sweeper.controller import SweepController
from sweeplab.sweeper.job import TrialOutcome


class StudyStandIn:
    """SharedStudy's finishing calls, noted."""

    def __init__(self) -> None:
        self.study = optuna.create_study(direction="maximize")
        self.calls: list[tuple] = []

    def complete(self, trial, values) -> None:
        self.calls.append(("complete", trial.number, values))

    def prune(self, trial) -> None:
        self.calls.append(("prune", trial.number))

    def fail(self, trial, error, requeue=False, counts_as_retry=False) -> None:
        self.calls.append(("fail", trial.number, error, requeue, counts_as_retry))


def controller(
    objectives=("val_acc",), max_failures=5, max_failure_rate=0.2, constraints=None
) -> SweepController:
    c = SweepController.__new__(SweepController)
    c.s = SimpleNamespace(max_failures=max_failures, max_failure_rate=max_failure_rate)
    c.objectives, c.shared = {o: "maximize" for o in objectives}, StudyStandIn()
    c.constraints = parse_constraints(constraints or {}, None)
    c.ran, c.errors, c.stop, c.together = Counter(), Counter(), None, 0
    c.progress = SimpleNamespace(ended=[], trial_ended=lambda n, state, detail, counts, progress: None)
    return c


def test_a_completed_run_completes_its_trial_with_its_metrics_recorded() -> None:
    c = controller()
    trial = c.shared.study.ask()
    c._finish(trial, TrialOutcome(value={"val_acc": 0.75, "test_acc": math.nan, "status": "completed"}))
    assert c.shared.calls == [("complete", 0, [0.75])]
    assert trial.user_attrs["metrics"] == {"val_acc": 0.75, "test_acc": None, "status": "completed"}
    assert c.ran == Counter(COMPLETE=1)


@pytest.mark.parametrize("status", ["pruned", "diverged"])
def test_a_run_stopped_early_is_pruned_not_failed(status: str) -> None:
    c = controller()
    trial = c.shared.study.ask()
    c._finish(trial, TrialOutcome(value={"val_acc": 0.3, "status": status, "steps": 40}))
    assert c.shared.calls == [("prune", 0)] and c.ran == Counter(PRUNED=1)
    assert ("error" in trial.user_attrs) == (status == "diverged")


def test_a_task_without_the_objective_stops_the_sweep_naming_what_it_reported() -> None:
    c = controller(objectives=("val_accuracy",))
    trial = c.shared.study.ask()
    with pytest.raises(SweeplabError, match="reported no val_accuracy; it reported val_acc, status"):
        c._finish(trial, TrialOutcome(value={"val_acc": 0.7, "status": "completed"}))
    assert c.shared.calls[0][0] == "fail"


def test_a_non_finite_objective_fails_the_trial_and_the_sweep_goes_on() -> None:
    c = controller()
    trial = c.shared.study.ask()
    c._finish(trial, TrialOutcome(value={"val_acc": math.inf}))
    assert c.shared.calls == [("fail", 0, "objective values are not finite: [inf]", False, False)]
    assert c.stop is None


def test_a_fault_of_the_machine_requeues_the_trial_and_stops_the_sweep() -> None:
    c = controller()
    trial = c.shared.study.ask()
    with pytest.raises(EnvironmentFault, match="no space left; fix that, then rerun the same command"):
        c._finish(trial, TrialOutcome(error="no space left", fatal=True))
    assert c.shared.calls == [("fail", 0, "no space left", True, False)]


def test_a_dead_worker_requeues_its_trial_as_a_retry() -> None:
    c = controller()
    trial = c.shared.study.ask()
    c._finish(trial, WorkerDied("its worker was killed (SIGKILL)"))
    assert c.shared.calls == [("fail", 0, "its worker was killed (SIGKILL)", True, True)]


def test_a_completed_trial_carries_its_constraints_and_one_without_the_bounded_metric_fails() -> None:
    c = controller(constraints={"params": "<= 1000"})
    trial = c.shared.study.ask()
    c._finish(trial, TrialOutcome(value={"val_acc": 0.75, "params": 1500, "status": "completed"}))
    assert trial.constraints == {"params": 500.0} and c.shared.calls == [("complete", 0, [0.75])]
    other = c.shared.study.ask()
    c._finish(other, TrialOutcome(value={"val_acc": 0.75, "status": "completed"}))
    assert c.shared.calls[-1] == (
        "fail",
        1,
        "the run reported no finite params for its constraint",
        False,
        False,
    )


def test_failures_stop_new_trials_at_max_failures_and_at_the_failure_rate() -> None:
    c = controller(max_failures=2)
    for _ in range(2):
        c._finish(c.shared.study.ask(), TrialOutcome(error="ValueError: bad"))
    assert c.stop == "2 trials failed in this run (max_failures 2)" and c.errors == Counter(
        {"ValueError: bad": 2}
    )

    c = controller(max_failures=100, max_failure_rate=0.2)
    for i in range(10):
        outcome = (
            TrialOutcome(error="boom") if i >= 7 else TrialOutcome(value={"val_acc": 0.5})
        )  # judged at a failure
        c._finish(c.shared.study.ask(), outcome)
    assert c.stop == "3 of 10 trials failed in this run (more than max_failure_rate 0.2)"
