"""The sweep files in sweeps/: each composes, each of its trials' configs builds, and each runs end to end
at `size=smoke` on generated files in the real on-disk formats (CIFAR-10, MNIST) with its report."""

import json
import os
import sqlite3
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sweeplab.config import call_with
from sweeplab.data.formats import write_cifar10, write_mnist
from sweeplab.losses import build_loss
from sweeplab.models import create_model
from sweeplab.optim import build_optimizer
from sweeplab.paths import config_dir
from sweeplab.sweeper.setups import expand_setups
from sweeplab.train.options import TrainerOptions

SWEEPS = sorted(p.stem for p in (config_dir() / "sweep").glob("*.yaml"))
# the shape a model sees: the data set's, or a flat vector after PCA
SHAPES = {"mnist1d": (1, 40), "mnist": (1, 28, 28), "cifar10": (3, 32, 32), "ellipse": (2,)}


def compose_trial(*overrides: str):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def planned_configs(sweep: str) -> list[tuple[str, object]]:
    """(setup label, composed config) for every setup of the sweep file, as its trials compose them."""
    sweeper = compose_trial(f"sweep={sweep}").hydra.sweeper
    setups = expand_setups(OmegaConf.to_container(sweeper.setups), sweeper.ablation)
    if not setups:
        return [("(one configuration)", compose_trial(f"sweep={sweep}"))]
    return [
        (s.label, compose_trial(f"sweep={sweep}", *(f"{k}={v}" for k, v in s.overrides.items())))
        for s in setups
    ]


def test_the_six_reference_studies_are_there():
    reference = {
        "cifar10_mlp_ablation",
        "cifar10_mlp_setups",
        "cifar10_cnn",
        "mnist_classifiers",
        "cifar10_grid_pca",
        "synthetic_mlp",
    }
    assert reference <= set(SWEEPS)
    for name in reference:  # each cites its source report
        assert "# Source" in (config_dir() / "sweep" / f"{name}.yaml").read_text().split("defaults:")[0]


@pytest.mark.parametrize(  # the grid search's 69 trial configs under -m slow
    "sweep", [pytest.param(s, marks=pytest.mark.slow) if s == "cifar10_grid_pca" else s for s in SWEEPS]
)
def test_every_sweep_file_composes_and_each_trial_config_builds(sweep):
    configs = planned_configs(sweep)
    for label, cfg in configs:
        opts = call_with(TrainerOptions, cfg.trainer, "trainer")
        build_loss(cfg.loss)
        build_optimizer([torch.zeros(1, requires_grad=True)], cfg.optimizer)
        shape = (50,) if cfg.preprocess.name == "pca" else SHAPES[cfg.dataset.name]
        model = create_model(cfg.model, shape, 10)
        assert opts.batch_size > 0 and sum(p.numel() for p in model.parameters()) > 0, label
    spec = compose_trial(f"sweep={sweep}").hydra.sweeper.report
    keys = {k for _, cfg in configs for k in _flat_keys(OmegaConf.to_container(cfg))}
    for table in [spec, *spec.get("tables", [])]:
        for column in table.get("columns") or []:
            for part in column.split("+"):
                assert part == "setup" or part in keys, f"{sweep}: report column {part} is no config key"


