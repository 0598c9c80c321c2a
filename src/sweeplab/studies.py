"""`sweeplab studies`: the studies of a storage, one study in detail, and deleting one.

Without `--storage`, the list covers every SQLite file of the studies folder (`studies/`, or
`$SWEEPLAB_STUDIES_DIR`), where each study's default storage is; `show` and `delete` look for NAME in
`studies/NAME.db`. Listing and showing only read (SQLite is opened read-only)."""

import argparse
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeplab.config import SweeplabError
from sweeplab.engine.records import StudyRecord, TrialRecord
from sweeplab.engine.reference import StudyRef
from sweeplab.engine.storage import (
    StudyLockBusy,
    absolute,
    masked,
    open_storage,
    open_storage_readonly,
    studies_folder,
    study_in_use,
    study_lock,
)
from sweeplab.engine.study import pareto_front, ranked

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
LIVE_FOR = 60.0  # seconds since a running trial's last heartbeat for it to count as running (stale_after)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweeplab studies", description=__doc__)
    p.add_argument("action", nargs="?", default="list", choices=["list", "show", "delete"])
    p.add_argument("name", nargs="?", help="the study (show, delete)")
    p.add_argument("--storage", help="Optuna storage URL (default: the SQLite files in studies/)")
    p.add_argument("--yes", action="store_true", help="delete without asking")
    return p


def main(argv: Sequence[str]) -> None:
    args = parser().parse_args(argv)
    if args.action == "list":
        if args.name:
            raise SweeplabError(f"`studies list` takes no name (got {args.name!r}); use `studies show NAME`")
        return list_studies(args.storage)
    if not args.name:
        raise SweeplabError(f"`studies {args.action}` needs the study's name")
    study = StudyRef.of(args.name, args.storage, "study")
    if args.action == "show":
        return show_study(study.name, study.url)
    return delete_study(study.name, study.url, args.yes)


def _storages(storage: str | None) -> list[str]:
    if storage:
        return [absolute(storage)]
    folder = studies_folder()
    files = sorted(folder.glob("*.db"))
    if not files:
        raise SweeplabError(f"no studies in {folder}/ (no .db files); name a storage with --storage URL")
    return [f"sqlite:///{f.absolute()}" for f in files]


def list_studies(storage: str | None) -> None:
    rows = []
    urls = _storages(storage)
    for url in urls:
        try:
            backend = open_storage_readonly(url)
        except SweeplabError as err:
            if len(urls) == 1:
                raise
            # one damaged or foreign file must not hide the studies of the others
            print(f"warning: skipped {err}", file=sys.stderr)
            continue
        for summary in optuna.get_all_study_summaries(backend, include_best_trial=False):
            study = optuna.load_study(study_name=summary.study_name, storage=backend)
            trials = study.get_trials(deepcopy=False)
            rows.append((summary.study_name, masked(url), _counts(trials), _best(study), _last(trials)))
    if not rows:
        print("no studies")
        return
    header = ("study", "storage", "trials", "best", "last activity")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def show_study(name: str, url: str) -> None:
    study = _load(name, open_storage_readonly(url), url)
    trials = study.get_trials(deepcopy=False)
    record = StudyRecord.of(study)
    print(f"study {name!r} in {masked(url)}")
    print(f"trials: {_counts(trials)}; last activity {_last(trials)}")
    objectives = record.objectives or dict.fromkeys(study.metric_names or ["value"], "?")
    print("objectives: " + ", ".join(f"{m} ({d})" for m, d in objectives.items()))
    if record.replicates:  # each trial is several runs (sweeplab.sweeper.replicates)
        print(record.replicates.describe())
    print("space:")
    for key, text in record.space.items():
        for i, part in enumerate(text.split("; ") if key == "setup" else [text]):
            print(f"  {key if i == 0 else ' ' * len(key)}: {part}")
    print("commands:")
    for command in record.commands:
        print(f"  {command}")
    if record.slurm_jobs:
        print(f"SLURM jobs submitted: {', '.join(record.slurm_jobs)}")
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if running:
        print("running:")
    for t in running:
        job, beat = TrialRecord.of(t).slurm_job, TrialRecord.of(t).heartbeat
        since = f", last heartbeat {time.time() - beat:.0f} s ago" if beat is not None else ""
        where = f"SLURM job {job['job_id']}, " if job.get("job_id") else ""
        print(f"  trial {t.number}: {where}{_owner(t)}{since}")
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        print("best: no COMPLETE trial yet")
        return
    best = pareto_front(study) if len(study.directions) > 1 else ranked(study)[:5]
    print("best trials:")
    for t in best[:5]:
        values = ", ".join(f"{m}={v:.4g}" for m, v in zip(objectives, t.values, strict=False))
        searched = " ".join(f"{k}={v}" for k, v in t.params.items())
        print(f"  trial {t.number}: {values}  {searched}  -> {TrialRecord.of(t).output_dir or '?'}")


