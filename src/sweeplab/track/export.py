"""`sweeplab export mlflow NAME`: a stored study written to MLflow as `logger=mlflow` writes it while it
runs (the study a parent run, each trial's runs nested in it), from the trial folders' records. Runs are
found again by their key, so exporting again, or after a sweep whose tracking server was down, adds what is
missing and never duplicates a run or a step. The study is only read."""

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna
from omegaconf import OmegaConf

from sweeplab.config import SweeplabError
from sweeplab.engine.records import TrialRecord
from sweeplab.engine.reference import StudyRef
from sweeplab.engine.storage import (
    masked,
    open_storage_readonly,
)
from sweeplab.files import EnvironmentFault
from sweeplab.run_records import DamagedRecord, read_config, read_history, read_summary
from sweeplab.track import require_package


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweeplab export", description=__doc__)
    p.add_argument("target", choices=["mlflow"], help="where to")
    p.add_argument("name", help="the study")
    p.add_argument("--storage", help="Optuna storage URL (default: studies/NAME.db)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here, as "
        "logger=mlflow)",
    )
    return p


def main(argv: Sequence[str]) -> None:
    args = parser().parse_args(argv)
    require_package("mlflow", "mlflow", "sweeplab export mlflow")
    url = StudyRef.of(args.name, args.storage, "study").url
    uri = (
        args.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{Path('mlflow.db').absolute()}"
    )
    backend = open_storage_readonly(url)
    if args.name not in optuna.get_all_study_names(backend):
        raise SweeplabError(f"no study {args.name!r} in {masked(url)}")
    study = optuna.load_study(study_name=args.name, storage=backend)
    runs = run_folders(TrialRecord.of(t).output_dir for t in study.get_trials(deepcopy=False))
    if not runs:
        raise SweeplabError(f"study {args.name!r} has no trial folder with records to export")
    from sweeplab.track.mlflow import check_tracking_uri

    check_tracking_uri(uri, "--tracking-uri")
    try:
        created, steps, skipped = _export(runs, uri)
    except Exception as err:
        if not _tracking_error(err):
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EnvironmentFault(
            f"the MLflow tracking store {masked(uri)} failed: {reason}; rerun the same command once it "
            "works (what was exported stays, nothing is duplicated)"
        ) from None
    for line in skipped:
        print(f"warning: {line}", file=sys.stderr)
    exported = len(runs) - sum(line.endswith("run not exported") for line in skipped)
    print(
        f"exported study {args.name!r} to {masked(uri)}: {exported} runs ({created} new, "
        f"{exported - created} there already), {steps} steps added"
        + (f"; {len(skipped)} records missing or damaged, named above" if skipped else "")
    )


def _export(runs: list[Path], uri: str) -> tuple[int, int, list[str]]:
    """Each run to MLflow: (runs created, steps added, the records missing or damaged)."""
    from sweeplab.track.mlflow import MLflowTracker

    created = steps = 0
    skipped = []
    for run_dir in runs:
        try:
            config, rows = read_config(run_dir), read_history(run_dir)
        except DamagedRecord as err:
            skipped.append(f"{err}: run not exported")
            continue
        tracker = MLflowTracker(run_dir, OmegaConf.create(config), uri)  # type: ignore[arg-type]
        tracker.open()
        for row in rows:
            before = len(tracker.logged)
            tracker.log(row)
            steps += len(tracker.logged) - before
        try:
            tracker.finish(read_summary(run_dir))
        except DamagedRecord as err:
            skipped.append(f"{err}: its final metrics not exported")
        created += tracker.created
    return created, steps, skipped


def _tracking_error(err: Exception) -> bool:
    """MLflow's own errors and those of its store's database: the tracking store's, never the study's."""
    module = type(err).__module__
    return module.startswith(("mlflow", "sqlalchemy", "requests", "urllib3")) or isinstance(
        err, ConnectionError
    )


def run_folders(output_dirs) -> list[Path]:
    """Each run's folder once: a trial's, or its replicates' (`seed_K/`), those that hold any record (a
    trial that never started has none)."""
    folders: list[Path] = []
    for output_dir in dict.fromkeys(d for d in output_dirs if d):
        folder = Path(output_dir)
        members = sorted(folder.glob("seed_*"))
        candidates = members if members and not (folder / "config.yaml").exists() else [folder]
        folders += [f for f in candidates if (f / "config.yaml").exists() or (f / "history.csv").exists()]
    return folders
