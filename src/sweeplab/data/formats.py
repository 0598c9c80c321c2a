"""Writers of the real on-disk formats (MNIST's IDX, CIFAR-10's pickled batches) for small stand-in
data sets: tests, benchmarks and smoke runs parse them with the same code as the genuine files.

The images carry a class signal (a fixed pattern per class plus noise) so a model can learn them.
"""

import gzip
import pickle
from pathlib import Path

import numpy as np


def class_images(n: int, shape: tuple[int, ...], classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(classes, *shape))
    labels = rng.permutation(np.arange(n) % classes)
    noise = rng.normal(0, 60, size=(n, *shape))
    return np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file; a name ending in .gz is gzipped."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    blob = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)
    return path


def write_mnist(root: Path, n_train: int, n_test: int, folder: str = "MNIST", seed: int = 0) -> Path:
    """The four MNIST files, unpacked, where torchvision's MNIST (or FashionMNIST) class looks for them."""
    raw = root / folder / "raw"
    x, y = class_images(n_train + n_test, (28, 28), 10, seed)
    for prefix, part in (("train", slice(0, n_train)), ("t10k", slice(n_train, None))):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x[part])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y[part])
    return raw


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """CIFAR-10's python-version batches (5 train, 1 test, meta) in `root`/cifar-10-batches-py.

    torchvision checks every file against the genuine md5s: load the stand-ins with
    `dataset.verify_md5=false`, or through torchvision's own class inside
    `sweeplab.data.vision.trusting_present_files(CIFAR10)`.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = class_images(n_train + n_test, (3, 32, 32), 10, seed)
    rows = x.reshape(len(x), -1)  # CIFAR stores each image as 3072 bytes: R plane, G plane, B plane
    parts = np.array_split(np.arange(n_train), 5)
    batches = {f"data_batch_{i + 1}": idx for i, idx in enumerate(parts)}
    batches["test_batch"] = np.arange(n_train, n_train + n_test)
    for name, idx in batches.items():
        entry = {"batch_label": name, "labels": y[idx].tolist(), "data": rows[idx], "filenames": []}
        _pickle_to(folder / name, entry)
    _pickle_to(
        folder / "batches.meta", {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": len(parts[0])}
    )
    return folder


def _pickle_to(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))
