"""Data sources parse their real on-disk formats; splits are fixed and disjoint; preprocessing sees
only the training split."""

import gzip
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import MNIST1D_PKL, MNIST_T10K, needs_mnist1d_pkl, needs_mnist_t10k
from sweeplab.config import ConfigError, SweeplabError
from sweeplab.data import build_inputs, load_data
from sweeplab.data.augment import CropFlip
from sweeplab.data.formats import (
    class_images,
    write_cifar10,
    write_idx,
    write_mnist,
)
from sweeplab.data.vision import read_idx


def test_mnist1d_generated_offline(make_cfg):
    data = load_data(make_cfg().dataset)
    assert data.x_train.shape == (3600, 1, 40) and data.x_val.shape == (400, 1, 40)
    assert data.x_test.shape == (1000, 1, 40) and data.x_train.dtype == torch.float32
    assert data.class_names == [str(d) for d in range(10)]


@needs_mnist1d_pkl
def test_mnist1d_generation_equals_the_official_file(make_cfg):
    generated = load_data(make_cfg().dataset)
    official = load_data(make_cfg(f"dataset.path={MNIST1D_PKL}").dataset)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        torch.testing.assert_close(getattr(generated, name), getattr(official, name), atol=1e-6, rtol=0)


@needs_mnist1d_pkl
def test_mnist1d_refuses_to_unpickle_a_file_with_the_wrong_md5(make_cfg, tmp_path):
    tampered = tmp_path / "mnist1d_data.pkl"
    tampered.write_bytes(MNIST1D_PKL.read_bytes() + b"\0")
    with pytest.raises(SweeplabError, match=r"dataset\.path: .* has md5 [0-9a-f]{32}, not the official"):
        load_data(make_cfg(f"dataset.path={tampered}").dataset)


def test_mnist_through_torchvision_parses_generated_idx_files(make_cfg, tmp_path):
    write_mnist(tmp_path, n_train=300, n_test=100)
    x, y = class_images(400, (28, 28), 10, seed=0)
    data = load_data(make_cfg("dataset=mnist", f"dataset.root={tmp_path}", "dataset.download=false").dataset)
    assert data.x_train.shape == (270, 1, 28, 28) and data.x_val.shape == (30, 1, 28, 28)
    assert data.x_train.dtype == torch.uint8
    assert torch.equal(data.x_test[:, 0], torch.from_numpy(x[300:]))
    assert torch.equal(data.y_test, torch.from_numpy(y[300:]).long())
    train_and_val = torch.cat([data.x_train, data.x_val])[:, 0].flatten(1).sum(1).sort().values
    assert torch.equal(train_and_val, torch.from_numpy(x[:300]).flatten(1).long().sum(1).sort().values)


def test_fashion_mnist_reads_its_own_folder(make_cfg, tmp_path):
    write_mnist(tmp_path, n_train=50, n_test=20, folder="FashionMNIST")
    data = load_data(
        make_cfg("dataset=fashion_mnist", f"dataset.root={tmp_path}", "dataset.download=false").dataset
    )
    assert len(data.y_test) == 20 and data.class_names[0] == "T-shirt/top"


def test_cifar10_through_torchvision_parses_generated_batches(make_cfg, tmp_path):
    write_cifar10(tmp_path, n_train=100, n_test=40)
    # torchvision accepts only the genuine files unless told otherwise
    cfg = make_cfg(
        "dataset=cifar10", f"dataset.root={tmp_path}", "dataset.download=false", "dataset.verify_md5=false"
    )
    data = load_data(cfg.dataset)
    x, y = class_images(140, (3, 32, 32), 10, seed=0)
    assert data.x_test.shape == (40, 3, 32, 32) and data.x_test.dtype == torch.uint8
    assert torch.equal(data.x_test, torch.from_numpy(x[100:]))  # channel planes land in C of (N, C, H, W)
    assert torch.equal(data.y_test, torch.from_numpy(y[100:]).long())
    assert data.class_names[:2] == ["airplane", "automobile"] and len(data.y_train) + len(data.y_val) == 100


def test_cifar10_with_wrong_checksums_is_reported_as_such_not_as_missing(make_cfg, tmp_path):
    write_cifar10(tmp_path, n_train=20, n_test=10)
    for download in ("false", "true"):  # present files are never downloaded over
        with pytest.raises(SweeplabError) as err:
            cfg = make_cfg("dataset=cifar10", f"dataset.root={tmp_path}", f"dataset.download={download}")
            load_data(cfg.dataset)
        message = str(err.value)
        assert message.startswith(
            f"CIFAR10 files in {tmp_path}/cifar-10-batches-py have the wrong checksum: data_batch_1, "
            "data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta. They are not "
            "the genuine files: for files made in CIFAR-10's format (sweeplab standin-data) set "
            "dataset.verify_md5=false"
        )
        assert "not found" not in message


