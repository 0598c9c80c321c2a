"""The training loop, one for a run alone and for a pack of K runs trained as one (`sweeplab.packed`).

Each run is a `Member`: what makes it the run it would be alone (its data order from its seed's
generator, its random numbers for dropout and augmentation, its schedule, records, reporter and pruning
decision). The loop draws each member's batches by index from its own per-epoch permutation, sums the
training loss and hits on the device, and evaluates every `eval_every` steps (the only place it waits
for the device). What differs between one run and a pack (the forward and backward pass, the update,
the evaluation, where each member's weights are) sits behind one seam, a `Stepper`:
`train.loop.SingleStepper`, `packed.loop.PackedStepper`.

A member that diverges or is pruned stops alone and leaves the loop; the others go on. At an evaluation
`trainer.checkpoint_every` seconds after the last (and when a signal stops the loop) each member writes
its resume checkpoint in a single run's format, so an interrupted run resumes, packed or not, and ends
with the numbers it would have had.

One loop costs a run alone nothing measurable at the sizes sweeplab trains (against the two loops it
replaced, paired, 1,500 steps of the MNIST-1D MLP 100-100: 1.006x; packs of 16: 1.00x). On a model so
small that its step is nearly all Python (one hidden layer of 8, 0.27 ms a step), the seam's call and
the [K, B] batch indices are about 12 µs a step, 4-5%.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from omegaconf import DictConfig
from torch import Tensor
from tqdm.auto import tqdm

from sweeplab.stopping import Interrupted, steps_running, stop_asked
from sweeplab.train.evaluate import Evaluation
from sweeplab.train.records import RunRecorder
from sweeplab.train.resume import CheckpointClock, restore
from sweeplab.train.rng import global_rng
from sweeplab.train.trial import Outcome, Reporter, Trial

log = logging.getLogger("sweeplab.train.loop")

Sums = tuple[Tensor, Tensor, int]  # training loss and hits summed since the last evaluation, and its steps


@dataclass
class Member:
    cfg: DictConfig | None  # a pack's member's (its announcement); a run alone's is not needed
    trial: Trial
    recorder: RunRecorder
    reporter: Reporter | None
    output_dir: Path | None
    rng: torch.Generator  # stands in for the global generator of the run alone (dropout, augmentation)
    started: float = field(default_factory=time.perf_counter)
    outcome: Outcome = field(default_factory=lambda: Outcome(status="completed", steps=0, seconds=0.0))
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler(enabled=False))
    order_generator: torch.Generator | None = None
    order: Tensor | None = None
    pos: int = 0
    elapsed_before: float = 0.0
    partial: Sums | None = None  # resumed between two evaluations: its sums since the last one


class Stepper(Protocol):
    """What one run and a pack do differently; member k is the loop's k-th member still running."""

    def step(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """One training step on the batches `idx` [K, B], each member's schedule stepped after it: their
        losses and hits, on the device."""
        ...

    def evaluate(self) -> list[Evaluation]:
        """Each member on the validation split."""
        ...

    def weights(self, k: int) -> Callable[[], dict[str, Tensor]]:
        """A copy of member k's weights, when called (the loop keeps the best)."""
        ...

    def save(self, k: int, member: Member, pos: int, partial: Sums | None = None) -> None:
        """Member k's resume checkpoint, in a single run's format."""
        ...

    def finish(self, k: int, member: Member) -> None:
        """Member k's model holds its last weights."""
        ...

    def keep(self, kept: list[int]) -> None:
        """Only these members go on."""
        ...


def start_member(member: Member) -> int:
    """The member's data order, and its resume checkpoint if it has one: the first step it runs."""
    trial = member.trial
    n, device = len(trial.data.y_train), trial.device
    member.order_generator = torch.Generator(device=device).manual_seed(trial.opts.seed)
    member.order = torch.randperm(n, device=device, generator=member.order_generator)
    state = member.recorder.resume_state()
    member.recorder.start_history()
    if state is None:
        return 1
    member.order, member.pos = restore(trial, member.scaler, member.order_generator, member.outcome, state)
    # restore() set the global generator to the member's: it is the member's own from here on
    member.rng = global_rng(device)
    member.elapsed_before = state["elapsed"]
    member.partial = state.get("partial")
    log.info("resuming from step %d (%s)", state["step"], member.output_dir)
    for row in member.recorder.history:  # its new trial in the study gets the values measured so far
        if member.reporter is not None and member.reporter(int(row["step"]), trial.reported(row)):
            member.outcome.status, member.outcome.seconds = "pruned", state["elapsed"]
            break
    return state["step"] + 1


def fit_members(pack: list[Member], first: int, stepper: Stepper) -> None:
    """Train the members (started at `first`, `start_member`) to the end of their budget or their own
    early stop; each ends with its last weights in its model and its outcome filled in. A progress bar
    (`trainer.progress`) counts the steps."""
    lead = pack[0].trial
    progress = tqdm(
        total=lead.total_steps,
        initial=first - 1,
        unit="step",
        disable=None if lead.opts.progress else True,
        dynamic_ncols=True,
        leave=False,
    )
    try:
        _fit(pack, first, stepper, progress)
    finally:
        progress.close()


def _fit(pack: list[Member], first: int, stepper: Stepper, progress: tqdm) -> None:
    lead = pack[0].trial
    opts, data, device = lead.opts, lead.data, lead.device
    for m in pack:
        m.started = time.perf_counter() - m.elapsed_before
    n, batch = len(data.y_train), opts.batch_size
    pos = pack[0].pos
    orders = torch.stack([m.order for m in pack])  # type: ignore[misc]
    loss_sum = torch.zeros(len(pack), device=device)
    hits = torch.zeros(len(pack), device=device, dtype=torch.long)
    since_eval = 0
    if pack[0].partial is not None:  # resumed between two evaluations (the group shares its first step)
        loss_sum = torch.stack([m.partial[0].float() for m in pack]).to(device)  # type: ignore[index]
        hits = torch.stack([m.partial[1].long() for m in pack]).to(device)  # type: ignore[index]
        since_eval = pack[0].partial[2]
    clock = CheckpointClock(opts.checkpoint_every)
    with steps_running():  # a signal stops the loop after its step, saved (sweeplab.stopping)
        for step in range(first, lead.total_steps + 1):
            signum = stop_asked()
            if signum is not None:
                if step > first:  # steps ran since the last checkpoint: save this one, for each member
                    for k, m in enumerate(pack):
                        m.outcome.steps = step - 1
                        stepper.save(k, m, pos, (loss_sum[k], hits[k], since_eval))
                    log.info("stopped after step %d, saved to resume from there", step - 1)
                raise Interrupted(signum)
            if pos + batch > n:  # a new epoch for every member: each its own permutation, the rest dropped
                orders = torch.stack(
                    [torch.randperm(n, device=device, generator=m.order_generator) for m in pack]
                )
                for m, order in zip(pack, orders, strict=True):
                    m.order = order
                pos = 0
            idx = orders[:, pos : pos + batch]
            pos += batch
            losses, right = stepper.step(idx)
            loss_sum += losses
            hits += right
            since_eval += 1
            if step % opts.eval_every and step != lead.total_steps:
                continue
            sums, counts = loss_sum.tolist(), hits.tolist()  # divided on the host, in double precision
            train = [(s / since_eval, h / (since_eval * batch)) for s, h in zip(sums, counts, strict=True)]
            loss_sum.zero_()
            hits.zero_()
            since_eval = 0
            going_on = clock if step < lead.total_steps else None  # after the last step, nothing to resume
            stopped = _evaluate(pack, stepper, step, pos, train, going_on)
            progress.update(step - progress.n)
            if len(pack) == 1:  # a run alone shows its numbers; a pack's would be one member's
                train_loss, val_acc = train[0][0], pack[0].recorder.history[-1]["val_acc"]
                progress.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}")
            if stopped:
                for k in stopped:
                    stepper.finish(k, pack[k])
                kept = [k for k in range(len(pack)) if k not in stopped]
                pack[:] = [pack[k] for k in kept]
                if not pack:
                    return
                stepper.keep(kept)
                loss_sum, hits, orders = loss_sum[kept], hits[kept], orders[kept]
    for k, m in enumerate(pack):
        stepper.finish(k, m)
        m.outcome.seconds = time.perf_counter() - m.started


