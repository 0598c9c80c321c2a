"""Sweeps under real faults, with the default settings: signals, killed workers, interrupted trials that
resume, trials that all fail, a full or read-only disk, folders and values that belong to another study."""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from support import EXACT, FAST, LR, SLOW_TRIALS, load, states, wait_for_rows


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # the default suite stays under 6 minutes; CI runs it with -m slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_fails_and_requeues_the_running_trials_stops_the_workers_and_says_how_to_resume(
    tmp_path, sweeplab, signum, code
):
    args = ["train", "-m", LR, "hydra.sweeper.study_name=sig", "hydra.sweeper.n_trials=4", *SLOW_TRIALS]
    run = sweeplab(*args, "hydra.sweeper.n_jobs=2", background=True, new_group=True)
    wait_for_rows(tmp_path / "outputs" / "sweeps" / "sig" / "1" / "history.csv", 2)
    workers = children(run.pid)  # the trial workers (and multiprocessing's resource tracker)
    # Ctrl-C reaches the whole foreground group, as a terminal sends it; SIGTERM the command alone
    os.killpg(run.pid, signum) if signum == signal.SIGINT else os.kill(run.pid, signum)
    out = run.communicate(timeout=60)[0]
    assert run.returncode == code, out
    assert "Traceback" not in out and "To resume, run the same command again: sweeplab train -m" in out
    time.sleep(0.5)
    assert workers and not [p for p in workers if alive(p)]  # no orphans
    study = load(tmp_path, "sig")
    # trial 1 was running; on a loaded machine trial 0 may have finished and trial 2 started before the signal
    failed = {t.number for t in study.trials if t.state.name == "FAIL"}
    assert 1 in failed and len(failed) <= 2 and "RUNNING" not in states(study)
    assert {t.user_attrs["error"] for t in study.trials if t.number in failed} == {
        f"interrupted ({signal.Signals(signum).name})"
    }
    queued = [t.user_attrs["retry_of"] for t in study.trials if t.state.name == "WAITING"]
    assert sorted(queued) == sorted(failed)  # each interrupted trial is queued again, once
    again = sweeplab(*args, "hydra.sweeper.n_jobs=2")
    assert again.returncode == 0, again.stdout
    assert states(load(tmp_path, "sig")) == {"COMPLETE": 4, "FAIL": len(failed)}


@pytest.mark.slow  # the default suite stays under 6 minutes; CI runs it with -m slow
def test_a_worker_killed_by_the_os_fails_only_its_own_trial_which_is_queued_again(tmp_path, sweeplab):
    args = ["train", "-m", LR, "hydra.sweeper.study_name=oom", "hydra.sweeper.n_trials=4"]
    run = sweeplab(*args, "hydra.sweeper.n_jobs=2", *SLOW_TRIALS, background=True)
    history = tmp_path / "outputs" / "sweeps" / "oom" / "0" / "history.csv"
    wait_for_rows(history, 2)
    worker = next(p for p in children(run.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text())
    os.kill(worker, signal.SIGKILL)  # as the kernel's out-of-memory killer does
    out = run.communicate(timeout=300)[0]
    assert run.returncode == 0, out
    study = load(tmp_path, "oom")
    assert states(study) == {"COMPLETE": 4, "FAIL": 1}
    [failed] = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed.user_attrs["error"] == "its worker process was killed by SIGKILL (out of memory?)"
    assert any(t.user_attrs.get("retry_of") == failed.number for t in study.trials)


def history(folder: Path) -> list[dict]:
    with open(folder / "history.csv") as file:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(file)]


@pytest.mark.slow
def test_a_trial_killed_at_step_k_resumes_from_its_last_evaluation_with_the_same_numbers(tmp_path, sweeplab):
    same = [
        "optimizer=sgd",
        "optimizer.lr=choice(0.02)",
        "hydra.sweeper.n_trials=1",
        "optimizer.momentum=0.9",
        "model.dropout=0.2",
        "model.norm=batch",
        "scheduler=step",
        "scheduler.step_size=10",
        "trainer.max_steps=1200",
        "trainer.eval_every=100",
        "trainer.checkpoint_every=0",  # a checkpoint at each evaluation (by default, once a minute)
        *EXACT,
    ]
    whole = sweeplab("train", "-m", *same, "hydra.sweeper.study_name=whole")
    assert whole.returncode == 0, whole.stdout
    run = sweeplab("train", "-m", *same, "hydra.sweeper.study_name=cut", background=True, new_group=True)
    folder = tmp_path / "outputs" / "sweeps" / "cut" / "0"
    wait_for_rows(folder / "history.csv", 5)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    killed_at = len(history(folder))
    again = sweeplab("train", "-m", *same, "hydra.sweeper.study_name=cut")
    assert again.returncode == 0, again.stdout
    resumed = int(again.stdout.split("resuming from step ")[1].split()[0])
    assert killed_at * 100 - resumed <= 100  # it lost at most eval_every steps
    assert history(folder) == history(tmp_path / "outputs" / "sweeps" / "whole" / "0")
    assert not (folder / "resume.pt").exists()
    assert load(tmp_path, "cut").best_value == load(tmp_path, "whole").best_value


