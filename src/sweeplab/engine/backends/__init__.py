"""A storage backend per kind, behind one interface (as Optuna keeps one class per storage): how a
study's storage is opened, opened read-only, locked, where its file is, what a full disk looks like on it,
and what running it from several machines asks of it. `backend_of(url)` picks the class by the URL's
scheme; no other code branches on the kind. A new backend is one class added to `BACKENDS`, run through
the storage contract tests (tests/engine/test_lifecycle.py)."""

from sweeplab.config import SweeplabError
from sweeplab.engine.backends._base import Backend
from sweeplab.engine.backends._common import masked
from sweeplab.engine.backends.journal import JournalBackend
from sweeplab.engine.backends.postgres import PostgresBackend
from sweeplab.engine.backends.sqlite import SQLiteBackend

__all__ = ["BACKENDS", "Backend", "backend_of"]

BACKENDS: tuple[type[Backend], ...] = (SQLiteBackend, PostgresBackend, JournalBackend)
SUPPORTED = "sqlite:///PATH.db, postgresql://USER:PASSWORD@HOST/DB or journal:///PATH.log"


def backend_of(url: str) -> Backend:
    """The backend of `url`; any other URL is refused, naming what is supported."""
    for backend in BACKENDS:
        if url.startswith(backend.kind + ":") or url.startswith(backend.kind + "+"):
            return backend(url)
    raise SweeplabError(f"hydra.sweeper.storage: {masked(url)} is not supported; use {SUPPORTED}")
