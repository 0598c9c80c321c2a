"""A study as every command names it, built once: its checked name and its storage's absolute URL.

`sweeplab train -m` (and each of its SLURM jobs, which get the plan's URL), `studies`, `report`,
`export` and the Hydra plugin's error path each build one from what the user gave (a name, perhaps a
storage); none derives a storage URL of its own. The URL is absolute so that every process, and a job
that changes folder, opens the same file."""

from dataclasses import dataclass
from pathlib import Path

from sweeplab.engine.storage import (
    absolute,
    checked_study_name,
    default_storage,
    storage_file,
)


@dataclass(frozen=True)
class StudyRef:
    name: str
    url: str

    @classmethod
    def of(
        cls, name: object, storage: str | None = None, field: str = "hydra.sweeper.study_name"
    ) -> "StudyRef":
        """The study `name` in `storage`, by default `studies/<name>.db`; a name that is not one (a path,
        an empty string) is refused, naming `field`."""
        checked = checked_study_name(name, field)
        return cls(checked, absolute(storage or default_storage(checked)))

    @property
    def file(self) -> Path | None:
        """The storage's file (None for a server)."""
        return storage_file(self.url)
