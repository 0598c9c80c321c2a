"""Packed trials (hydra.sweeper.pack): trials per hour of the same trials, packed or not (not a test:
it times things). Each configuration runs the whole `sweeplab train -m` command in a fresh folder, so
start-up, data loading, records and checkpoints are all counted.

1. 16 MNIST-1D MLP trials (100,100), 1000 steps, 8 learning rates x 2 seeds (a grid):
   pack 1 / n_jobs 1 (the baseline), pack 16 / n_jobs 1, pack 1 / n_jobs 2, pack 8 / n_jobs 2.
2. --cifar PATH: 16 CIFAR-10-shaped MLP trials (3072-100-100-10, report 000's row), batch 200, on the
   JPEG copy (`dataset.path`), --cifar-steps steps each: the same comparison.
3. --profile: where the fixed cost of a trial goes: 30 one-step MNIST-1D trials in one sweep, per trial
   (the command's wall time / 30), and cProfile's top entries of the controller process.

    python bench/bench_pack.py [--steps 1000] [--cifar ../shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz]
        [--device cpu] [--big 64] [--profile] [--no-mnist1d]
"""

import argparse
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEPLAB = [str(Path(sys.executable).with_name("sweeplab")), "train", "-m"]
LRS = "choice(0.0005,0.001,0.0015,0.002,0.003,0.004,0.005,0.006)"


def run(args: list[str], work: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([*SWEEPLAB, *args], cwd=work, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def compare(
    name: str, common: list[str], settings: list[tuple[int, int]], env: dict[str, str], n: int = 16
) -> None:
    print(f"\n{name}\n\n| pack | n_jobs | wall time | trials per hour | speed-up |\n|---|---|---|---|---|")
    base = None
    for pack, jobs in settings:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            study = [
                f"hydra.sweeper.study_name=b{pack}x{jobs}",
                f"hydra.sweeper.storage=sqlite:///{work}/s.db",
            ]
            wall = run(
                [*common, *study, f"hydra.sweeper.pack={pack}", f"hydra.sweeper.n_jobs={jobs}"], work, env
            )
        base = base or wall
        print(f"| {pack} | {jobs} | {wall:.1f} s | {n * 3600 / wall:,.0f} | {base / wall:.2f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--cifar", help="the CIFAR-10 copy (archive or folder) for the CIFAR-shaped MLP")
    parser.add_argument("--cifar-steps", type=int, default=500)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--big", type=int, default=0, help="also pack this many (a GPU: 64) trials")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-mnist1d", action="store_true", help="skip the MNIST-1D comparison")
    args = parser.parse_args()
    env = dict(
        os.environ, SWEEPLAB_DATA_DIR=os.environ.get("SWEEPLAB_DATA_DIR", str(Path("data").absolute()))
    )
    settings = [(1, 1), (16, 1), (1, 2), (8, 2)]
    sweep = ["hydra.sweeper.sampler=grid", f"optimizer.lr={LRS}", "trainer.seed=choice(0,1)"]
    quiet = ["trainer.progress=false", f"trainer.device={args.device}"]
    mnist1d = [
        *sweep,
        *quiet,
        "model.hidden=[100,100]",
        f"trainer.max_steps={args.steps}",
        "trainer.eval_every=100",
    ]
    if not args.no_mnist1d:
        compare(
            f"16 MNIST-1D MLP trials (100,100), {args.steps} steps, device {args.device}",
            mnist1d,
            settings,
            env,
        )
    if args.big:
        seeds = f"trainer.seed=range(0,{args.big // 8})"
        big = [*mnist1d[:2], seeds, *mnist1d[3:]]
        compare(f"{args.big} MNIST-1D MLP trials", big, [(1, 1), (args.big, 1)], env, args.big)
    if args.cifar:
        cifar = [
            *sweep,
            *quiet,
            "dataset=cifar10",
            f"dataset.path={Path(args.cifar).absolute()}",
            "optimizer=sgd",
            "optimizer.momentum=0.0",
            "model.hidden=[100,100]",
            "trainer.batch_size=200",
            f"trainer.max_steps={args.cifar_steps}",
            "trainer.eval_every=100",
        ]
        with tempfile.TemporaryDirectory() as tmp:  # decode the images into the cache before timing
            run(
                [*cifar, "trainer.max_steps=1", f"hydra.sweeper.storage=sqlite:///{tmp}/w.db"], Path(tmp), env
            )
        title = f"16 CIFAR-10-shaped MLP trials (3072-100-100-10), batch 200, {args.cifar_steps} steps"
        compare(title + " (CIFAR-10 JPEG q75 copy)", cifar, settings, env)
    if args.profile:
        profile(env)


def profile(env: dict[str, str]) -> None:
    """30 one-step trials in one sweep: the fixed cost per trial, and where the controller spends it."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        common = [
            "optimizer.lr=interval(0.0001,0.01)",
            "hydra.sweeper.n_trials=30",
            "trainer.max_steps=1",
            "trainer.progress=false",
            f"hydra.sweeper.storage=sqlite:///{work}/s.db",
        ]
        for pack in (1, 10):
            wall = run(
                [*common, f"hydra.sweeper.pack={pack}", f"hydra.sweeper.study_name=p{pack}"], work, env
            )
            print(
                f"\n30 one-step trials, pack {pack}: {1000 * wall / 30:.0f} ms per trial (start-up included)"
            )
        stats = work / "profile.out"
        command = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(stats),
            SWEEPLAB[0],
            "train",
            "-m",
            *common,
            "hydra.sweeper.study_name=prof",
        ]
        subprocess.run(command, cwd=work, env=env, check=True, capture_output=True)
        print("\nwhere a trial's time goes (pack 1, under cProfile, which slows each call), ms per trial:")
        for (path, _, name), (_, calls, _, cumulative, _) in sorted(pstats.Stats(str(stats)).stats.items()):
            if any(path.endswith(file) and name == function for file, function in PHASES):
                print(f"  {Path(path).name}:{name:<16} {1000 * cumulative / 30:6.1f}  ({calls} calls)")


# The per-trial path, in the order a trial meets it
PHASES = [
    ("lifecycle.py", "claim"),  # ask Optuna for the trial under the study's lock, stamp its owner
    ("composer.py", "job_for"),  # compose its config (a copy of the cached composition), record it
    ("hydra/core/utils.py", "run_job"),  # Hydra's job: its folder, .hydra/ files, logging, the task
    ("hydra/core/utils.py", "_save_config"),
    ("loop.py", "build_trial"),  # check the config, seed, load the data (cached), build the model
    ("records.py", "__init__"),  # the run's folder and config.yaml
    ("loop.py", "fit"),
    ("loop.py", "conclude"),  # test the last and best weights, best.pt, summary.json
    ("controller.py", "_finish"),  # store the metrics, tell Optuna, the progress line
]


if __name__ == "__main__":
    main()
