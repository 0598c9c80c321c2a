"""Real trials against the classic stack (not a test: it times things). 16 MNIST-1D MLP (100, 100)
trials of 2,000 Adam steps, TPE over the learning rate, whole commands in fresh folders, interleaved and
repeated in one run:

- classic: Hydra + hydra-optuna-sweeper + a plain PyTorch loop that evaluates once, at the end
  (bench/classic/classic_app.py), from its own environment (it needs Optuna < 3):
      python -m venv /tmp/hos && /tmp/hos/bin/pip install hydra-core hydra-optuna-sweeper
      echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/hos/lib/python3.11/site-packages/zz.pth  # torch
- sweeplab `pack=1` with its default evaluation every 100 steps (history, pruning, resume records);
- sweeplab `pack=1` evaluating once (`trainer.eval_every=2000`);
- sweeplab `pack=16`.

    python bench/bench_real_trials.py --classic-python /tmp/hos/bin/python [--repeats 2]
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_startup import timed  # a whole command in a fresh folder

HERE = Path(__file__).resolve().parent
SWEEPLAB = [str(Path(sys.executable).with_name("sweeplab")), "train", "-m"]
TRIALS = [
    "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
    "hydra.sweeper.n_trials=16",
    "hydra.sweeper.sampler.seed=0",
    "trainer.max_steps=2000",
    "trainer.progress=false",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--classic-python", required=True, help="python of the hydra-optuna-sweeper environment"
    )
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    data = os.environ.get("SWEEPLAB_DATA_DIR", str(Path("data").absolute()))
    classic_out = tempfile.mkdtemp(prefix="classic_")  # its trials' folders, written over at each repeat
    env = dict(os.environ, SWEEPLAB_DATA_DIR=data, CLASSIC_OUT=classic_out)
    timed([*SWEEPLAB, "optimizer.lr=choice(0.001)", "trainer.max_steps=1"], env)  # MNIST-1D cached once
    commands = {
        "classic: Hydra + hydra-optuna-sweeper + a plain loop, one evaluation": [
            args.classic_python,
            str(HERE / "classic" / "classic_app.py"),
            "-m",
        ],
        "sweeplab pack=1, evaluation every 100 steps (default)": [*SWEEPLAB, *TRIALS],
        "sweeplab pack=1, one evaluation (eval_every=2000)": [*SWEEPLAB, *TRIALS, "trainer.eval_every=2000"],
        "sweeplab pack=16": [*SWEEPLAB, *TRIALS, "hydra.sweeper.pack=16"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):  # interleaved: the machine's load falls on all alike
        for name, command in commands.items():
            times[name].append(timed(command, env))
    classic = statistics.median(times[next(iter(commands))])
    print(f"\n16 trials, medians of {args.repeats}\n\n| command | wall time | against the classic stack |")
    print("| --- | --- | --- |")
    for name, walls in times.items():
        value = statistics.median(walls)
        shown = ", ".join(f"{w:.1f}" for w in walls)
        print(f"| {name} | {value:.1f} s ({shown}) | {classic / value:.2f}x |")


if __name__ == "__main__":
    main()
