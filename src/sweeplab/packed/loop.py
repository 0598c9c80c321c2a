"""The training loop of a pack: `train.loop.fit` for K members in lockstep.

Each member keeps what makes it the run it would be alone: its data order (its seed's generator), its
random numbers for dropout and augmentation (the global generator's state after its build), its
learning-rate schedule, its records, reporter and pruning decision. A member that diverges or is pruned
stops alone and leaves the pack; the others go on. When the single run would write its `resume.pt` (at an
evaluation every `trainer.checkpoint_every` seconds, and when a signal stops the loop), each member writes
its own in a single run's format, so an interrupted pack resumes, packed or not.
"""

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn
from tqdm.auto import tqdm

from sweeplab.data import InputPipeline
from sweeplab.packed.layers import NotPackable, PackedModel
from sweeplab.packed.optim import PackedOptimizer
from sweeplab.packed.rng import drawing_from, global_rng
from sweeplab.stopping import Interrupted, steps_running, stop_asked
from sweeplab.train.evaluate import Evaluation
from sweeplab.train.loop import record_evaluation
from sweeplab.train.records import RunRecorder
from sweeplab.train.resume import CheckpointClock, loop_state, restore
from sweeplab.train.trial import Outcome, Reporter, Trial

log = logging.getLogger("sweeplab.train.loop")


@dataclass
class Member:
    cfg: DictConfig
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
    partial: tuple[Tensor, Tensor, int] | None = None  # resumed between two evaluations: its sums since


class PackedLoss:
    """The members' losses ([K] means over their batches) in one computation; each member's
    label smoothing as a [K, 1] tensor, in torch's formula: (1 - e) * nll + e * mean over classes."""

    def __init__(self, losses: list[nn.Module], device: torch.device) -> None:
        first = losses[0]
        if all(type(f) is nn.CrossEntropyLoss and f.weight is None for f in losses):
            self.smoothing = torch.tensor([f.label_smoothing for f in losses], device=device)[:, None]
        elif all(type(f) is nn.MultiMarginLoss and vars(f) == vars(first) for f in losses):
            self.smoothing = None
        else:
            raise NotPackable(f"the {type(first).__name__} loss cannot be packed yet")
        self.hinge = first
        self.smoothed = self.smoothing is not None and bool(self.smoothing.any())

    def __call__(self, logits: Tensor, y: Tensor) -> Tensor:
        k, b, _ = logits.shape
        y = y.expand(k, b)
        if self.smoothing is None:
            hinge = self.hinge
            flat = F.multi_margin_loss(
                logits.flatten(0, 1), y.flatten(), hinge.p, hinge.margin, reduction="none"
            )
            return flat.view(k, b).mean(1)
        if not self.smoothed:  # torch's own loss, fused: a third of the operations
            return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(k, b).mean(1)
        logp = logits.log_softmax(-1)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        smoothing = self.smoothing
        return ((1 - smoothing) * nll + smoothing * -logp.mean(-1)).mean(1)

    def keep(self, members: list[int]) -> None:
        if self.smoothing is not None:
            self.smoothing = self.smoothing[members]
            self.smoothed = bool(self.smoothing.any())


@torch.no_grad()
def evaluate_pack(
    model: PackedModel, loss: PackedLoss, lead: Trial, x: Tensor, y: Tensor
) -> list[Evaluation]:
    """`train.evaluate.evaluate` for every member at once: one forward per batch of the split."""
    model.train(False)
    num_classes, autocast = lead.data.num_classes, lead.autocast()
    loss_sum = torch.zeros(model.k, device=y.device)
    hits = torch.zeros(model.k, num_classes, device=y.device)
    for start in range(0, len(y), lead.opts.eval_batch_size):
        yb = y[start : start + lead.opts.eval_batch_size]
        with autocast:
            logits = model(lead.inputs(x[start : start + lead.opts.eval_batch_size]), shared=True).float()
        loss_sum += loss(logits, yb) * len(yb)
        right = (logits.argmax(-1) == yb).float()  # [K, B]
        hits += right @ F.one_hot(yb, num_classes).float()
    model.train(True)
    totals = torch.bincount(y, minlength=num_classes).clamp_min(1)
    losses, accs, per_class = (
        (loss_sum / len(y)).tolist(),
        (hits.sum(1) / len(y)).tolist(),
        (hits / totals).tolist(),
    )
    return [Evaluation(*values) for values in zip(losses, accs, per_class, strict=True)]


def train_inputs(inputs: InputPipeline, x: Tensor, rngs: list[torch.Generator]) -> Tensor:
    """The members' training batches [K, B, ...] through the input pipeline. Augmentation draws from the
    global generator, so each member's batch is augmented under its own generator's state."""
    k, b = x.shape[:2]
    if inputs.augment is None:
        return inputs(x.flatten(0, 1), train=True).unflatten(0, (k, b))
    out = []
    for xk, g in zip(x, rngs, strict=True):
        with drawing_from(g):
            out.append(inputs(xk, train=True))
    return torch.stack(out)


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


def save_member(
    member: Member,
    model: PackedModel,
    optimizer: PackedOptimizer,
    k: int,
    pos: int,
    partial: tuple[Tensor, Tensor, int] | None = None,
) -> None:
    """Member k's resume checkpoint, in a single run's format (its RNG stands in for the global one);
    `partial`: its sums since the last evaluation, when a signal stops it between two."""
    trial = member.trial
    trial.model.load_state_dict(model.member_state(k))
    optimizer.to_member(k, trial.model)
    state = loop_state(
        trial, member.scaler, member.order_generator, member.outcome, member.order, pos, partial
    )
    state["elapsed"] = time.perf_counter() - member.started
    rng = member.rng.get_state()
    if trial.device.type == "cpu":
        state["cpu_rng"] = rng
    else:  # `cuda` (trainer.device auto or cuda) has no index: the member's RNG is the current device's
        index = trial.device.index if trial.device.index is not None else torch.cuda.current_device()
        state["cuda_rng"] = [rng if i == index else s for i, s in enumerate(torch.cuda.get_rng_state_all())]
    member.recorder.save_resume(state)


