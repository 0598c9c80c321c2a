"""What a run leaves in its output folder: the resolved config, the metric history, a summary and the
best checkpoint. The history is flushed row by row, so a run that dies keeps what it measured."""

import csv
import json
import math
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

HISTORY_FIELDS = ["step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "elapsed_s"]


class RunRecorder:
    """Writes into `output_dir`, or keeps everything in memory only when it is None."""

    def __init__(self, output_dir: Path | None, cfg: DictConfig) -> None:
        self.output_dir = output_dir
        self.history: list[dict[str, float]] = []
        self._writer = None
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            self._file = (output_dir / "history.csv").open("w", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=HISTORY_FIELDS)
            self._writer.writeheader()

    def log(self, row: dict[str, float]) -> None:
        self.history.append(row)
        if self._writer is not None:
            self._writer.writerow(row)
            self._file.flush()

    def save_checkpoint(self, state: dict[str, Any]) -> Path | None:
        if self.output_dir is None:
            return None
        path = self.output_dir / "best.pt"
        torch.save(state, path)
        return path

    def finish(self, summary: dict[str, Any]) -> None:
        if self.output_dir is None:
            return
        self._file.close()
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()
        }
        (self.output_dir / "summary.json").write_text(json.dumps(clean, indent=2) + "\n")
