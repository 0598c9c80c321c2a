"""Training: one trial from a composed config, and its records. Loaded lazily: `sweeplab.train.metrics`
(what the command line reads at every start) must not import torch."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeplab.train.loop import train
    from sweeplab.train.options import TrainerOptions
    from sweeplab.train.trial import Reporter, Result

__all__ = ["Reporter", "Result", "TrainerOptions", "train"]
_WHERE = {"Reporter": "trial", "Result": "trial", "train": "loop", "TrainerOptions": "options"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
