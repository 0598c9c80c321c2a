"""Optuna storages by URL: a study's name and default storage, and what every command does with a
storage (open it, open it read-only, lock it, name its failures), each done by the URL's backend
(sweeplab.engine.backends: SQLite, the default; PostgreSQL, for several machines; Optuna's journal file).
The lock is what makes a study safe under concurrency: creating it, queueing its plan and claiming a
trial happen under it, one process at a time.
"""

import contextlib
import functools
import os
import re
from pathlib import Path

from optuna.storages import BaseStorage

from sweeplab.config import SweeplabError
from sweeplab.engine.backends import backend_of
from sweeplab.engine.backends._common import (
    LOCK_TIMEOUT,
    StorageMissing,
    StudyLockBusy,
    masked,
    reason,
    says_disk_full,
)

__all__ = [
    "StorageMissing",
    "StudyLockBusy",
    "absolute",
    "checked_study_name",
    "default_storage",
    "masked",
    "open_storage",
    "open_storage_readonly",
    "storage_failure",
    "storage_file",
    "studies_folder",
    "study_gone",
    "study_in_use",
    "study_lock",
    "study_name_problem",
]

MAX_NAME = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def study_name_problem(name: object) -> str | None:
    """Why `name` cannot name a study, or None. A study's name becomes part of paths (its default
    storage, its outputs, its report): a name, never a path, so no input chooses where sweeplab writes."""
    if not isinstance(name, str) or not name:
        return f"a study needs a name, got {name!r}"
    if len(name) > MAX_NAME:
        return f"{name[:20]!r}... is {len(name)} characters long; a study name has at most {MAX_NAME}"
    if not _NAME.fullmatch(name) or ".." in name:
        return (
            f"{name!r} is not a study name: use ASCII letters, digits and _ . + - (starting with a letter "
            "or a digit, no '..'); it names a file and a folder, never a path"
        )
    return None


def checked_study_name(name: object, field: str = "hydra.sweeper.study_name") -> str:
    problem = study_name_problem(name)
    if problem:
        raise SweeplabError(f"{field}: {problem}")
    return name  # type: ignore[return-value]


def studies_folder() -> Path:
    """Where studies are stored by default: `studies/` under the folder the command runs in (or
    $SWEEPLAB_STUDIES_DIR)."""
    return Path(os.environ.get("SWEEPLAB_STUDIES_DIR", "studies"))


def default_storage(study_name: str) -> str:
    """`studies/<study_name>.db`; the name is checked to be a name, so the file stays in that folder."""
    return f"sqlite:///{studies_folder() / checked_study_name(study_name)}.db"


def absolute(url: str) -> str:
    """The URL with a file path made absolute, so every process (and a job that changes folder) opens
    the same file."""
    for prefix in ("sqlite:///", "journal://"):
        if url.startswith(prefix) and not url.startswith("sqlite:///file:"):
            return prefix + os.path.abspath(url.removeprefix(prefix))
    return url


def storage_file(url: str) -> Path | None:
    """The file of a SQLite or journal storage (None for a server)."""
    return backend_of(url).file


@functools.cache
def open_storage(url: str) -> BaseStorage:
    """The storage at `url`, creating its file or tables when they do not exist yet, under the
    storage's lock, so that several processes starting together do not race to create them. One per
    URL and process: the controller, its jobs and its heartbeat share one connection pool."""
    return backend_of(url).open()


def open_storage_readonly(url: str) -> BaseStorage:
    """The storage at `url` for reading: no file, table or journal mode is ever created or changed.
    Raises StorageMissing when there is nothing there, SweeplabError when it cannot be read."""
    return backend_of(url).open_readonly()


def study_gone(err: BaseException) -> bool:
    """Optuna's KeyError for a study or trial that is no longer stored (a study deleted meanwhile)."""
    return isinstance(err, KeyError) and "Record does not exist" in str(err)


def storage_failure(err: BaseException, url: str | None = None) -> str:
    """One line for a storage that failed under a command, its password masked."""
    if url is not None:
        return backend_of(url).failure(err)
    if says_disk_full(err):
        return (
            "no space left on device writing the study's storage: free space there, then rerun the same "
            "command to resume (trials it was running are queued again then)"
        )
    return f"the storage failed: {reason(err)}; rerun the same command to resume once it works"


def study_lock(
    url: str, name: str, timeout: float = LOCK_TIMEOUT, shared: bool = False
) -> contextlib.AbstractContextManager[None]:
    """Hold the lock named `name` of the storage at `url` (a file lock beside a SQLite or journal file,
    an advisory lock in PostgreSQL). Processes that die release it; a holder that outlives `timeout`
    makes the waiter give up with a message instead of waiting forever (StudyLockBusy). `shared`: many
    holders at once, none while an exclusive holder has it."""
    return backend_of(url).lock(name, timeout, shared)


def study_in_use(url: str, name: str, exclusive: bool = False) -> contextlib.AbstractContextManager[None]:
    """Held, shared, by every command that runs the study, for as long as it runs. `exclusive` (what
    `studies delete` takes): only when no command runs it, else StudyLockBusy at once."""
    if exclusive:
        return study_lock(url, f"{name}.in-use", timeout=0)
    return study_lock(url, f"{name}.in-use", shared=True)