def test_a_sweep_whose_every_trial_fails_stops_after_max_failures_naming_the_error(tmp_path, sweeplab):
    # a batch larger than the training set: only the loaded data can tell, so every trial fails
    done = sweeplab("train", "-m", LR, "trainer.batch_size=100000", "hydra.sweeper.n_trials=100", *FAST)
    assert done.returncode == 1
    assert "stopped: 5 trials failed in this run (max_failures 5)" in done.stdout
    assert "the most common error (5 trials): ConfigError: trainer.batch_size: is 100000" in done.stdout
    assert states(load(tmp_path, "default")) == {"FAIL": 5}


def test_a_full_disk_fails_the_trial_with_its_reason_and_stops_cleanly(tmp_path, sweeplab, small_disk):
    args = ["train", "-m", LR, "hydra.sweeper.n_trials=5", f"hydra.sweep.dir={small_disk}/s", *FAST]
    done = sweeplab(*args, "model.hidden=[400,400]")  # its checkpoints do not fit
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stdout
    [trial] = load(tmp_path, "default").trials[:1]
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["error"].startswith(f"no space left on device writing {small_disk}/s/0/")
    assert "; fix that, then rerun the same command to resume" in done.stdout
    assert not [p.name for p in (small_disk / "s" / "0").iterdir() if ".tmp-" in p.name]  # no half files
    assert states(load(tmp_path, "default")) == {"FAIL": 1, "WAITING": 1}  # stopped at once, queued again


def test_a_read_only_output_folder_stops_the_sweep_with_one_line(tmp_path, sweeplab, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    done = sweeplab("train", "-m", LR, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={small_disk}/s", *FAST)
    assert done.returncode == 1 and "Traceback" not in done.stdout
    assert f"read-only file system writing {small_disk}/s\n" in done.stdout
    assert not (tmp_path / "studies").exists()  # found before the study was created


def test_a_folder_of_another_study_is_never_written_into(tmp_path, sweeplab):
    args = ["train", "-m", LR, "hydra.sweeper.study_name=same", "hydra.sweeper.n_trials=1", *FAST]
    assert sweeplab(*args).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "outputs").rglob("*")}
    other = sweeplab(*args, f"hydra.sweeper.storage=sqlite:///{tmp_path}/elsewhere.db")
    assert other.returncode == 2
    assert "outputs/sweeps/same/0 holds trial(s) [0] of another study, 'same' in sqlite:///" in other.stdout
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "outputs").rglob("*")} == before


@pytest.mark.slow  # the default suite stays under 6 minutes; CI runs it with -m slow
def test_runs_started_in_the_same_second_never_share_a_folder(tmp_path, sweeplab):
    runs = [sweeplab("train", *FAST, background=True) for _ in range(2)]
    for run in runs:
        run.communicate(timeout=300)
    assert [run.returncode for run in runs] == [0, 0]
    assert len(list((tmp_path / "outputs" / "runs").glob("*/*"))) == 2


@pytest.mark.slow
def test_resuming_with_other_fixed_values_is_refused_unless_accepted(tmp_path, sweeplab):
    args = ["train", "-m", LR, "hydra.sweeper.study_name=fx", "hydra.sweeper.n_trials=1", *FAST]
    assert sweeplab(*args).returncode == 0
    refused = sweeplab(*args, "trainer.max_steps=30", "hydra.sweeper.n_trials=2")
    assert refused.returncode == 2
    assert "was run with other fixed values: trainer.max_steps is 30, stored: 40" in refused.stdout
    assert "hydra.sweeper.accept_changes=true" in refused.stdout
    assert states(load(tmp_path, "fx")) == {"COMPLETE": 1}
    accepted = sweeplab(
        *args, "trainer.max_steps=30", "hydra.sweeper.n_trials=2", "hydra.sweeper.accept_changes=true"
    )
    assert accepted.returncode == 0 and states(load(tmp_path, "fx")) == {"COMPLETE": 2}


