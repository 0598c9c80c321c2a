"""What a report counts and names, on real studies of every kind of trial (single, packed, replicates):
each trial once whatever the arguments, the best by one rule, a "reproduce it" command that runs and
gives the trial's numbers, and every missing or damaged record named instead of passed over."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_in_process

RUN = ["trainer.max_steps=40", "trainer.eval_every=20", "trainer.batch_size=32"]
GRID = ["model.activation=choice(relu,tanh)", "hydra.sweeper.sampler=grid", "hydra.sweeper.n_trials=2"]
KINDS = {
    "single": [],
    "packed": ["hydra.sweeper.pack=2"],
    "replicates": ["hydra.sweeper.replicates=2"],
}


@pytest.fixture(scope="module")
def studies(tmp_path_factory, data_dir) -> Path:
    """One folder holding a study of each kind, run once for the module's tests."""
    folder = tmp_path_factory.mktemp("kinds")
    for name, extra in KINDS.items():
        ran = command(
            folder, data_dir, "train", "-m", *RUN, *GRID, *extra, f"hydra.sweeper.study_name={name}"
        )
        assert ran.returncode == 0, ran.stdout
    return folder


def command(folder: Path, data_dir: Path, *args: str):
    env = {"SWEEPLAB_DATA_DIR": str(data_dir), "SWEEPLAB_STUDIES_DIR": str(folder / "studies")}
    return run_in_process(list(args), folder, env)


def test_a_study_named_twice_is_counted_once(studies, data_dir):
    once = command(studies, data_dir, "report", "replicates", "--out", "once", "--format", "csv")
    twice = command(
        studies, data_dir, "report", "replicates", "replicates", "--out", "twice", "--format", "csv"
    )
    assert once.returncode == twice.returncode == 0, twice.stdout
    assert "study 'replicates' is named twice: its trials are counted once" in twice.stdout
    one, two = (pd.read_csv(studies / f / "table.csv") for f in ("once", "twice"))
    assert one["n"].tolist() == two["n"].tolist() == [2, 2]  # 2 replicates each, not 4
    pd.testing.assert_frame_equal(one, two)


def test_a_copy_of_a_study_in_another_storage_is_counted_once(studies, data_dir):
    import optuna

    source = optuna.storages.RDBStorage(f"sqlite:///{studies}/studies/single.db")
    optuna.copy_study(
        from_study_name="single",
        from_storage=source,
        to_storage=f"sqlite:///{studies}/studies/single_copy.db",
        to_study_name="single_copy",
    )
    both = command(studies, data_dir, "report", "single", "single_copy", "--out", "copy", "--format", "csv")
    assert both.returncode == 0, both.stdout
    assert "study 'single_copy' is the same study as 'single': its trials are counted once" in both.stdout
    assert len(pd.read_csv(studies / "copy" / "table.csv")) == 2


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_reproduce_command_of_the_report_runs_and_gives_the_trials_numbers(studies, data_dir, kind):
    done = command(studies, data_dir, "report", kind, "--out", f"rep_{kind}", "--format", "md")
    assert done.returncode == 0, done.stdout
    index = (studies / f"rep_{kind}" / "index.md").read_text()
    best = int(re.search(r"- best: trial (\d+)", index)[1])
    line = re.search(r"- reproduce it[^:]*: `(sweeplab train [^`]+)`", index)
    assert line, index
    args = shlex.split(line[1].replace("$PWD", str(studies)))[1:]
    again = command(studies, data_dir, *args)
    assert again.returncode == 0, again.stdout
    rerun = json.loads(next((studies / "outputs" / "runs").glob("*/*/summary.json")).read_text())
    shutil.rmtree(studies / "outputs" / "runs")
    trial = Path(studies, "outputs", "sweeps", kind, str(best))
    if kind == "replicates":  # the command reruns its first replicate
        assert "reproduce it (its replicate seed_" in index
        trial = sorted(trial.glob("seed_*"))[0]
    stored = json.loads((trial / "summary.json").read_text())
    # a packed member (and replicates, packed) agrees with its single run to rounding: an argmax may flip
    tolerance = 0 if kind == "single" else 2 / 400
    assert rerun["val_acc"] == pytest.approx(stored["val_acc"], abs=tolerance)
    assert rerun["steps"] == stored["steps"] == 40


