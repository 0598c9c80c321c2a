"""Slow (CI runs them with -m slow): a planned study under 10 SIGKILLs at random moments, and 8 commands
started together on a new storage. Both with the default settings."""

import os
import random
import signal
import time
import uuid
from collections import Counter

import optuna
import pytest
import sqlalchemy

from support import states
from sweeplab.engine.storage import open_storage

POSTGRES = os.environ.get("SWEEPLAB_TEST_POSTGRES")

PLANNED = """# @package _global_
hydra:
  mode: MULTIRUN
  sweeper:
    study_name: planned
    params:
      trainer.seed: choice(0,1)
    setups:
      - {model.hidden: [32], model.activation: relu}
      - {model.hidden: [32], model.activation: tanh}
      - {model.hidden: [64, 32], model.activation: relu}
      - {model.hidden: [64, 32], model.activation: elu}
"""


@pytest.fixture
def planned(tmp_path):
    (tmp_path / "mine" / "sweep").mkdir(parents=True)
    (tmp_path / "mine" / "sweep" / "planned.yaml").write_text(PLANNED)
    return ["train", f"--config-dir={tmp_path / 'mine'}", "sweep=planned"]


def check_finished(study: optuna.Study) -> None:
    """8 planned trials, each configuration done once, nothing left running or queued, unique numbers
    and folders."""
    trials = study.get_trials()
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 8 and not {"RUNNING", "WAITING"} & set(states(study))
    configurations = Counter((t.params["setup"], t.params["trainer.seed"]) for t in done)
    assert set(configurations.values()) == {1}
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers)
    assert len({t.user_attrs["output_dir"] for t in done}) == 8


@pytest.mark.slow
def test_ten_random_kills_then_a_final_run_finish_the_study_exactly(tmp_path, sweeplab, planned):
    args = [*planned, "hydra.sweeper.n_jobs=2", "trainer.max_steps=600", "trainer.eval_every=100"]
    rng = random.Random(0)
    finished = []
    for _ in range(10):
        run = sweeplab(*args, background=True, new_group=True)
        time.sleep(rng.uniform(2, 9))  # start-up, a trial's middle, between trials
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        db = tmp_path / "studies" / "planned.db"
        if db.exists():
            study = optuna.load_study(study_name="planned", storage=open_storage(f"sqlite:///{db}"))
            finished.append(states(study)["COMPLETE"])
    final = sweeplab(*args)
    assert final.returncode == 0, final.stdout
    study = optuna.load_study(study_name="planned", storage=f"sqlite:///{tmp_path}/studies/planned.db")
    check_finished(study)
    assert finished == sorted(finished) and finished[-1] <= 8  # the finished count never went down


def new_postgres_database() -> str:
    name = f"burst_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(
        POSTGRES.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return POSTGRES.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL"))],
)
def test_eight_commands_at_once_on_a_new_storage_run_each_planned_trial_once(
    tmp_path, sweeplab, planned, backend
):
    url = f"sqlite:///{tmp_path}/new.db" if backend == "sqlite" else new_postgres_database()
    args = [*planned, f"hydra.sweeper.storage={url}", "trainer.max_steps=60", "trainer.eval_every=20"]
    runs = [sweeplab(*args, "trainer.num_threads=1", background=True) for _ in range(8)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 8, outputs
    study = optuna.load_study(study_name="planned", storage=open_storage(url))
    assert states(study) == {"COMPLETE": 8}
    check_finished(study)
