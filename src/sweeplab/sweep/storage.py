"""Optuna storages by URL: opened safely when many processes start at once, opened read-only for
reports, named without their passwords, and a lock per study that every process on the storage sees.

Supported: SQLite (`sqlite:///path.db`, the default), PostgreSQL (`postgresql://...`, for several
machines) and Optuna's journal file (`journal:///path.log`). The lock is what makes a study safe under
concurrency: creating it, queueing its plan and claiming a trial happen under it, one process at a time.
"""

import contextlib
import fcntl
import functools
import importlib.util
import os
import random
import re
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from sweeplab.config import SweeplabError
from sweeplab.files import EnvironmentFault

LOCK_TIMEOUT = 300.0  # seconds to wait for a study's lock before giving up with a message
SUPPORTED = "sqlite:///PATH.db, postgresql://USER:PASSWORD@HOST/DB or journal:///PATH.log"


def default_storage(study_name: str) -> str:
    """`studies/<study_name>.db` under the folder the command runs in (or $SWEEPLAB_STUDIES_DIR)."""
    folder = Path(os.environ.get("SWEEPLAB_STUDIES_DIR", "studies"))
    return f"sqlite:///{folder / study_name}.db"


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


def _kind(url: str) -> str:
    for kind in ("sqlite", "postgresql", "journal"):
        if url.startswith(kind + ":") or url.startswith(kind + "+"):
            return kind
    raise SweeplabError(f"hydra.sweeper.storage: {masked(url)} is not supported; use {SUPPORTED}")


def _driver_url(url: str) -> str:
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")  # the driver of sweeplab[postgres]
    return url


def _file_of(url: str) -> Path:
    return Path(url.removeprefix("journal://").removeprefix("sqlite:///"))


@functools.cache
def open_storage(url: str) -> BaseStorage:
    """The storage at `url`, creating its file or tables when they do not exist yet, under the
    storage's lock, so that several processes starting together do not race to create them. One per
    URL and process: the controller, its jobs and its heartbeat share one connection pool."""
    kind = _kind(url)
    if kind != "postgresql":
        _file_of(url).parent.mkdir(parents=True, exist_ok=True)
    with study_lock(url, "storage"):
        if kind == "journal":
            return JournalStorage(JournalFileBackend(str(_file_of(url))))
        # SQLite serialises writers: wait for the lock instead of failing when workers write at once.
        engine = {"connect_args": {"timeout": 60}} if kind == "sqlite" else {}
        try:
            storage = RDBStorage(_driver_url(url), engine_kwargs=engine)
        except Exception as err:
            raise SweeplabError(f"hydra.sweeper.storage: cannot open {masked(url)}: {_reason(err)}") from err
        if kind == "sqlite":
            # Write-ahead logging: workers' heartbeats and reports no longer wait behind readers. The
            # mode is stored in the database file, so every process opening it gets it.
            with storage.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        return storage


def open_storage_readonly(url: str) -> BaseStorage:
    """The storage at `url` for reading: no file, table or journal mode is ever created or changed.
    Raises SweeplabError when there is nothing there."""
    kind = _kind(url)
    if kind != "postgresql" and not _file_of(url).is_file():
        raise SweeplabError(f"{masked(url)} does not exist")
    if kind == "journal":
        # Optuna's journal reader takes the file's write lock only to append, which a reader never does
        return JournalStorage(JournalFileBackend(str(_file_of(url))))
    if kind == "sqlite":
        path = _file_of(url).resolve()
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    try:
        engine = sqlalchemy.create_engine(_driver_url(url), poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as connection:
            tables = set(sqlalchemy.inspect(connection).get_table_names())
        engine.dispose()
        if not {"studies", "version_info", "alembic_version"} <= tables:
            raise SweeplabError(f"{masked(url)} holds no Optuna studies")
        return RDBStorage(_driver_url(url), skip_table_creation=True)
    except SweeplabError:
        raise
    except Exception as err:
        raise SweeplabError(f"cannot read {masked(url)}: {_reason(err)}") from err


def _reason(err: BaseException) -> str:
    """The driver's own words (e.g. 'connection refused'), without SQLAlchemy's boilerplate, and with
    the password of any URL in them masked."""
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return _PASSWORD.sub(r"\1***@", text[0]) if text else type(err).__name__


_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")


def storage_failure(err: BaseException, url: str | None = None) -> str:
    """One line for a storage that failed under a command, its password masked."""
    where = f" {masked(url)}" if url else ""
    return f"the storage{where} failed: {_reason(err)}; rerun the same command to resume once it works"


@contextlib.contextmanager
def study_lock(url: str, name: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the lock named `name` of the storage at `url` (a file lock beside a SQLite or journal file,
    an advisory lock in PostgreSQL). Processes that die release it; a holder that outlives `timeout`
    makes the waiter give up with a message instead of waiting forever."""
    if _kind(url) == "postgresql":
        with _advisory_lock(url, name, timeout):
            yield
        return
    safe = re.sub(r"[^\w.-]", "_", name)
    path = _file_of(url).with_name(f"{_file_of(url).name}.{safe}.lock")
    with _file_lock(path, timeout):
        yield


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    with open(path, "a+") as file:
        _wait_for(lambda: _try_flock(file), timeout, f"the lock file {path}")
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _try_flock(file) -> bool:
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@functools.cache
def _lock_engine(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(_driver_url(url), pool_size=1, pool_pre_ping=True)


@contextlib.contextmanager
def _advisory_lock(url: str, name: str, timeout: float) -> Iterator[None]:
    key = zlib.crc32(f"sweeplab:{name}".encode())  # PostgreSQL's advisory locks take a number
    try:
        connection = _lock_engine(url).connect()
    except sqlalchemy.exc.SQLAlchemyError as err:
        # the server, not the user's input: exit 1, as for a full disk
        raise EnvironmentFault(f"hydra.sweeper.storage: cannot reach {masked(url)}: {_reason(err)}") from err
    try:
        query = sqlalchemy.text("SELECT pg_try_advisory_lock(:key)")
        _wait_for(lambda: bool(connection.execute(query, {"key": key}).scalar()), timeout, f"lock {name!r}")
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        connection.close()


def _wait_for(acquire, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not acquire():
        if time.monotonic() > deadline:
            raise SweeplabError(
                f"{what} has been held by another sweeplab process for {timeout:.0f} s; if no sweeplab "
                "command is running on this study, the storage is stuck: check the processes using it"
            )
        time.sleep(0.02 + random.random() * 0.05)
