"""What an expected fault ends a command with: its exit code (2: the user's input; 1: the machine, the
storage or another service) and one line, never a traceback. The `sweeplab` command and the Hydra plugin
(through which a user's own `@hydra.main` app runs a sweep) both read it here, so they exit alike."""

import sys

from sweeplab.config import SweeplabError
from sweeplab.files import EnvironmentFault

STUDY_GONE = (
    "the study was deleted from its storage while this command ran (`sweeplab studies delete`?); nothing "
    "more was stored. Rerun the command to start it anew"
)


def expected_fault(err: BaseException, storage_url: str | None = None) -> tuple[int, str] | None:
    """(exit code, message) for a fault sweeplab expects, None for anything else (a bug: let it show).
    `storage_url`: the study's storage, named in a storage failure."""
    if isinstance(err, SweeplabError):
        return sweeplab_fault(err)
    if isinstance(err, storage_errors()):
        from sweeplab.engine.storage import storage_failure

        return 1, storage_failure(err, storage_url)
    if isinstance(err, KeyError):
        from sweeplab.engine.storage import study_gone

        return (1, STUDY_GONE) if study_gone(err) else None
    return None


def sweeplab_fault(err: SweeplabError) -> tuple[int, str]:
    """(exit code, message) of sweeplab's own refusals: 1 for the machine's fault, 2 for the input's."""
    return (1 if isinstance(err, EnvironmentFault) else 2), str(err)


def storage_errors() -> tuple[type[BaseException], ...]:
    """The storage's exception classes, from their modules if loaded: a command that never loaded a
    storage cannot raise them, and importing Optuna and SQLAlchemy for the check would cost a training
    run 0.3 s of start-up."""
    names = [("sqlalchemy.exc", "SQLAlchemyError"), ("optuna.exceptions", "StorageInternalError")]
    return tuple(getattr(sys.modules[m], name) for m, name in names if m in sys.modules)
