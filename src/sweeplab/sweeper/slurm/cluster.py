"""What can be checked on the login node before a study is submitted to SLURM: that SLURM is there,
the partition exists, the storage is one that several machines can share and the compute nodes can
reach, and the folders the jobs write to are shared with them."""

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sweeplab.config import SweeplabError
from sweeplab.engine.backends import backend_of
from sweeplab.sweeper.settings import SlurmSettings
from sweeplab.sweeper.validate import closest

NODE_LOCAL_FS = {"tmpfs", "ramfs", "devtmpfs", "overlay", "squashfs"}
NODE_LOCAL_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))


@dataclass(frozen=True)
class Cluster:
    partitions: dict[str, set[str]]  # partition -> the host names of its nodes
    default: str | None  # the partition a job gets when it names none


def read_cluster() -> Cluster:
    """The cluster as `sinfo` sees it. Raises SweeplabError when SLURM is not there or not answering."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        raise SweeplabError(
            "hydra.sweeper.slurm.jobs: there is no `sbatch` on the PATH: submit from the cluster's login "
            "node (load its slurm module first if it has one), or set hydra.sweeper.slurm.jobs=0 to run here"
        )
    try:
        out = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%P %n"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        raise SweeplabError("SLURM's `sinfo` did not answer in 60 s: is the controller up?") from None
    if out.returncode != 0:
        said = out.stderr.strip().splitlines()  # its last line is the one that says why
        why = said[-1] if said else f"exit code {out.returncode}"
        raise SweeplabError(
            f"SLURM's `sinfo` failed ({why}): submit from the "
            "cluster's login node, where SLURM is configured (SLURM_CONF or /etc/slurm/slurm.conf) and its "
            "controller answers, or set hydra.sweeper.slurm.jobs=0 to run here"
        )
    partitions: dict[str, set[str]] = {}
    default = None
    for line in out.stdout.split("\n"):
        if not line.strip():
            continue
        partition, host = line.split()
        if partition.endswith("*"):
            partition = default = partition[:-1]
        partitions.setdefault(partition, set()).add(host)
    return Cluster(partitions, default)


def check_settings(slurm: SlurmSettings, storage_url: str) -> list[str]:
    """The problems of a submission that are seen without asking the cluster, as one line each."""
    problems = [
        f"hydra.sweeper.slurm.{name}: must be at least {least}, got {value}"
        for name, value, least in _counts(slurm)
        if value is not None and value < least
    ]
    if not 0 <= slurm.signal_delay_s < slurm.timeout_min * 60:
        problems.append(
            f"hydra.sweeper.slurm.signal_delay_s: {slurm.signal_delay_s} s must be within the time limit "
            f"(timeout_min {slurm.timeout_min})"
        )
    problem = backend_of(storage_url).several_machines_problem()
    return [*problems, problem] if problem else problems


def check_submission(
    slurm: SlurmSettings, storage_url: str, folders: list[Path], cluster: Cluster, here: str | None = None
) -> list[str]:
    """Every problem of a submission, as one line each; none when it can go."""
    problems = check_settings(slurm, storage_url)
    partition = slurm.partition or cluster.default
    if partition is None:
        problems.append(
            "hydra.sweeper.slurm.partition: this cluster has no default partition; name one of "
            + ", ".join(sorted(cluster.partitions))
        )
    elif partition not in cluster.partitions:
        problems.append(
            f"hydra.sweeper.slurm.partition: there is no partition {partition!r} on this cluster"
            f"{closest(partition, list(cluster.partitions))}; it has: {', '.join(sorted(cluster.partitions))}"
        )
    nodes = {node.split(".")[0] for node in cluster.partitions.get(partition or "", set())}
    here = (here or socket.gethostname()).split(".")[0]  # SLURM names nodes by their short names
    if nodes and nodes != {here}:  # the jobs run on other machines than this one
        backend = backend_of(storage_url)
        unreachable = backend.unreachable_from_nodes(sorted(nodes))
        if unreachable:
            problems.append(unreachable)
        for what, path in [*backend.shared_files(), *((f"the output folder {p}", p) for p in folders)]:
            if _node_local(path):
                problems.append(
                    f"{what} is on this machine's own disk ({path}), which the compute nodes do not "
                    "see: put it on the shared filesystem (hydra.sweep.dir=..., or run from a shared folder)"
                )
        if _node_local(Path(sys.prefix)):
            problems.append(
                f"the Python environment {sys.prefix} is on this machine's own disk; the jobs run its "
                "Python: create the environment on the shared filesystem"
            )
    return problems


def _counts(slurm: SlurmSettings) -> list[tuple[str, float | None, int]]:
    """(name, value, least allowed) of the settings that count something."""
    return [
        ("jobs", slurm.jobs, 1),
        ("timeout_min", slurm.timeout_min, 1),
        ("max_requeues", slurm.max_requeues, 0),
        ("cpus_per_task", slurm.cpus_per_task, 1),
        ("gpus_per_node", slurm.gpus_per_node, 0),
        ("array_parallelism", slurm.array_parallelism, 1),
    ]


def _node_local(path: Path) -> bool:
    """A folder that only this machine sees: a memory filesystem, or the machine's own temporary folders."""
    path = Path(os.path.abspath(path))
    if any(path == d or d in path.parents for d in NODE_LOCAL_DIRS):
        return True
    return _filesystem(path) in NODE_LOCAL_FS


def _filesystem(path: Path) -> str | None:
    """The type of the filesystem `path` is on (the longest mount point above it in /proc/mounts)."""
    best, kind = "", None
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best, kind = point, fields[2]
    return kind
