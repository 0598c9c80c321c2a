"""A study's queue: the trials a user asked to run first, and its plan (a grid's points, each setup),
queued as trials start, never more than QUEUE_AHEAD ahead, so a plan of any size starts at once. Under
the study's lock (`SharedStudy`), so each is queued once however many processes run the study."""

import itertools
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeplab.engine.reads import StudyReads
from sweeplab.engine.records import PLAN_QUEUED, StudyRecord

QUEUE_AHEAD = 64  # planned trials waiting in the queue at most
LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class PlanQueue:
    def __init__(self, study: optuna.Study, plan: Sequence[dict[str, Any]], reads: StudyReads) -> None:
        self.study, self.plan, self.reads = study, plan, reads

    def enqueue(self, wanted: Sequence[Mapping[str, Any]], retry_planned: bool = False) -> None:
        """Queue each of `wanted` that has not run and is not under way, and (`retry_planned`) each
        planned trial queued before whose trial failed: a rerun carries on, and tries again the planned
        trials that failed."""
        live = self.study.get_trials(deepcopy=False, states=LIVE)
        taken = Counter(params_key(fixed_params(t)) for t in live)
        queued = self.queued() if retry_planned else 0
        for params in [*wanted, *itertools.islice(self.plan, queued)]:
            if taken[params_key(params)]:
                taken[params_key(params)] -= 1  # a plan may hold the same configuration twice on purpose
            else:
                self.study.enqueue_trial(dict(params))

    def queued(self) -> int:
        """How many of the plan's trials, in order, have been queued so far. (Studies of older versions
        queued their whole plan at once.)"""
        queued = StudyRecord(self.reads.attrs()).plan_queued
        if queued is not None:
            return queued
        return len(self.plan) if self.reads.trials() else 0

    def top_up(self, to_start: int) -> None:
        """Queue the plan's next trials, so that up to QUEUE_AHEAD (and no more than the `to_start`
        trials the budget still needs) wait."""
        queued, total = self.queued(), len(self.plan)
        if queued >= total:
            return
        wanted = min(QUEUE_AHEAD, to_start) - self.reads.count(TrialState.WAITING)
        more = max(0, min(wanted, total - queued))
        for index in range(queued, queued + more):
            self.study.enqueue_trial(dict(self.plan[index]))
        if more or PLAN_QUEUED not in self.reads.attrs():
            self.study.set_user_attr(PLAN_QUEUED, queued + more)
            self.reads.wrote()

    def all_taken(self) -> bool:
        """The study has a plan and every planned trial has been taken."""
        waiting = self.reads.count(TrialState.WAITING)
        return bool(self.plan) and self.queued() >= len(self.plan) and not waiting


def fixed_params(trial: FrozenTrial) -> dict[str, Any]:
    """The values a trial was queued with, else the ones it was given."""
    return dict(trial.system_attrs.get("fixed_params") or trial.params)


def params_key(params: Mapping[str, Any]) -> str:
    """A trial's values as a key that compares equal for equal values."""
    return json.dumps(dict(params), sort_keys=True, default=str)
