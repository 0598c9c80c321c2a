"""PostgreSQL (`postgresql://USER:PASSWORD@HOST/DB`): a server that studies on several machines share."""

import contextlib
import functools
import importlib
import importlib.util
import ipaddress
import zlib
from collections.abc import Iterator, Sequence

import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage

from sweeplab.engine.backends._base import Backend
from sweeplab.engine.backends._common import LOCK_TIMEOUT, masked, read_only_rdb, reason, wait_for
from sweeplab.files import EnvironmentFault


class PostgresBackend(Backend):
    kind = "postgresql"

    @functools.cached_property
    def driver_url(self) -> str:
        """The URL with the driver that is installed (psycopg2 where it is, else psycopg, the driver of
        sweeplab[postgres]); a missing driver is named, before any connection is tried."""
        url = self.url
        if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        driver = sqlalchemy.engine.make_url(url).get_dialect().driver
        try:
            importlib.import_module(driver)
        except ImportError as err:
            raise EnvironmentFault(
                f"hydra.sweeper.storage: {masked(self.url)} needs the PostgreSQL driver {driver}, which is "
                f"not installed here ({err}); install it: pip install 'sweeplab[postgres]'"
            ) from None
        return url

    def open(self) -> BaseStorage:
        with self.lock("storage"):
            try:
                return RDBStorage(self.driver_url)
            except Exception as err:
                raise self.open_failure(err) from err

    def open_readonly(self) -> BaseStorage:
        return read_only_rdb(self.driver_url, masked(self.url))

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = LOCK_TIMEOUT, shared: bool = False) -> Iterator[None]:
        """An advisory lock in the database: a connection that dies releases it."""
        key = zlib.crc32(f"sweeplab:{name}".encode())  # PostgreSQL's advisory locks take a number
        try:
            connection = _lock_engine(self.driver_url).connect()
        except sqlalchemy.exc.SQLAlchemyError as err:
            # the server, not the user's input: exit 1, as for a full disk
            raise EnvironmentFault(
                f"hydra.sweeper.storage: cannot reach {masked(self.url)}: {reason(err)}"
            ) from err
        kind = "_shared" if shared else ""
        try:
            query = sqlalchemy.text(f"SELECT pg_try_advisory_lock{kind}(:key)")
            wait_for(
                lambda: bool(connection.execute(query, {"key": key}).scalar()), timeout, f"lock {name!r}"
            )
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock{kind}(:key)"), {"key": key})
        finally:
            connection.close()

    def unreachable_from_nodes(self, nodes: Sequence[str]) -> str | None:
        if not _loopback(self.url):
            return None
        return (
            f"hydra.sweeper.storage: {masked(self.url)} names this machine by a local address; the compute "
            f"nodes ({', '.join(sorted(nodes)[:3])}...) cannot reach it there: give the server's network name"
        )


@functools.cache
def _lock_engine(url: str) -> sqlalchemy.Engine:
    # one connection for the study in use (held while the command runs), one for the claims' lock
    return sqlalchemy.create_engine(url, pool_size=2, pool_pre_ping=True)


def _loopback(url: str) -> bool:
    host = sqlalchemy.engine.make_url(url).host
    if not host or host.startswith("/"):
        return True  # a Unix socket of this machine
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
