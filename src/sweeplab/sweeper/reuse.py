"""A trial whose config equals a completed trial's takes that trial's result instead of training again
(`hydra.sweeper.reuse_results`).

Samplers draw a configuration more than once, often in spaces of choices: multi-objective TPE drew 11
of 40 trials twice in `sweeps/mnist1d_pareto.yaml`. Where a run is a function of its config and seed, a
second run computes the same numbers (the same seeds: not a new sample), so training it is waste. The
trial is completed with its twin's values and records and points to its twin's folder; the sampler sees
it as Optuna's docs suggest for a repeated configuration. Equal means equal in every value that can change
a result (`sweeplab.config.comparable_values`: the device or progress bar do not count). A twin that is
still running, was pruned or failed is not reused: the trial trains.
"""

import json
from collections.abc import Iterable, Mapping
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sweeplab.config import comparable_values
from sweeplab.engine.records import REPLICATES, TrialRecord


def config_key(config: Mapping[str, Any]) -> str:
    """What a config computes, as text that compares equal for equal values."""
    return json.dumps(comparable_values(config), sort_keys=True, default=str)  # type: ignore[arg-type]


class Twins:
    """Finds a config's completed twin. A completed trial's config never changes, so its key is made
    once per trial, not at every claim (a study of thousands of trials would pay for all at each)."""

    def __init__(self) -> None:
        self._keys: dict[int, str] = {}  # trial id -> its config's key

    def of(self, config: Mapping[str, Any], trials: Iterable[FrozenTrial]) -> FrozenTrial | None:
        """The first completed trial whose config computes what `config` does."""
        key = config_key(config)
        for trial in trials:
            if trial.state != TrialState.COMPLETE:
                continue
            if trial._trial_id not in self._keys:
                self._keys[trial._trial_id] = config_key(TrialRecord.of(trial).config)
            if self._keys[trial._trial_id] == key:
                return trial
        return None


def reused_value(twin: FrozenTrial) -> dict[str, Any]:
    """What the twin's task returned, as the controller records a finished run: its metrics and, with
    replicates, each member's."""
    record = TrialRecord.of(twin)
    return {**record.metrics, **({REPLICATES: record.replicates} if record.replicates else {})}
