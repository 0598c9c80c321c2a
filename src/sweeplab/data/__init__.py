"""Data: a registry of sources, the train/val/test splits, preprocessing and augmentation."""

from collections.abc import Mapping
from pathlib import Path

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


def load_data(node: Mapping) -> DataSplits:
    """Load the data set a `dataset` config node names and carve its validation split."""
    params = to_dict(node)
    split = {key: params.pop(key, None) for key in ("val_fraction", "split_seed")}
    raw = DATASETS.build(params, "dataset")
    return carve_validation(raw, **split)


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
