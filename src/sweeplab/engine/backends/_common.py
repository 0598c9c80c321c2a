"""What every backend shares: a URL without its password, the driver's own words for a failure, a full
disk told from other faults, and waiting for a lock with a limit."""

import random
import re
import time
from collections.abc import Callable, Iterator

import sqlalchemy

from sweeplab.config import SweeplabError
from sweeplab.files import FULL_ERRNOS

LOCK_TIMEOUT = 300.0  # seconds to wait for a study's lock before giving up with a message


class StudyLockBusy(SweeplabError):
    """A study's lock stayed taken for longer than the caller would wait."""


class StorageMissing(SweeplabError):
    """There is no storage at the URL (as opposed to one that cannot be read)."""


def masked(url: str) -> str:
    """The URL as it may be printed: without its password."""
    if url.startswith("journal://"):
        return url
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def causes(err: BaseException) -> Iterator[BaseException]:
    """`err` and what it wraps: Optuna wraps SQLAlchemy's error, which wraps the driver's."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__ or current.__context__


_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_FULL = re.compile(r"disk is full|no space left|could not extend file|quota exceeded", re.IGNORECASE)


def reason(err: BaseException) -> str:
    """The driver's own words (e.g. 'connection refused', 'database or disk is full'), not Optuna's or
    SQLAlchemy's wrapping, with the password of any URL in them masked."""
    text = str(list(causes(err))[-1]).strip().splitlines()
    return _PASSWORD.sub(r"\1***@", text[0]) if text else type(err).__name__


def says_disk_full(err: BaseException) -> bool:
    """The driver or the system says the disk is full."""
    return any(_FULL.search(str(e)) or getattr(e, "errno", None) in FULL_ERRNOS for e in causes(err))


def wait_for(acquire: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not acquire():
        if time.monotonic() > deadline:
            raise StudyLockBusy(
                f"{what} has been held by another sweeplab process for {timeout:.0f} s; if no sweeplab "
                "command is running on this study, the storage is stuck: check the processes using it"
            )
        time.sleep(0.02 + random.random() * 0.05)


def read_only_rdb(driver_url: str, shown: str):
    """Optuna's RDB storage on a database that already holds its tables, for reading: nothing created."""
    from optuna.storages import RDBStorage

    try:
        engine = sqlalchemy.create_engine(driver_url, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as connection:
            tables = set(sqlalchemy.inspect(connection).get_table_names())
        engine.dispose()
        if not {"studies", "version_info", "alembic_version"} <= tables:
            raise SweeplabError(f"{shown} holds no Optuna studies")
        return RDBStorage(driver_url, skip_table_creation=True)
    except SweeplabError:
        raise
    except Exception as err:
        raise SweeplabError(f"cannot read {shown}: {reason(err)}") from err
