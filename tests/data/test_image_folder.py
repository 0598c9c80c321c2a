"""Image data in the folder-per-class layout, from folders and archives written here in JPEG and PNG."""

import io
import logging
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_png

from conftest import SHARED_DATA
from support import CLASSES, image, make_folder, write_image
from sweeplab.config import SweeplabError
from sweeplab.data import image_folder as image_folder_module
from sweeplab.data import load_data
from sweeplab.data.image_folder import load_image_folder
from sweeplab.data.vision import CIFAR10_CLASSES


def pack(folder: Path, archive: Path) -> Path:
    """The folder's contents as a .tar, .tar.gz or .zip archive (paths relative to the folder)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive, "w") as z:
            for f in files:
                z.write(f, f.relative_to(folder).as_posix())
    else:
        with tarfile.open(archive, "w:gz" if archive.name.endswith(".gz") else "w") as t:
            for f in files:
                t.add(f, f.relative_to(folder).as_posix())
    return archive


def load(path: Path, cache: Path, **options):
    return load_image_folder(path, cache, **options)


def test_folder_of_pngs_reads_classes_labels_and_pixels_exactly(tmp_path: Path) -> None:
    raw = load(make_folder(tmp_path / "set"), tmp_path / "cache")
    assert raw.class_names == CLASSES
    assert raw.x_train.dtype == torch.uint8 and raw.x_train.shape == (12, 3, 8, 6)
    assert raw.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert raw.x_test.shape == (6, 3, 8, 6) and raw.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(raw.x_train[5], image(1, 1))  # PNG is lossless
    assert raw.x_val is None


@pytest.mark.parametrize("name", ["set.tar", "set.tar.gz", "set.zip"])
def test_archives_read_as_the_folder_does(tmp_path: Path, name: str) -> None:
    folder = make_folder(tmp_path / "set")
    from_folder = load(folder, tmp_path / "cache")
    from_archive = load(pack(folder, tmp_path / name), tmp_path / "cache")
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(from_archive, field), getattr(from_folder, field))
    assert from_archive.class_names == CLASSES


def test_jpeg_grey_and_mixed_colour(tmp_path: Path) -> None:
    grey = load(make_folder(tmp_path / "grey", suffix=".jpg", channels=1), tmp_path / "cache")
    assert grey.x_train.shape == (12, 1, 8, 6)
    assert (grey.x_train[5].int() - image(1, 1, channels=1).int()).abs().max() <= 8  # JPEG q95: close
    mixed = make_folder(tmp_path / "mixed", suffix=".jpg")
    write_image(mixed / "train" / "cat" / "0009.png", image(0, 9, channels=1))
    raw = load(mixed, tmp_path / "cache")
    assert raw.x_train.shape == (13, 3, 8, 6)  # the grey image repeated to three channels
    assert torch.equal(raw.x_train[4], image(0, 9, channels=1).expand(3, -1, -1))


def test_data_in_one_top_folder_and_a_val_split(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "outer" / "flowers", {"train": 3, "val": 2, "test": 1})
    raw = load(pack(tmp_path / "outer", tmp_path / "flowers.zip"), tmp_path / "cache")
    assert raw.x_train.shape[0] == 9 and raw.x_val.shape[0] == 6 and raw.x_test.shape[0] == 3
    node = {"name": "image_folder", "root": str(tmp_path / "cache"), "path": str(folder)}
    splits = load_data({**node, "val_fraction": 0.5, "split_seed": 0})
    assert len(splits.y_train) == 9 and torch.equal(splits.x_val, raw.x_val)  # the source's own val split


def test_resized_to_the_configured_size(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "set")
    write_image(folder / "train" / "dog" / "big.png", image(1, 0, size=(16, 12)))
    with pytest.raises(SweeplabError, match=r"train/dog/big.png is 16x12, .* is 8x6; set dataset.image_size"):
        load(folder, tmp_path / "cache")
    raw = load(folder, tmp_path / "cache", size=(4, 4))
    assert raw.x_train.shape == (13, 3, 4, 4) and raw.x_test.shape == (6, 3, 4, 4)


def test_cached_decode_is_reused_until_the_source_changes(tmp_path: Path, monkeypatch, caplog) -> None:
    archive = pack(make_folder(tmp_path / "set"), tmp_path / "set.tar")
    first = load(archive, tmp_path / "cache")
    [cache] = (tmp_path / "cache" / "image_folders").glob("*.pt")
    decode = image_folder_module._decode_source
    calls = []
    monkeypatch.setattr(image_folder_module, "_decode_source", lambda *a: calls.append(a) or decode(*a))
    again = load(archive, tmp_path / "cache")
    assert calls == [] and torch.equal(again.x_train, first.x_train)
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the archive replaced
    load(archive, tmp_path / "cache")
    assert len(calls) == 1
    cache.write_bytes(cache.read_bytes()[:100])  # a cache cut short (disk full, a kill)
    with caplog.at_level(logging.WARNING):
        healed = load(archive, tmp_path / "cache")
    assert len(calls) == 2 and "cannot be read" in caplog.text and torch.equal(healed.x_train, first.x_train)


def test_unwritable_cache_folder_still_loads(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would go")
    with caplog.at_level(logging.WARNING):
        raw = load(make_folder(tmp_path / "set"), blocker)
    assert raw.x_train.shape[0] == 12 and "cannot cache decoded images" in caplog.text


def test_corrupt_image_fails_naming_it_or_is_skipped(tmp_path: Path, caplog) -> None:
    folder = make_folder(tmp_path / "set", suffix=".jpg")
    bad = folder / "train" / "dog" / "0002.jpg"
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(
        SweeplabError, match=r"train/dog/0002.jpg cannot be decoded .* dataset.bad_images=skip"
    ):
        load(folder, tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        raw = load(folder, tmp_path / "cache", bad_images="skip")
    assert raw.x_train.shape[0] == 11 and raw.y_train.tolist().count(1) == 3
    assert "left out 1 images" in caplog.text and "train/dog/0002.jpg" in caplog.text


def test_layout_faults_are_named(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "set")
    (folder / "train" / "fox").mkdir()
    with pytest.raises(SweeplabError, match=r"train/fox/ holds no images"):
        load(folder, tmp_path / "cache")
    (folder / "train" / "fox").rmdir()
    (folder / "test" / "emu").rename(folder / "test" / "owl")
    with pytest.raises(
        SweeplabError, match=r"same class folders; test/ has owl that train/ lacks; lacks emu"
    ):
        load(folder, tmp_path / "cache")
    only_train = make_folder(tmp_path / "only", {"train": 1})
    with pytest.raises(SweeplabError, match=r"has no test/ folder; expected train/<class>/<image>"):
        load(only_train, tmp_path / "cache")
    with pytest.raises(SweeplabError, match=r"does not exist"):
        load(tmp_path / "nowhere.zip", tmp_path / "cache")
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(SweeplabError, match=r"neither a folder nor a .tar, .tar.gz or .zip"):
        load(tmp_path / "notes.txt", tmp_path / "cache")


def test_truncated_archive_is_named(tmp_path: Path) -> None:
    archive = pack(make_folder(tmp_path / "set"), tmp_path / "set.tar.gz")
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(SweeplabError, match=r"set.tar.gz"):
        load(archive, tmp_path / "cache")


def _png_bytes() -> bytes:
    return encode_png(image(0, 0)).numpy().tobytes()


@pytest.mark.parametrize("member", ["../escaped.png", "/tmp/absolute.png", "train/../../up.png"])
@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_archive_paths_outside_its_root_are_refused(tmp_path: Path, member: str, kind: str) -> None:
    archive = pack(make_folder(tmp_path / "set"), tmp_path / f"set.{kind}")
    if kind == "zip":
        with zipfile.ZipFile(archive, "a") as z:
            z.writestr(member, _png_bytes())
    else:
        with tarfile.open(archive, "a") as t:
            info = tarfile.TarInfo(member)
            info.size = len(_png_bytes())
            t.addfile(info, io.BytesIO(_png_bytes()))
    with pytest.raises(SweeplabError, match="a path outside the archive's root"):
        load(archive, tmp_path / "cache")
    assert not (tmp_path / "escaped.png").exists() and not Path("/tmp/absolute.png").exists()


def test_links_in_a_tar_are_refused(tmp_path: Path) -> None:
    archive = pack(make_folder(tmp_path / "set"), tmp_path / "set.tar")
    with tarfile.open(archive, "a") as t:
        info = tarfile.TarInfo("train/cat/link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    with pytest.raises(SweeplabError, match=r"holds a link \(train/cat/link.png -> /etc/passwd\)"):
        load(archive, tmp_path / "cache")


def test_cifar10_reads_a_folder_copy_and_refuses_other_data(tmp_path: Path, make_cfg) -> None:
    for split, count in (("train", 3), ("test", 1)):
        for label, name in enumerate(CIFAR10_CLASSES):
            for i in range(count):
                write_image(tmp_path / "c10" / split / name / f"{i}.png", image(label, i, size=(32, 32)))
    cfg = make_cfg("dataset=cifar10", f"dataset.path={tmp_path / 'c10'}", "dataset.val_fraction=0.2")
    splits = load_data(cfg.dataset)
    assert splits.input_shape == (3, 32, 32) and splits.class_names == CIFAR10_CLASSES
    assert len(splits.y_train) + len(splits.y_val) == 30 and len(splits.y_test) == 10
    cfg = make_cfg("dataset=cifar10", f"dataset.path={make_folder(tmp_path / 'other')}")
    with pytest.raises(SweeplabError, match=r"is not a copy of CIFAR-10: it has classes cat, dog, emu"):
        load_data(cfg.dataset)


def test_image_folder_trains_from_the_command_line(tmp_path: Path, sweeplab) -> None:
    folder = make_folder(tmp_path / "set", {"train": 10, "test": 3}, suffix=".jpg")
    done = sweeplab(
        "train",
        "dataset=image_folder",
        f"dataset.path={folder}",
        "trainer.max_steps=3",
        "trainer.batch_size=8",
    )
    assert done.returncode == 0, done.stdout
    assert "completed" in done.stdout
    missing = sweeplab("train", "dataset=image_folder", "trainer.max_steps=3")
    assert missing.returncode == 2 and "dataset.path" in missing.stdout and "Traceback" not in missing.stdout
    typo = sweeplab("train", "-m", "dataset=cifar10", "dataset.path=no/such.tar.gz", "trainer.seed=0,1")
    assert typo.returncode == 2 and "Traceback" not in typo.stdout
    assert (
        "sweep refused (nothing was run or stored): dataset.path: no/such.tar.gz does not exist"
        in typo.stdout
    )


CIFAR10_JPEG = SHARED_DATA / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason=f"{CIFAR10_JPEG} absent")
def test_the_cifar10_jpeg_copy(tmp_path: Path) -> None:
    """All 60,000 images, 5,000 / 1,000 per class, with the channel statistics ../shared/README.md gives."""
    raw = load(CIFAR10_JPEG, tmp_path)
    assert raw.x_train.shape == (50000, 3, 32, 32) and raw.x_test.shape == (10000, 3, 32, 32)
    assert raw.class_names == CIFAR10_CLASSES
    assert raw.y_train.bincount().tolist() == [5000] * 10 and raw.y_test.bincount().tolist() == [1000] * 10
    pixels = raw.x_train.float().div(255)
    assert torch.allclose(pixels.mean((0, 2, 3)), torch.tensor([0.4913, 0.4821, 0.4465]), atol=1e-4)
    assert torch.allclose(pixels.std((0, 2, 3)), torch.tensor([0.2452, 0.2428, 0.2606]), atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason=f"{CIFAR10_JPEG} absent")
def test_readme_commands_on_the_cifar10_jpeg_copy(sweeplab, tmp_path: Path) -> None:
    """The README's two commands, as a smoke run: the reference ablation on the real images, reported."""
    args = (
        "sweep=cifar10_mlp_ablation",
        "size=smoke",
        f"dataset.path={CIFAR10_JPEG}",
        "trainer.progress=false",
    )
    run = sweeplab("train", *args)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "this run: 16 trials (16 COMPLETE)" in run.stdout
    report = sweeplab("report", "sweep=cifar10_mlp_ablation", "size=smoke")
    assert report.returncode == 0, report.stdout[-3000:]
    index = (tmp_path / "outputs" / "smoke" / "reports" / "cifar10_mlp_ablation" / "index.md").read_text()
    assert f"data: cifar10 (from {CIFAR10_JPEG})" in index
