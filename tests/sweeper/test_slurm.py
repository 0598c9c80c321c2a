"""Studies run as SLURM jobs (`hydra.sweeper.slurm`), against a real SLURM cluster: `.ci/slurm start DIR`
starts a one-node one on this machine (CI does), and these tests skip cleanly when none answers. The
storage is the PostgreSQL server of SWEEPLAB_TEST_POSTGRES when there is one, else a journal file.
The checks made before anything is submitted are tested without a cluster too."""

import os
import pickle
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import submitit
from optuna.trial import TrialState

from support import POSTGRES, needs_slurm, study_args, unique
from sweeplab.sweeper.settings import SlurmSettings
from sweeplab.sweeper.slurm.cluster import Cluster, check_submission
from sweeplab.sweeper.slurm.worker import WorkerSpec, run_worker


def load(args: list[str]) -> optuna.Study:
    values = dict(a.split("=", 1) for a in args if "=" in a)
    storage = values["hydra.sweeper.storage"]
    if storage.startswith("journal://"):
        path = storage.removeprefix("journal://")
        backend = optuna.storages.journal.JournalFileBackend(path)
        storage = optuna.storages.JournalStorage(backend)
    elif "+" not in storage.split(":", 1)[0]:
        storage = storage.replace("postgresql://", "postgresql+psycopg://", 1)
    return optuna.load_study(study_name=values["hydra.sweeper.study_name"], storage=storage)


def created(args: list[str]) -> bool:
    """Whether the study of `args` is in its storage."""
    storage = dict(a.split("=", 1) for a in args if "=" in a)["hydra.sweeper.storage"]
    if storage.startswith("journal://") and not Path(storage.removeprefix("journal://")).exists():
        return False  # (loading would create the file)
    try:
        load(args)
    except KeyError:
        return False
    return True


def squeue(job: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %T"], capture_output=True, text=True)
    return out.stdout.split("\n")[:-1] if out.returncode == 0 else []


def wait_for(condition, timeout: float, what: str, poll: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def jobs_of(output: str) -> list[str]:
    """The ids of the jobs a submission printed."""
    return re.search(r"SLURM jobs? ([\d_, ]+) \(", output).group(1).split(", ")  # type: ignore[union-attr]


def one_job_at_work(sweeplab, tmp_path: Path, prefix: str, trials: int) -> tuple[list[str], str]:
    """A study of long trials (20,000 steps) submitted as one job, detached; returns once a trial has
    saved its first checkpoint. Returns the study's arguments and the job id."""
    name = unique(prefix)
    args = study_args(tmp_path, name, "hydra.sweeper.slurm.jobs=1", trials=trials, steps=20000)
    args.append("trainer.checkpoint_every=0")  # a checkpoint at each evaluation: one to wait for soon
    result = sweeplab(*args, "--detach")
    assert result.returncode == 0 and "cancel them with `scancel" in result.stdout, result.stdout
    [job] = jobs_of(result.stdout)
    sweep_dir = tmp_path / "outputs" / "sweeps" / name
    wait_for(lambda: list(sweep_dir.glob("*/resume.pt")), 240, "a trial's first checkpoint")
    return args, job


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))


# --- what is checked before anything is submitted (no cluster needed) ----------------------------------

REMOTE = Cluster({"gpu": {"node1", "node2"}, "cpu": {"node3"}}, default="cpu")


def test_sqlite_unknown_partition_and_bad_numbers_are_refused_together() -> None:
    slurm = SlurmSettings(jobs=0, partition="gpux", timeout_min=1, signal_delay_s=90)
    problems = check_submission(slurm, "sqlite:////home/u/s.db", [Path("/home/u/out")], REMOTE, here="login")
    text = "\n".join(problems)
    assert "slurm.jobs: must be at least 1, got 0" in text
    assert "signal_delay_s: 90 s must be within the time limit" in text
    assert "no partition 'gpux' on this cluster (did you mean gpu?); it has: cpu, gpu" in text
    assert "is SQLite, which cannot hold a study that jobs on several machines share" in text
    assert "postgresql://USER:PASSWORD@HOST/DB" in text and len(problems) == 4


