"""Optuna storages by URL: opened safely when many processes start at once, opened read-only for
reports, named without their passwords, and a lock per study that every process on the storage sees.

Supported: SQLite (`sqlite:///path.db`, the default), PostgreSQL (`postgresql://...`, for several
machines) and Optuna's journal file (`journal:///path.log`). The lock is what makes a study safe under
concurrency: creating it, queueing its plan and claiming a trial happen under it, one process at a time.
"""

import atexit
import contextlib
import fcntl
import functools
import importlib.util
import json
import logging
import os
import random
import re
import shutil
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file

from sweeplab.config import SweeplabError
from sweeplab.files import FULL_ERRNOS, EnvironmentFault

SQLITE_WAIT = 60.0  # seconds a statement waits for another process's write lock on a SQLite file
LOCK_TIMEOUT = 300.0  # seconds to wait for a study's lock before giving up with a message
SUPPORTED = "sqlite:///PATH.db, postgresql://USER:PASSWORD@HOST/DB or journal:///PATH.log"


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


def masked(url: str) -> str:
    """The URL as it may be printed: without its password."""
    if url.startswith("journal://"):
        return url
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def storage_kind(url: str) -> str:
    """sqlite, postgresql or journal; any other URL is refused, naming what is supported."""
    for kind in ("sqlite", "postgresql", "journal"):
        if url.startswith(kind + ":") or url.startswith(kind + "+"):
            return kind
    raise SweeplabError(f"hydra.sweeper.storage: {masked(url)} is not supported; use {SUPPORTED}")


def _driver_url(url: str) -> str:
    """The URL with the PostgreSQL driver that is installed (psycopg2 where it is, else psycopg, the
    driver of sweeplab[postgres]); a missing driver is named, before any connection is tried."""
    if not url.startswith("postgresql"):
        return url
    given = url
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    driver = sqlalchemy.engine.make_url(url).get_dialect().driver
    try:
        importlib.import_module(driver)
    except ImportError as err:
        raise EnvironmentFault(
            f"hydra.sweeper.storage: {masked(given)} needs the PostgreSQL driver {driver}, which is not "
            f"installed here ({err}); install it: pip install 'sweeplab[postgres]'"
        ) from None
    return url


def _file_of(url: str) -> Path:
    return Path(url.removeprefix("journal://").removeprefix("sqlite:///"))


def storage_file(url: str) -> Path | None:
    """The file of a SQLite or journal storage (None for a server)."""
    return None if storage_kind(url) == "postgresql" else _file_of(url)


@functools.cache
def open_storage(url: str) -> BaseStorage:
    """The storage at `url`, creating its file or tables when they do not exist yet, under the
    storage's lock, so that several processes starting together do not race to create them. One per
    URL and process: the controller, its jobs and its heartbeat share one connection pool."""
    kind = storage_kind(url)
    if kind != "postgresql":
        try:
            _file_of(url).parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EnvironmentFault(
                f"hydra.sweeper.storage: cannot create the folder of {_file_of(url)} ({err.strerror}); "
                "choose a storage in a folder you can write"
            ) from None
    with study_lock(url, "storage"):
        if kind == "journal":
            return JournalStorage(SafeJournalBackend(str(_file_of(url))))
        # SQLite serialises writers: wait for the lock instead of failing when workers write at once.
        engine = {"connect_args": {"timeout": SQLITE_WAIT}} if kind == "sqlite" else {}
        try:
            storage = RDBStorage(_driver_url(url), engine_kwargs=engine)
            if kind == "sqlite":
                # Write-ahead logging: workers' heartbeats and reports no longer wait behind readers.
                # The mode is stored in the database file, so every process opening it gets it.
                with storage.engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA journal_mode=WAL")
                _say_when_it_waits(storage.engine, _file_of(url))
                # SQLite folds the log back into the file when the last connection closes; a pooled
                # connection left open at exit leaves the newest trials in NAME.db-wal only, and a
                # study copied as its .db file alone would lack them.
                atexit.register(storage.engine.dispose)
        except Exception as err:
            if _disk_full(err, url):
                raise EnvironmentFault(storage_failure(err, url)) from err
            raise SweeplabError(f"hydra.sweeper.storage: cannot open {masked(url)}: {_reason(err)}") from err
        return storage


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


