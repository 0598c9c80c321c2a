"""SQLite (`sqlite:///path.db`), the default: one machine, many processes."""

import atexit
import contextlib
import logging
import os
import threading
import time
from pathlib import Path

import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage

from sweeplab.engine.backends._common import StorageMissing, read_only_rdb
from sweeplab.engine.backends._file import FileBackend

SQLITE_WAIT = 60.0  # seconds a statement waits for another process's write lock on a SQLite file


class SQLiteBackend(FileBackend):
    kind, prefix = "sqlite", "sqlite:///"

    def open(self) -> BaseStorage:
        self.make_folder()
        with self.lock("storage"):
            try:
                # SQLite serialises writers: wait for the lock instead of failing when workers write at once
                storage = RDBStorage(self.url, engine_kwargs={"connect_args": {"timeout": SQLITE_WAIT}})
                # Write-ahead logging: workers' heartbeats and reports no longer wait behind readers. The
                # mode is stored in the database file, so every process opening it gets it.
                with storage.engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA journal_mode=WAL")
                _say_when_it_waits(storage.engine, self.file)
                # SQLite folds the log back into the file when the last connection closes; a pooled
                # connection left open at exit leaves the newest trials in NAME.db-wal only, and a study
                # copied as its .db file alone would lack them.
                atexit.register(storage.engine.dispose)
            except Exception as err:
                raise self.open_failure(err) from err
        return storage

    def open_readonly(self) -> BaseStorage:
        if not self.file.is_file():
            raise StorageMissing(f"{self.url} does not exist")
        path = self.file.resolve()
        log_there = path.with_name(path.name + "-wal").exists()
        url = _readonly_url(path)
        storage = read_only_rdb(url, self.url)
        if not log_there and "mode=ro" in url:
            atexit.register(_fold_log, storage.engine, path)
        return storage

    def several_machines_problem(self) -> str | None:
        return (
            f"hydra.sweeper.storage: {self.url} is SQLite, which cannot hold a study that jobs on "
            "several machines share (its file locks do not hold over a network filesystem, so trials would "
            "run twice or the file be corrupted): use a PostgreSQL database, "
            "hydra.sweeper.storage=postgresql://USER:PASSWORD@HOST/DB (recommended), or a journal file "
            "on the shared filesystem, hydra.sweeper.storage=journal:///shared/path/STUDY.log"
        )


def _fold_log(engine: sqlalchemy.Engine, path: Path) -> None:
    """A read-only reader makes SQLite's `-wal` and `-shm` files beside a study that had none, and cannot
    remove them; a moment's read-write connection, the last to close, folds them away (it changes no
    data; with a sweep still running on the study, it leaves them to that sweep)."""
    import sqlite3

    engine.dispose()
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()


def _readonly_url(path: Path) -> str:
    """SQLite read-only. A reader in WAL mode writes the `-shm` index beside the file, so in a folder this
    user cannot write (another user's study, a read-only disk) it opens the file as immutable: as it is
    on disk, without the index or the log. Trials still only in a log left there (`-wal`, a writer
    killed before it folded it in) are then not seen, which it says."""
    if os.access(path.parent, os.W_OK):
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size:
        logging.getLogger("sweeplab").warning(
            "%s cannot be written: reading %s as it is on disk, without the newest changes in %s",
            path.parent,
            path.name,
            wal.name,
        )
    return f"sqlite:///file:{path}?immutable=1&uri=true"


def _say_when_it_waits(engine: sqlalchemy.Engine, path: Path, after: float = 2.0) -> None:
    """A statement that waits for the file's write lock (another process writing, or a program holding
    the database open) says so once, with how long it waits, instead of up to a minute of silence."""
    since: dict[int, float] = {}  # thread -> when its statement started

    def start(*args: object) -> None:
        since[threading.get_ident()] = time.monotonic()

    def end(*args: object) -> None:
        since.pop(threading.get_ident(), None)

    sqlalchemy.event.listen(engine, "before_cursor_execute", start)
    sqlalchemy.event.listen(engine, "after_cursor_execute", end)
    sqlalchemy.event.listen(engine, "handle_error", end)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            started = min(list(since.values()), default=None)
            if started is not None and time.monotonic() - started > after:
                logging.getLogger("sweeplab.sweep").warning(
                    "waiting for %s: another process holds its write lock; giving up after %.0f s",
                    path,
                    SQLITE_WAIT,
                )
                return

    threading.Thread(target=watch, daemon=True, name="sweeplab-sqlite-wait").start()
