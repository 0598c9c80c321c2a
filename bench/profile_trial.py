"""Where a trial's fixed cost goes (not a test: it times things): one sweep of N one-step MNIST-1D MLP
trials run in this process, each step of a trial's path timed by a wrapper around it (wall time, no
sampling or tracing to inflate small calls), in ms a trial. Steps nest: a row's time includes the rows
indented under it. Run it with another checkout's code first on the path to compare:

    python bench/profile_trial.py [--trials 60]
    PYTHONPATH=/path/to/old/src python bench/profile_trial.py
"""

import argparse
import collections
import functools
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

# (depth, module, attribute): the per-trial path in the order a trial meets it
STEPS = [
    (0, "sweeplab.sweeper.controller", "SweepController._claim"),
    (1, "sweeplab.engine.lifecycle", "SharedStudy.claim"),
    (2, "optuna.study.study", "Study.ask"),
    (1, "sweeplab.sweeper.composer", "TrialComposer.job_for"),
    (2, "sweeplab.sweeper.composer", "TrialComposer.compose"),
    (3, "sweeplab.sweeper.space", "Param.suggest"),
    (3, "sweeplab.sweeper.composer", "with_values"),
    (2, "sweeplab.sweeper.composer", "set_user_attrs"),
    (0, "sweeplab.sweeper.job", "run_trial"),
    (1, "sweeplab.sweeper.hydra_job", "start_job"),
    (1, "sweeplab.train.loop", "train"),
    (2, "sweeplab.train.loop", "build_trial"),
    (3, "sweeplab.train.loop", "check_config"),
    (3, "sweeplab.train.loop", "load_data"),
    (3, "sweeplab.train.loop", "create_model"),
    (2, "sweeplab.train.loop", "RunRecorder"),
    (2, "sweeplab.train.loop", "fit"),
    (2, "sweeplab.train.loop", "conclude"),
    (0, "sweeplab.sweeper.controller", "SweepController._finish"),
    (1, "sweeplab.engine.lifecycle", "SharedStudy.complete"),
    (1, "sweeplab.sweeper.controller", "SweepController._ended"),
]


def timed_steps() -> dict[str, float]:
    spent: dict[str, float] = collections.defaultdict(float)
    for _, module, attribute in STEPS:
        owner = importlib.import_module(module)
        *classes, name = attribute.split(".")
        for cls in classes:
            owner = getattr(owner, cls)
        original = getattr(owner, name)

        def timer(*args, _original=original, _key=f"{module}:{attribute}", **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_key] += time.perf_counter() - start

        setattr(owner, name, functools.wraps(original)(timer))
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args()
    os.environ.setdefault("SWEEPLAB_DATA_DIR", str(Path("data").absolute()))
    spent = timed_steps()
    from sweeplab.cli import main as sweeplab

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        start = time.perf_counter()
        sweeplab(
            [
                "train",
                "-m",
                "optimizer.lr=interval(0.0001,0.01)",
                f"hydra.sweeper.n_trials={args.trials}",
                "trainer.max_steps=1",
                "trainer.progress=false",
            ]
        )
        wall = time.perf_counter() - start
    code = Path(sys.modules["sweeplab"].__file__).parents[1]
    print(f"\n{args.trials} one-step trials in one sweep ({code}): {wall:.2f} s in this process after")
    print("its imports; ms a trial:\n\n| step | ms |\n| --- | --- |")
    for depth, module, attribute in STEPS:
        name = "&nbsp;&nbsp;" * depth + f"`{attribute.split('.')[-1]}`"
        print(f"| {name} | {1000 * spent[f'{module}:{attribute}'] / args.trials:.1f} |")


if __name__ == "__main__":
    main()
