"""Studies run as SLURM jobs (`hydra.sweeper.slurm`): submitted from the login node through submitit,
each job a worker of the study in its shared storage. `cluster` checks a submission before anything is
submitted, `submit` submits and follows, `worker` is what runs in a job."""

from pathlib import Path

from sweeplab.config import SweeplabError
from sweeplab.sweeper.settings import SlurmSettings
from sweeplab.sweeper.slurm.cluster import check_settings, check_submission, read_cluster
from sweeplab.sweeper.slurm.submit import submit_study
from sweeplab.sweeper.slurm.worker import in_worker as in_slurm_worker
from sweeplab.sweeper.slurm.worker import job_record
from sweeplab.sweeper.validate import SweepRefused

__all__ = ["check_cluster", "in_slurm_worker", "job_record", "submit_study"]


def check_cluster(slurm: SlurmSettings, storage_url: str, sweep_dir: Path) -> None:
    """Refuse, before the study is touched, a submission that cannot work, naming every problem."""
    try:
        cluster = read_cluster()
    except SweeplabError as err:  # no SLURM here: what is wrong besides is said at the same time
        raise SweepRefused([str(err), *check_settings(slurm, storage_url)]) from None
    folders = [sweep_dir, *([Path(slurm.folder).absolute()] if slurm.folder else [])]
    problems = check_submission(slurm, storage_url, folders, cluster)
    if problems:
        raise SweepRefused(problems)
