"""`sweeplab report --out`: a report writes only into a folder of its own, removes only files a report
wrote, and never loses what was there, even when it is killed or raced at the worst moment."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeplab import cli
from sweeplab.report import folder as report_folder

CASES = ["root", "here", "studies", "db_folder", "project"]


@pytest.fixture(scope="module")
def study(tmp_path_factory, data_dir) -> Path:
    """A finished two-trial study, `studies/tiny.db` in the folder returned."""
    where = tmp_path_factory.mktemp("study")
    sweep = ["hydra.sweeper.study_name=tiny", "hydra.sweeper.n_trials=2", "trainer.max_steps=20"]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("sweeplab")), "train", "-m", *sweep],
        cwd=where,
        env=dict(os.environ, SWEEPLAB_DATA_DIR=str(data_dir), SWEEPLAB_STUDIES_DIR=str(where / "studies")),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return where


@pytest.fixture
def report(study, tmp_path, monkeypatch, capsys):
    """`sweeplab report tiny ARGS` in-process, run in `tmp_path`: (exit code, what it printed)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SWEEPLAB_STUDIES_DIR", str(study / "studies"))

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            cli.main(["report", "tiny", *args])
            code = 0
        except SystemExit as stop:
            code = int(stop.code or 0)
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


def tree(folder: Path) -> dict[str, str]:
    """Every file below `folder` (hidden ones too) with its hash."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("force", [False, True])
def test_an_out_that_would_mix_with_what_it_must_not_replace_is_refused_even_with_force(
    report, study, tmp_path, force
):
    (tmp_path / "mine.txt").write_text("mine")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text("[project]\n")
    outs = {
        "/": "it is the root of the filesystem",
        ".": "it is the folder this command runs in, or one above it",
        "..": "it is the folder this command runs in, or one above it",
        str(study / "studies"): "where studies are stored",
        str(study): "where studies are stored",  # it holds the study's database
        "proj": "it is the root of a project",
        "mine.txt": "it is a file",
    }
    before, stored = tree(tmp_path), tree(study)
    for out, why in outs.items():
        code, said = report("--out", out, *(["--force"] if force else []))
        assert code == 2 and why in said and "Nothing was written" in said, (out, said)
        assert "Traceback" not in said and len(said.strip().splitlines()) == 1
    assert tree(tmp_path) == before and tree(study) == stored


def test_a_study_name_is_a_name_not_a_path(report, tmp_path):
    before = tree(tmp_path)
    for name in ("../escaped", "/tmp/abs", ".hidden", "a/b"):
        cli_code = 0
        try:
            cli.main(["report", name])
        except SystemExit as stop:
            cli_code = stop.code
        assert cli_code == 2
    assert tree(tmp_path) == before


def test_force_keeps_the_users_files_and_replaces_only_edited_report_files(report, tmp_path):
    assert report("--out", "rep")[0] == 0
    rep = tmp_path / "rep"
    (rep / "mine.txt").write_text("my notes")
    (rep / "sub").mkdir()
    (rep / "sub" / "data.csv").write_text("1,2")
    refused = report("--out", "rep")
    assert refused[0] == 2 and "rep/mine.txt" in refused[1] and "Nothing was written" in refused[1]
    (rep / "table.md").write_text("my edit")
    code, said = report("--out", "rep", "--force")
    assert code == 0 and "replaced report files you had edited: table.md" in said
    assert "kept files no report wrote" in said and "mine.txt" in said
    assert (rep / "mine.txt").read_text() == "my notes" and (rep / "sub" / "data.csv").read_text() == "1,2"
    assert (rep / "table.md").read_text() != "my edit"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing left beside it


def test_a_file_named_like_a_report_file_is_never_replaced_even_with_force(report, tmp_path):
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "table.md").write_text("the user's own table")
    code, said = report("--out", "rep", "--force")
    assert code == 2 and "was not written by a report" in said
    assert (rep / "table.md").read_text() == "the user's own table" and len(list(rep.iterdir())) == 1


def test_an_edit_made_while_the_report_runs_is_never_lost(report, tmp_path, monkeypatch):
    assert report("--out", "rep")[0] == 0
    rep = tmp_path / "rep"
    write = report_folder.inspect

    def user_edits_meanwhile(folder):  # the user appends a line and saves notes as the report runs
        if folder == rep and not (rep / "notes.md").exists():
            with open(rep / "table.md", "a") as file:
                file.write("| my extra row |\n")
            (rep / "notes.md").write_text("what was run")
        return write(folder)

    calls = iter([write, user_edits_meanwhile])
    monkeypatch.setattr(report_folder, "inspect", lambda folder: next(calls, write)(folder))
    code, said = report("--out", "rep")
    assert code == 2 and "while the report was written" in said and "table.md" in said
    assert (rep / "table.md").read_text().endswith("| my extra row |\n")
    assert (rep / "notes.md").read_text() == "what was run"


def test_a_change_that_lands_during_the_swap_swaps_the_old_folder_back(report, tmp_path, monkeypatch):
    exchange = report_folder._exchange
    probe = [tmp_path / "x", tmp_path / "y"]
    for folder in probe:
        folder.mkdir()
    if not exchange(*probe):
        pytest.skip("no renameat2 RENAME_EXCHANGE on this filesystem")
    for folder in probe:
        folder.rmdir()
    assert report("--out", "rep")[0] == 0
    rep = tmp_path / "rep"
    (rep / "mine.txt").write_text("mine")

    def racing(a: Path, b: Path) -> bool:
        swapped = exchange(a, b)
        if swapped and (b / "mine.txt").is_file():  # a write to the old folder, just too late
            (b / "late.txt").write_text("saved during the swap")
        return swapped

    monkeypatch.setattr(report_folder, "_exchange", racing)
    code, said = report("--out", "rep", "--force")
    assert code == 2 and "late.txt" in said
    assert (rep / "late.txt").read_text() == "saved during the swap" and (rep / "mine.txt").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


KILL = """
import os, sys
from pathlib import Path
from sweeplab import cli
from sweeplab.report import command, folder
where = sys.argv[1]
if where == "writing":  # killed while the new report is half written
    real = command.write_report
    def write_report(studies, out, *args, **kwargs):
        (out / "table.md").write_text("half")
        os._exit(9)
    command.write_report = write_report
