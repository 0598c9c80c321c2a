"""Packed trials (hydra.sweeper.pack): trials per hour of the same trials, packed or not (not a test:
it times things). Each configuration runs the whole `sweeplab train -m` command in a fresh folder, so
start-up, data loading, records and checkpoints are all counted.

1. 16 MNIST-1D MLP trials (100,100), 1000 steps, 8 learning rates x 2 seeds (a grid):
   pack 1 / n_jobs 1 (the baseline), pack 16 / n_jobs 1, pack 1 / n_jobs 2, pack 8 / n_jobs 2.
2. --cifar PATH: 16 CIFAR-10-shaped MLP trials (3072-100-100-10, report 000's row), batch 200, on the
   JPEG copy (`dataset.path`), --cifar-steps steps each: the same comparison.
(Where a trial's fixed cost goes: bench/profile_trial.py; start-up: bench/bench_startup.py.)

    python bench/bench_pack.py [--steps 1000] [--cifar ../shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz]
        [--device cpu] [--big 64] [--no-mnist1d]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEPLAB = [str(Path(sys.executable).with_name("sweeplab")), "train", "-m"]
LRS = "choice(0.0005,0.001,0.0015,0.002,0.003,0.004,0.005,0.006)"


def run(args: list[str], work: Path, env: dict[str, str]) -> tuple[float, str]:
    """The whole command's wall time, and its output."""
    start = time.perf_counter()
    done = subprocess.run([*SWEEPLAB, *args], cwd=work, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout + done.stderr


def training_seconds(output: str, pack: int) -> float:
    """The time spent in training loops: each run's own figure (`completed: ..., 1.2s, ...`); the members
    of a pack each report their shared loop's, so it counts once per pack."""
    return sum(float(s) for s in re.findall(r"completed: .*?, ([\d.]+)s, ", output)) / pack


def compare(
    name: str, common: list[str], settings: list[tuple[int, int]], env: dict[str, str], n: int = 16
) -> None:
    print(
        f"\n{name}\n\n| pack | n_jobs | wall time | in training loops | outside them | trials per hour "
        "| speed-up |\n|---|---|---|---|---|---|---|"
    )
    base = None
    for pack, jobs in settings:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            study = [
                f"hydra.sweeper.study_name=b{pack}x{jobs}",
                f"hydra.sweeper.storage=sqlite:///{work}/s.db",
            ]
            wall, output = run(
                [*common, *study, f"hydra.sweeper.pack={pack}", f"hydra.sweeper.n_jobs={jobs}"], work, env
            )
        base, loops = base or wall, training_seconds(output, pack)
        print(
            f"| {pack} | {jobs} | {wall:.1f} s | {loops:.1f} s | {wall - loops:.1f} s "
            f"| {n * 3600 / wall:,.0f} | {base / wall:.2f}x |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--cifar", help="the CIFAR-10 copy (archive or folder) for the CIFAR-shaped MLP")
    parser.add_argument("--cifar-steps", type=int, default=500)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--big", type=int, default=0, help="also pack this many (a GPU: 64) trials")
    parser.add_argument("--no-mnist1d", action="store_true", help="skip the MNIST-1D comparison")
    parser.add_argument("--packs-only", action="store_true", help="pack 16 against pack 1 alone (n_jobs 1)")
    args = parser.parse_args()
    env = dict(
        os.environ, SWEEPLAB_DATA_DIR=os.environ.get("SWEEPLAB_DATA_DIR", str(Path("data").absolute()))
    )
    settings = [(1, 1), (16, 1)] if args.packs_only else [(1, 1), (16, 1), (1, 2), (8, 2)]
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


if __name__ == "__main__":
    main()
