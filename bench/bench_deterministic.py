"""`trainer.deterministic=true` on CUDA: does it give the same numbers twice, and what does it cost (not a
test: it times things). The seed rows' nets (report 002's plain conv net, report 001's course ConvNet) on
the CIFAR-10 copy, each trained twice with the flag and twice without, interleaved after a warm-up of
each, in this one process (the flag is process-wide: `TrainerOptions.apply_globals` switches torch's
deterministic algorithms and cuDNN's autotuner as each run starts, as it does between a sweep's trials).
For each pair: whether the two runs' history.csv rows (every value but the clock) are identical, the
largest difference of a validation loss, and the training time per step.

    python bench/bench_deterministic.py --cifar data/cifar10-jpeg.tar.gz [--steps 300] [--device cuda]
"""

import argparse
import os
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from sweeplab.paths import config_dir
from sweeplab.run_records import read_history, read_summary
from sweeplab.train import train

# cuBLAS needs it before its first call for reproducible matrix products; apply_globals sets it too, but
# only when the flag is on, and this process runs the flag off first
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

NETS = {  # sweeps/cifar10_cnn.yaml's setups, as overrides
    "plain conv net": [
        "model=cnn",
        "model.channels=[8,16,32,32,64,64,64,64]",
        "model.pool_after=[1,2,4,6,8]",
        "model.conv_activation=false",
        "model.hidden=[256]",
        "optimizer.lr=1e-3",
        "trainer.batch_size=64",
    ],
    "course ConvNet": [
        "model=preact_convnet",
        "preprocess=center",
        "optimizer.lr=1e-4",
        "trainer.batch_size=32",
    ],
}
CLOCK = {"elapsed_s"}


def run(overrides: list[str], folder: Path) -> tuple[list[dict], float]:
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    train(cfg, folder)
    history = [{k: v for k, v in row.items() if k not in CLOCK} for row in read_history(folder)]
    summary = read_summary(folder)
    return history, summary["train_seconds"] / summary["steps"]


def largest_difference(a: list[dict], b: list[dict], key: str = "val_loss") -> float:
    pairs = [(x[key], y[key]) for x, y in zip(a, b, strict=True) if x.get(key) not in (None, "")]
    return max((abs(float(x) - float(y)) for x, y in pairs), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cifar", required=True, help="the CIFAR-10 copy (archive or folder)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--nets", default=",".join(NETS), help="which of the nets, by name, comma-separated")
    args = parser.parse_args()
    common = [
        "dataset=cifar10",
        f"dataset.path={Path(args.cifar).absolute()}",
        "preprocess=standardize",
        "optimizer=adam",
        f"trainer.max_steps={args.steps}",
        f"trainer.eval_every={max(args.steps // 3, 1)}",
        f"trainer.device={args.device}",
        "trainer.progress=false",
    ]
    print(f"{args.steps} steps on {args.device}; CIFAR-10 JPEG (q75) copy\n")
    print("| net | flag | same history twice | largest val_loss difference | ms a step, evals in | cost |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for net in args.nets.split(","):
            overrides = NETS[net]
            runs: dict[bool, list[tuple[list[dict], float]]] = {False: [], True: []}
            for flag in (False, True):  # warm-up: cuDNN's autotuner, kernels loaded, the data cached
                warm = [f"trainer.deterministic={flag}", f"trainer.max_steps={min(args.steps, 20)}"]
                run([*common, *overrides, *warm], Path(tmp) / "w")
            for repeat in range(2):
                for flag in (False, True):
                    folder = Path(tmp) / f"{net[:5]}-{flag}-{repeat}"
                    runs[flag].append(run([*common, *overrides, f"trainer.deterministic={flag}"], folder))
            free = min(runs[False][0][1], runs[False][1][1])
            for flag in (False, True):
                (a, step_a), (b, step_b) = runs[flag]
                step = min(step_a, step_b)
                print(
                    f"| {net} | {str(flag).lower()} | {'yes' if a == b else 'no'} | "
                    f"{largest_difference(a, b):.3g} | {1000 * step:.2f} | {step / free:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
