"""Preprocessing fitted on the training split only, applied to every batch on the device.

`InputPipeline` is the one path from stored tensors to model inputs: uint8 images become floats in
[0, 1], training batches are augmented, then the fitted preprocessing (center, standardize, PCA) is
applied.
"""

import copy
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sweeplab.config import require
from sweeplab.registry import Registry

PREPROCESS: Registry = Registry("preprocess")


def to_float(x: Tensor) -> Tensor:
    return x.float().div_(255) if x.dtype == torch.uint8 else x


class Standardize(nn.Module):
    """Per-feature (per pixel and channel, or per signal sample) zero mean and unit variance."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("inv_std", torch.ones(()))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        self.mean = x.mean(0)
        self.inv_std = 1 / (x.std(0) + self.eps)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) * self.inv_std


class Center(nn.Module):
    """Per-feature zero mean (the training split's mean) on a chosen scale: `scale` 255 gives images the
    raw 0-255 pixel range that course utilities used (mean image subtracted, not divided), 1 keeps
    [0, 1]."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("mean", torch.zeros(()))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        self.mean = x.mean(0)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) * self.scale


class PCA(nn.Module):
    """Project flattened inputs on the fewest principal components that keep `variance` of it."""

    def __init__(self, variance: float, whiten: bool) -> None:
        super().__init__()
        self.variance, self.whiten = variance, whiten
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("components", torch.zeros(0, 0))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        flat = x.flatten(1).double()
        self.mean = flat.mean(0).float()
        centred = flat - flat.mean(0)
        if len(flat) < flat.shape[1]:  # fewer samples than features: the SVD of the data is the cheaper
            _, singular, vt = torch.linalg.svd(centred, full_matrices=False)
            eigvals, eigvecs = singular**2 / (len(flat) - 1), vt.T
        else:
            eigvals, eigvecs = torch.linalg.eigh(centred.T @ centred / (len(flat) - 1))
            eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)
        eigvals = eigvals.clamp_min(0)  # largest first
        explained = eigvals.cumsum(0) / eigvals.sum()
        keep = int((explained < self.variance).sum()) + 1  # the fewest that reach `variance`, on any device
        keep = min(keep, len(eigvals))
        components = eigvecs[:, :keep]
        if self.whiten:
            components = components / eigvals[:keep].sqrt().clamp_min(1e-12)
        self.components = components.float()

    def forward(self, x: Tensor) -> Tensor:
        return (x.flatten(1) - self.mean) @ self.components


class Fitted(nn.Sequential):
    """Preprocessing steps fitted in order, each on the output of the ones before it."""

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        for step in self:
            step.fit(x)
            x = step(x)


@PREPROCESS.register("none")
def no_preprocess() -> Fitted:
    return Fitted()


@PREPROCESS.register("standardize")
def standardize(*, eps: float = 1e-6) -> Fitted:
    require(eps > 0, "preprocess.eps", f"must be positive, got {eps}")
    return Fitted(Standardize(eps))


@PREPROCESS.register("center")
def center(*, scale: float = 1.0) -> Fitted:
    require(
        scale > 0, "preprocess.scale", f"must be positive (255: raw pixel values, 1: [0, 1]), got {scale}"
    )
    return Fitted(Center(scale))


@PREPROCESS.register("pca")
def pca(*, variance: float, standardize: bool, whiten: bool = False, eps: float = 1e-6) -> Fitted:
    require(
        0 < variance <= 1,
        "preprocess.variance",
        f"is the fraction of variance kept, in (0, 1]; got {variance}",
    )
    return Fitted(*([Standardize(eps)] if standardize else []), PCA(variance, whiten))


@dataclass
class _Fit:
    """A fit and what it was fitted on: the data and preprocessing (`key`), the tensor itself (while it
    lives, with its in-place version) and the sum of its values."""

    key: tuple
    tensor: weakref.ref
    version: int
    checksum: float
    fitted: Fitted

    def matches(self, key: tuple, x: Tensor) -> bool:
        # The same tensor, unchanged, is known at no cost (the members of a pack, a worker's trials share
        # it); another tensor is compared by its sum, which costs a pass over CIFAR-10 (0.3 s on a core)
        return self.key == key and (
            (self.tensor() is x and self.version == x._version) or self.checksum == _checksum(x)
        )


def _checksum(x: Tensor) -> float:
    return x.sum(dtype=torch.float64).item()


# The last fit. A sweep's worker runs trial after trial in one process, and a fit (PCA of CIFAR-10's
# 45,000 training images: about a minute on one core) is the same for each of them.
_last_fit: _Fit | None = None


class InputPipeline(nn.Module):
    def __init__(self, preprocess: Fitted, augment: nn.Module | None) -> None:
        super().__init__()
        self.preprocess, self.augment = preprocess, augment

    def fit(self, x_train: Tensor, source: str | None = None) -> None:
        """Fit the preprocessing on the training split. `source` names the data and preprocessing (their
        config): a fit of the same, on the same tensor, earlier in this process is reused."""
        global _last_fit
        key = None if source is None else (source, str(x_train.device), tuple(x_train.shape))
        if key is not None and _last_fit is not None and _last_fit.matches(key, x_train):
            self.preprocess = copy.deepcopy(_last_fit.fitted)
            return
        self.preprocess.fit(to_float(x_train))
        _last_fit = None
        if key is not None:
            fitted = copy.deepcopy(self.preprocess)
            _last_fit = _Fit(key, weakref.ref(x_train), x_train._version, _checksum(x_train), fitted)

    def forward(self, x: Tensor, train: bool = False) -> Tensor:
        x = to_float(x)
        if train and self.augment is not None:
            x = self.augment(x)
        return self.preprocess(x)
