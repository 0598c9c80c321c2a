"""The interface every storage backend implements (sweeplab.engine.backends)."""

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from optuna.storages import BaseStorage

from sweeplab.config import SweeplabError
from sweeplab.engine.backends._common import LOCK_TIMEOUT, masked, reason, says_disk_full
from sweeplab.files import EnvironmentFault


class Backend:
    """One storage URL of one kind."""

    kind: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def file(self) -> Path | None:
        """The storage's file; None for a server."""
        return None

    def open(self) -> BaseStorage:
        """Open it, creating its file or tables when they do not exist yet (under its lock)."""
        raise NotImplementedError

    def open_readonly(self) -> BaseStorage:
        """Open it for reading: nothing is created or changed; StorageMissing when there is nothing."""
        raise NotImplementedError

    def lock(
        self, name: str, timeout: float = LOCK_TIMEOUT, shared: bool = False
    ) -> contextlib.AbstractContextManager:
        """The lock `name`, which every process on this storage sees."""
        raise NotImplementedError

    def disk_full(self, err: BaseException) -> bool:
        """Whether `err` came of a full disk."""
        return says_disk_full(err)

    def where(self) -> str:
        """The storage as a message names it."""
        return masked(self.url)

    def failure(self, err: BaseException) -> str:
        """One line for this storage failing under a command, its password masked."""
        if self.disk_full(err):
            return (
                f"no space left on device writing the study's storage {self.where()}: free space there, "
                "then rerun the same command to resume (trials it was running are queued again then)"
            )
        return (
            f"the storage {masked(self.url)} failed: {reason(err)}; rerun the same command to resume once "
            "it works"
        )

    def open_failure(self, err: BaseException) -> SweeplabError:
        """The error for a storage that could not be opened: the machine's (a full disk) or the input's."""
        if self.disk_full(err):
            return EnvironmentFault(self.failure(err))
        return SweeplabError(f"hydra.sweeper.storage: cannot open {masked(self.url)}: {reason(err)}")

    def several_machines_problem(self) -> str | None:
        """Why jobs on several machines cannot share this storage, or None."""
        return None

    def shared_files(self) -> Sequence[tuple[str, Path]]:
        """Files of the storage that every machine running the study must see."""
        return ()

    def unreachable_from_nodes(self, nodes: Sequence[str]) -> str | None:
        """Why compute nodes could not reach this storage, or None."""
        return None
