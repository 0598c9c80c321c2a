"""What a run is made of: its objects built on its device (`Trial`), how its training ended (`Outcome`),
what it returns (`Result`), and the reporter it tells each evaluation to. The training loop
(`sweeplab.train.loop`) and its resume checkpoint (`sweeplab.train.resume`) both build on these."""

import contextlib
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from sweeplab.data import DataSplits, InputPipeline
from sweeplab.models import count_parameters
from sweeplab.optim import Schedule
from sweeplab.train.evaluate import Evaluation, evaluate
from sweeplab.train.options import TrainerOptions

Status = Literal["completed", "diverged", "pruned"]
# Called after each evaluation with (step, history row); returning True stops the run as "pruned".
Reporter = Callable[[int, dict[str, float]], bool]


@dataclass
class Result:
    status: Status
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    output_dir: Path | None = None


@dataclass
class Trial:
    """Everything a run is built from, on its device, ready to train."""

    opts: TrainerOptions
    device: torch.device
    data: DataSplits
    inputs: InputPipeline
    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    total_steps: int
    steps_per_epoch: int

    def autocast(self) -> AbstractContextManager:
        dtype = self.opts.autocast_dtype()
        # entering a disabled autocast costs as much as a small layer: at fp32, nothing to enter
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    @functools.cached_property
    def params(self) -> int:
        return count_parameters(self.model)

    def reported(self, row: dict[str, float]) -> dict[str, float]:
        """An evaluation's row as the reporter gets it: with what the run knew before training (its
        parameter count, the task's `known` metric), by which a study of several objectives prunes."""
        return {**row, "params": self.params}

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> Evaluation:
        return evaluate(
            self.model,
            self.inputs,
            self.loss_fn,
            x,
            y,
            self.data.num_classes,
            self.opts.eval_batch_size,
            self.autocast(),
        )


@dataclass
class Outcome:
    status: Status
    steps: int
    seconds: float
    best_val_acc: float = -1.0
    best_step: int = 0
    best_state: dict[str, torch.Tensor] | None = None
