"""Any torchvision classification model by name, optionally with its pretrained weights."""

import logging
from pathlib import Path
from typing import Literal
from urllib.error import URLError

import torch
from torch import Tensor, nn

from sweeplab.config import SweeplabError, require
from sweeplab.models.registry import MODELS

log = logging.getLogger(__name__)


class RepeatChannels(nn.Module):
    """Grey images fed to a model built for RGB: the one channel is repeated three times."""

    def forward(self, x: Tensor) -> Tensor:
        return x.expand(-1, 3, -1, -1)


@MODELS.register("torchvision")
def torchvision_model(
    *, input_shape: tuple[int, ...], num_classes: int, arch: str, pretrained: bool | Literal["auto"]
) -> nn.Module:
    """`pretrained: auto` starts from the ImageNet weights when they are in torch's cache, else from
    random weights (with a warning): a sweep file can then run anywhere and fine-tune where it can."""
    require(
        len(input_shape) == 3 and input_shape[0] in (1, 3),
        "model",
        f"torchvision models take 1- or 3-channel images (C, H, W); the inputs have shape {input_shape}",
    )
    import torchvision  # here: importing it costs about 2 s, which runs that use no torchvision skip

    names = torchvision.models.list_models(module=torchvision.models)
    require(
        arch in names,
        "model.arch",
        f"unknown torchvision classification model {arch!r}; choose one of: {', '.join(names)}",
    )
    require(
        pretrained in (True, False, "auto"), "model.pretrained", f"is true, false or auto, got {pretrained!r}"
    )
    if pretrained == "auto":
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        pretrained = cached.is_file()
        if not pretrained:
            log.warning(
                "model.pretrained=auto: no %s weights in %s; training from random weights", arch, cached
            )
    if pretrained:
        try:
            model = torchvision.models.get_model(arch, weights="DEFAULT")
        except (URLError, RuntimeError, OSError) as err:
            raise SweeplabError(
                f"model.pretrained: the {arch} weights are not in torch's cache "
                f"({torch.hub.get_dir()}/checkpoints) and could not be downloaded ({err}); "
                "put the weights file there or set model.pretrained=false"
            ) from err
        _replace_head(model, num_classes, arch)
    else:
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    return nn.Sequential(RepeatChannels(), model) if input_shape[0] == 1 else model


def _replace_head(model: nn.Module, num_classes: int, arch: str) -> None:
    """Swap the last Linear layer (the ImageNet classifier) for one with `num_classes` outputs."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    require(bool(linears), "model.arch", f"{arch} has no Linear classifier to replace; use pretrained=false")
    parent_name, _, attr = linears[-1].rpartition(".")
    parent = model.get_submodule(parent_name)
    old = getattr(parent, attr)
    setattr(parent, attr, nn.Linear(old.in_features, num_classes))
