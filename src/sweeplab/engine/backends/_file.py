"""What the backends whose storage is a file share: its folder made, a lock file beside it, and a full
disk told by the room left there."""

import contextlib
import fcntl
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sweeplab.engine.backends._base import Backend
from sweeplab.engine.backends._common import LOCK_TIMEOUT, says_disk_full, wait_for
from sweeplab.files import EnvironmentFault


class FileBackend(Backend):
    prefix: str  # what precedes the file's path in the URL

    @property
    def file(self) -> Path:
        return Path(self.url.removeprefix(self.prefix))

    def where(self) -> str:
        return str(self.file.absolute())

    def make_folder(self) -> None:
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EnvironmentFault(
                f"hydra.sweeper.storage: cannot create the folder of {self.file} ({err.strerror}); "
                "choose a storage in a folder you can write"
            ) from None

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = LOCK_TIMEOUT, shared: bool = False) -> Iterator[None]:
        """A file lock beside the storage's file: processes that die release it."""
        safe = re.sub(r"[^\w.-]", "_", name)
        path = self.file.with_name(f"{self.file.name}.{safe}.lock")
        try:
            file = open(path, "a+")  # noqa: SIM115 (closed below, after the lock is released)
        except OSError as err:  # the storage's folder, not the lock file beside it, is what the user named
            raise EnvironmentFault(
                f"hydra.sweeper.storage: cannot write in the folder of {self.file} ({err.strerror}); "
                "choose a storage in a folder you can write"
            ) from None
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        with file:
            wait_for(lambda: _try_flock(file, mode), timeout, f"the lock file {path}")
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    def disk_full(self, err: BaseException) -> bool:
        """The driver says so, or (SQLite reports some writes on a full disk as a plain 'disk I/O error')
        the disk of the file has no room left."""
        if says_disk_full(err):
            return True
        try:
            return shutil.disk_usage(self.file.parent).free < 64 * 1024
        except OSError:
            return False


def _try_flock(file: IO, mode: int) -> bool:
    try:
        fcntl.flock(file, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