def test_a_storage_and_folders_the_compute_nodes_cannot_reach_are_refused() -> None:
    slurm = SlurmSettings(jobs=2, partition="gpu")
    local = "postgresql://u:secret@127.0.0.1/db"
    problems = check_submission(slurm, local, [Path("/tmp/out"), Path("/dev/shm/logs")], REMOTE, here="login")
    text = "\n".join(problems)
    assert "names this machine by a local address; the compute nodes (node1, node2...) cannot reach" in text
    assert "secret" not in text  # the password is masked
    assert "the output folder /tmp/out is on this machine's own disk" in text
    assert "the output folder /dev/shm/logs is on this machine's own disk" in text
    journal = check_submission(slurm, "journal:///tmp/s.log", [], REMOTE, here="login")
    assert any("the storage's journal file is on this machine's own disk (/tmp/s.log)" in p for p in journal)


def test_on_a_cluster_of_this_machine_alone_local_addresses_and_folders_are_fine() -> None:
    one_node = Cluster({"debug": {"here"}}, default="debug")
    slurm = SlurmSettings(jobs=2)
    assert check_submission(slurm, "postgresql://u@127.0.0.1/db", [Path("/tmp/out")], one_node, "here") == []
    no_default = Cluster({"a": {"n1"}, "b": {"n2"}}, default=None)
    [problem] = check_submission(slurm, "postgresql://u@db.cluster/db", [], no_default, here="login")
    assert "this cluster has no default partition; name one of a, b" in problem


def test_without_sbatch_the_sweep_is_refused_before_anything_is_stored(sweeplab, tmp_path) -> None:
    """And what else is wrong, that can be seen without a cluster, is said with it."""
    args = study_args(
        tmp_path, "nosbatch", "hydra.sweeper.slurm.jobs=2", "hydra.sweeper.slurm.max_requeues=-1"
    )
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env_path = os.environ["PATH"]
    os.environ["PATH"] = str(empty)
    try:
        result = sweeplab(*args)
    finally:
        os.environ["PATH"] = env_path
    assert result.returncode == 2, result.stdout
    assert "sweep refused, 2 problems (nothing was run or stored)" in result.stdout, result.stdout
    assert "there is no `sbatch` on the PATH: submit from the cluster's login node" in result.stdout
    assert "hydra.sweeper.slurm.max_requeues: must be at least 0, got -1" in result.stdout
    assert "Traceback" not in result.stdout
    assert not created(args)


