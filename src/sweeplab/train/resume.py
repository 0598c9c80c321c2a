"""The resume checkpoint's contents: everything the training loop carries from one evaluation to the
next (model, optimizer, scheduler, gradient scaler, the data order and every random number generator),
so that a run resumed from an evaluation ends with the numbers it would have had uninterrupted."""

import time
from typing import Any

import torch

from sweeplab.train.trial import Outcome, Trial


def loop_state(
    trial: Trial,
    scaler: torch.amp.GradScaler,
    generator: torch.Generator,
    outcome: Outcome,
    order: torch.Tensor,
    pos: int,
    partial: tuple[torch.Tensor, torch.Tensor, int] | None = None,
) -> dict[str, Any]:
    """Everything the loop carries from one step to the next, random number generators included;
    `partial`: the training loss and correct count summed since the last evaluation, and its steps,
    when it stops between two evaluations."""
    extra = {"partial": (partial[0].clone(), partial[1].clone(), partial[2])} if partial else {}
    return {
        **extra,
        "step": outcome.steps,
        "model": trial.model.state_dict(),
        "optimizer": trial.optimizer.state_dict(),
        "scheduler": trial.schedule.scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "generator": generator.get_state(),
        "order": order,
        "pos": pos,
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if trial.device.type == "cuda" else None,
        "best": (outcome.best_val_acc, outcome.best_step, outcome.best_state),
    }


def restore(
    trial: Trial,
    scaler: torch.amp.GradScaler,
    generator: torch.Generator,
    outcome: Outcome,
    state: dict[str, Any],
) -> tuple[torch.Tensor, int]:
    device = trial.device
    trial.model.load_state_dict(state["model"])
    trial.optimizer.load_state_dict(state["optimizer"])
    trial.schedule.scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["cpu_rng"])
    if state["cuda_rng"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    best_val_acc, best_step, best_state = state["best"]
    outcome.best_val_acc, outcome.best_step, outcome.steps = best_val_acc, best_step, state["step"]
    if best_state is not None:
        outcome.best_state = {k: v.to(device) for k, v in best_state.items()}
    return state["order"].to(device), state["pos"]


class CheckpointClock:
    """When the loop writes its resume checkpoint: at the first evaluation `every` seconds after the last
    one (or the start), at every evaluation when `every` is 0. A checkpoint costs a few milliseconds of
    serialising and an fsync; small runs evaluate often, so writing one at each evaluation was a tenth of
    their time. A kill -9 loses at most `every` seconds of training; a signal saves at once."""

    def __init__(self, every: float) -> None:
        self.every, self.last = every, time.perf_counter()

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self.last < self.every:
            return False
        self.last = now
        return True
