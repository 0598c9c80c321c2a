"""Replicates (`hydra.sweeper.replicates: N`): every configuration trained N times with different seeds as
ONE Optuna trial. The sampler and the pruner see the configuration, never a single seed:

- the members are the trial's config with `replicate_key` (default `trainer.seed`) set to each seed, each
  in a sub-folder of the trial's folder (`seed_3/`: its history, summary, best weights, resume checkpoint);
- the trial's value is the `aggregate` (mean, median, iqm, min, max) of the members' objective values;
- at every evaluation step the trial reports the aggregate of its members' values at that step, once all of
  them have reached it (`Aggregator`): members trained as one pack report together; members trained one
  after another (a model that cannot pack) are checked on the aggregate when the last one gets there;
- a member that diverges ends the trial as PRUNED, naming its seed; one that raises fails the trial.
"""

import copy
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from sweeplab.engine.records import Replicates
from sweeplab.files import write_atomic


def _iqm(values: Sequence[float]) -> float:
    """The interquartile mean (rliable's): the mean of the middle half, a quarter cut from each end."""
    from scipy.stats import trim_mean

    return float(trim_mean(values, 0.25))


AGGREGATES: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": statistics.fmean,
    "median": statistics.median,
    "iqm": _iqm,
    "min": min,
    "max": max,
}


@dataclass(frozen=True)
class Replication:
    key: str  # the config key each member sets to its seed
    seeds: tuple[int, ...] | None  # the listed seeds; None: the config's value + 0..n-1
    n: int
    aggregate: str = "mean"

    def seeds_for(self, base: int) -> list[int]:
        return list(self.seeds) if self.seeds else [base + i for i in range(self.n)]

    def folder(self, seed: int) -> str:
        return f"{self.key.rsplit('.', 1)[-1]}_{seed}"

    def label(self, seed: int) -> str:
        return f"{self.key}={seed}"

    def of(self, values: Sequence[float]) -> float:
        return float(AGGREGATES[self.aggregate](values))

    def stored(self) -> Replicates:
        """As the study stores it (its signature's `replicates`), and says it."""
        return Replicates(self.n, self.key, tuple(self.seeds or ()), self.aggregate)


def member_configs(config: DictConfig, replication: Replication) -> list[tuple[int, DictConfig]]:
    """The members' configs: the trial's with its seed set, each in its own sub-folder of the trial's."""
    base = config
    for part in replication.key.split("."):
        base = base[part]
    members = []
    for seed in replication.seeds_for(int(base)):  # type: ignore[call-overload]
        member = copy.deepcopy(config)
        with open_dict(member):
            node, leaf = member, replication.key.split(".")
            for part in leaf[:-1]:
                node = node[part]
            node[leaf[-1]] = seed
            member.hydra.sweep.subdir = f"{config.hydra.sweep.subdir}/{replication.folder(seed)}"
        members.append((seed, member))
    return members


Reporter = Callable[[int, dict[str, float]], bool]


class Aggregator:
    """The trial's reporter, fed by its members: at a step every member still running has reached, it
    reports the aggregate of their values and keeps the pruner's decision for all of them."""

    def __init__(self, report: Reporter, monitor: str, n: int, replication: Replication) -> None:
        self.report, self.monitor, self.replication = report, monitor, replication
        self.values: list[dict[int, float]] = [{} for _ in range(n)]
        self.done: set[int] = set()  # members that stopped early (diverged)
        self.reported: set[int] = set()
        self.pruned = False

    def member(self, index: int) -> "MemberReporter":
        return MemberReporter(self, index)

    def _heard(self, index: int, step: int, row: dict[str, float]) -> bool:
        self.values[index][step] = row[self.monitor]
        live = [v for i, v in enumerate(self.values) if i not in self.done]
        if not self.pruned and step not in self.reported and all(step in v for v in live):
            self.reported.add(step)
            # the aggregate, beside what every member knows alike (its parameter count: the known objectives)
            aggregate = self.replication.of([v[step] for v in live])
            self.pruned = self.report(step, {**row, self.monitor: aggregate})
        return self.stops()

    def stops(self) -> bool:
        return self.pruned or bool(self.done)


@dataclass
class MemberReporter:
    """One member's reporter. Besides answering each report, `stops()` tells a member that reported
    before the last one at a step (in a pack) whether the trial stops there, and `diverged()` tells the
    others that a member's loss became NaN (the trial ends: it is PRUNED, naming the member)."""

    aggregator: Aggregator
    index: int

    def __call__(self, step: int, row: dict[str, float]) -> bool:
        return self.aggregator._heard(self.index, step, row)

    def stops(self) -> bool:
        return self.aggregator.stops()

    def diverged(self) -> None:
        self.aggregator.done.add(self.index)


NUMBER = (int, float)


def combine(
    replication: Replication, seeds: list[int], results: list[dict[str, Any]], folder: Path
) -> dict[str, Any]:
    """The trial's metrics from its members' (each a run's summary): every number the aggregate of the
    members' (per-class accuracies too), `replicates` listing each member's seed and metrics. A member
    that diverged or was pruned makes the trial so (the first one that diverged is named)."""
    numbers = [k for k, v in results[0].items() if isinstance(v, NUMBER) and not isinstance(v, bool)]
    merged: dict[str, Any] = dict(results[0])
    for key in numbers:
        values = [r.get(key) for r in results]
        finite = [float(v) for v in values if isinstance(v, NUMBER) and math.isfinite(v)]
        merged[key] = replication.of(finite) if len(finite) == len(values) else math.nan
        if all(isinstance(v, int) for v in values):  # counts (params, steps) stay whole numbers
            merged[key] = round(merged[key])
    per_class = [r.get("per_class_test_acc") for r in results]
    if all(isinstance(p, dict) for p in per_class):
        merged["per_class_test_acc"] = {c: replication.of([p[c] for p in per_class]) for c in per_class[0]}
    for status in ("diverged", "pruned"):
        stopped = [(s, r) for s, r in zip(seeds, results, strict=True) if r.get("status") == status]
        if stopped:
            merged["status"] = status
            merged["steps"] = max(int(r.get("steps") or 0) for _, r in stopped)
            if status == "diverged":
                merged["replicate"] = replication.label(stopped[0][0])
            break
    merged["replicates"] = [
        {
            replication.key: seed,
            "output_dir": str(folder / replication.folder(seed)),
            **{k: r.get(k) for k in r if k != "checkpoint"},
        }
        for seed, r in zip(seeds, results, strict=True)
    ]
    return merged


def write_summary(folder: Path, replication: Replication, metrics: dict[str, Any]) -> None:
    """The trial folder's summary.json: for each number, the members' mean, std (n - 1) and n, and the
    trial's value of it (the aggregate)."""
    members = metrics["replicates"]
    summary: dict[str, Any] = {
        "replicate_key": replication.key,
        "seeds": [m[replication.key] for m in members],
        "aggregate": replication.aggregate,
        "status": metrics.get("status"),
        "metrics": {},
    }
    for key, value in metrics.items():
        values = [m.get(key) for m in members]
        if not all(isinstance(v, NUMBER) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            continue
        summary["metrics"][key] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values),
            "value": value,  # the trial's: the members' aggregate
        }
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2) + "\n")