def _evaluate(
    pack: list[Member],
    stepper: Stepper,
    step: int,
    pos: int,
    train: list[tuple[float, float]],
    clock: CheckpointClock | None,
) -> list[int]:
    """One evaluation for every member: records, schedule, best weights, pruning, and (when the `clock`,
    asked after the evaluation, says it is due) the resume checkpoints of those that go on. Returns the
    members that stop here."""
    for k, (m, val) in enumerate(zip(pack, stepper.evaluate(), strict=True)):
        m.outcome.steps = step
        record_evaluation(m, step, train[k], val, stepper.weights(k))
    settle_shared(pack)
    stopped = [k for k, m in enumerate(pack) if m.outcome.status != "completed"]
    for k in stopped:
        pack[k].outcome.seconds = time.perf_counter() - pack[k].started
    if len(stopped) < len(pack) and clock is not None and clock.due():
        for k, m in enumerate(pack):
            if k not in stopped:
                stepper.save(k, m, pos)
    return stopped


def record_evaluation(
    member: Member,
    step: int,
    train: tuple[float, float],
    val: Evaluation,
    weights: Callable[[], dict[str, Tensor]],
) -> None:
    """An evaluation's history row, recorded; then the run diverges (NaN), or its schedule sees the
    validation loss, its best `weights()` are kept and its reporter may prune it (`outcome.status`)."""
    trial, outcome = member.trial, member.outcome
    row = {
        "step": step,
        "epoch": step / trial.steps_per_epoch,
        "train_loss": train[0],
        "train_acc": train[1],
        "val_loss": val.loss,
        "val_acc": val.acc,
        "lr": trial.optimizer.param_groups[0]["lr"],
        "elapsed_s": time.perf_counter() - member.started,
    }
    member.recorder.log(row)
    if not (math.isfinite(train[0]) and math.isfinite(val.loss)):
        outcome.status = "diverged"
        return
    trial.schedule.after_eval(val.loss)
    if val.acc > outcome.best_val_acc:
        outcome.best_val_acc, outcome.best_step = val.acc, step
        outcome.best_state = weights()
    if member.reporter is not None and member.reporter(step, trial.reported(row)):
        outcome.status = "pruned"


def settle_shared(pack: list[Member]) -> None:
    """The replicates of one trial share a reporter (`sweeplab.sweeper.replicates.MemberReporter`) that
    decides once the last of them has reported a step: the members that reported before it learn here
    whether their trial stops (pruned on the aggregate, or one of them diverged)."""
    for m in pack:
        if m.outcome.status == "diverged" and hasattr(m.reporter, "diverged"):
            m.reporter.diverged()
    for m in pack:
        if m.outcome.status == "completed" and hasattr(m.reporter, "stops") and m.reporter.stops():
            m.outcome.status = "pruned"