def test_a_study_runs_the_same_with_the_job_changing_folder(tmp_path, sweeplab):
    done = sweeplab("train", "-m", LR, "hydra.sweeper.n_trials=2", "hydra.job.chdir=true", *FAST)
    assert done.returncode == 0, done.stdout
    study = load(tmp_path, "default")
    assert states(study) == {"COMPLETE": 2}
    for trial in study.trials:  # the data came from the one data folder, not one per trial folder
        assert not (Path(trial.user_attrs["output_dir"]) / "data").exists()


def test_seeded_studies_are_identical(tmp_path, sweeplab):
    args = ["train", "-m", LR, "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=7", *FAST]
    for name in ("one", "two"):
        assert sweeplab(*args, f"hydra.sweeper.study_name={name}").returncode == 0
    one, two = (load(tmp_path, n) for n in ("one", "two"))
    assert [t.params for t in one.trials] == [t.params for t in two.trials]
    assert [t.values for t in one.trials] == [t.values for t in two.trials]


@pytest.mark.slow
def test_a_report_never_writes_to_a_storage_and_never_replaces_files_it_did_not_write(tmp_path, sweeplab):
    missing = sweeplab("report", "nothing")
    assert missing.returncode == 2 and "no study 'nothing'" in missing.stdout
    assert not (tmp_path / "studies").exists()
    assert sweeplab("train", "-m", LR, "hydra.sweeper.n_trials=2", *FAST).returncode == 0
    db = tmp_path / "studies" / "default.db"
    stamp = db.stat().st_mtime_ns
    assert sweeplab("report", "default", "--out", "rep").returncode == 0
    assert db.stat().st_mtime_ns == stamp
    (tmp_path / "rep" / "table.md").write_text("my edits")
    refused = sweeplab("report", "default", "--out", "rep")
    assert refused.returncode == 2 and "rep holds files this report did not write" in refused.stdout
    assert (tmp_path / "rep" / "table.md").read_text() == "my edits"
    assert sweeplab("report", "default", "--out", "rep", "--force").returncode == 0
    assert (tmp_path / "rep" / "table.md").read_text() != "my edits"
    assert sweeplab("report", "default", "--out", "rep").returncode == 0  # its own files: replaced
    assert optuna.load_study(study_name="default", storage=f"sqlite:///{db}").trials
    notes = tmp_path / "rep" / "notes.md"
    notes.write_text("**What was run.** two trials")  # notes kept beside the report they head
    again = sweeplab("report", "default", "--out", "rep", "--notes", "rep/notes.md")
    assert again.returncode == 0, again.stdout
    assert notes.read_text() == "**What was run.** two trials"
    assert "**What was run.** two trials" in (tmp_path / "rep" / "index.md").read_text()
    without = sweeplab("report", "default", "--out", "rep")  # now the notes are the user's own file
    assert without.returncode == 2 and "rep/notes.md" in without.stdout and notes.is_file()


def test_a_journal_with_a_torn_last_record_is_carried_on_never_made_unreadable(tmp_path, sweeplab):
    """A process killed while it appended left half a record: Optuna's reader skips it, and the rerun's
    first append must not join its record onto it (the whole file would be unreadable from then on)."""
    journal = tmp_path / "jr.log"
    args = [
        "train",
        "-m",
        LR,
        "hydra.sweeper.study_name=jr",
        f"hydra.sweeper.storage=journal://{journal}",
        *FAST,
    ]
    assert sweeplab(*args, "hydra.sweeper.n_trials=2").returncode == 0
    with journal.open("ab") as file:  # what a kill during Optuna's write leaves
        file.write(b'{"op_code":5,"worker_id":"dead","tri')
    before = _journal_study(journal, "jr")
    assert states(before) == {"COMPLETE": 2}  # Optuna itself still reads it
    again = sweeplab(*args, "hydra.sweeper.n_trials=3")
    assert again.returncode == 0, again.stdout
    assert "jr.log ended in a torn record (36 bytes" in again.stdout
    assert (tmp_path / "jr.log.torn").read_bytes() == b'{"op_code":5,"worker_id":"dead","tri\n'
    after = _journal_study(journal, "jr")
    assert states(after) == {"COMPLETE": 3}
    assert sweeplab("studies", "show", "jr", "--storage", f"journal://{journal}").returncode == 0


def _journal_study(path: Path, name: str) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))


