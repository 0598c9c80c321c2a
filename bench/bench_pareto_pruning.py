"""Pruning a study of two objectives (issue 39's acceptance; not a test: it runs three whole studies).

`sweeps/mnist1d_pareto.yaml` (val_acc against params, 3 replicates a trial) with 40 trials, three times
in one run: as before trials reused their twins' results (`reuse_results=false`: a configuration drawn
again trains again), as a user gets it (a configuration drawn again takes its twin's result), and so with
`pruner: {name: median, on: val_acc}` (sweeplab.engine.pareto_pruning). Measured: the training steps each
study took (every replicate's, pruned ones up to where they stopped; a reused result took none), and the
hypervolume of each study's front of means, against the same reference point (the default of the study
without a pruner), with that study's bootstrap interval over replicates.

    python bench/bench_pareto_pruning.py [--trials 40] [--startup 5] [--warmup 200] [--steps 1000]
        [--percentile 25] [--reach]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from sweeplab.engine.records import TrialRecord
from sweeplab.report.frame import trials_frame
from sweeplab.report.pareto import hypervolume, hypervolume_interval, losses, reference_point
from sweeplab.report.tables import build_table

SWEEPLAB = str(Path(sys.executable).with_name("sweeplab"))
OBJECTIVES = {"val_acc": "maximize", "params": "minimize"}


def study(work: Path, name: str, extra: list[str], trials: int) -> tuple[optuna.Study, float]:
    env = dict(os.environ, SWEEPLAB_STUDIES_DIR=str(work / "studies"))
    env.setdefault("SWEEPLAB_DATA_DIR", str(Path("data").absolute()))
    args = [
        "train",
        "sweep=mnist1d_pareto",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.n_trials={trials}",
    ]
    start = time.perf_counter()
    done = subprocess.run(
        [SWEEPLAB, *args, "trainer.progress=false", *extra], cwd=work, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    loaded = optuna.load_study(study_name=name, storage=f"sqlite:///{work}/studies/{name}.db")
    return loaded, time.perf_counter() - start


def trained_steps(s: optuna.Study) -> int:
    """The steps the study's runs trained: every replicate's, a pruned one's up to where it stopped, none
    for a trial that took a twin's result."""
    steps = 0
    for trial in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        record = TrialRecord.of(trial)
        if record.reused_from is None:
            steps += sum(int(run["steps"]) for run in record.replicates or [record.metrics])
    return steps


def measured(s: optuna.Study) -> tuple[int, np.ndarray, list]:
    """The study's training steps, its rows' means and runs (completed trials only)."""
    frame = trials_frame(s)
    steps = trained_steps(s)
    table = build_table(frame, OBJECTIVES, pareto=OBJECTIVES)
    means = table.rows[list(OBJECTIVES)].to_numpy(dtype=float)
    samples = [[table.samples[o][i] for o in OBJECTIVES] for i in range(len(means))]
    return steps, means, samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--startup", type=int, default=5, help="the pruner's n_startup_trials")
    parser.add_argument("--warmup", type=int, default=200, help="the pruner's n_warmup_steps")
    parser.add_argument("--steps", type=int, default=1000, help="steps a run (the sweep's: 1000)")
    parser.add_argument(
        "--percentile", type=float, help="the percentile rule (top percent kept), not the median"
    )
    parser.add_argument("--reach", action="store_true", help="also prune trials that cannot reach the front")
    args = parser.parse_args()
    budget = [f"trainer.max_steps={args.steps}"]
    rule = ["hydra.sweeper.pruner.name=median"]
    if args.percentile is not None:
        rule = ["hydra.sweeper.pruner.name=percentile", f"+hydra.sweeper.pruner.percentile={args.percentile}"]
    pruner = [
        *rule,
        "+hydra.sweeper.pruner.on=val_acc",
        f"+hydra.sweeper.pruner.n_startup_trials={args.startup}",
        f"+hydra.sweeper.pruner.n_warmup_steps={args.warmup}",
        *(["+hydra.sweeper.pruner.reach=true"] if args.reach else []),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        retrained, retrained_s = study(
            work, "retrained", [*budget, "hydra.sweeper.reuse_results=false"], args.trials
        )
        plain, plain_s = study(work, "unpruned", budget, args.trials)
        pruned, pruned_s = study(work, "pruned", [*budget, *pruner], args.trials)
        (steps_r, means_r, _), (steps_u, means_u, samples_u) = measured(retrained), measured(plain)
        steps_p, means_p, _ = measured(pruned)
    directions = list(OBJECTIVES.values())
    reference = reference_point(means_u, directions, None)
    volume = {
        k: hypervolume(losses(m, directions), reference)
        for k, m in [("r", means_r), ("u", means_u), ("p", means_p)]
    }
    interval = hypervolume_interval(samples_u, directions, reference, 0.95)
    print(f"\n{args.trials} trials of sweeps/mnist1d_pareto.yaml (3 replicates each), all in one run:\n")
    print("| study | wall time | training steps | trials pruned | trials reused | hypervolume of the front |")
    print("| --- | --- | --- | --- | --- | --- |")
    name = "median" if args.percentile is None else f"percentile {args.percentile:g}"
    name += f", startup {args.startup}, warmup {args.warmup}" + (", reach" if args.reach else "")
    for label, s, seconds, steps, key in [
        ("every trial trains (`reuse_results=false`)", retrained, retrained_s, steps_r, "r"),
        ("no pruner", plain, plain_s, steps_u, "u"),
        (f"{name} on val_acc", pruned, pruned_s, steps_p, "p"),
    ]:
        pruned_n = sum(t.state.name == "PRUNED" for t in s.trials)
        reused_n = sum(TrialRecord.of(t).reused_from is not None for t in s.trials)
        shown = f"{volume[key]:.4g}" + (f" [{interval.low:.4g}, {interval.high:.4g}]" if key == "u" else "")
        print(f"| {label} | {seconds:.0f} s | {steps:,} | {pruned_n} | {reused_n} | {shown} |")
    inside = interval.low <= volume["p"] <= interval.high
    print(
        f"\npruning saved {1 - steps_p / steps_u:.0%} of the training steps of the study without a pruner "
        f"(target: at least 35%); with reused results, {1 - steps_p / steps_r:.0%} of those of every trial "
        f"training. The pruned study's hypervolume is {'inside' if inside else 'OUTSIDE'} the unpruned one's "
        f"95% interval (bootstrap over replicates); reference point val_acc {-reference[0]:.4g}, params "
        f"{reference[1]:.4g}"
    )


if __name__ == "__main__":
    main()
