"""Which config keys trials of one pack may differ in: each registry's builders name their packable
options (`Registry.register(name, packable=...)`); of the trainer, only the seed. Everything else of the
composed config (architecture, activation, norm type, optimizer and scheduler kind, batch size, steps,
data) is the pack's shared structure."""

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from sweeplab.config import structure

TRAINER_KEYS = ("trainer.seed",)  # initialisation and data order


def packable_keys(cfg: Mapping[str, Any]) -> set[str]:
    """The packable keys of a composed config, given its model, optimizer, scheduler and loss."""
    from sweeplab.losses import LOSSES
    from sweeplab.models import MODELS
    from sweeplab.optim import OPTIMIZERS, SCHEDULERS

    keys = set(TRAINER_KEYS)
    for group, registry in (
        ("model", MODELS),
        ("optimizer", OPTIMIZERS),
        ("scheduler", SCHEDULERS),
        ("loss", LOSSES),
    ):
        name = cfg[group]["name"]
        keys |= {f"{group}.{option}" for option in registry.packable(name)}
    return keys


def pack_structure(cfg: DictConfig) -> str:
    """What the members of one pack must share: the composed config without its packable keys."""
    return structure(cfg, packable_keys(cfg))