def fit_pack(pack: list[Member], first: int, progress: tqdm) -> None:
    """Train the members (started at `first`) to the end of their budget or their own early stop; each
    ends with its last weights in its model and its outcome filled in."""
    lead = pack[0].trial
    opts, data, device = lead.opts, lead.data, lead.device
    model = PackedModel([m.trial.model for m in pack], [m.rng for m in pack])
    optimizer = PackedOptimizer(model.flat, model.layout, [m.trial.optimizer for m in pack])
    loss = PackedLoss([m.trial.loss_fn for m in pack], device)
    for k, m in enumerate(pack):
        optimizer.from_member(k, m.trial.model)
        m.trial.optimizer._opt_called = True  # type: ignore[attr-defined]  # its schedule steps; it never does
        m.started = time.perf_counter() - m.elapsed_before
    n, batch = len(data.y_train), opts.batch_size
    pos = pack[0].pos
    orders = torch.stack([m.order for m in pack])  # type: ignore[misc]
    loss_sum = torch.zeros(len(pack), device=device)
    correct = torch.zeros(len(pack), device=device)
    since_eval = 0
    if pack[0].partial is not None:  # resumed between two evaluations (the group shares its first step)
        loss_sum = torch.stack([m.partial[0].float() for m in pack]).to(device)  # type: ignore[index]
        correct = torch.stack([m.partial[1].float() for m in pack]).to(device)  # type: ignore[index]
        since_eval = pack[0].partial[2]
    clock = CheckpointClock(opts.checkpoint_every)
    with steps_running():  # a signal stops the loop after its step, saved (sweeplab.stopping)
        for step in range(first, lead.total_steps + 1):
            signum = stop_asked()
            if signum is not None:
                if step > first:  # steps ran since the last checkpoint: save this one, for each member
                    for k, m in enumerate(pack):
                        m.outcome.steps = step - 1
                        save_member(m, model, optimizer, k, pos, (loss_sum[k], correct[k], since_eval))
                    log.info("stopped after step %d, saved to resume from there", step - 1)
                raise Interrupted(signum)
            if pos + batch > n:  # a new epoch for every member: each its own permutation
                orders = torch.stack(
                    [torch.randperm(n, device=device, generator=m.order_generator) for m in pack]
                )
                for m, order in zip(pack, orders, strict=True):
                    m.order = order
                pos = 0
            idx = orders[:, pos : pos + batch]
            pos += batch
            yb = data.y_train[idx]
            x = train_inputs(lead.inputs, data.x_train[idx], model.generators)
            with lead.autocast():
                logits = model(x)
                losses = loss(logits.float(), yb)
            optimizer.zero_grad()
            losses.sum().backward()  # the members' graphs are disjoint: each gets its own loss's gradient
            optimizer.step()
            for m in pack:
                m.trial.schedule.after_step()
            loss_sum += losses.detach()
            correct += (logits.argmax(-1) == yb).sum(1)
            since_eval += 1
            if step % opts.eval_every and step != lead.total_steps:
                continue
            train_loss = (loss_sum / since_eval).tolist()
            train_acc = (correct / (since_eval * batch)).tolist()
            loss_sum.zero_()
            correct.zero_()
            since_eval = 0
            checkpoint = step < lead.total_steps and clock.due()
            stopped = _evaluate_members(
                pack, model, optimizer, loss, step, pos, train_loss, train_acc, checkpoint
            )
            progress.update(step - progress.n)
            if stopped:
                kept = [k for k in range(len(pack)) if k not in stopped]
                for k in stopped:
                    pack[k].trial.model.load_state_dict(model.member_state(k))
                pack[:] = [pack[k] for k in kept]
                if not pack:
                    return
                optimizer.keep(kept, model.keep(kept))
                loss.keep(kept)
                loss_sum, correct, orders = loss_sum[kept], correct[kept], orders[kept]
    for k, m in enumerate(pack):
        m.trial.model.load_state_dict(model.member_state(k))
        m.outcome.seconds = time.perf_counter() - m.started


def _evaluate_members(
    pack: list[Member],
    model: PackedModel,
    optimizer: PackedOptimizer,
    loss: PackedLoss,
    step: int,
    pos: int,
    train_loss: list[float],
    train_acc: list[float],
    checkpoint: bool,
) -> list[int]:
    """One evaluation for every member: records, schedule, best weights, pruning, and (`checkpoint`) the
    resume checkpoints of those that go on. Returns the members that stop here."""
    lead = pack[0].trial
    vals = evaluate_pack(model, loss, lead, lead.data.x_val, lead.data.y_val)
    for k, (m, val) in enumerate(zip(pack, vals, strict=True)):
        m.outcome.steps = step
        train = (train_loss[k], train_acc[k])
        weights = functools.partial(model.member_state, k)
        record_evaluation(m.trial, m.recorder, m.reporter, m.outcome, step, train, val, m.started, weights)
    settle_shared(pack)
    stopped = []
    for k, m in enumerate(pack):
        if m.outcome.status != "completed":
            m.outcome.seconds = time.perf_counter() - m.started
            stopped.append(k)
        elif checkpoint:
            save_member(m, model, optimizer, k, pos)
    return stopped


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
