"""Models: a registry of builders taking (input_shape, num_classes) and the config's options."""

import copy
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from sweeplab.config import ConfigError, SweeplabError, to_dict
from sweeplab.models import cnn, mlp, tv  # noqa: F401  (registers the models)
from sweeplab.models.layers import ACTIVATIONS, NORMS, create_act, create_norm
from sweeplab.models.registry import MODELS

__all__ = ["ACTIVATIONS", "MODELS", "NORMS", "count_parameters", "create_act", "create_model", "create_norm"]


def create_model(node: Mapping, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the model a `model` config node describes, load its `weights` file if it names one, and
    check that it takes the data's inputs."""
    options = to_dict(node)
    weights = options.pop("weights", None)
    model = MODELS.build(options, "model", input_shape=input_shape, num_classes=num_classes)
    if weights:
        load_weights(model, Path(weights))
    _check_forward(model, options["name"], input_shape, num_classes)
    return model


def load_weights(model: nn.Module, path: Path) -> None:
    """`model.weights`: a state dict saved with torch.save (a torchvision checkpoint file, a sweeplab
    best.pt, a dict holding `model` or `state_dict`), loaded into `model` before training. The classifier
    (the last Linear layer) keeps its new shape where the file's is for other classes, as fine-tuning
    replaces the head; any other missing, extra or misshapen tensor refuses the file, naming it."""
    field = "model.weights"
    if not path.is_file():
        raise ConfigError(field, f"{path} does not exist (a state dict or checkpoint file saved by torch)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, truncated, or pickled objects weights_only refuses
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ConfigError(field, f"cannot read {path} as a torch state dict ({first})") from None
    for key in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(field, f"{path} holds no state dict (a mapping of names to tensors)")
    own = model.state_dict()
    head = _head(model)
    mismatched = [k for k in own if k in state and state[k].shape != own[k].shape and k not in head]
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if mismatched:
        key = mismatched[0]
        raise ConfigError(
            field,
            f"{path} does not fit the model: {key} is {tuple(state[key].shape)} there and "
            f"{tuple(own[key].shape)} here ({len(mismatched)} tensors differ); is it another architecture?",
        )
    if missing or extra:
        which = f"the model's {missing[0]} is not in it" if missing else f"its {extra[0]} is not in the model"
        raise ConfigError(
            field, f"{path} does not fit the model: {which} ({len(missing)} missing, {len(extra)} extra)"
        )
    kept = {k: v for k, v in state.items() if k not in head or v.shape == own[k].shape}
    model.load_state_dict(kept, strict=False)


def _head(model: nn.Module) -> set[str]:
    """The state-dict keys of the model's last Linear layer: the classifier fine-tuning replaces."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return {f"{linears[-1]}.{p}" for p in ("weight", "bias")} if linears else set()


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
