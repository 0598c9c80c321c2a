"""Which process owns a running trial, and whether that process is still alive.

A trial records its owner's host, boot, pid and the process's start time when it is claimed. On the same
host (and boot) that is enough to tell at once whether the owner is gone, even when its pid has been
reused by another program; on another host only the trial's heartbeat can tell.
"""

import os
import socket
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Owner:
    host: str
    boot: str  # the kernel's boot id: after a reboot, no process of before is alive
    pid: int
    started: str  # the process's start time, as the kernel counts it ("" where unknown)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Any) -> "Owner | None":
        try:
            return cls(**record)
        except TypeError:
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def is_alive(self) -> bool | None:
        """True or False when this host can tell; None for another host's process."""
        if not self.is_local():
            return None
        if self.boot != _boot_id():
            return False
        return _start_time(self.pid) == self.started if self.started else pid_exists(self.pid)


@cache
def this_process() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), _boot_id(), pid, _start_time(pid) or "")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot); None when the process does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "" if pid_exists(pid) else None
    return stat.rsplit(")", 1)[1].split()[19]  # after the command name, which may hold spaces


def pid_exists(pid: int) -> bool:
    """Whether a process of this pid exists on this host (a pid reused by another program counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
