"""Models: a registry of builders taking (input_shape, num_classes) and the config's options."""

import copy
from collections.abc import Mapping

import torch
from torch import nn

from sweeplab.config import ConfigError, SweeplabError, to_dict
from sweeplab.models import cnn, mlp, tv  # noqa: F401  (registers the models)
from sweeplab.models.layers import ACTIVATIONS, NORMS, create_act, create_norm
from sweeplab.models.registry import MODELS

__all__ = ["ACTIVATIONS", "MODELS", "NORMS", "count_parameters", "create_act", "create_model", "create_norm"]


def create_model(node: Mapping, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the model a `model` config node describes and check that it takes the data's inputs."""
    model = MODELS.build(node, "model", input_shape=input_shape, num_classes=num_classes)
    _check_forward(model, to_dict(node)["name"], input_shape, num_classes)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _check_forward(model: nn.Module, name: str, input_shape: tuple[int, ...], num_classes: int) -> None:
    """One training-mode forward of two samples on a copy, so a misfit fails now with a clear message."""
    probe = copy.deepcopy(model).train()
    try:
        with torch.no_grad():
            out = probe(torch.randn(2, *input_shape))
    except (RuntimeError, ValueError) as err:
        raise ConfigError("model", f"{name} cannot take inputs of shape {input_shape}: {err}") from err
    if not isinstance(out, torch.Tensor) or out.shape != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SweeplabError(
            f"model: {name} returns {got} for a batch of 2, not logits of shape (2, {num_classes})"
        )