class StorageMissing(SweeplabError):
    """There is no storage at the URL (as opposed to one that cannot be read)."""


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


def open_storage_readonly(url: str) -> BaseStorage:
    """The storage at `url` for reading: no file, table or journal mode is ever created or changed.
    Raises SweeplabError when there is nothing there."""
    kind, shown = storage_kind(url), masked(url)
    if kind != "postgresql" and not _file_of(url).is_file():
        raise StorageMissing(f"{shown} does not exist")
    if kind == "journal":
        # Optuna's journal reader takes the file's write lock only to append, which a reader never does
        return JournalStorage(JournalFileBackend(str(_file_of(url))))
    if kind == "sqlite":
        path = _file_of(url).resolve()
        log_there = path.with_name(path.name + "-wal").exists()
        url = _sqlite_readonly_url(path)
    try:
        engine = sqlalchemy.create_engine(_driver_url(url), poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as connection:
            tables = set(sqlalchemy.inspect(connection).get_table_names())
        engine.dispose()
        if not {"studies", "version_info", "alembic_version"} <= tables:
            raise SweeplabError(f"{shown} holds no Optuna studies")
        storage = RDBStorage(_driver_url(url), skip_table_creation=True)
        if kind == "sqlite" and not log_there and "mode=ro" in url:
            atexit.register(_fold_log, storage.engine, path)
        return storage
    except SweeplabError:
        raise
    except Exception as err:
        raise SweeplabError(f"cannot read {shown}: {_reason(err)}") from err


def _fold_log(engine: sqlalchemy.Engine, path: Path) -> None:
    """A read-only reader makes SQLite's `-wal` and `-shm` files beside a study that had none, and cannot
    remove them; a moment's read-write connection, the last to close, folds them away (it changes no
    data; with a sweep still running on the study, it leaves them to that sweep)."""
    import sqlite3

    engine.dispose()
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()


def _sqlite_readonly_url(path: Path) -> str:
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


def _causes(err: BaseException) -> Iterator[BaseException]:
    """`err` and what it wraps: Optuna wraps SQLAlchemy's error, which wraps the driver's."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__ or current.__context__


def _reason(err: BaseException) -> str:
    """The driver's own words (e.g. 'connection refused', 'database or disk is full'), not Optuna's or
    SQLAlchemy's wrapping, with the password of any URL in them masked."""
    text = str(list(_causes(err))[-1]).strip().splitlines()
    return _PASSWORD.sub(r"\1***@", text[0]) if text else type(err).__name__


_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_FULL = re.compile(r"disk is full|no space left|could not extend file|quota exceeded", re.IGNORECASE)


def _disk_full(err: BaseException, url: str | None) -> bool:
    """The storage failed because its disk is full: the driver says so, or (SQLite reports some writes
    on a full disk as a plain 'disk I/O error') the disk of its file has no room left."""
    if any(_FULL.search(str(e)) or getattr(e, "errno", None) in FULL_ERRNOS for e in _causes(err)):
        return True
    if url is None or storage_kind(url) == "postgresql":
        return False
    try:
        return shutil.disk_usage(_file_of(url).parent).free < 64 * 1024
    except OSError:
        return False


def study_gone(err: BaseException) -> bool:
    """Optuna's KeyError for a study or trial that is no longer stored (a study deleted meanwhile)."""
    return isinstance(err, KeyError) and "Record does not exist" in str(err)


def storage_failure(err: BaseException, url: str | None = None) -> str:
    """One line for a storage that failed under a command, its password masked."""
    if _disk_full(err, url):
        on_file = url is not None and storage_kind(url) != "postgresql"
        where = f"the study's storage {_file_of(url).absolute() if on_file else masked(url or '')}"  # type: ignore[arg-type]
        return (
            f"no space left on device writing {where}: free space there, then rerun the same command to "
            "resume (trials it was running are queued again then)"
        )
    where = f" {masked(url)}" if url else ""
    return f"the storage{where} failed: {_reason(err)}; rerun the same command to resume once it works"


@contextlib.contextmanager
def study_lock(url: str, name: str, timeout: float = LOCK_TIMEOUT, shared: bool = False) -> Iterator[None]:
    """Hold the lock named `name` of the storage at `url` (a file lock beside a SQLite or journal file,
    an advisory lock in PostgreSQL). Processes that die release it; a holder that outlives `timeout`
    makes the waiter give up with a message instead of waiting forever (StudyLockBusy). `shared`: many
    holders at once, none while an exclusive holder has it."""
    if storage_kind(url) == "postgresql":
        with _advisory_lock(url, name, timeout, shared):
            yield
        return
    safe = re.sub(r"[^\w.-]", "_", name)
    path = _file_of(url).with_name(f"{_file_of(url).name}.{safe}.lock")
    try:
        file = open(path, "a+")  # noqa: SIM115 (closed below, after the lock is released)
    except OSError as err:  # the storage's folder, not the lock file beside it, is what the user named
        raise EnvironmentFault(
            f"hydra.sweeper.storage: cannot write in the folder of {_file_of(url)} ({err.strerror}); "
            "choose a storage in a folder you can write"
        ) from None
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with file:
        _wait_for(lambda: _try_flock(file, mode), timeout, f"the lock file {path}")
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def study_in_use(url: str, name: str, exclusive: bool = False) -> contextlib.AbstractContextManager[None]:
    """Held, shared, by every command that runs the study, for as long as it runs. `exclusive` (what
    `studies delete` takes): only when no command runs it, else StudyLockBusy at once."""
    if exclusive:
        return study_lock(url, f"{name}.in-use", timeout=0)
    return study_lock(url, f"{name}.in-use", shared=True)


def _try_flock(file: IO, mode: int) -> bool:
    try:
        fcntl.flock(file, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@functools.cache
def _lock_engine(url: str) -> sqlalchemy.Engine:
    # one connection for the study in use (held while the command runs), one for the claims' lock
    return sqlalchemy.create_engine(_driver_url(url), pool_size=2, pool_pre_ping=True)


@contextlib.contextmanager
def _advisory_lock(url: str, name: str, timeout: float, shared: bool) -> Iterator[None]:
    key = zlib.crc32(f"sweeplab:{name}".encode())  # PostgreSQL's advisory locks take a number
    try:
        connection = _lock_engine(url).connect()
    except sqlalchemy.exc.SQLAlchemyError as err:
        # the server, not the user's input: exit 1, as for a full disk
        raise EnvironmentFault(f"hydra.sweeper.storage: cannot reach {masked(url)}: {_reason(err)}") from err
    kind = "_shared" if shared else ""
    try:
        query = sqlalchemy.text(f"SELECT pg_try_advisory_lock{kind}(:key)")
        _wait_for(lambda: bool(connection.execute(query, {"key": key}).scalar()), timeout, f"lock {name!r}")
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock{kind}(:key)"), {"key": key})
    finally:
        connection.close()


class StudyLockBusy(SweeplabError):
    """A study's lock stayed taken for longer than the caller would wait."""


def _wait_for(acquire, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not acquire():
        if time.monotonic() > deadline:
            raise StudyLockBusy(
                f"{what} has been held by another sweeplab process for {timeout:.0f} s; if no sweeplab "
                "command is running on this study, the storage is stuck: check the processes using it"
            )
        time.sleep(0.02 + random.random() * 0.05)