@pytest.mark.skipif(shutil.which("sinfo") is None, reason="SLURM's commands are not installed")
def test_a_cluster_that_does_not_answer_is_one_line(sweeplab, tmp_path, monkeypatch) -> None:
    conf = tmp_path / "slurm.conf"  # a controller that is down (nothing listens on its port)
    # MessageTimeout=1: sinfo gives up at once instead of retrying for 9 s
    conf.write_text("ClusterName=down\nSlurmctldHost=localhost\nSlurmctldPort=1\nMessageTimeout=1\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    result = sweeplab(*study_args(tmp_path, "noanswer", "hydra.sweeper.slurm.jobs=2"))
    assert result.returncode == 2, result.stdout
    said = "SLURM's `sinfo` failed (slurm_load_partitions: Unable to contact slurm controller"
    assert said in result.stdout, result.stdout
    assert "submit from the cluster's login node" in result.stdout and "Traceback" not in result.stdout


# --- a real cluster ----------------------------------------------------------------------------------


@needs_slurm
def test_bad_partition_and_sqlite_are_refused_before_submitting(sweeplab, tmp_path) -> None:
    name = unique("refused")
    args = study_args(tmp_path, name, "hydra.sweeper.slurm.jobs=2", "hydra.sweeper.slurm.partition=nope")
    result = sweeplab(*args)
    assert result.returncode == 2 and "no partition 'nope' on this cluster" in result.stdout, result.stdout
    sqlite = [a for a in args if "storage=" not in a and "partition=" not in a]
    result = sweeplab(*sqlite)
    assert result.returncode == 2 and "is SQLite, which cannot hold a study" in result.stdout, result.stdout
    assert not squeue(f"--name=sweeplab-{name}") and not (tmp_path / "outputs").exists()


@needs_slurm
@pytest.mark.slow  # SLURM's scheduling alone takes about 20 s
@pytest.mark.parametrize("journal", [False, True], ids=["postgresql", "journal"])
def test_six_trials_as_two_array_jobs_finish_with_exactly_six(
    sweeplab, tmp_path, journal, data_dir, monkeypatch
) -> None:
    if not journal and not POSTGRES:
        pytest.skip("set SWEEPLAB_TEST_POSTGRES to a PostgreSQL URL")
    name = unique("six")
    args = study_args(tmp_path, name, "hydra.sweeper.slurm.jobs=2", journal=journal)
    result = sweeplab(*args)
    assert result.returncode == 0, result.stdout
    assert "submitted 2 worker job(s) for the 6 trial(s) left" in result.stdout
    assert f"study '{name}': done (6 trials finished)" in result.stdout
    ids = jobs_of(result.stdout)
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_0", f"{array}_1"]
    wait_for(lambda: not squeue(array), 60, "the jobs to end")
    study = load(args)
    assert finished(study) == 6 and len(study.trials) == 6
    jobs = set()
    for trial in study.trials:  # each trial's folder names its job and the job's log
        record = (Path(trial.user_attrs["output_dir"]) / ".sweeplab-trial.json").read_text()
        job = trial.user_attrs["slurm_job"]
        assert job["job_id"] in record and Path(job["log"]).is_file()
        jobs.add(job["job_id"])
    assert jobs <= set(ids)
    logs = tmp_path / "outputs" / "sweeps" / name / ".slurm"
    for task in (0, 1):  # both jobs ended well (submitit's record of the worker's return)
        with open(logs / f"{array}_{task}_0_result.pkl", "rb") as file:
            assert pickle.load(file) == ("success", 0)
    # the same command again: the study is complete, nothing is submitted
    again = sweeplab(*args)
    assert again.returncode == 0 and "6 of 6 finished; nothing to submit" in again.stdout, again.stdout
    # a worker that finds nothing to do exits 0 at once (the command submits none; submit one by hand)
    monkeypatch.setenv("SWEEPLAB_DATA_DIR", str(data_dir))  # as the command had it (the job inherits it)
    extra = submitit.SlurmExecutor(folder=tmp_path / "extra", max_num_timeout=0)
    extra.update_parameters(time=10, cpus_per_task=1)
    spec = WorkerSpec(["sweeplab train", *args[1:]], str(tmp_path), ("sweeplab.cli", "train_app"), 0)
    worker = extra.submit(run_worker, spec)
    wait_for(lambda: not squeue(worker.job_id), 120, "the extra worker to end")
    with open(tmp_path / "extra" / f"{worker.job_id}_0_result.pkl", "rb") as file:
        assert pickle.load(file) == ("success", 0)
    assert "this run: 0 trials" in (tmp_path / "extra" / f"{worker.job_id}_0_log.out").read_text()
    assert len(load(args).trials) == 6
    storage = next(a.split("=", 1)[1] for a in args if a.startswith("hydra.sweeper.storage="))
    shown = sweeplab("studies", "show", name, "--storage", storage)
    assert f"SLURM jobs submitted: {ids[0]}, {ids[1]}" in shown.stdout, shown.stdout


@needs_slurm
@pytest.mark.slow
def test_ctrl_c_while_following_leaves_the_jobs_running_and_says_so(sweeplab, tmp_path) -> None:
    name = unique("follow")
    args = study_args(tmp_path, name, "hydra.sweeper.slurm.jobs=1", trials=1, steps=20000)
    process = sweeplab(*args, background=True, new_group=True)
    said = []
    for line in process.stdout:
        said.append(line)
        if "submitted 1 worker job(s)" in line:
            break
    [job] = jobs_of("".join(said))
    time.sleep(2)  # following now
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    try:
        assert process.returncode == 130, rest
        assert f"stopped following; the jobs go on: follow them with `squeue -j {job}`" in rest
        assert f"cancel them with `scancel {job}`" in rest and "Traceback" not in rest
        assert squeue(job), "the job was cancelled with the command"
    finally:
        subprocess.run(["scancel", job], check=False)
        wait_for(lambda: not squeue(job), 60, "the job to end")


@needs_slurm
@pytest.mark.slow
def test_a_job_killed_mid_trial_is_reclaimed_by_a_resubmitted_worker(sweeplab, tmp_path) -> None:
    """Killed without warning, as by a node failure or the kernel's OOM killer: SIGKILL to the worker.
    (`scancel --signal=KILL` is not that: SLURM sends SIGTERM first, KillWait seconds ahead, and the
    worker queues its trial again at once, as for any SIGTERM.)"""
    args, job = one_job_at_work(sweeplab, tmp_path, "killed", trials=2)
    [running] = load(args).get_trials(states=(TrialState.RUNNING,))
    os.kill(running.user_attrs["owner"]["pid"], signal.SIGKILL)
    wait_for(lambda: not squeue(job), 60, "the killed job to end")
    assert load(args).trials[running.number].state == TrialState.RUNNING  # nobody could say otherwise
    resumed = sweeplab(*args)  # the same command: one new worker
    assert resumed.returncode == 0, resumed.stdout
    study = load(args)
    assert finished(study) == 2
    killed = study.trials[running.number]
    assert killed.state == TrialState.FAIL and "is gone" in killed.user_attrs["error"]
    [retry] = [t for t in study.trials if t.user_attrs.get("retry_of") == running.number]
    assert retry.state == TrialState.COMPLETE
    log = (Path(killed.user_attrs["output_dir"]) / "train.log").read_text()
    step = int(re.search(r"resuming from step (\d+)", log).group(1))  # type: ignore[union-attr]
    assert step > 0


@needs_slurm
@pytest.mark.slow
def test_a_job_cancelled_with_scancel_kill_queues_its_trial_again_at_once(sweeplab, tmp_path) -> None:
    """`scancel --signal=KILL`: SLURM sends SIGTERM first (KillWait ahead), so the worker stops its trial
    after the step, saves it there and queues it again before the job ends: no waiting for `stale_after`."""
    args, job = one_job_at_work(sweeplab, tmp_path, "cancelled", trials=1)
    subprocess.run(["scancel", "--signal=KILL", job], check=True)
    wait_for(lambda: not squeue(job), 60, "the cancelled job to end")
    first = load(args).trials[0]
    assert first.state == TrialState.FAIL and "SIGTERM" in first.user_attrs["error"]
    log = (Path(first.user_attrs["output_dir"]) / "train.log").read_text()
    stopped = int(re.search(r"stopped after step (\d+), saved", log).group(1))  # type: ignore[union-attr]
    resumed = sweeplab(*args)  # the same command: one new worker
    assert resumed.returncode == 0, resumed.stdout
    first, retry = load(args).trials
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["retry_of"] == 0
    assert retry.user_attrs["slurm_job"]["job_id"] != job
    retry_log = (Path(retry.user_attrs["output_dir"]) / "train.log").read_text()
    assert f"resuming from step {stopped} " in retry_log and stopped > 0


@needs_slurm
@pytest.mark.slow
def test_a_preempted_job_requeues_and_its_trial_resumes_from_the_checkpoint(sweeplab, tmp_path) -> None:
    args, job = one_job_at_work(sweeplab, tmp_path, "preempted", trials=1)
    # what SLURM sends `signal_delay_s` before the time limit, and on preemption
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    wait_for(lambda: "PENDING" in " ".join(squeue(job)), 60, "the job to be requeued")
    # SLURM holds a requeued job for about two minutes (its BeginTime): let it start now
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    wait_for(lambda: finished(load(args)) == 1, 300, "the requeued job to finish the trial", poll=2)
    study = load(args)
    first, retry = study.trials
    assert first.state == TrialState.FAIL and "SIGUSR2" in first.user_attrs["error"]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["retry_of"] == 0
    assert retry.user_attrs["slurm_job"]["job_id"] == job  # the same job, requeued
    folder = Path(retry.user_attrs["output_dir"])
    log = (folder / "train.log").read_text()
    # the trial stopped after the step it was at, saved it, and its retry resumed from there
    stopped = int(re.search(r"stopped after step (\d+), saved", log).group(1))  # type: ignore[union-attr]
    assert f"resuming from step {stopped} " in log and stopped > 0
    # the retry's first own evaluation is the first after that step (eval_every 100)
    assert min(s for s in retry.intermediate_values if s > stopped) == (stopped // 100 + 1) * 100
    history = (folder / "history.csv").read_text().splitlines()[1:]
    steps = [int(float(row.split(",")[0])) for row in history]
    assert steps == sorted(set(steps)) and steps[-1] == 20000
    assert "requeued (1 of at most 10)" in Path(retry.user_attrs["slurm_job"]["log"]).read_text()
