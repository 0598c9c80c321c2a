"""A drop-in successor to hydra-optuna-sweeper: its four example apps (re-created from their public
behaviour) and a lightning-hydra-template `hparams_search` file run with only the override line changed
(`override hydra/sweeper: optuna` -> `sweeplab`), and give the results the old sweeper's users expect."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

APPS = Path(__file__).parent / "optuna_apps"


def run_app(tmp_path: Path, app: str, *args: str, folder: str | None = None) -> tuple[str, Path]:
    """`python app.py -m ARGS` in a copy of the app's folder, as its user runs it: (output, folder)."""
    where = tmp_path / (folder or app)
    shutil.copytree(APPS / app, where)
    if not (where / "app.py").exists():  # the grid example is the sphere's app with another config
        shutil.copy(APPS / "sphere" / "app.py", where)
    done = subprocess.run(
        [sys.executable, "app.py", "-m", *args], cwd=where, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if k != "SWEEPLAB_STUDIES_DIR"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr, where


def study_of(where: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{where}/studies/{name}.db")


def results_of(where: Path) -> dict:
    [path] = where.glob("multirun/*/*/optimization_results.yaml")
    return yaml.safe_load(path.read_text())


def test_the_sphere_on_a_grid_finds_its_minimum_and_stops_when_the_grid_is_done(tmp_path):
    out, where = run_app(tmp_path, "grid")
    study = study_of(where, "sphere_grid")
    assert len(study.trials) == 15  # 5 x 3 points, though n_trials is 100
    assert {(t.params["x"], t.params["y"]) for t in study.trials} == {
        (x, y) for x in range(-2, 3) for y in (-1, 0, 1)
    }
    assert study.best_value == 0 and study.best_params == {"x": 0, "y": 0}
    assert results_of(where) == {"name": "optuna", "best_params": {"x": 0, "y": 0}, "best_value": 0.0}
    assert "value=0" in out and "val_acc" not in out


@pytest.mark.slow  # two whole studies
def test_a_seeded_tpe_study_of_the_sphere_reproduces(tmp_path):
    runs = [run_app(tmp_path, "sphere", folder=f"run{i}")[1] for i in range(2)]
    first, second = (study_of(where, "sphere") for where in runs)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert len(first.trials) == 20 and first.best_value <= 9  # x in [-5.5, 5.5] by 0.5, y in {-5, 0, 5}
    assert results_of(runs[0])["best_value"] == first.best_value


def test_two_objectives_returned_as_a_tuple_give_a_pareto_front(tmp_path):
    out, where = run_app(tmp_path, "multi")
    study = study_of(where, "multi-objective")
    assert len(study.trials) == 20 and len(study.directions) == 2
    values = [t.values for t in study.trials]
    front = [v for v in values if not any(w[0] <= v[0] and w[1] <= v[1] and w != v for w in values)]
    assert sorted(t.values for t in study.best_trials) == sorted(front)
    for t in study.trials:  # Binh and Korn's two functions of the trial's x and y
        x, y = t.params["x"], t.params["y"]
        assert t.values == [4 * x**2 + 4 * y**2, (x - 5) ** 2 + (y - 5) ** 2]
    solutions = results_of(where)["solutions"]
    assert sorted(s["values"] for s in solutions) == sorted(front)
    assert "value_0=" in out and "value_1=" in out


def test_a_custom_search_space_suggests_more_values_from_the_trials_own(tmp_path):
    where = run_app(tmp_path, "custom")[1]
    study = study_of(where, "custom-search-space")
    assert len(study.trials) == 20
    for t in study.trials:
        p = t.params
        assert abs(p["z"] - p["x"]) <= 0.5 and 0 <= p["+w"] <= 1  # as configure() suggested them
        assert t.value == pytest.approx(p["+w"] ** 2 + p["x"] ** 2 + p["y"] ** 2 + p["z"] ** 2)


@pytest.mark.slow  # two whole studies
def test_a_lightning_hydra_template_hparams_search_file_runs(tmp_path):
    where = run_app(tmp_path, "lightning", "hparams_search=mnist_optuna")[1]
    study = study_of(where, "app")  # study_name: null names the study after the app
    assert len(study.trials) == 20 and study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert set(study.best_params) == {
        "model.optimizer.lr",
        "data.batch_size",
        "model.net.lin1_size",
        "model.net.lin2_size",
    }
    again = run_app(tmp_path, "lightning", "hparams_search=mnist_optuna", folder="again")[1]
    # the sampler's seed (a _target_ dict's option) is honoured: the same trials again
    assert [t.params for t in study_of(again, "app").trials] == [t.params for t in study.trials]


def test_keys_of_the_old_sweeper_are_named_with_sweeplabs(tmp_path):
    where = tmp_path / "old"
    shutil.copytree(APPS / "sphere", where)
    config = where / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("    params:", "    search_space:"))
    done = subprocess.run([sys.executable, "app.py", "-m"], cwd=where, capture_output=True, text=True)
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "hydra.sweeper.search_space is hydra-optuna-sweeper 1.1's key" in said
    assert "hydra.sweeper.params" in said and "Traceback" not in said


def test_the_old_sweepers_class_left_in_a_config_is_one_line(sweeplab):
    old = "hydra.sweeper._target_=hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    done = sweeplab("train", "-m", old, "optimizer.lr=choice(0.1,0.01)")
    assert done.returncode == 2 and "Traceback" not in done.stdout
    assert done.stdout.strip().splitlines() == [
        "sweeplab train: error: hydra.sweeper._target_ names hydra-optuna-sweeper's class: delete that line "
        "(`override hydra/sweeper: sweeplab` in the defaults list is all sweeplab needs)"
    ]