elif where == "between-renames":  # no RENAME_EXCHANGE: killed between the two renames
    folder._exchange = lambda a, b: False
    rename = Path.rename
    def killed_after_first(self, target):
        rename(self, target)
        if ".old-" in Path(target).name:
            os._exit(9)
    Path.rename = killed_after_first
elif where == "after-swap":  # killed before the old folder is cleaned up
    folder._finish = lambda *args: os._exit(9)
cli.main(["report", "tiny", "--out", "rep", "--force"])
"""


@pytest.mark.parametrize(
    "where",
    ["writing", *(pytest.param(w, marks=pytest.mark.slow) for w in ("between-renames", "after-swap"))],
)
def test_a_report_killed_at_any_moment_loses_nothing_and_the_next_one_repairs(report, study, tmp_path, where):
    assert report("--out", "rep")[0] == 0
    rep = tmp_path / "rep"
    (rep / "mine.txt").write_text("mine")
    old_index = (rep / "index.md").read_text()
    killed = subprocess.run(
        [sys.executable, "-c", KILL, where],
        cwd=tmp_path,
        env=dict(os.environ, SWEEPLAB_STUDIES_DIR=str(study / "studies")),
        capture_output=True,
        text=True,
    )
    assert killed.returncode == 9, killed.stderr
    if where == "between-renames":  # the one moment without a folder in place
        assert not rep.exists() and any(p.name.startswith(".rep.old-") for p in tmp_path.iterdir())
    else:
        assert (rep / "index.md").is_file() and (rep / "mine.txt").read_text() == "mine"
    if where == "writing":
        assert (rep / "index.md").read_text() == old_index  # the old report, untouched
    code, said = report("--out", "rep", "--force")  # the next report repairs, then writes
    assert code == 0, said
    assert (rep / "mine.txt").read_text() == "mine" and (rep / "index.md").is_file()
    assert "table.md" in tree(rep) and (rep / "table.md").read_text() != "half"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_links_the_user_keeps_in_the_folder_stay_links(report, tmp_path):
    assert report("--out", "rep")[0] == 0
    rep = tmp_path / "rep"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.bin").write_bytes(b"x" * 10)
    (rep / "data").symlink_to(tmp_path / "data")
    (rep / "dangling").symlink_to(tmp_path / "nowhere")
    assert report("--out", "rep", "--force")[0] == 0
    assert os.readlink(rep / "data") == str(tmp_path / "data") and (rep / "data" / "big.bin").is_file()
    assert os.readlink(rep / "dangling") == str(tmp_path / "nowhere")
    assert (tmp_path / "data" / "big.bin").read_bytes() == b"x" * 10
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


TERMINATED = """
import os, signal, sys
from sweeplab import cli
from sweeplab.report import command
def write_report(studies, out, *args, **kwargs):
    (out / "table.md").write_text("half")
    os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` while the new report is half written
command.write_report = write_report
sys.argv = ["sweeplab", "report", "tiny", "--out", "rep", "--force"]
cli.main(sys.argv[1:])
"""


def test_a_report_stopped_by_sigterm_removes_its_half_written_folder_at_once(report, study, tmp_path):
    assert report("--out", "rep")[0] == 0
    old = tree(tmp_path / "rep")
    stopped = subprocess.run(
        [sys.executable, "-c", TERMINATED],
        cwd=tmp_path,
        env=dict(os.environ, SWEEPLAB_STUDIES_DIR=str(study / "studies")),
        capture_output=True,
        text=True,
    )
    assert stopped.returncode == 143 and stopped.stderr == "sweeplab report: error: interrupted (SIGTERM)\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # not left for the next
    assert tree(tmp_path / "rep") == old