def _flat_keys(node: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in node.items():
        keys |= _flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return keys


def test_the_ablation_rows_follow_report_000():
    rows = planned_configs("cifar10_mlp_ablation")
    assert len(rows) == 16
    first, kept_bn, undone_bn, last = rows[0][1], rows[6][1], rows[10][1], rows[15][1]
    assert (first.model.hidden, first.model.activation, first.optimizer.lr) == ([100], "relu", 2e-3)
    assert (kept_bn.model.hidden, kept_bn.model.norm) == ([100, 100], "batch")  # (100, 50) was undone
    assert (undone_bn.model.norm, undone_bn.optimizer.lr) == ("none", 1e-2)
    assert (last.model.norm, last.scheduler.name, last.optimizer.lr) == ("batch", "plateau", 5e-2)
    assert (last.trainer.batch_size, last.trainer.max_steps, last.optimizer.momentum) == (100, 20000, 0.9)


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-ins in the real formats: CIFAR-10's pickled batches and MNIST's IDX files."""
    root = tmp_path_factory.mktemp("smoke_data")
    write_cifar10(root, n_train=500, n_test=100)  # batch 200 must fit the training split
    write_mnist(root, n_train=100, n_test=600)  # mnist_classifiers reads only the t10k files
    return root


SMOKE = [  # one in the default suite (an ablation); every one under -m slow, as CI runs it
    "cifar10_mlp_ablation",
    pytest.param("mnist_classifiers", marks=pytest.mark.slow),
    pytest.param("cifar10_mlp_setups", marks=pytest.mark.slow),
    pytest.param("cifar10_cnn", marks=pytest.mark.slow),
    pytest.param("synthetic_mlp", marks=pytest.mark.slow),
    pytest.param("cifar10_grid_pca", marks=pytest.mark.slow),  # 69 trials
]


@pytest.mark.parametrize("sweep", SMOKE)
def test_smoke_run_of_each_study_and_its_report(sweep, smoke_data, sweeplab, tmp_path, monkeypatch):
    monkeypatch.setitem(os.environ, "SWEEPLAB_VERIFY_MD5", "false")  # the CIFAR-10 stand-ins
    common = [f"sweep={sweep}", "size=smoke", f"data_dir={smoke_data}", "trainer.progress=false"]
    run = sweeplab("train", *common)
    assert run.returncode == 0, run.stdout[-3000:]
    sweeper = compose_trial(f"sweep={sweep}").hydra.sweeper
    expected = len(expand_setups(OmegaConf.to_container(sweeper.setups), sweeper.ablation))
    assert f"this run: {expected} trials ({expected} COMPLETE)" in run.stdout
    db = tmp_path / "studies" / "smoke.db"
    with sqlite3.connect(db) as c:  # every trial ran at most the smoke cap of 3 steps
        rows = c.execute("select value_json from trial_user_attributes where key='metrics'").fetchall()
    steps = [json.loads(v)["steps"] for (v,) in rows]
    assert len(steps) == expected and max(steps) == 3

    report = sweeplab("report", f"sweep={sweep}", "size=smoke")
    assert report.returncode == 0, report.stdout[-3000:]
    out = tmp_path / "outputs" / "smoke" / "reports" / sweep
    index = (out / "index.md").read_text()
    assert "capped at 3 steps (a smoke run)" in index
    assert (
        list(out.glob("table*.md"))
        and list(out.glob("table*.tex"))
        and (out / "learning_curves.png").is_file()
    )
    again = sweeplab("train", *common)  # a finished study: a rerun runs nothing
    assert "this run: 0 trials (none)" in again.stdout, again.stdout[-2000:]


ALL_SWEEPS = sorted(p.stem for p in (Path(__file__).parents[2] / "sweeps").glob("*.yaml"))
PACKED_DEFAULT = ("mnist1d_mlp_ablation",)  # the others under -m slow (the default suite: 6 minutes)
# Two studies whose setups all differ in structure (one seed each) get seeds: cifar10_cnn's conv net and
# ResNet then pack, and its DenseNet (torchvision) falls back to one trial at a time
EXTRA = {"cifar10_cnn": ["trainer.seed=choice(0,1)"], "cifar10_mlp_setups": ["trainer.seed=choice(0,1)"]}
# A study whose trials all differ in structure (mnist1d_pareto: shapes, activations, norms) has nothing to
# pack across trials: what packs there is each trial's replicates, its seeds
REPLICATES_PACK = {"mnist1d_pareto": 3}


@pytest.mark.parametrize(
    "sweep", [s if s in PACKED_DEFAULT else pytest.param(s, marks=pytest.mark.slow) for s in ALL_SWEEPS]
)
def test_every_sweep_runs_packed_at_smoke_size(sweep, smoke_data, sweeplab, tmp_path, monkeypatch):
    """`hydra.sweeper.pack=4`: every trial completes, and trials that differ only in packable values
    (seeds, rates, dropout) run packed, each with its own records."""
    monkeypatch.setitem(os.environ, "SWEEPLAB_VERIFY_MD5", "false")
    common = [f"sweep={sweep}", "size=smoke", f"data_dir={smoke_data}", "trainer.progress=false"]
    run = sweeplab("train", *common, "hydra.sweeper.pack=4", *EXTRA.get(sweep, []))
    assert run.returncode == 0, run.stdout[-3000:]
    with sqlite3.connect(tmp_path / "studies" / "smoke.db") as c:
        states = [s for (s,) in c.execute("select state from trials")]
        packed = c.execute("select value_json from trial_user_attributes where key='packed_with'").fetchall()
        rows = c.execute("select value_json from trial_user_attributes where key='output_dir'").fetchall()
        reused = c.execute("select count(*) from trial_user_attributes where key='reused_from'").fetchone()[0]
    assert states and set(states) == {"COMPLETE"}, run.stdout[-3000:]
    if sweep in REPLICATES_PACK:
        n = REPLICATES_PACK[sweep]
        members = list((tmp_path / "outputs" / "smoke").rglob("seed_*/summary.json"))
        # a configuration drawn again took its twin's result: it trained no members
        assert len(members) == n * (len(states) - reused) and f"packed: {n} runs" in run.stdout
        assert {json.loads(m.read_text())["pack_size"] for m in members} == {n}
        return
    assert packed and "packed: " in run.stdout, f"{sweep}: nothing was packed"
    if sweep == "cifar10_cnn":
        assert "run one at a time, not packed: " in run.stdout
    for (folder,) in rows:
        summary = json.loads((Path(json.loads(folder)) / "summary.json").read_text())
        assert summary["steps"] <= 3
