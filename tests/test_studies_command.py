"""`sweeplab studies` (list, show, delete) on SQLite and on PostgreSQL, and `sweeplab standin-data`."""

import importlib.util
import os
import time
import uuid

import optuna
import pytest

from conftest import tmpfs
from support import FAST, LR
from sweeplab.data import load_data

POSTGRES = os.environ.get("SWEEPLAB_TEST_POSTGRES")
BACKENDS = [
    "sqlite",
    pytest.param(  # under -m slow: the storage contract (test_sweep, test_lifecycle) runs on it by default
        "postgresql",
        marks=[
            pytest.mark.slow,
            pytest.mark.skipif(not POSTGRES, reason="set SWEEPLAB_TEST_POSTGRES to a PostgreSQL URL"),
        ],
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_studies_are_listed_shown_and_deleted(tmp_path, sweeplab, backend):
    name = f"st_{uuid.uuid4().hex[:8]}"
    storage = POSTGRES if backend == "postgresql" else f"sqlite:///{tmp_path}/studies/shared.db"
    run = sweeplab(
        "train",
        "-m",
        "optimizer.lr=choice(0.01,0.003)",
        "hydra.sweeper.sampler=grid",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.storage={storage}",
        *FAST,
    )
    assert run.returncode == 0, run.stdout
    where = ["--storage", storage]
    listing = sweeplab("studies", *where)
    assert listing.returncode == 0, listing.stdout
    [row] = [line for line in listing.stdout.splitlines() if line.startswith(name)]
    assert "2 COMPLETE" in row and "val_acc=0." in row and "(trial " in row
    shown = sweeplab("studies", "show", name, *where)
    assert shown.returncode == 0, shown.stdout
    assert f"study '{name}' in" in shown.stdout and "trials: 2 COMPLETE" in shown.stdout
    assert "objectives: val_acc (maximize)" in shown.stdout
    assert "  optimizer.lr: choice of 0.01, 0.003" in shown.stdout
    assert "commands:\n  sweeplab train -m " in shown.stdout and "best trials:\n  trial " in shown.stdout

    unsure = sweeplab("studies", "delete", name, *where)  # no terminal to ask on: refused
    assert unsure.returncode == 2 and "needs a confirmation: add --yes" in unsure.stdout
    deleted = sweeplab("studies", "delete", name, *where, "--yes")
    assert deleted.returncode == 0, deleted.stdout
    assert f"deleted study '{name}'" in deleted.stdout
    assert f"{tmp_path}/outputs/sweeps/{name} (2 trial folders)" in deleted.stdout  # what stays on disk
    assert name not in optuna.get_all_study_names(storage)
    again = sweeplab("studies", "show", name, *where)
    assert again.returncode == 2 and f"no study '{name}' in" in again.stdout


@pytest.mark.slow
def test_studies_lists_every_file_of_the_studies_folder_and_creates_nothing(tmp_path, sweeplab):
    empty = sweeplab("studies")
    assert empty.returncode == 2 and "no studies in" in empty.stdout
    for name in ("a", "b"):
        sweeplab("train", "-m", "optimizer.lr=choice(0.01)", f"hydra.sweeper.study_name={name}", *FAST)
    listing = sweeplab("studies")
    assert listing.returncode == 0, listing.stdout
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["study", "storage", "trials", "best", "last", "activity"]
    assert [line.split()[0] for line in lines[1:]] == ["a", "b"]
    missing = sweeplab("studies", "show", "c")
    assert missing.returncode == 2 and "does not exist" in missing.stdout
    assert not (tmp_path / "studies" / "c.db").exists()


def test_standin_data_are_read_by_the_real_parsers_and_never_written_over_data(tmp_path, sweeplab, make_cfg):
    folder = tmp_path / "standins"
    done = sweeplab("standin-data", str(folder), "--train", "60", "--test", "20")
    assert done.returncode == 0, done.stdout
    assert "SWEEPLAB_VERIFY_MD5=false sweeplab train sweep=cifar10_cnn size=smoke" in done.stdout
    for dataset, extra in (("cifar10", ["dataset.verify_md5=false"]), ("mnist", []), ("fashion_mnist", [])):
        cfg = make_cfg(f"dataset={dataset}", f"dataset.root={folder}", "dataset.download=false", *extra)
        data = load_data(cfg.dataset)
        assert len(data.y_train) + len(data.y_val) == 60 and len(data.y_test) == 20
    again = sweeplab("standin-data", str(folder))
    assert again.returncode == 2 and "already exist; stand-ins are never written over" in again.stdout


def test_a_damaged_file_in_the_studies_folder_hides_no_other_study(tmp_path, sweeplab):
    studies = tmp_path / "studies"
    studies.mkdir()
    optuna.create_study(study_name="good", storage=f"sqlite:///{studies}/good.db")
    (studies / "bad.db").write_text("not a database")
    listing = sweeplab("studies")
    assert listing.returncode == 0 and "Traceback" not in listing.stdout, listing.stdout
    lines = listing.stdout.splitlines()
    assert f"warning: skipped cannot read sqlite:///{studies}/bad.db: file is not a database" in lines
    assert any(line.startswith("good ") for line in lines) and "mode=ro" not in listing.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_study_is_never_deleted_under_a_running_sweep(tmp_path, sweeplab, backend):
    name = f"race_{uuid.uuid4().hex[:8]}"
    storage = POSTGRES if backend == "postgresql" else f"sqlite:///{tmp_path}/studies/race.db"
    where = [f"hydra.sweeper.study_name={name}", f"hydra.sweeper.storage={storage}"]
    trials = ["hydra.sweeper.n_trials=25", "trainer.max_steps=5", "trainer.eval_every=5"]
    sweep = sweeplab("train", "-m", LR, *where, *trials, background=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "outputs" / "sweeps" / name / "0").is_dir() and time.monotonic() < deadline:
        time.sleep(0.1)  # its first trial started: the study is stored
    refused, deleted = 0, None
    while sweep.poll() is None:  # short trials: moments with no trial running come often
        deleting = sweeplab("studies", "delete", name, "--storage", storage, "--yes")
        if deleting.returncode == 0:  # only once the sweep had finished (it may still be exiting)
            deleted = deleting
            break
        assert deleting.returncode == 2, deleting.stdout
        assert f"study {name!r} is being run by a sweeplab command" in deleting.stdout
        refused += 1
    out, _ = sweep.communicate()
    assert sweep.returncode == 0 and "Traceback" not in out, out
    assert refused >= 1 and f"study {name!r}: 25 COMPLETE;" in out
    deleted = deleted or sweeplab("studies", "delete", name, "--storage", storage, "--yes")
    assert deleted.returncode == 0 and f"deleted study {name!r}" in deleted.stdout


def test_a_sweep_that_ends_while_delete_waits_for_its_lock_leaves_a_study_deleted(tmp_path, monkeypatch):
    """The running trials are judged as stored once no command runs the study, not as read before."""
    from sweeplab import studies
    from sweeplab.engine.attrs import set_user_attrs
    from sweeplab.engine.owner import this_process
    from sweeplab.engine.records import OWNER

    url = f"sqlite:///{tmp_path}/race.db"
    study = optuna.create_study(study_name="ending", storage=url)
    trial = study.ask()
    set_user_attrs(trial, {OWNER: this_process().record()})  # running, its process alive
    unused = studies._unused

    def sweep_ends_meanwhile(name, url):
        if study.trials[0].state == optuna.trial.TrialState.RUNNING:
            study.tell(trial, 0.5)  # the sweep's last trial ends, then it lets go of the study
        return unused(name, url)

    monkeypatch.setattr(studies, "_unused", sweep_ends_meanwhile)
    studies.delete_study("ending", url, yes=True)
    assert optuna.get_all_study_names(url) == []


@pytest.mark.slow
def test_a_refused_rerun_after_a_delete_leaves_no_empty_study(tmp_path, sweeplab):
    args = ["train", "-m", LR, "hydra.sweeper.study_name=gone", *FAST]
    assert sweeplab(*args).returncode == 0
    assert sweeplab("studies", "delete", "gone", "--yes").returncode == 0
    refused = sweeplab(*args)  # its old trial folders belong to the deleted study
    assert refused.returncode == 2 and "holds trial(s) [0] of another study" in refused.stdout
    assert "Nothing was written" in refused.stdout and "Traceback" not in refused.stdout
    listing = sweeplab("studies")
    assert listing.returncode == 0 and listing.stdout.strip() == "no studies", listing.stdout
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path}/studies/gone.db") == []


@pytest.mark.parametrize(
    "journal", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["sqlite", "journal"]
)
def test_a_study_in_a_folder_nobody_may_write_is_listed_shown_reported_and_exported(
    tmp_path, sweeplab, journal
):
    """A reader who cannot write the study's folder (a read-only disk: EROFS even for root) reads it:
    SQLite in WAL mode needs its index file beside the database, so it is read as immutable."""
    with tmpfs(tmp_path / "disk", "4m") as disk:  # room for a SQLite study and its log
        _read_only_reader(tmp_path, sweeplab, disk, journal)


def _read_only_reader(tmp_path, sweeplab, small_disk, journal) -> None:
    import subprocess

    storage = f"journal://{small_disk}/perm.log" if journal else f"sqlite:///{small_disk}/perm.db"
    # its own process, which folds the write-ahead log into the file as it exits
    ran = sweeplab("train", "-m", LR, "hydra.sweeper.study_name=perm", f"hydra.sweeper.storage={storage}",
                   "hydra.sweeper.n_trials=2", *FAST, process=True)  # fmt: skip
    assert ran.returncode == 0, ran.stdout
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    listed = sweeplab("studies", "--storage", storage)
    assert listed.returncode == 0 and "2 COMPLETE" in listed.stdout, listed.stdout
    shown = sweeplab("studies", "show", "perm", "--storage", storage)
    assert shown.returncode == 0 and "best trials:" in shown.stdout, shown.stdout
    report = sweeplab("report", "perm", "--storage", storage, "--out", "rep", "--format", "csv")
    assert report.returncode == 0 and "report written" in report.stdout, report.stdout
    assert "- trials: 2 (2 COMPLETE)" in (tmp_path / "rep" / "index.md").read_text()
    if importlib.util.find_spec("mlflow"):
        exported = sweeplab("export", "mlflow", "perm", "--storage", storage)
        assert exported.returncode == 0 and "2 runs (2 new" in exported.stdout, exported.stdout


@pytest.mark.slow  # three processes of their own
def test_reading_a_study_leaves_no_file_beside_it(tmp_path, sweeplab):
    """A read-only SQLite reader makes the `-wal` and `-shm` files of WAL mode and cannot remove them."""
    args = ["train", "-m", LR, "hydra.sweeper.study_name=tidy", "hydra.sweeper.n_trials=2", *FAST]
    assert sweeplab(*args, process=True).returncode == 0

    def beside() -> list[str]:
        return sorted(p.name for p in (tmp_path / "studies").iterdir() if not p.name.endswith(".lock"))

    assert beside() == ["tidy.db"]
    for command in (["studies"], ["report", "tidy", "--out", "rep", "--format", "csv"]):
        assert sweeplab(*command, process=True).returncode == 0
        assert beside() == ["tidy.db"], command
