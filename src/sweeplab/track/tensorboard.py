"""`logger=tensorboard`: TensorBoard event files in the run's folder, through torch.utils.tensorboard.

Scalars at every evaluation, under the history's names (train/loss, train/acc, val/loss, val/acc, lr),
so `tensorboard --logdir outputs/sweeps/NAME` shows a running study's curves side by side; when the run
ends, its hyperparameters (`run_values`) with its final metrics (hparams/...) for the HParams tab.
"""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweeplab.config import require
from sweeplab.track import LOGGERS, require_package, run_values

SCALARS = {
    "train_loss": "train/loss",
    "train_acc": "train/acc",
    "val_loss": "val/loss",
    "val_acc": "val/acc",
    "lr": "lr",
}
FINAL = ("val_acc", "test_acc", "test_acc_last", "test_loss", "final_val_loss", "final_train_loss")


class TensorBoardTracker:
    def __init__(self, run_dir: Path, cfg: DictConfig, flush_secs: int) -> None:
        self.run_dir, self.cfg, self.flush_secs = run_dir, cfg, flush_secs
        self.writer: Any = None

    def _open(self, first_step: int) -> Any:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when logging

        # A resumed run logs again from its checkpoint's next evaluation: purge_step hides what the
        # interrupted run had logged from there on, so each step shows once, as history.csv has it.
        return SummaryWriter(str(self.run_dir), purge_step=first_step, flush_secs=self.flush_secs)

    def log(self, row: dict[str, float]) -> None:
        step = int(row["step"])
        if self.writer is None:
            self.writer = self._open(step)
        for column, tag in SCALARS.items():
            self.writer.add_scalar(tag, row[column], step)

    def finish(self, summary: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        if self.writer is None:
            self.writer = self._open(0)
        metrics = {
            f"hparams/{name}": float(summary[name])
            for name in FINAL
            if isinstance(summary.get(name), int | float)
        }
        step = int(summary.get("steps") or 0)
        for summary_proto in hparams(run_values(self.cfg, self.run_dir), metrics):
            self.writer.file_writer.add_summary(summary_proto)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.close()


@LOGGERS.register("tensorboard")
def tensorboard(
    *, run_dir: Path | None, cfg: DictConfig | None, flush_secs: int = 10
) -> TensorBoardTracker | None:
    require_package("tensorboard", "tensorboard", "logger.tensorboard")
    require(flush_secs > 0, "logger.tensorboard.flush_secs", f"must be positive, got {flush_secs}")
    return None if run_dir is None or cfg is None else TensorBoardTracker(run_dir, cfg, flush_secs)
