"""A study's constraints (`hydra.sweeper.constraints: {params: "<= 100000"}`): bounds on metrics a run
returns, handed to Optuna (`Trial.set_constraint`), whose samplers steer away from infeasible trials and
whose Pareto front (`study.best_trials`) is made of feasible ones. The report marks the rows whose means
break one."""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeplab.config import ConfigError
from sweeplab.sweeper.validate import closest

BOUND = re.compile(r"^\s*(<=|>=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # "<=" or ">="
    bound: float

    def violation(self, value: float) -> float:
        """Optuna's constraint value: zero or less where `value` meets the bound, else how far it misses."""
        return value - self.bound if self.op == "<=" else self.bound - value

    def met(self, value: float) -> bool:
        return math.isfinite(value) and self.violation(value) <= 0

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_constraints(node: Mapping[str, Any], metrics: Sequence[str] | None) -> dict[str, Constraint]:
    """`{metric: "<= N" | ">= N"}`; each metric one the task returns (`metrics`, when it declares them).
    A malformed one is refused, naming it."""
    constraints = {}
    for metric, text in (node or {}).items():
        field = f"hydra.sweeper.constraints.{metric}"
        if metrics is not None and metric not in metrics:
            raise ConfigError(
                field, f"{metric!r} is not a metric the task returns{closest(metric, list(metrics))}"
            )
        match = BOUND.match(str(text)) if isinstance(text, str) else None
        if match is None:
            raise ConfigError(field, f'{text!r} is not a bound; write it as "<= 100000" or ">= 0.5"')
        constraints[metric] = Constraint(metric, match.group(1), float(match.group(2)))
    return constraints


def stored(constraints: Mapping[str, Constraint]) -> dict[str, str]:
    """As the study's signature keeps them (a resumed study must have the same)."""
    return {m: f"{c.op} {c.bound:g}" for m, c in constraints.items()}
