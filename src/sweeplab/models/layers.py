"""String -> layer maps shared by every model: `create_act("leaky_relu")`, `create_norm("batch", 64, 2)`."""

from collections.abc import Callable

from torch import nn

from sweeplab.config import ConfigError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

NORMS = ("none", "batch", "layer")


def create_act(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(
            "model.activation", f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


def create_norm(name: str, channels: int, spatial_dims: int) -> nn.Module:
    """A normalisation layer for `channels` features with 0 (vectors), 1 (signals) or 2 (images) spatial dims.

    "layer" normalises each sample over all its features: LayerNorm on vectors, GroupNorm with one group
    (the same statistic) on feature maps.
    """
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm2d(channels) if spatial_dims == 2 else nn.BatchNorm1d(channels)
    if name == "layer":
        return nn.LayerNorm(channels) if spatial_dims == 0 else nn.GroupNorm(1, channels)
    raise ConfigError("model.norm", f"unknown normalisation {name!r}; choose one of: {', '.join(NORMS)}")


def create_conv(spatial_dims: int, *args, **kwargs) -> nn.Module:
    return (nn.Conv2d if spatial_dims == 2 else nn.Conv1d)(*args, **kwargs)


def create_dropout(p: float) -> nn.Module:
    if not 0 <= p < 1:
        raise ConfigError("model.dropout", f"is a probability in [0, 1), got {p}")
    return nn.Dropout(p) if p else nn.Identity()
