"""Sweep benchmarks (not tests: they time things).

1. Orchestration overhead per trial, with a task that does nothing (bench/noop/noop_app.py), TPE:
   sweeplab on SQLite, Optuna alone on SQLite, and, with --hos-python, hydra-optuna-sweeper (its own
   environment: `python -m venv /tmp/hos && /tmp/hos/bin/pip install hydra-core hydra-optuna-sweeper`).
   Per trial = (wall time of N trials - wall time of 1 trial) / (N - 1): process start-up excluded.
2. Trials per hour of real MNIST-1D trials with n_jobs=2 against n_jobs=1.
3. Steps spent by a hyperband-pruned study against the same study unpruned (same random sampler
   seed, so the same configurations), and the best validation accuracy of each.

    python bench/bench_sweep.py [--trials 100] [--hos-python /tmp/hos/bin/python]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

HERE = Path(__file__).resolve().parent
SWEEPLAB = [str(Path(sys.executable).with_name("sweeplab")), "train", "-m"]


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def per_trial(make_command, n: int, env: dict[str, str], cwd: Path) -> float:
    """Milliseconds per trial, start-up excluded (after a run that warms the file cache, and an
    environment's first run, which compiles its modules)."""
    timed(make_command(1, "warm"), env, cwd)
    one, many = timed(make_command(1, "one"), env, cwd), timed(make_command(n, "many"), env, cwd)
    return 1000 * (many - one) / (n - 1)


def overhead(args: argparse.Namespace, work: Path) -> None:
    env = dict(os.environ, SWEEPLAB_STUDIES_DIR=str(work / "studies"), NOOP_OUT=str(work / "out"))
    app = [sys.executable, str(HERE / "noop" / "noop_app.py"), "-m", "x=interval(-1, 1)"]
    ours = per_trial(
        lambda n, name: [*app, f"hydra.sweeper.n_trials={n}", f"hydra.sweeper.study_name={name}"],
        args.trials,
        env,
        work,
    )
    print(f"| sweeplab, SQLite | {ours:.0f} ms |", flush=True)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=f"sqlite:///{work}/optuna.db", sampler=optuna.samplers.TPESampler(seed=0)
    )
    start = time.perf_counter()
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=args.trials)
    print(
        f"| Optuna alone, SQLite | {1000 * (time.perf_counter() - start) / args.trials:.0f} ms |", flush=True
    )

    if args.hos_python:
        hos = [args.hos_python, str(HERE / "noop" / "noop_app.py"), "--config-name", "noop_hos", "-m"]
        theirs = per_trial(lambda n, name: [*hos, f"hydra.sweeper.n_trials={n}"], args.trials, env, work)
        print(f"| hydra-optuna-sweeper, in memory | {theirs:.0f} ms |", flush=True)


def parallel(args: argparse.Namespace, work: Path) -> None:
    env = dict(os.environ, SWEEPLAB_STUDIES_DIR=str(work / "studies"))
    workloads = {
        "MLP (100, 100), 1500 steps": ["trainer.max_steps=1500"],
        "CNN (32, 64), 300 steps": ["model=cnn", "trainer.max_steps=300"],
    }
    for workload, overrides in workloads.items():
        rates = {}
        for n_jobs in (1, 2):
            seconds = timed(
                [
                    *SWEEPLAB,
                    "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
                    *overrides,
                    f"hydra.sweeper.n_trials={args.parallel_trials}",
                    f"hydra.sweeper.n_jobs={n_jobs}",
                    f"hydra.sweeper.study_name=jobs{n_jobs}{len(rates)}{workload[:3]}",
                ],
                env,
                work,
            )
            rates[n_jobs] = 3600 * args.parallel_trials / seconds
            print(
                f"| {workload} | n_jobs={n_jobs} | {seconds:.1f} s | {rates[n_jobs]:.0f} trials/h |",
                flush=True,
            )
        print(f"| {workload} | speed-up | | {rates[2] / rates[1]:.2f}x |", flush=True)


def pruning(args: argparse.Namespace, work: Path) -> None:
    env = dict(os.environ, SWEEPLAB_STUDIES_DIR=str(work / "studies"))
    pruners = {
        "none": "{name: none}",
        "hyperband, first rung 'auto'": "{name: hyperband, max_resource: 1000}",
        "hyperband, first rung at 200 steps": "{name: hyperband, min_resource: 200, max_resource: 1000}",
    }
    for i, (pruner, node) in enumerate(pruners.items()):
        name = f"prune{i}"
        timed(
            [
                *SWEEPLAB,
                "optimizer.lr=tag(log, interval(1e-5, 1e-1))",
                "model.activation=choice(relu,tanh)",
                f"+hydra.sweeper.pruner={node}",
                "hydra.sweeper.sampler.name=random",
                "hydra.sweeper.sampler.seed=0",
                f"hydra.sweeper.n_trials={args.pruning_trials}",
                f"hydra.sweeper.study_name={name}",
                "trainer.max_steps=1000",
                "trainer.eval_every=50",
            ],
            env,
            work,
        )
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{work}/studies/{name}.db")
        steps = sum(t.user_attrs["metrics"]["steps"] for t in study.trials)
        pruned = sum(t.state.name == "PRUNED" for t in study.trials)
        print(f"| {pruner} | {steps} | {pruned} | {study.best_value:.4f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--parallel-trials", type=int, default=16)
    parser.add_argument("--pruning-trials", type=int, default=24)
    parser.add_argument("--hos-python", help="python of an environment with hydra-optuna-sweeper")
    parser.add_argument("--only", choices=["overhead", "parallel", "pruning"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "overhead"):
            print(f"\n| orchestration, {args.trials} no-op trials, TPE | per trial |\n| --- | --- |")
            overhead(args, work)
        if args.only in (None, "parallel"):
            print(f"\n| {args.parallel_trials} trials on MNIST-1D | | wall | throughput |")
            print("| --- | --- | --- | --- |")
            parallel(args, work)
        if args.only in (None, "pruning"):
            print(f"\n| pruner, {args.pruning_trials} trials | steps | pruned | best val_acc |")
            print("| --- | --- | --- | --- |")
            pruning(args, work)


if __name__ == "__main__":
    main()