def delete_study(name: str, url: str, yes: bool) -> None:
    backend = open_storage_readonly(url)  # a missing storage or study is named, and nothing is created
    study = _load(name, backend, url)
    with _unused(name, url):  # asked before the question, and again, held, for the deletion itself
        trials = study.get_trials(deepcopy=False)  # read once no command runs it: no trial left behind
        _refuse_running(name, trials)
    if not yes:
        if not sys.stdin.isatty():
            raise SweeplabError(f"deleting study {name!r} needs a confirmation: add --yes")
        answer = input(f"delete study {name!r} ({_counts(trials)}) from {masked(url)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing was deleted")
            return
    # No command runs the study (in use), none claims a trial (the study's lock, as claims take it)
    with _unused(name, url), study_lock(url, name):
        trials = _load(name, backend, url).get_trials(deepcopy=False)
        _refuse_running(name, trials)  # a command on another machine of a storage without in-use locks
        optuna.delete_study(study_name=name, storage=open_storage(url))
    print(f"deleted study {name!r} from {masked(url)}")
    folders = Counter(str(Path(folder).parent) for t in trials if (folder := TrialRecord.of(t).output_dir))
    left = [f"{folder} ({n} trial folders)" for folder, n in folders.items() if Path(folder).exists()]
    others = len(optuna.get_all_study_names(open_storage(url)))
    if url.startswith("sqlite:///"):
        left.append(
            f"{url.removeprefix('sqlite:///')} ({others} other studies)"
            if others
            else f"{url.removeprefix('sqlite:///')} (now empty)"
        )
    if left:
        print("left on disk (delete them yourself if you no longer need them): " + "; ".join(left))


@contextlib.contextmanager
def _unused(name: str, url: str) -> Iterator[None]:
    try:
        with study_in_use(url, name, exclusive=True):
            yield
    except StudyLockBusy:
        raise SweeplabError(
            f"study {name!r} is being run by a sweeplab command (`sweeplab train -m`) on this storage; "
            "stop it first, or wait until it ends (nothing was deleted)"
        ) from None


def _refuse_running(name: str, trials: Sequence[FrozenTrial]) -> None:
    running = [t for t in trials if t.state == TrialState.RUNNING and _alive(t)]
    if running:
        owners = "; ".join(f"trial {t.number} ({_owner(t)})" for t in running[:3])
        raise SweeplabError(
            f"study {name!r} has {len(running)} running trial(s): {owners}. Stop the commands running it "
            "first (nothing was deleted)"
        )


def _load(name: str, backend: optuna.storages.BaseStorage, url: str) -> optuna.Study:
    names = optuna.get_all_study_names(backend)
    if name not in names:
        raise SweeplabError(
            f"no study {name!r} in {masked(url)}; it holds: {', '.join(names) or 'no studies'}"
        )
    return optuna.load_study(study_name=name, storage=backend)


def _counts(trials: Sequence[FrozenTrial]) -> str:
    counts = Counter(t.state.name for t in trials)
    return ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s]) or "no trials"


def _best(study: optuna.Study) -> str:
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        return "-"
    if len(study.directions) > 1:
        return f"{len(pareto_front(study))} on the Pareto front"
    best = ranked(study)[0]
    metric = StudyRecord.of(study).objectives or {"value": None}
    return f"{next(iter(metric))}={best.value:.4g} (trial {best.number})"


def _last(trials: Sequence[FrozenTrial]) -> str:
    times = [t.datetime_complete or t.datetime_start for t in trials]
    times = [t for t in times if t is not None]
    return max(times).strftime("%Y-%m-%d %H:%M") if times else "-"


def _alive(trial: FrozenTrial) -> bool:
    record = TrialRecord.of(trial)
    if record.owner is not None and record.owner.is_local():
        return bool(record.owner.is_alive())
    return record.heartbeat is not None and time.time() - record.heartbeat < LIVE_FOR


def _owner(trial: FrozenTrial) -> str:
    owner = TrialRecord.of(trial).owner
    return owner.describe() if owner else "an unknown process"
