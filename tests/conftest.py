"""Tests compose the real config from conf/ and shrink it (tiny budgets, a per-session data folder)."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from sweeplab.paths import config_dir

# Real data sets beside the project root, in every session and CI, absent from a user's clone.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST1D_PKL = SHARED_DATA / "mnist1d" / "mnist1d_data.pkl"
MNIST_T10K = SHARED_DATA / "mnist-t10k"

needs_mnist1d_pkl = pytest.mark.skipif(not MNIST1D_PKL.is_file(), reason=f"{MNIST1D_PKL} absent")
needs_mnist_t10k = pytest.mark.skipif(
    not (MNIST_T10K / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"{MNIST_T10K} absent"
)

Compose = Callable[..., DictConfig]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder per test session, so MNIST-1D is generated once and cached."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_cfg(data_dir: Path) -> Compose:
    """`make_cfg("model=cnn", ...)`: the real composed config, with a 20-step budget unless overridden."""

    def make(*overrides: str) -> DictConfig:
        base = [
            f"data_dir={data_dir}",
            "trainer.progress=false",
            "trainer.max_steps=20",
            "trainer.eval_every=10",
        ]
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose("config", overrides=[*base, *overrides])

    return make


@pytest.fixture
def sweeplab(tmp_path: Path, data_dir: Path) -> Callable[..., Any]:
    """Run the installed `sweeplab` command in `tmp_path` (its outputs and studies land there); its
    stdout and stderr are read together as `.stdout`. `background=True` returns the Popen."""

    def run(
        *args: str,
        background: bool = False,
        new_group: bool = False,
        timeout: float = 600,
        cwd: Path | None = None,
    ) -> Any:
        env = dict(
            os.environ, SWEEPLAB_DATA_DIR=str(data_dir), SWEEPLAB_STUDIES_DIR=str(tmp_path / "studies")
        )
        command = [str(Path(sys.executable).with_name("sweeplab")), *args]
        streams = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        if background:  # new_group: its own process group, to signal it as a terminal or a scheduler would
            return subprocess.Popen(
                command,
                cwd=cwd or tmp_path,
                env=env,
                start_new_session=new_group,
                # as a terminal's foreground job has it: under a shell's `&` (CI started in the
                # background) SIGINT arrives ignored, and Python keeps an ignored SIGINT ignored
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                **streams,
            )
        return subprocess.run(command, cwd=cwd or tmp_path, env=env, timeout=timeout, **streams)

    return run


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root only; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


class Stopped(Exception):
    """Raised by `interrupted_at`'s run: as a kill right after an evaluation."""


def interrupted_at(cfg: DictConfig, output_dir: Path, step: int) -> None:
    """Train `cfg` into `output_dir` with a checkpoint at every evaluation, killed right after the
    evaluation of `step` (before its checkpoint): the folder a resumed run carries on from."""
    from sweeplab.train import train

    def stop(at: int, row: dict) -> bool:
        if at == step:
            raise Stopped
        return False

    every_evaluation = cfg.copy()
    every_evaluation.trainer.checkpoint_every = 0  # where the machine runs: not what it computes
    with pytest.raises(Stopped):
        train(every_evaluation, output_dir, reporter=stop)
