"""Fully-connected models: `linear` (softmax / SVM regression) and `mlp`."""

import math

from torch import nn

from sweeplab.config import require
from sweeplab.models.layers import create_act, create_dropout, create_norm
from sweeplab.models.registry import MODELS


def dense_stack(
    in_features: int, hidden: list[int], activation: str, norm: str, dropout: float
) -> list[nn.Module]:
    """Linear -> norm -> activation -> dropout for each hidden width."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), create_norm(norm, width, 0), create_act(activation)]
        layers.append(create_dropout(dropout))
        in_features = width
    return layers


@MODELS.register("linear")
def linear(*, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


@MODELS.register("mlp", packable=("dropout",))
def mlp(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden: list[int],
    activation: str,
    norm: str,
    dropout: float,
) -> nn.Module:
    require(
        len(hidden) > 0 and all(w > 0 for w in hidden),
        "model.hidden",
        f"needs at least one positive layer width, e.g. [100, 100], got {hidden} (use model=linear for none)",
    )
    in_features = math.prod(input_shape)
    layers = dense_stack(in_features, hidden, activation, norm, dropout)
    return nn.Sequential(nn.Flatten(), *layers, nn.Linear(hidden[-1], num_classes))
