"""A trial is a function of its config and seed: on CPU, the same resolved config and seed give the same
history.csv (every value but the wall clock) and the same summary.json metrics, run twice: a single run,
a pack, a sweep with n_jobs 1 and 2, replicates, an image folder with its cache cold then warm, and the
real CIFAR-10 JPEG copy (slow). A run killed and resumed ends as the run that was not:
tests/train/test_train.py and tests/packed/test_packed.py check that, at every evaluation."""

import json
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from support import EXACT, make_folder
from sweeplab.packed import train_pack
from sweeplab.run_records import read_history, read_summary
from sweeplab.train import train

# a run with every source of randomness a trial has: its init, data order, dropout, batch statistics
RUN = [
    "trainer.max_steps=60",
    "trainer.eval_every=20",
    "trainer.batch_size=32",
    "model.norm=batch",
    "model.dropout=0.2",
    *EXACT,
]
CLOCK = {"elapsed_s", "train_seconds", "wall_seconds", "samples_per_s", "checkpoint"}  # when, not what


def records(folder: Path) -> tuple[list[dict], dict]:
    """What a run computed: its history rows and summary, without the wall clock and its own path."""
    history = [{k: v for k, v in row.items() if k not in CLOCK} for row in read_history(folder)]
    summary = {k: v for k, v in read_summary(folder).items() if k not in CLOCK}
    return history, summary


def test_a_single_run_twice(make_cfg, tmp_path):
    cfg = make_cfg(*RUN)
    for name in "ab":
        train(cfg, tmp_path / name)
    assert records(tmp_path / "a") == records(tmp_path / "b")


def test_a_pack_twice(make_cfg, tmp_path):
    cfgs = [make_cfg(*RUN, f"trainer.seed={s}", f"optimizer.lr={lr}") for s, lr in ((0, 1e-3), (1, 3e-3))]
    for name in "ab":
        train_pack(cfgs, [tmp_path / name / str(i) for i in range(2)], [None, None])
    for i in range(2):
        assert records(tmp_path / "a" / str(i)) == records(tmp_path / "b" / str(i))


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(["hydra.sweeper.n_jobs=1"], marks=pytest.mark.slow),  # as every sweep of the suite
        pytest.param(["hydra.sweeper.n_jobs=2"], marks=pytest.mark.slow),  # the default suite: 6 minutes
        ["hydra.sweeper.replicates=2"],
    ],
)
def test_a_sweep_twice(sweeplab, tmp_path, extra):
    grid = ["optimizer.lr=choice(0.001,0.003)", "hydra.sweeper.sampler=grid", *RUN, *extra]
    for name in ("a", "b"):
        assert sweeplab("train", "-m", *grid, f"hydra.sweeper.study_name={name}").returncode == 0
    first, second = tmp_path / "outputs/sweeps/a", tmp_path / "outputs/sweeps/b"
    folders = sorted(p.parent.relative_to(first) for p in first.rglob("history.csv"))  # each run's
    assert len(folders) == (4 if "hydra.sweeper.replicates=2" in extra else 2)
    for folder in folders:
        assert records(first / folder) == records(second / folder)


def test_an_image_folder_with_its_cache_cold_then_warm(make_cfg, tmp_path):
    folder = make_folder(tmp_path / "set", {"train": 12, "test": 4}, suffix=".jpg", size=(16, 16))
    cfg = make_cfg("dataset=image_folder", f"dataset.path={folder}", f"data_dir={tmp_path / 'data'}", *RUN)
    train(cfg, tmp_path / "cold")  # decodes the JPEGs and caches them
    assert list((tmp_path / "data" / "image_folders").glob("*.pt"))
    train(cfg, tmp_path / "warm")  # from the cache
    assert records(tmp_path / "cold") == records(tmp_path / "warm")


CIFAR10_JPEG = SHARED_DATA / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason=f"{CIFAR10_JPEG} absent")
def test_the_cifar10_jpeg_copy_cold_then_warm(make_cfg, tmp_path):
    cfg = make_cfg(
        "dataset=cifar10", f"dataset.path={CIFAR10_JPEG}", f"data_dir={tmp_path / 'data'}", "model=cnn",
        "model.channels=[8,16]", "trainer.max_steps=40", "trainer.eval_every=20", "trainer.batch_size=64",
    )  # fmt: skip
    for name in ("cold", "warm"):
        train(cfg, tmp_path / name)
    assert records(tmp_path / "cold") == records(tmp_path / "warm")
    assert json.loads((tmp_path / "warm" / "summary.json").read_text())["steps"] == 40
