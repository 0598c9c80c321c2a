"""Wall time of the 6-trial SLURM test study (tests/sweeper/test_slurm.py) run as 1 and as 2 array jobs,
from the submitting command's start to its end (it follows the study until done), on the cluster that
`sinfo` answers for (`.ci/slurm start DIR` starts a one-node one here; `source DIR/env`).

    python bench/bench_slurm.py [--storage URL] [--repeat 3] [--steps 1000]

Without --storage each run gets a journal file of its own. Each run is a new study in a new folder."""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def run_study(jobs: int, storage: str | None, steps: int, data_dir: Path) -> float:
    name = f"bench-slurm-{jobs}-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as folder:
        url = storage or f"journal://{folder}/{name}.log"
        command = [
            str(Path(sys.executable).with_name("sweeplab")),
            "train",
            "-m",
            "sweep=mnist1d_mlp",
            f"hydra.sweeper.study_name={name}",
            f"hydra.sweeper.storage={url}",
            "hydra.sweeper.n_trials=6",
            f"trainer.max_steps={steps}",
            "hydra.sweeper.slurm.cpus_per_task=1",
            f"hydra.sweeper.slurm.jobs={jobs}",
            f"data_dir={data_dir}",
        ]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode != 0 or "done (6 trials finished)" not in result.stdout + result.stderr:
            raise SystemExit(f"the study failed:\n{result.stdout}\n{result.stderr}")
        ids = re.search(r"SLURM jobs? ([\d_, ]+) \(", result.stdout + result.stderr)
        print(f"  jobs={jobs}: {seconds:.1f} s (SLURM job(s) {ids.group(1) if ids else '?'})")
        return seconds


def main() -> None:
    layout = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=layout)
    parser.add_argument("--storage", help="a PostgreSQL URL; default: a journal file per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        data_dir = Path(data)
        run_study(1, args.storage, 10, data_dir)  # MNIST-1D generated once, outside the timings
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeat):
            for jobs in times:
                times[jobs].append(run_study(jobs, args.storage, args.steps, data_dir))
    for jobs, seconds in times.items():
        print(f"6 trials, {jobs} array job(s): median {statistics.median(seconds):.1f} s of {seconds}")
    print(f"speed-up with 2 jobs: {statistics.median(times[1]) / statistics.median(times[2]):.2f}x")


if __name__ == "__main__":
    main()
