"""The tensors a trial trains on: train / validation / test, held whole (uint8 for images)."""

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from sweeplab.config import require


@dataclass(frozen=True)
class RawData:
    """What a data source returns: its own train and test sets, before the validation split."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    class_names: list[str]
    x_val: Tensor | None = None  # a source's own validation set, used instead of carving one from train
    y_val: Tensor | None = None


@dataclass(frozen=True)
class DataSplits:
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device) -> "DataSplits":
        moved = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "class_names"}
        return replace(self, **{k: v.to(device, non_blocking=True) for k, v in moved.items()})


def carve_validation(raw: RawData, val_fraction: float | None, split_seed: int | None) -> DataSplits:
    """Hold out `val_fraction` of the training set, chosen by a permutation fixed by `split_seed`, unless
    the source has its own validation set."""
    require(isinstance(split_seed, int), "dataset.split_seed", f"expected an integer, got {split_seed!r}")
    require(
        isinstance(val_fraction, float) and 0 < val_fraction < 1,
        "dataset.val_fraction",
        f"must be in (0, 1), got {val_fraction}",
    )
    if raw.x_val is not None and raw.y_val is not None:
        return DataSplits(
            raw.x_train, raw.y_train, raw.x_val, raw.y_val, raw.x_test, raw.y_test, raw.class_names
        )
    n = len(raw.y_train)
    n_val = round(n * val_fraction)
    require(
        0 < n_val < n, "dataset.val_fraction", f"{val_fraction} of {n} training samples leaves a split empty"
    )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val, train = order[:n_val], order[n_val:]
    return DataSplits(
        x_train=raw.x_train[train],
        y_train=raw.y_train[train],
        x_val=raw.x_train[val],
        y_val=raw.y_train[val],
        x_test=raw.x_test,
        y_test=raw.y_test,
        class_names=raw.class_names,
    )
