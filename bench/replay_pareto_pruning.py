"""How much could any pruning rule save on a finished study of two objectives? (Issue 39; not a test.)

Replays a study that ran without a pruner (`sweeps/mnist1d_pareto.yaml`, its trials in the order they
ran, each trial's val_acc curve the mean of its replicates' history.csv) under pruning rules, as the
study would have met them: a trial is compared with the trials completed before it, a configuration that
already completed takes its twin's result (reuse, no steps), and a pruned trial leaves the front. The
rules: sweeplab's own (`engine.pareto_pruning.ParetoPruner`: median or percentile among no-larger peers,
`reach`), variants of `reach` that no release offers (a quantile of the gains instead of the largest, gains
from the completed trials nearest in configuration, the last slope extrapolated), and an oracle that knows
each trial's end. It prints each rule's steps saved (of the replay without a pruner) and the hypervolume of
the front of means with the study's bootstrap interval (the report's reference point and interval).

The replay keeps the order the unpruned study drew; a pruned study's sampler would draw differently
(bench_pareto_pruning.py runs real studies). Rules that stay inside the interval here are upper bounds.

    SWEEPLAB_STUDIES_DIR=... python bench/replay_pareto_pruning.py [--study mnist1d_pareto] [--storage URL]
"""

import argparse
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from sweeplab.engine.pareto_pruning import ParetoPruner
from sweeplab.engine.records import KNOWN, REPORTED, TrialRecord
from sweeplab.report.frame import trials_frame
from sweeplab.report.pareto import hypervolume, hypervolume_interval, losses, reference_point
from sweeplab.report.tables import build_table
from sweeplab.run_records import read_history

OBJECTIVES = {"val_acc": "maximize", "params": "minimize"}


@dataclass
class Run:
    number: int
    config: tuple  # the searched values, as a key
    params: float
    final: float  # the trial's val_acc (mean over replicates)
    curve: dict[int, float]  # step -> mean val_acc
    steps: int  # a replicate's steps
    members: int

    def best(self, step: int) -> float:
        return max(v for s, v in self.curve.items() if s <= step)

    def frozen(self) -> optuna.trial.FrozenTrial:
        reported = {str(s): v for s, v in self.curve.items()}
        attrs = {REPORTED: reported, KNOWN: {"params": self.params}}
        return optuna.trial.create_trial(values=[self.final, self.params], user_attrs=attrs)


def runs_of(study: optuna.Study) -> list[Run]:
    runs = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        record = TrialRecord.of(trial)
        folders = [m["output_dir"] for m in record.replicates] or [record.output_dir]
        histories = [
            {int(r["step"]): r["val_acc"] for r in read_history(Path(f)) if "val_acc" in r} for f in folders
        ]
        steps = sorted(set.intersection(*(set(h) for h in histories)))
        curve = {s: float(np.mean([h[s] for h in histories])) for s in steps}
        config = tuple(sorted((k, str(v)) for k, v in trial.params.items()))
        runs.append(
            Run(trial.number, config, trial.values[1], trial.values[0], curve, steps[-1], len(folders))
        )
    return runs


Rule = Callable[[Run, int, list[Run]], bool]


def sweeplab_rule(name: str = "median", **options) -> Rule:
    """sweeplab's pruner with these options, judging each step as a running trial would."""
    node = {"name": name, "on": "val_acc", "n_startup_trials": 3, "n_warmup_steps": 100, **options}
    pruner = ParetoPruner.of(node, OBJECTIVES, ("params",))

    def rule(run: Run, step: int, done: list[Run]) -> bool:
        return pruner.prunes(step, run.best(step), {"params": run.params}, [d.frozen() for d in done])

    return rule


def reach_rule(quantile: float = 100, warmup: int = 100, startup: int = 3, nearest: int = 0) -> Rule:
    """`reach` with the `quantile` of the gains, from the `nearest` completed trials in configuration
    (those sharing the most searched values, at least `nearest` of them; 0: all)."""

    def rule(run: Run, step: int, done: list[Run]) -> bool:
        peers = [d.final for d in done if d.params <= run.params]
        if step < warmup or len(done) < startup or not peers:
            return False
        near = _nearest(run, done, nearest) if nearest else done
        gains = [d.final - d.best(step) for d in near]
        return run.best(step) + float(np.percentile(gains, quantile)) < max(peers)

    return rule


