"""A user's own image classification data in the folder-per-class layout of torchvision's ImageFolder:
`train/<class>/<image>`, `test/<class>/<image>` and optionally `val/<class>/<image>`, in a folder or a
.tar / .tar.gz / .zip archive. Class names are the folder names, sorted. The images are decoded once
(torchvision's decoders) and cached under `data_dir` as uint8 tensors, keyed by the source's path, size
and modification time, so a changed source is decoded again and a cached one loads in a second.
"""

import contextlib
import fcntl
import hashlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Literal

import torch
from torch import Tensor
from tqdm import tqdm

from sweeplab.config import SweeplabError
from sweeplab.data.archives import IMAGE_SUFFIXES, SourceFiles, fingerprint, open_source
from sweeplab.data.registry import DATASETS
from sweeplab.data.splits import RawData
from sweeplab.files import EnvironmentFault, environment_fault, save_torch_atomic

log = logging.getLogger(__name__)

BadImages = Literal["fail", "skip"]
SPLITS = ("train", "val", "test")
CACHE_FORMAT = 1  # bump when what is cached changes, so old caches are decoded again


@DATASETS.register("image_folder")
def image_folder(
    *, root: str, path: str, image_size: int | list[int] | None = None, bad_images: BadImages = "fail"
) -> RawData:
    """`image_size`: resize every image to it (`32` or `[H, W]`); null: all must share one size.
    `bad_images`: an image that cannot be decoded stops loading (`fail`) or is left out with a warning
    (`skip`)."""
    return load_image_folder(Path(path), Path(root), _size(image_size), bad_images)


