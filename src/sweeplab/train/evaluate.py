"""Loss and accuracy of a model on a whole split, in large batches, without gradients."""

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sweeplab.data import InputPipeline


@dataclass(frozen=True)
class Evaluation:
    loss: float
    acc: float
    per_class_acc: list[float]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    inputs: InputPipeline,
    loss_fn: nn.Module,
    x: Tensor,
    y: Tensor,
    num_classes: int,
    batch_size: int,
    autocast: AbstractContextManager,
) -> Evaluation:
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=y.device)
    hits = torch.zeros(num_classes, device=y.device)
    for start in range(0, len(y), batch_size):
        yb = y[start : start + batch_size]
        with autocast:
            logits = model(inputs(x[start : start + batch_size])).float()
        loss_sum += loss_fn(logits, yb) * len(yb)
        hits += torch.bincount(yb[logits.argmax(1) == yb], minlength=num_classes)
    model.train(was_training)
    totals = torch.bincount(y, minlength=num_classes).clamp_min(1)
    per_class = (hits / totals).tolist()
    return Evaluation(loss=loss_sum.item() / len(y), acc=hits.sum().item() / len(y), per_class_acc=per_class)
