"""Image data sets through torchvision's own classes (download, checksums, parsing), held as uint8.
torchvision is imported where it is used: importing it costs about 2 s, which other runs skip."""

from __future__ import annotations

import contextlib
import gzip
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from unittest import mock

import numpy as np
import torch

from sweeplab.config import SweeplabError, require
from sweeplab.data.image_folder import load_image_folder
from sweeplab.data.registry import DATASETS
from sweeplab.data.splits import RawData

if TYPE_CHECKING:
    from torchvision import datasets as tvd

IdxSource = Literal["official", "test_only"]
# CIFAR-10's classes in label order (torchvision reads them from the batches' meta file)
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@DATASETS.register("mnist")
def mnist(
    *, root: str, download: bool, source: IdxSource = "official", test_fraction: float = 0.2
) -> RawData:
    from torchvision import datasets as tvd

    return _idx_dataset(tvd.MNIST, root, download, source, test_fraction)


@DATASETS.register("fashion_mnist")
def fashion_mnist(
    *, root: str, download: bool, source: IdxSource = "official", test_fraction: float = 0.2
) -> RawData:
    from torchvision import datasets as tvd

    return _idx_dataset(tvd.FashionMNIST, root, download, source, test_fraction)


@DATASETS.register("cifar10")
def cifar10(*, root: str, download: bool, verify_md5: bool = True, path: str | None = None) -> RawData:
    """`verify_md5: false` reads batch files that are not the genuine ones (smoke runs on generated
    files in CIFAR-10's format); torchvision otherwise refuses any file whose md5 differs.
    `path`: read CIFAR-10 from a folder-per-class copy instead (a folder or archive, as `image_folder`
    reads), such as the JPEG copy; its classes and image size must be CIFAR-10's."""
    from torchvision import datasets as tvd

    if path is not None:
        return _cifar10_copy(Path(path), Path(root))
    with contextlib.nullcontext() if verify_md5 else trusting_present_files(tvd.CIFAR10):
        train, test = (_open(tvd.CIFAR10, root, download, train=flag) for flag in (True, False))

    def images(ds: tvd.CIFAR10) -> torch.Tensor:  # stored HWC; models take CHW
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()

    return RawData(
        x_train=images(train),
        y_train=torch.as_tensor(train.targets, dtype=torch.int64),
        x_test=images(test),
        y_test=torch.as_tensor(test.targets, dtype=torch.int64),
        class_names=list(train.classes),
    )


def _cifar10_copy(path: Path, root: Path) -> RawData:
    raw = load_image_folder(path, root)
    if raw.class_names != CIFAR10_CLASSES or tuple(raw.x_train.shape[1:]) != (3, 32, 32):
        raise SweeplabError(
            f"dataset.path: {path} is not a copy of CIFAR-10: it has classes {', '.join(raw.class_names)} "
            f"and images of {'x'.join(map(str, raw.x_train.shape[1:]))}, not CIFAR-10's "
            f"{', '.join(CIFAR10_CLASSES)} and 3x32x32. For other image data use dataset=image_folder"
        )
    return raw


def _idx_dataset(
    cls: type[tvd.MNIST], root: str, download: bool, source: str, test_fraction: float
) -> RawData:
    if source == "official":
        train, test = (_open(cls, root, download, train=flag) for flag in (True, False))
        return RawData(
            train.data.unsqueeze(1),
            train.targets.long(),
            test.data.unsqueeze(1),
            test.targets.long(),
            _class_names(cls),
        )
    # "test_only": the 10k test files alone (the training files may be unavailable), carved into
    # train and test here; the validation split is then carved from that train part as usual.
    require(0 < test_fraction < 1, "dataset.test_fraction", f"must be in (0, 1), got {test_fraction}")
    images, labels = _read_test_files(cls, root, download)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = round(len(labels) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return RawData(images[train], labels[train], images[test], labels[test], _class_names(cls))


@contextlib.contextmanager
def trusting_present_files(cls: type) -> Iterator[None]:
    """Within this block `cls`'s module (torchvision's) takes a file as intact when it exists, whatever its
    md5: for stand-ins made in the real format. The files are unpickled then: the user vouches for them."""
    module = sys.modules[cls.__module__]
    with mock.patch.object(module, "check_integrity", lambda path, md5=None: os.path.isfile(path)):
        yield


def _class_names(cls: type[tvd.MNIST]) -> list[str]:
    from torchvision import datasets as tvd

    return [str(d) for d in range(10)] if cls is tvd.MNIST else list(cls.classes)


def _open(cls: type, root: str, download: bool, train: bool):
    try:
        return cls(root, train=train, download=download)
    except (RuntimeError, OSError) as err:
        raise SweeplabError(_missing_message(cls, root, download, err)) from err


def _expected_files(cls: type, root: str) -> tuple[Path, list[str]]:
    if hasattr(cls, "resources"):  # MNIST family: the .gz files are unpacked into <root>/<Class>/raw
        return Path(root) / cls.__name__ / "raw", [Path(url).stem for url, _ in cls.resources]
    names = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return Path(root) / cls.base_folder, names


def _missing_message(cls: type, root: str, download: bool, err: Exception) -> str:
    from torchvision import datasets as tvd

    folder, names = _expected_files(cls, root)
    missing = [n for n in names if not (folder / n).is_file()]
    if not missing and cls is tvd.CIFAR10:  # all there: torchvision refused them for their md5
        listed = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
        from torchvision.datasets.utils import check_integrity

        wrong = [name for name, md5 in listed if not check_integrity(str(folder / name), md5)]
        return (
            f"{cls.__name__} files in {folder} have the wrong checksum: {', '.join(wrong) or 'the archive'}. "
            "They are not the genuine files: for files made in CIFAR-10's format (sweeplab standin-data) set "
            "dataset.verify_md5=false (or SWEEPLAB_VERIFY_MD5=false); for the genuine data set, delete them "
            "and fetch it again"
        )
    hint = (
        f"downloading failed ({str(err).splitlines()[0]}); fetch the files on a machine with internet access"
        if download
        else "set dataset.download=true to fetch them (needs internet)"
    )
    return (
        f"{cls.__name__} data not found in {folder}: missing {', '.join(missing) or str(err)}. "
        f"Either {hint}, or set data_dir (or dataset.root) to a folder that holds them. To try sweeplab "
        "without them, `sweeplab standin-data DIR` writes small stand-ins in the same formats."
    )


def _read_test_files(cls: type[tvd.MNIST], root: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    names = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    folders = [Path(root), Path(root) / cls.__name__ / "raw"]
    for folder in folders:
        found = [_with_or_without_gz(folder / n) for n in names]
        if all(found):
            images, labels = (read_idx(p) for p in found)  # type: ignore[arg-type]
            return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()
    if download:
        _open(cls, root, download=True, train=False)
        return _read_test_files(cls, root, download=False)
    raise SweeplabError(
        f"{cls.__name__} test files not found: looked for {' and '.join(n + '[.gz]' for n in names)} in "
        f"{' and '.join(str(f) for f in folders)}. Set dataset.root to the folder that holds them, "
        "or dataset.download=true to fetch them (needs internet)."
    )


def _with_or_without_gz(path: Path) -> Path | None:
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None


# IDX element types by the third byte of the magic number (LeCun's format description).
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise SweeplabError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=_IDX_TYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise SweeplabError(f"{path} is truncated: header says {shape}, found {array.size} values")
    return array.reshape(shape).astype(array.dtype.newbyteorder("="))
