"""Data: a registry of sources, the train/val/test splits, preprocessing and augmentation."""

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from sweeplab.config import ConfigError, to_dict
from sweeplab.data import image_folder, sources, vision  # noqa: F401  (registers the data sets)
from sweeplab.data.augment import AUGMENTS
from sweeplab.data.preprocess import PREPROCESS, InputPipeline
from sweeplab.data.registry import DATASETS
from sweeplab.data.splits import DataSplits, RawData, carve_validation

__all__ = [
    "AUGMENTS",
    "DATASETS",
    "PREPROCESS",
    "DataSplits",
    "InputPipeline",
    "RawData",
    "build_inputs",
    "check_source",
    "input_spec",
    "load_data",
]


# The last data set loaded, on its device. A sweep's worker runs trial after trial of the same data in one
# process: they share its tensors (nothing writes to them), so the trials after the first load nothing
# (CIFAR-10 from its cache: a third of a second, and the preprocessing's fit knows the same tensor).
_last: tuple[tuple, DataSplits] | None = None


def load_data(node: Mapping, device: torch.device | None = None) -> DataSplits:
    """Load the data set a `dataset` config node names, carve its validation split and move it to
    `device`; the same node's data as last time in this process, its file unchanged, is that data."""
    global _last
    params = to_dict(node)
    key = _data_key(params, device)
    if key is not None and _last is not None and _last[0] == key:
        return _last[1]
    _last = None  # the last data freed before the next is loaded
    split = {k: params.pop(k, None) for k in ("val_fraction", "split_seed")}
    data = carve_validation(DATASETS.build(params, "dataset"), **split)
    data = data.to(device) if device is not None else data
    _last = None if key is None else (key, data)
    return data


def _data_key(params: dict, device: torch.device | None) -> tuple | None:
    """What the data loaded from `params` depends on: the config, the device and the file's size and
    modification time. None for a folder, whose files can change without it: loaded each time."""
    path = params.get("path")
    stamp = None
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            return None
        info = file.stat()
        stamp = (str(file.resolve()), info.st_size, info.st_mtime_ns)
    return json.dumps(params, sort_keys=True, default=str), stamp, str(device)


def build_inputs(preprocess: Mapping, augment: Mapping, input_shape: tuple[int, ...]) -> InputPipeline:
    """The (unfitted) pipeline from stored tensors to model inputs."""
    return InputPipeline(
        PREPROCESS.build(preprocess, "preprocess"),
        AUGMENTS.build(augment, "augment", input_shape=input_shape),
    )


# (input shape, classes) of the data sets whose shape is known without reading them
_INPUTS = {
    "mnist1d": lambda p: ((1, 40), 10),
    "mnist": lambda p: ((1, 28, 28), 10),
    "fashion_mnist": lambda p: ((1, 28, 28), 10),
    "cifar10": lambda p: ((3, 32, 32), 10),
    "synthetic": lambda p: ((p["dim"],), p["classes"]),
    "ellipse": lambda p: ((2,), 2),
}


def input_spec(node: Mapping) -> tuple[tuple[int, ...], int] | None:
    """The inputs' shape and the number of classes of the data set a node names, or None if only its
    data can tell."""
    params = to_dict(node)
    known = _INPUTS.get(params.get("name"))
    try:
        return known(params) if known else None
    except (KeyError, TypeError):  # a malformed node: loading it names the fault
        return None


def check_source(node: Mapping) -> None:
    """The file or folder a data set names (`dataset.path`) must exist: checked before a sweep's first
    trial, so a typo is one message, not a failed trial."""
    path = to_dict(node).get("path")
    if path is not None and not Path(path).expanduser().exists():
        raise ConfigError("dataset.path", f"{path} does not exist (relative paths start from {Path.cwd()})")