def _workers_seen(run: subprocess.Popen, workers: int, then: float) -> tuple[int, list[int]]:
    """The most child processes `run` had at once, and every one seen: watched until `workers` of them
    run (however long the start-up takes: over 6 s on a GPU machine whose `import torch` alone takes 4),
    then `then` seconds more, in which a controller that starts too many would start them."""
    most, seen = 0, set()
    deadline, started = time.monotonic() + 120, None
    while run.poll() is None and time.monotonic() < (deadline if started is None else started + then):
        now = children(run.pid)
        most, seen = max(most, len(now)), seen | set(now)
        if started is None and len(now) >= workers:
            started = time.monotonic()
        time.sleep(0.05)
    assert started is not None, f"{workers} workers never ran"
    return most, sorted(seen)


@pytest.mark.slow  # the default suite stays under 6 minutes; CI runs it with -m slow
def test_n_jobs_far_above_the_work_starts_only_the_workers_that_have_work_and_ends_at_a_signal(
    tmp_path, sweeplab
):
    """`n_jobs=1000` for 2 trials once started hundreds of workers, ignored Ctrl-C while they started
    and left orphans. Now: no more workers than trials (and cores), Ctrl-C honoured, none left."""
    # trials far longer than the test: still running when the signal comes, however fast the machine
    endless = ["trainer.max_steps=1000000", "trainer.eval_every=1000"]
    args = ["train", "-m", LR, "hydra.sweeper.study_name=many", "hydra.sweeper.n_trials=2", *endless]
    run = sweeplab(*args, "hydra.sweeper.n_jobs=1000", background=True, new_group=True)
    most, seen = _workers_seen(run, 2, then=3)  # the trials' two workers, then the time to start more
    assert run.poll() is None
    os.killpg(run.pid, signal.SIGINT)
    out = run.communicate(timeout=60)[0]
    assert run.returncode == 130, out
    assert "n_jobs=1000 is more than the" in out and "Traceback" not in out
    assert 2 <= most <= 3, (most, out)  # the two trials' workers and multiprocessing's resource tracker
    time.sleep(0.5)
    assert not [p for p in seen if alive(p)]


def test_no_worker_outlives_its_controller_killed_by_sigkill(tmp_path, sweeplab):
    args = ["train", "-m", LR, "hydra.sweeper.study_name=orphans", "hydra.sweeper.n_trials=4", *SLOW_TRIALS]
    run = sweeplab(*args, "hydra.sweeper.n_jobs=2", background=True, new_group=True)
    wait_for_rows(tmp_path / "outputs" / "sweeps" / "orphans" / "1" / "history.csv", 1)
    workers = children(run.pid)
    run.kill()  # the controller alone, as the OOM killer would
    run.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while [p for p in workers if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) in (2, 3) and not [p for p in workers if alive(p)]  # and the resource tracker


def test_a_run_that_ended_while_the_storage_was_unreachable_is_stored_from_its_records(
    tmp_path, sweeplab, monkeypatch
):
    """The trial's run finished (summary.json written) but the storage could not record it: the rerun
    reclaims the trial and stores the run's intact records instead of training it again from step 0."""
    import sqlalchemy

    from sweeplab.engine.lifecycle import SharedStudy
    from sweeplab.engine.owner import this_process
    from sweeplab.engine.records import OWNER

    def unreachable(self, trial, values):
        raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("server closed the connection"))

    args = ["train", "-m", LR, "hydra.sweeper.study_name=gone", "hydra.sweeper.n_trials=1", *FAST]
    with monkeypatch.context() as patch:
        patch.setattr(SharedStudy, "complete", unreachable)
        first = sweeplab(*args)
    assert first.returncode == 1 and "server closed the connection" in first.stdout, first.stdout
    study = load(tmp_path, "gone")
    [trial] = study.trials
    assert trial.state.name == "RUNNING"
    dead = {**this_process().record(), "started": "0"}  # as if its process had died since
    study._storage.set_trial_user_attr(trial._trial_id, OWNER, dead)
    run = tmp_path / "outputs" / "sweeps" / "gone" / "0"
    summary, history = (run / "summary.json").read_text(), (run / "history.csv").read_text()

    again = sweeplab(*args)
    assert again.returncode == 0, again.stdout
    assert (
        "its records are used, not trained again" in again.stdout and "resuming from step" not in again.stdout
    )
    assert (run / "history.csv").read_text() == history and (run / "summary.json").read_text() == summary
    study = load(tmp_path, "gone")
    assert states(study) == {"FAIL": 1, "COMPLETE": 1}
    assert study.best_trial.value == json.loads(summary)["val_acc"]