def load_image_folder(
    path: Path, cache_root: Path, size: tuple[int, int] | None = None, bad_images: BadImages = "fail"
) -> RawData:
    """The data set at `path`, from the cache when the source has not changed since it was cached."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise SweeplabError(f"dataset.path: {path} does not exist")
    options = f"{path}|{size}|{bad_images}|{CACHE_FORMAT}"
    cache = (
        cache_root / "image_folders" / f"{path.name}-{hashlib.sha256(options.encode()).hexdigest()[:12]}.pt"
    )
    key = fingerprint(path)
    with _exclusive(cache):  # processes starting together decode once; the others then read the cache
        cached = _read_cache(cache, key)
        if cached is not None:
            return cached
        raw = _decode_source(path, size, bad_images)
        _write_cache(cache, key, raw, path)
    return raw


def _size(image_size: int | list[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = [image_size] * 2 if isinstance(image_size, int) else list(image_size)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise SweeplabError(
            f"dataset.image_size: expected a positive size or [height, width], got {image_size}"
        )
    return size[0], size[1]


@contextlib.contextmanager
def _exclusive(cache: Path) -> Iterator[None]:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        lock = cache.with_name(cache.name + ".lock").open("a")
    except OSError as err:  # no cache then: decode every time, and say why
        log.warning("cannot cache decoded images in %s (%s); decoding them for every run", cache.parent, err)
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read_cache(cache: Path, key: str) -> RawData | None:
    if not cache.is_file():
        return None
    try:
        stored = torch.load(cache, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # a cache is only a copy: any fault in it means decode again
        log.warning("the image cache %s cannot be read (%s); decoding the images again", cache, err)
        return None
    if stored.get("key") != key:
        log.info("%s changed since it was cached; decoding it again", stored.get("source"))
        return None
    return RawData(**stored["data"])


def _write_cache(cache: Path, key: str, raw: RawData, source: Path) -> None:
    data = {k: v for k, v in vars(raw).items() if v is not None}
    try:
        save_torch_atomic({"key": key, "source": str(source), "data": data}, cache)
    except (OSError, EnvironmentFault) as err:
        fault = environment_fault(err, cache) or err
        log.warning("the decoded images could not be cached (%s); they are decoded again next time", fault)


def _decode_source(path: Path, size: tuple[int, int] | None, bad_images: BadImages) -> RawData:
    with open_source(path) as files:
        layout = _layout(files)
        names = [name for split in layout.values() for images in split.values() for name in images]
        log.info("decoding %d images of %s (once: they are cached)", len(names), path)
        decoded: dict[str, Tensor] = {}
        skipped: list[str] = []
        progress = tqdm(names, desc="decoding images", unit="img", disable=not sys.stderr.isatty())
        for name in progress:
            with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders for TorchCodec's;
                warnings.simplefilter("ignore", DeprecationWarning)  # they work, and are what torch ships
                image = _decode(files, name, bad_images)
            if image is None:
                skipped.append(name)
                continue
            decoded[name] = _sized(image, name, size, decoded, path)
    if not decoded:
        raise SweeplabError(f"dataset.path: {path}: none of its {len(names)} images could be decoded")
    if skipped:
        log.warning("left out %d images that cannot be decoded: %s", len(skipped), ", ".join(skipped[:5]))
    channels = max(image.shape[0] for image in decoded.values())
    tensors = {split: _stack(classes, decoded, channels) for split, classes in layout.items()}
    classes = sorted(layout["train"])
    val = tensors.get("val", (None, None))
    return RawData(*tensors["train"], *tensors["test"], classes, x_val=val[0], y_val=val[1])


def _layout(files: SourceFiles) -> dict[str, dict[str, list[str]]]:
    """{split: {class: [image paths]}} of a source, checked: train/ and test/ with the same classes, none
    empty. A source whose data sit in one top folder (`cifar10/train/...`) is read from inside it."""
    tops = {PurePosixPath(f).parts[0] for f in files.folders}
    prefix = f"{tops.pop()}/" if "train" not in tops and len(tops) == 1 else ""
    where = f"dataset.path: {files.path}"
    layout: dict[str, dict[str, list[str]]] = {}
    for split in SPLITS:
        base = f"{prefix}{split}"
        classes = sorted(
            f.removeprefix(base + "/") for f in files.folders if PurePosixPath(f).parent.as_posix() == base
        )
        if base not in files.folders:
            if split != "val":
                raise SweeplabError(
                    f"{where} has no {base}/ folder; expected train/<class>/<image> and test/<class>/<image> "
                    "(and optionally val/<class>/<image>), the layout of torchvision's ImageFolder"
                )
            continue
        if not classes:
            raise SweeplabError(f"{where}: {base}/ holds no class folders; expected {base}/<class>/<image>")
        layout[split] = {c: [n for n in files.images if n.startswith(f"{base}/{c}/")] for c in classes}
        empty = [c for c, names in layout[split].items() if not names]
        if empty:
            raise SweeplabError(
                f"{where}: {base}/{empty[0]}/ holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "add its images or remove the folder"
            )
    for split in ("val", "test"):
        if split in layout and set(layout[split]) != set(layout["train"]):
            extra, lacking = (
                sorted(set(layout[split]) - set(layout["train"])),
                sorted(set(layout["train"]) - set(layout[split])),
            )
            raise SweeplabError(
                f"{where}: {split}/ and train/ must have the same class folders; {split}/ "
                + "; ".join(
                    part
                    for part in (
                        f"has {', '.join(extra)} that train/ lacks" if extra else "",
                        f"lacks {', '.join(lacking)}" if lacking else "",
                    )
                    if part
                )
            )
    return layout


def _decode(files: SourceFiles, name: str, bad_images: BadImages) -> Tensor | None:
    """One image as uint8 (channels, H, W), grey or RGB (alpha dropped); None for a bad one to skip."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        data = torch.frombuffer(bytearray(files.read(name)), dtype=torch.uint8)
        image = decode_image(data, mode=ImageReadMode.UNCHANGED)
    except (RuntimeError, ValueError) as err:
        if bad_images == "skip":
            return None
        raise SweeplabError(
            f"dataset.path: {files.path}: {name} cannot be decoded as an image ({str(err).splitlines()[0]}); "
            "replace or delete it, or set dataset.bad_images=skip to leave out such files"
        ) from err
    if image.ndim == 4:  # an animated GIF: its first frame
        image = image[0]
    return image[:1] if image.shape[0] in (1, 2) else image[:3]


def _sized(
    image: Tensor, name: str, size: tuple[int, int] | None, decoded: dict[str, Tensor], path: Path
) -> Tensor:
    if size is not None:
        from torchvision.transforms.v2.functional import resize

        return resize(image, list(size), antialias=True) if tuple(image.shape[1:]) != size else image
    if decoded:
        first, reference = next(iter(decoded.items()))
        if image.shape[1:] != reference.shape[1:]:
            h, w = image.shape[1:]
            raise SweeplabError(
                f"dataset.path: {path}: images of different sizes: {name} is {h}x{w}, {first} is "
                f"{reference.shape[1]}x{reference.shape[2]}; set dataset.image_size=[H, W] to resize them all"
            )
    return image


def _stack(classes: dict[str, list[str]], decoded: dict[str, Tensor], channels: int) -> tuple[Tensor, Tensor]:
    """One split's images (grey ones repeated to RGB when others are colour) and labels."""
    images, labels = [], []
    for label, name in enumerate(sorted(classes)):
        for image_name in classes[name]:
            if image_name in decoded:
                images.append(decoded[image_name].expand(channels, -1, -1))
                labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)
