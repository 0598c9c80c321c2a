"""Trial folders belong to one study in one storage.

Each trial folder holds `.sweeplab-trial.json`, naming the study (its name, storage and the id it was
given at creation). A study never writes into a folder of another study (the same study name in another
storage, a database that was moved or deleted) or into a folder of files it did not write: it refuses,
before any trial, with the folder named.
"""

import json
from collections.abc import Iterable
from pathlib import Path

from sweeplab.config import SweeplabError
from sweeplab.files import environment_fault, write_atomic

MARKER = ".sweeplab-trial.json"


class FolderTaken(SweeplabError):
    """A trial folder holds another study's files."""


class TrialFolders:
    def __init__(self, study_name: str, study_id: str, storage: str) -> None:
        self.identity = {"study": study_name, "study_id": study_id, "storage": storage}

    def check(self, sweep_dir: Path, known: Iterable[str]) -> None:
        """Refuse, before any trial, when `sweep_dir` holds a folder of another study, or of unknown
        origin: unmarked, and none of this study's `known` trial folders (which older versions left
        unmarked)."""
        if not sweep_dir.is_dir():
            return
        known = {str(Path(k)) for k in known}
        # hidden folders are not trials' (.slurm holds the SLURM jobs' logs)
        for folder in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            self._refuse_foreign(folder, unmarked_ok=str(folder) in known)

    def take(self, folder: Path, number: int, resuming: bool, job: dict | None = None) -> None:
        """Record trial `number` in `folder` (created), after checking the folder is free for it: empty,
        or this study's folder of the trial it resumes. `job`: the SLURM job that runs it (its id and
        log file), kept with the trial's number."""
        self._refuse_foreign(folder, unmarked_ok=resuming)
        if not resuming and (folder / MARKER).is_file():
            raise FolderTaken(f"{folder} already holds a trial of this study; refusing to overwrite it")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise environment_fault(err, folder) or err from err
        record = self._read(folder) or {**self.identity, "trials": []}
        record["trials"] = [*record["trials"], number]
        if job is not None:
            record["slurm_jobs"] = [*record.get("slurm_jobs", []), {"trial": number, **job}]
        write_atomic(folder / MARKER, json.dumps(record, indent=2) + "\n")

    def _refuse_foreign(self, folder: Path, unmarked_ok: bool) -> None:
        advice = "Nothing was written. Move that folder, or give this study its own with hydra.sweep.dir=PATH"
        record = self._read(folder)
        if record is not None and record.get("study_id") != self.identity["study_id"]:
            raise FolderTaken(
                f"{folder} holds trial(s) {record.get('trials')} of another study, {record.get('study')!r} "
                f"in {record.get('storage')} (id {record.get('study_id')}). {advice}"
            )
        if record is None and not unmarked_ok and folder.is_dir() and any(folder.iterdir()):
            raise FolderTaken(f"{folder} holds files that this study did not write. {advice}")

    @staticmethod
    def _read(folder: Path) -> dict | None:
        try:
            return json.loads((folder / MARKER).read_text())
        except (OSError, ValueError):
            return None
