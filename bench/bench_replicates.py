"""Replicates (hydra.sweeper.replicates): what measuring a configuration over seeds costs (not a test: it
times things). Each line runs the whole `sweeplab train -m` command in a fresh folder, so start-up, data
loading, records and checkpoints are all counted. MNIST-1D MLP (100, 100), Adam, --steps steps.

1. One configuration: one unreplicated trial against one trial of 4 replicates (its members packed).
2. 16 configurations x 4 seeds (64 runs): `replicates: 4, pack: 4` (16 trials) against the same 64 runs
   as 64 single trials (`trainer.seed` swept, `pack: 1`).

    python bench/bench_replicates.py [--steps 2000] [--device cpu] [--repeats 1] [--only one|many]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEPLAB = [str(Path(sys.executable).with_name("sweeplab")), "train", "-m"]
LRS = "choice(0.0005,0.001,0.0015,0.002,0.003,0.004,0.005,0.006)"


def run(args: list[str], env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(
            [*SWEEPLAB, *args, f"hydra.sweeper.storage=sqlite:///{tmp}/s.db"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return wall


def environment() -> dict[str, str]:
    """The commands' environment: MNIST-1D generated once into ./data (or $SWEEPLAB_DATA_DIR)."""
    data = os.environ.get("SWEEPLAB_DATA_DIR", str(Path("data").absolute()))
    return dict(os.environ, SWEEPLAB_DATA_DIR=data)


def mlp_adam(steps: int) -> list[str]:
    """The benchmarks' trial: MNIST-1D MLP (100, 100), Adam, an evaluation every 100 steps."""
    return [
        "model.hidden=[100,100]",
        "optimizer=adam",
        f"trainer.max_steps={steps}",
        "trainer.eval_every=100",
        "trainer.progress=false",
    ]


def timed(args: list[str], env: dict[str, str], repeats: int) -> float:
    return statistics.median(run(args, env) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=1, help="each command this many times (the median)")
    parser.add_argument("--only", choices=["one", "many"], help="run only part 1 (one) or part 2 (many)")
    args = parser.parse_args()
    env = environment()
    common = [*mlp_adam(args.steps), f"trainer.device={args.device}"]
    run([*common, "trainer.max_steps=1", "hydra.sweeper.n_trials=1"], env)  # MNIST-1D generated, cached
    if args.only != "many":
        one_configuration(common, env, args)
    if args.only != "one":
        many_configurations(common, env, args)


def one_configuration(common: list[str], env: dict[str, str], args: argparse.Namespace) -> None:
    one = timed([*common, "hydra.sweeper.n_trials=1"], env, args.repeats)
    four = timed([*common, "hydra.sweeper.n_trials=1", "hydra.sweeper.replicates=4"], env, args.repeats)
    print(f"\nOne configuration, {args.steps} Adam steps, device {args.device} (whole command)\n")
    print("| runs | wall time | against one trial |\n|---|---|---|")
    print(f"| 1 trial, 1 run | {one:.1f} s | 1.00x |")
    print(f"| 1 trial, 4 replicates (packed) | {four:.1f} s | {four / one:.2f}x |", flush=True)


def many_configurations(common: list[str], env: dict[str, str], args: argparse.Namespace) -> None:
    grid = ["hydra.sweeper.sampler=grid", f"optimizer.lr={LRS}", "model.activation=choice(relu,elu)"]
    swept = timed([*common, *grid, "trainer.seed=choice(0,1,2,3)", "hydra.sweeper.pack=1"], env, args.repeats)
    packed = timed([*common, *grid, "hydra.sweeper.replicates=4", "hydra.sweeper.pack=4"], env, args.repeats)
    print(f"\n16 configurations x 4 seeds = 64 runs, {args.steps} Adam steps (whole command)\n")
    print("| how | trials | wall time | speed-up |\n|---|---|---|---|")
    print(f"| `trainer.seed` swept, pack 1 | 64 | {swept:.1f} s | 1.00x |")
    print(f"| replicates 4, pack 4 | 16 | {packed:.1f} s | {swept / packed:.2f}x |")


if __name__ == "__main__":
    main()