def test_missing_cifar10_is_reported_as_not_found(make_cfg, tmp_path):
    with pytest.raises(SweeplabError) as err:
        load_data(make_cfg("dataset=cifar10", f"dataset.root={tmp_path}", "dataset.download=false").dataset)
    message = str(err.value)
    folder = tmp_path / "cifar-10-batches-py"
    assert message.startswith(f"CIFAR10 data not found in {folder}: missing data_batch_1")
    assert "checksum" not in message and "`sweeplab standin-data DIR` writes small stand-ins" in message


def test_missing_files_are_named_with_the_download_flag(make_cfg, tmp_path):
    with pytest.raises(SweeplabError) as err:
        load_data(make_cfg("dataset=mnist", f"dataset.root={tmp_path}", "dataset.download=false").dataset)
    message = str(err.value)
    assert f"MNIST data not found in {tmp_path}/MNIST/raw: missing train-images-idx3-ubyte" in message
    assert "t10k-labels-idx1-ubyte" in message and "set dataset.download=true" in message


def test_test_only_source_reads_gzipped_idx_files_from_the_root(make_cfg, tmp_path):
    x, y = class_images(50, (28, 28), 10, seed=3)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y)
    cfg = make_cfg(
        "dataset=mnist",
        f"dataset.root={tmp_path}",
        "dataset.source=test_only",
        "dataset.test_fraction=0.2",
        "dataset.download=false",
    )
    data = load_data(cfg.dataset)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (36, 4, 10)
    everything = torch.cat([data.x_train, data.x_val, data.x_test])[:, 0]
    assert sorted(map(bytes, everything.numpy())) == sorted(map(bytes, x))


def test_test_only_source_names_what_it_looked_for(make_cfg, tmp_path):
    cfg = make_cfg(
        "dataset=mnist", f"dataset.root={tmp_path}", "dataset.source=test_only", "dataset.download=false"
    )
    with pytest.raises(
        SweeplabError, match=r"MNIST test files not found: looked for t10k-images-idx3-ubyte\[\.gz\]"
    ):
        load_data(cfg.dataset)


@needs_mnist_t10k
def test_genuine_mnist_test_set(make_cfg):
    images = read_idx(MNIST_T10K / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(MNIST_T10K / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # the famous first five test digits
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(SweeplabError, match="bad magic number"):
        read_idx(tmp_path / "junk")
    blob = gzip.compress(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + bytes(10))
    (tmp_path / "short.gz").write_bytes(blob)
    with pytest.raises(SweeplabError, match=r"truncated: header says \(100,\), found 10 values"):
        read_idx(tmp_path / "short.gz")


def test_validation_split_is_fixed_by_split_seed_and_disjoint(make_cfg):
    a = load_data(make_cfg("dataset=synthetic", "trainer.seed=1").dataset)
    b = load_data(make_cfg("dataset=synthetic", "trainer.seed=2").dataset)
    c = load_data(make_cfg("dataset=synthetic", "dataset.split_seed=5").dataset)
    assert torch.equal(a.x_val, b.x_val) and not torch.equal(a.x_val, c.x_val)
    assert len(a.y_val) == 200 and len(a.y_train) == 1800
    rows = {tuple(r.tolist()) for r in a.x_train} & {tuple(r.tolist()) for r in a.x_val}
    assert not rows


def test_bad_split_fraction_is_named(make_cfg):
    with pytest.raises(ConfigError, match=r"dataset\.val_fraction: must be in \(0, 1\), got 1.5"):
        load_data(make_cfg("dataset.val_fraction=1.5").dataset)


def shifted_data(make_cfg):
    """Synthetic data whose validation and test sets are moved far from the training set."""
    data = load_data(make_cfg("dataset=synthetic").dataset)
    return replace(data, x_val=data.x_val + 100, x_test=data.x_test - 100)


def test_standardize_is_fitted_on_the_training_split_only(make_cfg):
    data = shifted_data(make_cfg)
    pipeline = build_inputs(
        make_cfg("preprocess=standardize").preprocess, make_cfg().augment, data.input_shape
    )
    pipeline.fit(data.x_train)
    train_out, val_out = pipeline(data.x_train), pipeline(data.x_val)
    torch.testing.assert_close(train_out.mean(0), torch.zeros(20), atol=1e-5, rtol=0)
    torch.testing.assert_close(train_out.std(0), torch.ones(20), atol=1e-4, rtol=0)
    assert val_out.mean() > 50  # had the validation set leaked into the fit, it would be near 0


def test_center_subtracts_the_training_mean_on_the_raw_pixel_scale(make_cfg):
    data = shifted_data(make_cfg)
    cfg = make_cfg("preprocess=center", "preprocess.scale=255")
    pipeline = build_inputs(cfg.preprocess, make_cfg().augment, data.input_shape)
    pipeline.fit(data.x_train)
    train_out = pipeline(data.x_train)
    torch.testing.assert_close(train_out.mean(0), torch.zeros(20), atol=1e-3, rtol=0)
    torch.testing.assert_close(train_out.std(0), 255 * data.x_train.std(0), rtol=1e-5, atol=1e-4)
    assert pipeline(data.x_val).mean() > 50 * 255  # fitted on the training split only
    images = torch.full((4, 3, 2, 2), 200, dtype=torch.uint8)
    images[0] = 100
    pipeline = build_inputs(cfg.preprocess, make_cfg().augment, (3, 2, 2))
    pipeline.fit(images)
    assert pipeline(images)[0].tolist() == torch.full((3, 2, 2), -75.0).tolist()  # 100 - mean 175
    with pytest.raises(ConfigError, match=r"preprocess.scale: must be positive"):
        build_inputs(make_cfg("preprocess=center", "preprocess.scale=0").preprocess, make_cfg().augment, (5,))


def test_pca_keeps_the_requested_variance_of_the_training_split(make_cfg):
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.5])
    x_train = torch.randn(5000, 5, generator=g) * scales
    cfg = make_cfg("preprocess=pca", "preprocess.standardize=false", "preprocess.variance=0.9")
    pipeline = build_inputs(cfg.preprocess, make_cfg().augment, (5,))
    pipeline.fit(x_train)
    # variances 100, 25, 4, 1, 0.25: the first two hold 95% > 90%, the first alone 77%
    assert pipeline(x_train).shape == (5000, 2)
    pipeline.fit(x_train[:, [4, 3, 2, 1, 0]] * torch.tensor([1.0, 1, 1, 1, 0.01]))
    assert pipeline(x_train).shape[1] == 2  # refitting follows the new training data only


