"""What a trial's result means for its study (`sweeper.verdict.judge`)."""

import math

import pytest

from sweeplab.engine.records import ERROR, METRICS, REPLICATES
from sweeplab.sweeper.constraints import parse_constraints
from sweeplab.sweeper.verdict import _as_metrics, judge


@pytest.mark.parametrize(
    ("value", "objectives", "metrics"),
    [
        ({"val_acc": 0.5, "params": 10}, ["val_acc"], {"val_acc": 0.5, "params": 10}),
        (0.25, ["value"], {"value": 0.25}),
        ((0.25, 3.0), ["value_0", "value_1"], {"value_0": 0.25, "value_1": 3.0}),  # hydra-optuna-sweeper's
    ],
)
def test_what_a_task_returns_is_read_by_metric(value, objectives, metrics) -> None:
    assert _as_metrics(value, objectives) == metrics


def test_a_complete_trial_has_its_values_in_objective_order_and_its_constraint_violations() -> None:
    limit = parse_constraints({"params": "<= 1000"}, None)
    verdict = judge({"params": 1200, "val_acc": 0.75, "steps": 10}, ["val_acc", "params"], limit)
    assert verdict.state == "COMPLETE" and verdict.values == [0.75, 1200.0]
    assert verdict.violations == {"params": 200.0} and verdict.detail == "val_acc=0.75, params=1200"
    assert verdict.records == {METRICS: {"params": 1200, "val_acc": 0.75, "steps": 10}}


def test_replicates_are_stored_apart_and_infinite_values_stored_as_null() -> None:
    members = [{"seed": 0, "val_acc": 0.5}, {"seed": 1, "val_acc": math.inf}]
    verdict = judge({"val_acc": 0.5, REPLICATES: members}, ["val_acc"], {})
    assert verdict.records[REPLICATES] == [{"seed": 0, "val_acc": 0.5}, {"seed": 1, "val_acc": None}]
    assert verdict.records[METRICS] == {"val_acc": 0.5}


def test_pruned_and_diverged_runs_end_pruned_a_diverged_one_saying_whose_loss() -> None:
    pruned = judge({"status": "pruned", "steps": 300, "val_acc": 0.2}, ["val_acc"], {})
    assert (pruned.state, pruned.detail, ERROR in pruned.records) == ("PRUNED", "(pruned at step 300)", False)
    diverged = judge({"status": "diverged", "steps": 40, "replicate": 2}, ["val_acc"], {})
    assert diverged.state == "PRUNED" and diverged.detail == "(diverged at step 40)"
    assert diverged.records[ERROR] == "diverged: the loss of replicate 2 became NaN or infinite by step 40"


@pytest.mark.parametrize(
    ("value", "detail", "missing"),
    [
        ({"val_loss": 0.3}, "the run reported no val_acc; it reported val_loss", True),
        ({}, "the run reported no val_acc; it reported nothing", True),
        ({"val_acc": math.nan}, "objective values are not finite: [nan]", False),
        ({"val_acc": 0.5}, "the run reported no finite params for its constraint", False),
    ],
)
def test_a_result_that_cannot_be_told_fails_the_trial_saying_why(value, detail, missing) -> None:
    verdict = judge(value, ["val_acc"], parse_constraints({"params": ">= 1"}, None))
    assert (verdict.state, verdict.detail, verdict.objectives_missing) == ("FAIL", detail, missing)
