"""Data sources that need no download: MNIST-1D, Gaussian clusters and the ellipse set."""

import hashlib
import io
import logging
import pickle
from pathlib import Path

import numpy as np
import torch

from sweeplab.config import SweeplabError, require
from sweeplab.data.registry import DATASETS
from sweeplab.data.splits import RawData
from sweeplab.files import EnvironmentFault, environment_fault, write_atomic

log = logging.getLogger(__name__)

# md5 of the official mnist1d_data.pkl from github.com/greydanus/mnist1d (4000 train + 1000 test).
MNIST1D_MD5 = "5bf44b67062b653caea0043bc236811a"
DIGITS = [str(d) for d in range(10)]


@DATASETS.register("mnist1d")
def mnist1d(*, root: str, path: str | None = None) -> RawData:
    """MNIST-1D: 40-sample signals of 10 digits, as (N, 1, 40) float32.

    With `path`, the official pickle is read after its md5 is checked (never unpickle a file we cannot
    vouch for). Without, the data are generated with the mnist1d package's own recipe and default
    arguments, which reproduces the official file exactly, and cached under `root` as plain arrays.
    """
    arrays = _official_mnist1d(Path(path)) if path else _generated_mnist1d(Path(root) / "mnist1d")
    return RawData(
        x_train=torch.as_tensor(arrays["x"], dtype=torch.float32).unsqueeze(1),
        y_train=torch.as_tensor(arrays["y"], dtype=torch.int64),
        x_test=torch.as_tensor(arrays["x_test"], dtype=torch.float32).unsqueeze(1),
        y_test=torch.as_tensor(arrays["y_test"], dtype=torch.int64),
        class_names=DIGITS,
    )


def _official_mnist1d(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise SweeplabError(
            f"dataset.path: {path} does not exist. Give the path to the official mnist1d_data.pkl, "
            "or set dataset.path=null to generate the same data offline."
        )
    blob = path.read_bytes()
    digest = hashlib.md5(blob).hexdigest()
    if digest != MNIST1D_MD5:
        raise SweeplabError(
            f"dataset.path: {path} has md5 {digest}, not the official {MNIST1D_MD5}; refusing to unpickle "
            "it. Set dataset.path=null to generate the data offline instead."
        )
    return pickle.loads(blob)


def _generated_mnist1d(cache_dir: Path) -> dict[str, np.ndarray]:
    cache = cache_dir / "mnist1d_generated.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            return dict(stored)
    from mnist1d.data import get_dataset_args, make_dataset

    made = make_dataset(get_dataset_args())
    arrays = {k: np.asarray(made[k]) for k in ("x", "y", "x_test", "y_test")}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:  # the cache only saves seconds: an unwritable root is not an error
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, buffer.getvalue())  # processes making it together never mix their writes
    except (OSError, EnvironmentFault) as err:
        fault = environment_fault(err, cache) if isinstance(err, OSError) else err
        if cache_dir not in _UNCACHED:  # once a process: every run of a sweep would repeat it
            _UNCACHED.add(cache_dir)
            log.warning(
                "cannot cache MNIST-1D in %s (%s): it is generated again for every run",
                cache_dir,
                fault or err,
            )
    return arrays


_UNCACHED: set[Path] = set()  # data folders this process could not write


@DATASETS.register("synthetic")
def synthetic(*, n_train: int, n_test: int, dim: int, classes: int, cluster_std: float, seed: int) -> RawData:
    """Gaussian clusters: one N(0, I) centre per class, samples scattered around it by `cluster_std`."""
    require(classes >= 2, "dataset.classes", f"needs at least 2 classes, got {classes}")
    require(dim >= 1, "dataset.dim", f"must be positive, got {dim}")
    require(cluster_std > 0, "dataset.cluster_std", f"must be positive, got {cluster_std}")
    for field, n in (("n_train", n_train), ("n_test", n_test)):
        require(n >= classes, f"dataset.{field}", f"needs at least one sample per class, got {n}")
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % classes
        y = y[torch.randperm(n, generator=g)]
        return centres[y] + cluster_std * torch.randn(n, dim, generator=g), y

    x_train, y_train = sample(n_train)
    x_test, y_test = sample(n_test)
    return RawData(x_train, y_train, x_test, y_test, [f"class {c}" for c in range(classes)])


@DATASETS.register("ellipse")
def ellipse(*, n_train: int, n_test: int, threshold: float, seed: int) -> RawData:
    """Two N(0, 1) features; the class is whether the quadratic form x^T Q x exceeds `threshold`, so the
    boundary is an ellipse. This is `load_synth` of the VU Deep Learning course's vugrad library, with its
    Q = [[1, 0.5], [1, 0.2]], drawn the same way (NumPy's legacy generator seeded with `seed`), so with
    the defaults it reproduces the course's 60,000 training and 10,000 held-out samples.
    """
    for field, n in (("n_train", n_train), ("n_test", n_test)):
        require(n >= 2, f"dataset.{field}", f"needs at least 2 samples, got {n}")
    x = np.random.RandomState(seed).randn(n_train + n_test, 2)
    quad = np.asarray([[1, 0.5], [1, 0.2]])
    y = (np.einsum("bf,fk,bk->b", x, quad, x) > threshold).astype(np.int64)
    x_t, y_t = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    return RawData(x_t[:n_train], y_t[:n_train], x_t[n_train:], y_t[n_train:], ["inside", "outside"])
