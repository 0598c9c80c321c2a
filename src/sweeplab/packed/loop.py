"""A pack's side of the training loop (`sweeplab.train.fit`): K members of one architecture trained as
one packed model, with one loss, one optimizer and one evaluation for all of them.

Each member draws its dropout and augmentation from its own generator (`Member.rng`, the global one of
the run alone) and writes its resume checkpoint in a single run's format (its weights and optimizer
state copied back into its own model and optimizer first), so an interrupted pack resumes, packed or not.
"""

import functools
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sweeplab.data import InputPipeline
from sweeplab.packed.layers import NotPackable, PackedModel
from sweeplab.packed.optim import PackedOptimizer
from sweeplab.train.evaluate import Evaluation
from sweeplab.train.fit import Member, Sums, fit_members
from sweeplab.train.resume import loop_state
from sweeplab.train.rng import drawing_from
from sweeplab.train.trial import Trial


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


class PackedStepper:
    """`fit_members`'s seam for a pack: the members' models as one `PackedModel`, their optimizers as one
    `PackedOptimizer`, their losses as one `PackedLoss`."""

    def __init__(self, pack: list[Member]) -> None:
        self.lead = pack[0].trial
        self.schedules = [m.trial.schedule.after_step for m in pack]  # each member's, after each step
        self.model = PackedModel([m.trial.model for m in pack], [m.rng for m in pack])
        self.optimizer = PackedOptimizer(
            self.model.flat, self.model.layout, [m.trial.optimizer for m in pack]
        )
        self.loss = PackedLoss([m.trial.loss_fn for m in pack], self.lead.device)
        for k, m in enumerate(pack):
            self.optimizer.from_member(k, m.trial.model)
            m.trial.optimizer._opt_called = True  # type: ignore[attr-defined]  # its schedule steps; it never does

    def step(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        lead, data = self.lead, self.lead.data
        yb = data.y_train[idx]
        x = train_inputs(lead.inputs, data.x_train[idx], self.model.generators)
        with lead.autocast():
            logits = self.model(x)
            losses = self.loss(logits.float(), yb)
        self.optimizer.zero_grad()
        losses.sum().backward()  # the members' graphs are disjoint: each gets its own loss's gradient
        self.optimizer.step()
        for after_step in self.schedules:
            after_step()
        return losses.detach(), (logits.argmax(-1) == yb).sum(1)

    def evaluate(self) -> list[Evaluation]:
        return evaluate_pack(self.model, self.loss, self.lead, self.lead.data.x_val, self.lead.data.y_val)

    def weights(self, k: int) -> Callable[[], dict[str, Tensor]]:
        return functools.partial(self.model.member_state, k)

    def save(self, k: int, member: Member, pos: int, partial: Sums | None = None) -> None:
        """Member k's resume checkpoint, in a single run's format (its RNG stands in for the global one)."""
        trial = member.trial
        self.finish(k, member)
        self.optimizer.to_member(k, trial.model)
        state = loop_state(
            trial, member.scaler, member.order_generator, member.outcome, member.order, pos, partial
        )
        state["elapsed"] = time.perf_counter() - member.started
        rng = member.rng.get_state()
        if trial.device.type == "cpu":
            state["cpu_rng"] = rng
        else:  # `cuda` (trainer.device auto or cuda) has no index: the member's RNG is the current device's
            index = trial.device.index if trial.device.index is not None else torch.cuda.current_device()
            state["cuda_rng"] = [
                rng if i == index else s for i, s in enumerate(torch.cuda.get_rng_state_all())
            ]
        member.recorder.save_resume(state)

    def finish(self, k: int, member: Member) -> None:
        member.trial.model.load_state_dict(self.model.member_state(k))

    def keep(self, kept: list[int]) -> None:
        self.optimizer.keep(kept, self.model.keep(kept))
        self.loss.keep(kept)
        self.schedules = [self.schedules[k] for k in kept]


def fit_pack(pack: list[Member], first: int) -> None:
    """Train the members (started at `first`) as one packed model; each ends with its last weights in
    its model and its outcome filled in."""
    fit_members(pack, first, PackedStepper(pack))