def test_a_fit_of_the_same_data_and_preprocessing_is_reused_in_one_process(make_cfg, monkeypatch):
    from sweeplab.data import preprocess

    fits = []
    original = preprocess.PCA.fit
    monkeypatch.setattr(preprocess.PCA, "fit", lambda self, x: fits.append(1) or original(self, x))
    x_train = torch.randn(500, 5, generator=torch.Generator().manual_seed(0)) * torch.arange(5, 0, -1)
    cfg = make_cfg("preprocess=pca", "preprocess.variance=0.9")

    def fitted(x: torch.Tensor, source: str) -> torch.Tensor:
        pipeline = build_inputs(cfg.preprocess, make_cfg().augment, (5,))
        pipeline.fit(x, source=source)
        return pipeline(x_train)

    first = fitted(x_train, "data A")
    assert torch.equal(fitted(x_train, "data A"), first) and len(fits) == 1  # the second trial reuses it
    fitted(x_train, "data B")  # another config, or other data under the same name: fitted again
    fitted(x_train * 2, "data B")
    assert len(fits) == 3
    copied = x_train.clone()  # another tensor of the same values (a worker that loaded the data again)
    fitted(copied, "data A")
    fitted(copied, "data A")
    assert len(fits) == 4
    copied[0, 0] += 1  # the same tensor, changed in place: fitted again
    fitted(copied, "data A")
    fitted(copied.clone(), "data A")  # another tensor, the same values: known by their sum, reused
    assert len(fits) == 5


def test_crop_flip_moves_and_mirrors_whole_images():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    flipped = CropFlip(padding=0, flip=True)(x.repeat(50, 1, 1, 1))
    same = (flipped == x.repeat(50, 1, 1, 1)).flatten(1).all(1)
    mirrored = (flipped == x.flip(3).repeat(50, 1, 1, 1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 20 < int(mirrored.sum()) < 80
    cropped = CropFlip(padding=2, flip=False)(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for n in range(2):
        windows = [padded[n, :, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(cropped[n], w) for w in windows)


def test_crop_flip_refuses_signals(make_cfg):
    with pytest.raises(ConfigError, match=r"augment: crop_flip works on images \(C, H, W\)"):
        build_inputs(make_cfg().preprocess, make_cfg("augment=crop_flip").augment, (1, 40))


def test_uint8_images_are_scaled_to_unit_range(make_cfg):
    pipeline = build_inputs(make_cfg().preprocess, make_cfg().augment, (1, 2, 2))
    x = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    torch.testing.assert_close(pipeline(x), torch.tensor([[[[0.0, 1.0], [0.2, 0.4]]]]))


def test_pca_with_fewer_samples_than_features_matches_the_covariance_route():
    from sweeplab.data.preprocess import PCA

    x = torch.randn(30, 8) @ torch.randn(8, 60)  # rank 8 in 60 features, 30 samples: the SVD route
    few = PCA(0.99, whiten=False)
    few.fit(x)
    centred = (x - x.mean(0)).double()
    _, eigvecs = torch.linalg.eigh(centred.T @ centred / 29)
    top = eigvecs.flip(1)[:, : few.components.shape[1]].float()
    assert few.components.shape[1] <= 8
    # the same components up to sign
    assert torch.allclose((few.components.T @ top).abs().diagonal(), torch.ones(top.shape[1]), atol=1e-3)


def test_a_data_folder_that_cannot_be_written_is_said_once(tmp_path, caplog):
    from sweeplab.data.sources import _generated_mnist1d

    (tmp_path / "file").write_text("not a folder")
    with caplog.at_level("WARNING"):
        for _ in range(2):  # as two runs of a sweep in one process
            assert len(_generated_mnist1d(tmp_path / "file" / "mnist1d")["x"]) == 4000
    said = [r.message for r in caplog.records if "cannot cache MNIST-1D" in r.message]
    assert len(said) == 1 and "it is generated again for every run" in said[0]
