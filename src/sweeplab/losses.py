"""Loss builders: cross-entropy (softmax regression when the model is linear) and the multiclass hinge."""

from collections.abc import Mapping

from torch import nn

from sweeplab.config import require
from sweeplab.registry import Registry

LOSSES: Registry = Registry("loss")


@LOSSES.register("cross_entropy", packable=("label_smoothing",))
def cross_entropy(*, label_smoothing: float) -> nn.Module:
    require(0 <= label_smoothing < 1, "loss.label_smoothing", f"must be in [0, 1), got {label_smoothing}")
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


@LOSSES.register("hinge")
def hinge(*, margin: float, squared: bool) -> nn.Module:
    """The multiclass SVM loss (CS231n): mean over classes j != y of max(0, margin - s_y + s_j)."""
    require(margin > 0, "loss.margin", f"must be positive, got {margin}")
    return nn.MultiMarginLoss(p=2 if squared else 1, margin=margin)


def build_loss(node: Mapping) -> nn.Module:
    return LOSSES.build(node, "loss")
