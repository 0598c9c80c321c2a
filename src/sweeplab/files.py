"""Writing records so that a crash or a full disk never leaves a half-written file, and telling a fault
of the machine (disk full, read-only folder) from a fault of the trial.

Every record is written to a temporary name in its folder, flushed to disk and renamed over the old
one: a reader sees the old file or the new one, never a mix.
"""

import errno
import io
import os
from pathlib import Path
from typing import Any

from sweeplab.config import SweeplabError

# Errors of the machine, not of the trial: every later trial would hit them too.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (a file-size limit, ulimit -f?)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class EnvironmentFault(SweeplabError):
    """The machine cannot do what the run needs (disk full, a folder that cannot be written): the
    sweep stops at once instead of failing trial after trial."""


def environment_fault(err: BaseException, path: Path | str | None = None) -> EnvironmentFault | None:
    """The fault `err` stands for, naming the file, or None when it is not a fault of the machine."""
    if isinstance(err, EnvironmentFault):
        return err
    if not isinstance(err, OSError) or err.errno not in ENVIRONMENT_ERRNOS:
        return None
    where = path if path is not None else err.filename
    where = os.path.abspath(where) if where else "a file"
    return EnvironmentFault(f"{ENVIRONMENT_ERRNOS[err.errno]} writing {where}")


def write_atomic(path: Path, data: bytes | str, durable: bool = True) -> Path:
    """Write `data` to `path` through a temporary file and a rename; on any error the temporary file is
    removed, the old `path` (if any) is untouched, and a fault of the machine is named as such.
    `durable=False` skips the fsync (about 5 ms): a killed process still never leaves a half-written
    file, only a power cut may; for records the study holds too (a trial's `.hydra/` files)."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as file:
            file.write(raw)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        fault = environment_fault(err, path)
        if fault is not None:
            raise fault from err
        raise
    return path


def save_torch_atomic(obj: Any, path: Path) -> Path:
    """`torch.save` through `write_atomic`: torch's own file writer reports a full disk as a bare
    'unexpected pos' error and leaves a truncated file; serialising in memory first avoids both."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_atomic(path, buffer.getvalue())


def writable_or_fault(folder: Path) -> None:
    """Raises EnvironmentFault when `folder` (or, where it does not exist yet, the nearest folder above
    it) cannot be written, so a run stops before it starts anything."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        err = OSError(errno.EROFS if _read_only(existing) else errno.EACCES, "not writable")
        raise environment_fault(err, folder)  # type: ignore[misc]


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
