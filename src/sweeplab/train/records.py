"""What a run leaves in its output folder: the resolved config, the metric history, a summary, the best
checkpoint, and while it runs a resume checkpoint.

Records are written to a temporary name and renamed (`sweeplab.files`), so a crash or a full disk never
leaves half a file. The history is appended row by row, so a run that dies keeps what it measured; the
resume checkpoint (`resume.pt`, written at an evaluation every `trainer.checkpoint_every` seconds and
when a signal stops the run) holds everything the loop needs to carry on from there with the same
numbers, and is removed when the run ends.
"""

import csv
import hashlib
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sweeplab.config import comparable_values, config_yaml
from sweeplab.files import environment_fault, save_torch_atomic, write_atomic
from sweeplab.track import open_trackers

log = logging.getLogger(__name__)

HISTORY_FIELDS = ["step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "elapsed_s"]
RESUME = "resume.pt"


def fingerprint(cfg: DictConfig) -> str:
    """What a resume checkpoint must match: what the config computes (not where it runs)."""
    return hashlib.sha256(
        json.dumps(comparable_values(cfg), sort_keys=True, default=str).encode()
    ).hexdigest()


class RunRecorder:
    """Writes into `output_dir`, or keeps everything in memory only when it is None."""

    def __init__(self, output_dir: Path | None, cfg: DictConfig) -> None:
        self.output_dir = output_dir
        self.history: list[dict[str, float]] = []
        self.fingerprint = fingerprint(cfg)
        self._file: io.TextIOWrapper | None = None
        self._writer: csv.DictWriter | None = None
        if output_dir is not None:
            self._guard(lambda: output_dir.mkdir(parents=True, exist_ok=True), output_dir)
            # the study keeps the config too: renamed into place, not synced (a sync is about 5 ms)
            write_atomic(output_dir / "config.yaml", config_yaml(cfg, resolve=True), durable=False)
        # after its own records, each row and the summary go to the run's trackers (`logger=...`)
        self.trackers = open_trackers(cfg, output_dir) if output_dir is not None else None

    def resume_state(self) -> dict[str, Any] | None:
        """The resume checkpoint of an interrupted run of this same config in this folder, if any; the
        history is set back to the rows it holds."""
        path = self.output_dir / RESUME if self.output_dir else None
        if path is None or not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # written atomically, so only a foreign or damaged file gets here
            log.warning("ignoring %s, which cannot be read (%s): starting from step 0", path, err)
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring %s, made with another config: starting from step 0", path)
            return None
        self.history = list(state["history"])
        return state

    def start_history(self) -> None:
        if self.output_dir is None:
            return
        path = self.output_dir / "history.csv"
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(self.history)  # the rows a resumed run carries on from
        write_atomic(path, buffer.getvalue(), durable=False)  # its rows are appended, unsynced, after
        self._file = self._guard(lambda: path.open("a", newline=""), path)
        self._writer = csv.DictWriter(self._file, fieldnames=HISTORY_FIELDS)

    def log(self, row: dict[str, float]) -> None:
        self.history.append(row)
        if self._writer is not None and self._file is not None:
            writer, file = self._writer, self._file
            self._guard(lambda: (writer.writerow(row), file.flush()))
        if self.trackers is not None:
            self.trackers.log(row)

    def save_resume(self, state: dict[str, Any]) -> None:
        if self.output_dir is not None:
            save_torch_atomic(
                {**state, "fingerprint": self.fingerprint, "history": self.history}, self.output_dir / RESUME
            )

    def save_checkpoint(self, state: dict[str, Any]) -> Path | None:
        if self.output_dir is None:
            return None
        return save_torch_atomic(state, self.output_dir / "best.pt")

    def finish(self, summary: dict[str, Any]) -> None:
        if self.output_dir is None:
            return
        if self._file is not None:
            self._file.close()
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()
        }
        write_atomic(self.output_dir / "summary.json", json.dumps(clean, indent=2) + "\n")
        (self.output_dir / RESUME).unlink(missing_ok=True)  # the run is over: nothing to resume
        if self.trackers is not None:
            self.trackers.finish(summary)

    def _guard(self, action, path: Path | None = None):
        try:
            return action()
        except OSError as err:
            fault = environment_fault(err, path or self.output_dir / "history.csv")  # type: ignore[operator]
            if fault is not None:
                raise fault from err
            raise


def finished_result(cfg: DictConfig, output_dir: Path | None, reporter: Any = None) -> Any:
    """The Result of a run of this same config that already ended in `output_dir` (a retry of a trial
    whose run finished while the study's storage could not be reached): its intact records, so the run
    is not trained again from step 0. None when there is none, when it was another config's, or when a
    record is missing or damaged (then it trains, and says why)."""
    from sweeplab.run_records import DamagedRecord, check_checkpoint, read_config, read_history, read_summary
    from sweeplab.train.trial import Result

    if output_dir is None or not (output_dir / "summary.json").exists():
        return None
    try:
        summary, history = read_summary(output_dir), read_history(output_dir)
        if fingerprint(OmegaConf.create(read_config(output_dir))) != fingerprint(cfg):
            return None
        if summary.get("checkpoint"):
            check_checkpoint(output_dir)
    except DamagedRecord as err:
        log.warning("%s: the run is trained again", err)
        return None
    if reporter is not None:  # the study's trial gets its intermediate values, as a resumed run's
        for row in history:
            reporter(int(row["step"]), row)
    # JSON holds no NaN: the summary wrote it as null
    metrics = {k: math.nan if v is None and k != "checkpoint" else v for k, v in summary.items()}
    log.info(
        "%s: the run had ended (%s); its records are used, not trained again", output_dir, summary["status"]
    )
    return Result(status=summary["status"], metrics=metrics, history=history, output_dir=output_dir)
