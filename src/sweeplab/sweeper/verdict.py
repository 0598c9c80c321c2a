"""What a trial's result means for its study: the state it ends in, the values it is told with, the
records stored on it and its constraints' violations. Pure: the controller stores what this decides."""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sweeplab.engine.records import ERROR, METRICS, REPLICATES
from sweeplab.sweeper.constraints import Constraint


@dataclass(frozen=True)
class Verdict:
    state: str  # COMPLETE, PRUNED or FAIL
    records: dict[str, Any]  # stored on the trial whatever its state: its metrics, each member's
    detail: str = ""  # the progress line's end: the values, why it stopped or failed
    values: list[float] = field(default_factory=list)  # COMPLETE: one per objective
    violations: dict[str, float] = field(default_factory=dict)  # COMPLETE: Optuna's constraint values
    objectives_missing: bool = False  # FAIL because the objectives name what the task does not return


def judge(value: Any, objectives: list[str], constraints: Mapping[str, Constraint]) -> Verdict:
    """The verdict on what a trial's task returned (`value`), for a study of `objectives`."""
    metrics = _as_metrics(value, objectives)
    records: dict[str, Any] = {}
    if REPLICATES in metrics:  # each member's seed and metrics (sweeplab.sweeper.replicates)
        records[REPLICATES] = [_json_safe(m) for m in metrics.pop(REPLICATES)]
    records[METRICS] = _json_safe(metrics)
    status = metrics.get("status", "completed")
    if status == "diverged":
        member = metrics.get("replicate")
        whose = f"the loss of replicate {member}" if member else "the loss"
        records[ERROR] = f"diverged: {whose} became NaN or infinite by step {metrics.get('steps')}"
    if status in ("pruned", "diverged"):  # both stopped early: finished, not failed
        return Verdict("PRUNED", records, f"({status} at step {metrics.get('steps')})")
    missing = [m for m in objectives if not isinstance(metrics.get(m), int | float)]
    if missing:  # every trial would fail alike: the controller stops the sweep
        reported = ", ".join(map(str, metrics)) if metrics else "nothing"
        error = f"the run reported no {', '.join(missing)}; it reported {reported}"
        return Verdict("FAIL", records, error, objectives_missing=True)
    values = [float(metrics[m]) for m in objectives]
    if not all(math.isfinite(v) for v in values):
        return Verdict("FAIL", records, f"objective values are not finite: {values}")
    violations = {}
    for metric, constraint in constraints.items():  # read by Optuna's samplers and best_trials
        found = metrics.get(metric)
        if not isinstance(found, int | float) or not math.isfinite(found):
            return Verdict("FAIL", records, f"the run reported no finite {metric} for its constraint")
        violations[metric] = constraint.violation(float(found))
    shown = ", ".join(f"{m}={v:.4g}" for m, v in zip(objectives, values, strict=True))
    return Verdict("COMPLETE", records, shown, values, violations)


def _as_metrics(value: Any, objectives: list[str]) -> dict[str, Any]:
    """What a task returned, by metric: a dict as it is; a float for the one objective; a tuple or list
    (a multi-objective task of hydra-optuna-sweeper's kind), one value per objective in order."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple) and len(objectives) > 1:
        return dict(zip(objectives, value, strict=False))
    return {objectives[0]: value}


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
