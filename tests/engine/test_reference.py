"""A study's reference (sweeplab.engine.reference.StudyRef): the one place a name and a storage become
the URL every command opens."""

import os
from pathlib import Path

import pytest

from sweeplab.config import SweeplabError
from sweeplab.engine.reference import StudyRef


def test_the_default_storage_is_the_studies_folder_made_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWEEPLAB_STUDIES_DIR", raising=False)
    study = StudyRef.of("lr_depth")
    assert study.url == f"sqlite:///{tmp_path}/studies/lr_depth.db"
    assert study.file == tmp_path / "studies" / "lr_depth.db"
    os.chdir("/")  # a job that changes folder opens the same file
    assert StudyRef("lr_depth", study.url).file == tmp_path / "studies" / "lr_depth.db"


def test_a_given_storage_is_kept_with_its_file_made_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert StudyRef.of("a", "journal://runs/a.log").url == f"journal://{tmp_path}/runs/a.log"
    server = StudyRef.of("a", "postgresql://me:secret@db/sweeps")
    assert server.file is None and server.url == "postgresql://me:secret@db/sweeps"


@pytest.mark.parametrize("name", ["../x", "", "a/b", "x" * 101])
def test_a_name_that_is_not_a_name_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(SweeplabError, match=r"^study: "):
        StudyRef.of(name, field="study")


def test_an_unsupported_storage_is_refused_when_its_file_is_asked() -> None:
    with pytest.raises(SweeplabError, match="is not supported; use sqlite"):
        assert StudyRef.of("a", "mysql://db/x").file