def test_missing_and_damaged_records_are_named_by_the_report_and_the_export(studies, data_dir):
    folder = studies / "damaged"
    shutil.copytree(studies / "outputs" / "sweeps" / "single", folder / "outputs" / "sweeps" / "single")
    (folder / "studies").mkdir()
    for path in (studies / "studies").glob("single.db*"):  # its write-ahead log too
        shutil.copy(path, folder / "studies")
    runs = folder / "outputs" / "sweeps" / "single"
    # the stored output_dir of each trial names the first folder: point the copy at its own
    import sqlite3

    with sqlite3.connect(folder / "studies" / "single.db") as db:
        db.execute(
            "UPDATE trial_user_attributes SET value_json = replace(value_json, ?, ?)",
            (str(studies / "outputs"), str(folder / "outputs")),
        )
    best_pt = (runs / "0" / "best.pt").read_bytes()
    (runs / "0" / "best.pt").write_bytes(best_pt[: len(best_pt) // 2])  # truncated
    (runs / "0" / "summary.json").write_text('{"status": "compl')  # truncated
    history = (runs / "1" / "history.csv").read_text()
    (runs / "1" / "history.csv").write_text(history[:-7])  # cut mid-line
    (runs / "1" / "best.pt").unlink()
    done = command(folder, data_dir, "report", "single", "--out", "rep")
    assert done.returncode == 0, done.stdout
    assert "warning: 4 run records are missing or damaged; index.md names them" in done.stdout
    index = (folder / "rep" / "index.md").read_text()
    assert "## Records missing or damaged" in index
    for problem in (
        f"trial 0: {runs}/0/best.pt is damaged (",
        f"trial 0: {runs}/0/summary.json is damaged (not JSON",
        f"trial 1: {runs}/1/history.csv is cut off mid-row",
        f"trial 1: {runs}/1/best.pt is missing",
    ):
        assert problem in index
    assert "Records missing or damaged" in (folder / "rep" / "index.html").read_text()
    pytest.importorskip("mlflow")
    exported = command(
        folder, data_dir, "export", "mlflow", "single", "--tracking-uri", f"sqlite:///{folder}/m.db"
    )
    assert exported.returncode == 0, exported.stdout
    assert f"warning: {runs}/0/summary.json is damaged (not JSON" in exported.stdout
    assert (
        f"warning: {runs}/1/history.csv is cut off mid-row (its last line is incomplete): run not exported"
        in exported.stdout
    )
    assert "1 runs (1 new, 0 there already)" in exported.stdout and "Traceback" not in exported.stdout


# KiB of the 256 KiB disk taken before the report, so that the disk fills at each of its files in turn
# (a PNG, a PDF: matplotlib's PDF writer once put its own AttributeError on top, at 8, 40, 48, 88, 128
# and 136 KiB here); every 32 KiB by default, every 8 KiB with -m slow
FILLED = [pytest.param(k, marks=pytest.mark.slow) if k % 32 else k for k in range(0, 256, 8)]


@pytest.mark.parametrize("filled", FILLED)
def test_a_full_disk_at_any_file_of_the_report_is_one_line_and_leaves_nothing(
    studies, data_dir, small_disk, filled
):
    (small_disk / "fill").write_bytes(b"\0" * filled * 1024)
    done = command(studies, data_dir, "report", "single", "--out", str(small_disk / "rep"))
    assert done.returncode == 1, done.stdout
    assert done.stdout.startswith("sweeplab report: error: no space left on device writing ")
    assert len(done.stdout.strip().splitlines()) == 1, done.stdout
    assert [p.name for p in small_disk.iterdir()] == ["fill"]  # no half report, no staging folder


def test_settings_that_cannot_change_a_result_are_no_column_of_two_studies(studies, data_dir):
    other = command(
        studies,
        data_dir,
        "train",
        "-m",
        *RUN,
        *GRID,
        "trainer.checkpoint_every=0",
        "hydra.sweeper.study_name=cp",
    )
    assert other.returncode == 0, other.stdout
    both = command(studies, data_dir, "report", "single", "cp", "--out", "two", "--format", "csv")
    assert both.returncode == 0, both.stdout
    header = (studies / "two" / "table.csv").read_text().splitlines()[0]
    assert header.startswith("study,model.activation,val_acc,"), header  # no trainer.checkpoint_every
