"""Trackers (`logger=...`): what logging a study's runs costs (not a test: it times things). Each line
runs the whole `sweeplab train -m` command in a fresh folder: 16 MNIST-1D MLP (100, 100) trials of
--steps Adam steps, evaluated every 100 steps, a grid of 8 learning rates x 2 seeds, `pack: 1`.

    python bench/bench_logger.py [--steps 500] [--repeats 3] [--loggers tensorboard]
"""

import argparse
import statistics

from bench_replicates import LRS, environment, mlp_adam, run  # a whole command, timed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="each command this many times (the median)")
    parser.add_argument("--loggers", nargs="+", default=["tensorboard"])
    args = parser.parse_args()
    env = environment()
    common = [
        *mlp_adam(args.steps),
        "hydra.sweeper.sampler=grid",
        f"optimizer.lr={LRS}",
        "trainer.seed=choice(0,1)",
    ]
    run([*common, "trainer.max_steps=1", "hydra.sweeper.n_trials=1"], env)  # MNIST-1D generated, cached
    print(
        f"\n16 trials, {args.steps} Adam steps, an evaluation every 100 (whole command, median of "
        f"{args.repeats})\n\n| logger | wall time | per trial | against none |\n|---|---|---|---|"
    )
    base = None
    for logger in ["none", *args.loggers]:
        wall = statistics.median(run([*common, f"logger={logger}"], env) for _ in range(args.repeats))
        base = base or wall
        print(f"| {logger} | {wall:.1f} s | {wall / 16 * 1000:.0f} ms | {wall / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