def _nearest(run: Run, done: list[Run], count: int) -> list[Run]:
    """The completed trials that share the most searched values with `run`, at least `count` of them."""
    for size in range(len(run.config), -1, -1):
        for values in itertools.combinations(run.config, size):
            sharing = [d for d in done if set(values) <= set(d.config)]
            if len(sharing) >= count:
                return sharing
    return done


def slope_rule(window: int = 2, warmup: int = 200) -> Rule:
    """The last `window` evaluations' slope carried to the end falls short of the peers' best."""

    def rule(run: Run, step: int, done: list[Run]) -> bool:
        steps = sorted(run.curve)
        peers = [d.final for d in done if d.params <= run.params]
        at = steps.index(step)
        if step < warmup or at < window or not peers:
            return False
        slope = (run.best(step) - run.best(steps[at - window])) / (step - steps[at - window])
        return run.best(step) + slope * (run.steps - step) < max(peers)

    return rule


def oracle(at: int) -> Rule:
    """Knows each trial's end: stops at step `at` every trial a completed one will dominate."""
    return lambda run, step, done: (
        step == at and any(d.params <= run.params and d.final > run.final for d in done)
    )


def replay(runs: list[Run], rule: Rule | None) -> tuple[int, int, list[Run]]:
    """Steps trained, trials pruned and the completed distinct runs, in the study's order."""
    done: list[Run] = []
    steps = pruned = 0
    for run in runs:
        if any(d.config == run.config for d in done):
            continue  # its twin's result, reused
        stop = next(
            (s for s in sorted(run.curve) if s < run.steps and rule and rule(run, s, done)), run.steps
        )
        steps += stop * run.members
        if stop < run.steps:
            pruned += 1
        else:
            done.append(run)
    return steps, pruned, done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--study", default="mnist1d_pareto")
    parser.add_argument("--storage", help="default: the study's file in SWEEPLAB_STUDIES_DIR or studies/")
    args = parser.parse_args()
    folder = Path(os.environ.get("SWEEPLAB_STUDIES_DIR", "studies")).absolute()
    study = optuna.load_study(
        study_name=args.study, storage=args.storage or f"sqlite:///{folder}/{args.study}.db"
    )
    table = build_table(trials_frame(study), OBJECTIVES, pareto=OBJECTIVES)
    directions = list(OBJECTIVES.values())
    means = table.rows[list(OBJECTIVES)].to_numpy(dtype=float)
    samples = [[table.samples[o][i] for o in OBJECTIVES] for i in range(len(means))]
    reference = reference_point(means, directions, None)
    interval = hypervolume_interval(samples, directions, reference, 0.95)
    runs = runs_of(study)

    def volume(done: list[Run]) -> float:
        return hypervolume(losses(np.array([[d.final, d.params] for d in done]), directions), reference)

    base_steps, _, base_done = replay(runs, None)
    print(
        f"{len(runs)} completed trials of {args.study!r} replayed; no pruner: {base_steps:,} steps, "
        f"hypervolume {volume(base_done):.4g} [{interval.low:.4g}, {interval.high:.4g}]\n"
    )
    print("| rule | steps saved | trials pruned | hypervolume | inside |\n| --- | --- | --- | --- | --- |")
    rules = {
        "median, 3 and 100 (sweeplab)": sweeplab_rule(),
        "percentile 25, 3 and 100 (sweeplab)": sweeplab_rule("percentile", percentile=25),
        "median, 3 and 100, reach (sweeplab)": sweeplab_rule(reach=True),
        "median, 5 and 200, reach (sweeplab)": sweeplab_rule(
            n_startup_trials=5, n_warmup_steps=200, reach=True
        ),
        **{
            f"reach, gain quantile {q}, from step {w}": reach_rule(q, w)
            for q in (100, 90, 75, 50)
            for w in (100, 200)
        },
        **{f"reach, gains of the {k}+ nearest configs, from step 100": reach_rule(nearest=k) for k in (2, 3)},
        "last slope extrapolated (window 2), from step 200": slope_rule(),
        "oracle: every trial that ends dominated, at step 200": oracle(200),
        "oracle: every trial that ends dominated, at step 100": oracle(100),
    }
    for name, rule in rules.items():
        steps, pruned, done = replay(runs, rule)
        hv = volume(done)
        inside = "yes" if interval.low <= hv <= interval.high else "**no**"
        print(f"| {name} | {1 - steps / base_steps:.0%} | {pruned} | {hv:.4g} | {inside} |")


if __name__ == "__main__":
    main()
