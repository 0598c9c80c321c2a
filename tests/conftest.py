"""Tests compose the real config from conf/ and shrink it (tiny budgets, a per-session data folder)."""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from sweeplab.paths import config_dir

# trainer.deterministic sets this as a run starts, which in a test process may come after an earlier test's
# first cuBLAS call: set before any (it only sizes cuBLAS's workspace; the CPU ignores it)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

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


@dataclass
class Ran:
    """A command's end, as `subprocess.run` gives it: its exit status and its output."""

    args: list[str]
    returncode: int
    stdout: str


@contextlib.contextmanager
def _as_a_process(cwd: Path, env: dict[str, str]) -> Iterator[Callable[[], str]]:
    """What a command changes of its process, given back afterwards: the folder, the environment, argv,
    the logging Hydra configures (its log files closed), the signal handlers, torch's thread count,
    Hydra's global state. Its output, stdout and stderr together, goes to one file through file
    descriptors 1 and 2, so the worker processes it starts write there too, in order, as they would to
    a subprocess's pipe; yields what reads it back."""
    import torch
    from hydra.core.global_hydra import GlobalHydra

    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv[:], os.getcwd()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)}
    saved_threads, saved_format = torch.get_num_threads(), warnings.formatwarning
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        os.environ.update(env)
        os.chdir(cwd)
        try:  # Python's streams write line by line to the same file, so the lines keep their order
            with open(os.dup(file.fileno()), "w", buffering=1, encoding="utf-8") as stream:

                def output() -> str:
                    stream.flush()
                    file.seek(0)
                    return file.read().decode("utf-8", errors="replace")

                with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                    yield output
        finally:
            for fd, saved in zip((1, 2), saved_fds, strict=True):
                os.dup2(saved, fd)
                os.close(saved)
            for handler in root.handlers:
                if handler not in saved_handlers:
                    handler.close()
            root.handlers[:], root.level = saved_handlers, saved_level
            for signum, handler in saved_signals.items():
                signal.signal(signum, handler)
            torch.set_num_threads(saved_threads)
            warnings.formatwarning = saved_format
            GlobalHydra.instance().clear()
            os.chdir(saved_cwd)
            sys.argv[:] = saved_argv
            os.environ.clear()
            os.environ.update(saved_env)


def run_in_process(args: list[str], cwd: Path, env: dict[str, str]) -> Ran:
    """`sweeplab ARGS` as the console script runs it, in this process: the same code from the command
    line on (`sweeplab.cli.main`), without a new interpreter's start-up (about 3 s here). An exception the
    command lets through ends it as Python would: its traceback printed, exit status 1."""
    from sweeplab.cli import main

    with _as_a_process(cwd, env) as output:
        try:
            main(list(args))
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 0 if done.code is None else 1
            if not isinstance(done.code, int | None):
                print(done.code, file=sys.stderr)
        except KeyboardInterrupt:
            print("sweeplab: interrupted", file=sys.stderr)
            code = 130
        except Exception:
            traceback.print_exc()
            code = 1
        said = output()
    return Ran(list(args), code, said)


@pytest.fixture
def sweeplab(tmp_path: Path, data_dir: Path) -> Callable[..., Any]:
    """Run `sweeplab ARGS` in `tmp_path` (its outputs and studies land there); its stdout and stderr are
    read together as `.stdout`. It runs in this process unless the process is the point: `process=True`
    runs the installed console script, as do `background=True` (which returns the Popen, to signal or
    kill)."""

    def run(
        *args: str,
        background: bool = False,
        new_group: bool = False,
        timeout: float = 600,
        cwd: Path | None = None,
        process: bool = False,
    ) -> Any:
        paths = {"SWEEPLAB_DATA_DIR": str(data_dir), "SWEEPLAB_STUDIES_DIR": str(tmp_path / "studies")}
        if not (process or background):
            return run_in_process(list(args), cwd or tmp_path, paths)
        env = dict(os.environ, **paths)
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


@contextlib.contextmanager
def tmpfs(disk: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on the new folder `disk` (root only; the test is skipped elsewhere)."""
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs."""
    with tmpfs(tmp_path / "disk", "256k") as disk:
        yield disk


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
