"""Start-up and the fixed cost of a trial (not a test: it times things). Whole commands, each in a fresh
folder with MNIST-1D already cached, interleaved and repeated, medians shown:

1. `python -c 'import torch'` (the floor) against `sweeplab train trainer.max_steps=1`, and the commands
   that never load torch (`sweeplab --help`, `sweeplab report --help`);
2. 30 one-step MNIST-1D MLP trials in one sweep (`pack=1`), start-up included, per trial; and the cost of
   one more trial without start-up: (60 trials - 30 trials) / 30. Beside them, the floor of any sweep
   stored through Optuna: torch imported, then Optuna alone on SQLite, 30 trials that train nothing and
   write no files; and with --classic-python, the classic stack (Hydra + hydra-optuna-sweeper + a plain
   loop, bench/classic/, set up as bench_real_trials.py says) on the same 30 one-step trials.

`--before SRC` runs the same commands with another checkout's `src` first on the path (e.g. a
`git worktree` of an older commit), in the same run, so the two are measured side by side.

    python bench/bench_startup.py [--repeats 5] [--before /work/old/src]
        [--classic-python /tmp/hos/bin/python] [--devices cpu,cuda]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEPLAB = str(Path(sys.executable).with_name("sweeplab"))
FLOOR = "floor: torch, then Optuna alone on SQLite, 30 trials"
CLASSIC = "classic stack, 30 one-step trials"
OPTUNA_FLOOR = """
import torch, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(storage="sqlite:///floor.db", direction="maximize")
study.optimize(lambda trial: trial.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=30)
"""
ONE_STEP_SWEEP = [
    "train",
    "-m",
    "optimizer.lr=interval(0.0001,0.01)",
    "trainer.max_steps=1",
    "trainer.progress=false",
]


def trials_name(n: int, device: str) -> str:
    return f"{n} one-step trials" + (f", trainer.device={device}" if device else "")


def timed(command: list[str], env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", help="another checkout's src folder, measured beside this one")
    parser.add_argument("--classic-python", help="python of the hydra-optuna-sweeper environment")
    parser.add_argument("--devices", default="", help="e.g. cpu,cuda: the one-step trials on each device")
    args = parser.parse_args()
    data = os.environ.get("SWEEPLAB_DATA_DIR", str(Path("data").absolute()))
    env = dict(os.environ, SWEEPLAB_DATA_DIR=data, CLASSIC_OUT=tempfile.mkdtemp(prefix="classic_"))
    codes = {"now": env}
    if args.before:
        codes["before"] = dict(env, PYTHONPATH=str(Path(args.before).absolute()))
    timed([SWEEPLAB, "train", "trainer.max_steps=1"], env)  # MNIST-1D generated and cached once
    commands = {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "sweeplab train trainer.max_steps=1": [
            SWEEPLAB,
            "train",
            "trainer.max_steps=1",
            "trainer.progress=false",
        ],
        "sweeplab --help": [SWEEPLAB, "--help"],
        "sweeplab report --help": [SWEEPLAB, "report", "--help"],
        FLOOR: [sys.executable, "-c", OPTUNA_FLOOR],
    }
    devices = args.devices.split(",") if args.devices else [""]  # "": the default device (auto)
    for device in devices:
        on = [f"trainer.device={device}"] if device else []
        for n in (30, 60):
            commands[trials_name(n, device)] = [SWEEPLAB, *ONE_STEP_SWEEP, *on, f"hydra.sweeper.n_trials={n}"]
    if args.classic_python:
        classic = [args.classic_python, str(Path(__file__).parent / "classic" / "classic_app.py"), "-m"]
        commands[CLASSIC] = [*classic, "steps=1", "hydra.sweeper.n_trials=30"]
    references = {"python -c 'import torch'", FLOOR, CLASSIC}  # measured once, not per checkout
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):  # interleaved: the machine's load falls on all alike
        for name, command in commands.items():
            for code, code_env in codes.items():
                if code == "before" and name in references:
                    continue
                times.setdefault((name, code), []).append(timed(command, code_env))
                print(f"{name} [{code}]: {times[(name, code)][-1]:.2f} s", flush=True)  # kept if cut short
    median = {key: statistics.median(values) for key, values in times.items()}
    torch_import = median[("python -c 'import torch'", "now")]
    print(f"\nmedians of {args.repeats}, seconds\n\n| command | " + " | ".join(codes) + " |")
    print("| --- |" + " --- |" * len(codes))
    for name in commands:
        cells = []
        for code in codes:
            value = median.get((name, code), median.get((name, "now")))
            ratio = f" ({value / torch_import:.2f}x torch)" if "trials" not in name else ""
            cells.append(f"{value:.2f}{ratio}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for code in codes:
        for device in devices:
            thirty, sixty = median[(trials_name(30, device), code)], median[(trials_name(60, device), code)]
            where = f" on {device}" if device else ""
            print(
                f"{code}{where}: {1000 * thirty / 30:.0f} ms a trial with start-up "
                f"(30 trials); {1000 * (sixty - thirty) / 30:.0f} ms a trial more without it"
            )
    for name in (FLOOR, CLASSIC):
        if name in commands:
            print(f"{name}: {1000 * median[(name, 'now')] / 30:.0f} ms a trial with start-up")


if __name__ == "__main__":
    main()
