"""Pruning in a study of several objectives (`hydra.sweeper.pruner.on: METRIC`), which Optuna refuses.

A trial reports METRIC at each evaluation, with the objectives its run knows before training (the task's
`known` metrics: sweeplab's parameter count). Both go to the trial's user attributes (`reported`,
`known`), not to Optuna's intermediate values, which its samplers read with the study's single
direction. At a step, the trial is compared only with the completed trials that are no worse than it on
every known objective: those that could end up dominating it. A small model is never pruned by larger
ones, which it beats on size whatever its accuracy. Against those peers, Optuna's median (or percentile)
rule on METRIC: pruned when its best value so far is worse than their percentile at that step. A task
that declares no known metrics has every completed trial as a peer.

With `reach: true`, also pruned when it can no longer reach the front: even the largest gain any
completed trial made on METRIC from this step to its end (its final value against its best so far here)
would leave it worse than the best final value of its peers, one of which would then dominate it. This
asks where a trial will end, not only where it is; in this space larger models and late learners are
kept by the first rule and stopped by this one once they fall too far behind.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from sweeplab.config import ConfigError
from sweeplab.engine.records import KNOWN, REPORTED

RULES = ("median", "percentile")  # the rules that prune on one objective among several


@dataclass(frozen=True)
class ParetoPruner:
    on: str  # the objective reported during a run
    objectives: Mapping[str, str]  # every objective -> "maximize" | "minimize"
    known: tuple[str, ...]  # the objectives a run knows before training
    percentile: float = 50.0  # the top percent of its peers kept, as Optuna's PercentilePruner (50: median)
    n_startup_trials: int = 5  # peers needed before it prunes
    n_warmup_steps: int = 0  # no pruning before this step
    reach: bool = False  # also prune a trial that can no longer reach the front (see the module's doc)

    @classmethod
    def of(
        cls, node: Mapping[str, Any], objectives: Mapping[str, str], known: tuple[str, ...]
    ) -> "ParetoPruner":
        """From a `hydra.sweeper.pruner` node with `on`: `median` or `percentile` and their options."""
        options = {k: v for k, v in node.items() if k not in ("name", "on")}
        name = node.get("name")
        if name not in RULES:
            raise ConfigError(
                "hydra.sweeper.pruner",
                f"{name} cannot prune a study of several objectives; use median or percentile with `on`",
            )
        allowed = {"n_startup_trials", "n_warmup_steps", "reach"}
        allowed |= {"percentile"} if name == "percentile" else set()
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(
                "hydra.sweeper.pruner",
                f"{', '.join(unknown)}: not an option of {name} with `on` ({', '.join(sorted(allowed))})",
            )
        pruner = cls(
            node["on"], dict(objectives), tuple(k for k in known if k in objectives and k != node["on"])
        )
        try:
            pruner = dataclasses.replace(pruner, **options)
            bad = (
                not (0 < float(pruner.percentile) <= 100)
                or min(pruner.n_startup_trials, pruner.n_warmup_steps) < 0
                or not isinstance(pruner.reach, bool)
            )
        except (TypeError, ValueError):
            bad = True
        if bad:
            raise ConfigError(
                "hydra.sweeper.pruner",
                f"{name} with `on` needs percentile in (0, 100], n_startup_trials and n_warmup_steps of 0 or "
                f"more, reach true or false; got {', '.join(f'{k}={v!r}' for k, v in options.items())}",
            )
        return pruner

    def prunes(
        self, step: int, best: float, mine: Mapping[str, float], others: list[optuna.trial.FrozenTrial]
    ) -> bool:
        """Whether a trial whose best value of `on` so far is `best` at `step`, whose known objectives
        are `mine`, stops: against the completed trials no worse than it on every known objective."""
        if step < self.n_warmup_steps:
            return False
        values, finals, gains = [], [], []  # the peers' values at `step` and final; everyone's gain from it
        sign = 1.0 if self.objectives[self.on] == "maximize" else -1.0  # a gain is positive
        final_at = list(self.objectives).index(self.on)
        for other in others:
            reported, known = other.user_attrs.get(REPORTED) or {}, other.user_attrs.get(KNOWN) or {}
            if str(step) not in reported or not all(k in known and k in mine for k in self.known):
                continue
            final = sign * other.values[final_at]
            gains.append(final - max(sign * v for s, v in reported.items() if int(s) <= step))
            if all(self._no_worse(k, known[k], mine[k]) for k in self.known):
                values.append(reported[str(step)])
                finals.append(final)
        if len(values) < max(1, self.n_startup_trials):
            return False
        if self.reach and sign * best + max(gains) < max(finals):
            return True
        if sign > 0:
            return best < float(np.percentile(values, 100 - self.percentile))
        return best > float(np.percentile(values, self.percentile))

    def _no_worse(self, objective: str, theirs: float, mine: float) -> bool:
        return theirs <= mine if self.objectives[objective] == "minimize" else theirs >= mine


def pareto_reporter(pruner: ParetoPruner, study: optuna.Study, trial_id: int):
    """The trial's reporter: records the reported value and the known objectives, then decides."""
    storage, reported, best = study._storage, {}, None
    maximize = pruner.objectives[pruner.on] == "maximize"

    def report(step: int, row: dict[str, float]) -> bool:
        nonlocal best
        value = float(row[pruner.on])
        best = value if best is None else (max(best, value) if maximize else min(best, value))
        mine = {k: float(row[k]) for k in pruner.known if k in row}
        if not reported:  # what it knew before training: the same at every step
            storage.set_trial_user_attr(trial_id, KNOWN, mine)
        reported[str(step)] = value
        storage.set_trial_user_attr(trial_id, REPORTED, dict(reported))
        others = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return pruner.prunes(step, best, mine, others)

    return report
