"""Optuna's journal file (`journal:///path.log`): one file that processes append to, also on a shared
filesystem (several machines)."""

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file

from sweeplab.engine.backends._common import StorageMissing
from sweeplab.engine.backends._file import FileBackend


class JournalBackend(FileBackend):
    kind, prefix = "journal", "journal://"

    def open(self) -> BaseStorage:
        self.make_folder()
        with self.lock("storage"):
            return JournalStorage(SafeJournalBackend(str(self.file)))

    def open_readonly(self) -> BaseStorage:
        if not self.file.is_file():
            raise StorageMissing(f"{self.url} does not exist")
        # Optuna's journal reader takes the file's write lock only to append, which a reader never does
        return JournalStorage(JournalFileBackend(str(self.file)))

    def shared_files(self) -> Sequence[tuple[str, Path]]:
        return [("the storage's journal file", self.file)]


class SafeJournalBackend(JournalFileBackend):
    """Optuna's journal file, whose appends first cut off a torn last record. A process killed while it
    appended leaves a line without its newline, which Optuna's reader skips; appending after it would
    join the next record onto it and make the whole file unreadable. The torn bytes are kept in
    `FILE.torn` (they were never a record anyone read), under Optuna's own lock, so no append is cut."""

    def append_logs(self, logs: list[dict]) -> None:
        # Optuna's append, with the cut first, under one hold of its lock
        with get_lock_file(self._lock):
            _cut_torn_tail(Path(self._file_path))
            lines = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
            with open(self._file_path, "ab") as file:
                file.write(lines.encode())
                file.flush()
                os.fsync(file.fileno())


def _cut_torn_tail(path: Path) -> None:
    """Truncate `path` after its last newline, appending what followed it to `path.torn`."""
    with open(path, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return
        start = size
        while start > 0:  # back to the last newline, a block at a time
            step = min(start, 65536)
            file.seek(start - step)
            block = file.read(step)
            cut = block.rfind(b"\n")
            if cut >= 0:
                start = start - step + cut + 1
                break
            start -= step
        file.seek(start)
        torn = file.read()
        with open(path.with_name(path.name + ".torn"), "ab") as aside:
            aside.write(torn + b"\n")
            aside.flush()
            os.fsync(aside.fileno())
        file.truncate(start)
        file.flush()
        os.fsync(file.fileno())
    logging.getLogger("sweeplab.sweep").warning(
        "%s ended in a torn record (%d bytes a killed process left half written); moved to %s.torn",
        path,
        len(torn),
        path.name,
    )
