"""What several test modules share: the short sweep settings, reading a study back, the SLURM test
study, and image folders written in real formats. (Fixtures are in conftest.py.)"""

import os
import shutil
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch
from torchvision.io import encode_jpeg, encode_png

# --- sweeps -----------------------------------------------------------------------------------------

FAST = ["trainer.max_steps=40", "trainer.eval_every=10"]
# long enough to be killed mid-trial: 3,000 steps of the MLP are about 1.2 s on the 2-core CPU
SLOW_TRIALS = ["trainer.max_steps=3000", "trainer.eval_every=100"]
LR = "optimizer.lr=tag(log, interval(1e-4, 1e-1))"
# what a test that wants the same numbers twice adds: nothing on the CPU, whose kernels give the same sums
# every run; on CUDA torch's deterministic algorithms (docs/training.md), without which cuDNN picks its
# kernels by timing them and some accumulate in any order
EXACT = ["trainer.deterministic=true"] if torch.cuda.is_available() else []


def load(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/studies/{name}.db")


def states(study: optuna.Study) -> Counter:
    return Counter(t.state.name for t in study.get_trials())


def wait_for_rows(history: Path, rows: int, timeout: float = 120) -> None:
    """Until `history` (a history.csv) has `rows` evaluations."""
    deadline = time.time() + timeout
    while not (history.is_file() and len(history.read_text().splitlines()) > rows):
        assert time.time() < deadline, f"{history} never reached {rows} rows"
        time.sleep(0.1)


# --- SLURM (tests/sweeper/test_slurm.py, tests/track/test_mlflow.py) ---------------------------------

POSTGRES = os.environ.get("SWEEPLAB_TEST_POSTGRES")


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and "up" in out.stdout


needs_slurm = pytest.mark.skipif(
    not _cluster_answers(), reason="no SLURM cluster answers (`.ci/slurm start DIR` starts one here)"
)


def study_args(
    tmp_path: Path, name: str, *extra: str, trials: int = 6, steps: int = 1000, journal: bool = False
) -> list[str]:
    """The 6-trial test study: MNIST-1D MLPs, `steps` steps each, on a shared storage."""
    storage = f"journal://{tmp_path / 'studies' / name}.log" if journal or not POSTGRES else POSTGRES
    return [
        "train",
        "-m",
        "sweep=mnist1d_mlp",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.n_trials={trials}",
        f"trainer.max_steps={steps}",
        "hydra.sweeper.slurm.cpus_per_task=1",
        *extra,
    ]


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


# --- image folders (tests/data/test_image_folder.py, tests/train/test_reproducible.py) ---------------

CLASSES = ["cat", "dog", "emu"]


def image(label: int, index: int, size: tuple[int, int] = (8, 6), channels: int = 3) -> torch.Tensor:
    """A distinct uint8 image for each (label, index): smooth, so JPEG keeps it close."""
    h, w = size
    base = torch.linspace(0, 1, h * w).reshape(1, h, w) * 120
    return (base + 40 * label + 7 * index).clamp(0, 255).to(torch.uint8).expand(channels, h, w).contiguous()


def write_image(path: Path, pixels: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = encode_png(pixels) if path.suffix == ".png" else encode_jpeg(pixels, quality=95)
    path.write_bytes(encoded.numpy().tobytes())


def make_folder(root: Path, splits: dict[str, int] | None = None, suffix: str = ".png", **image_args) -> Path:
    """root/<split>/<class>/<i><suffix>: `splits` maps each split to its images per class."""
    for split, count in (splits or {"train": 4, "test": 2}).items():
        for label, name in enumerate(CLASSES):
            for i in range(count):
                write_image(root / split / name / f"{i:04d}{suffix}", image(label, i, **image_args))
    return root
