"""The files of an image data set, read from a folder or a .tar / .tar.gz / .zip archive.

Archives are read in place, never extracted, so no member can land outside the cache folder; an archive
whose member paths point outside its root (absolute paths, `..`) or that holds links is refused all the
same, since it was not made as a data set is.
"""

import contextlib
import hashlib
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sweeplab.config import SweeplabError

# What torchvision.io.decode_image reads without optional libraries.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp"})


@dataclass
class SourceFiles:
    """The image files of a source, by their path inside it (`train/cat/0001.jpg`), and its folders."""

    path: Path
    images: list[str]
    folders: set[str]
    read: Callable[[str], bytes]


@contextlib.contextmanager
def open_source(path: Path) -> Iterator[SourceFiles]:
    """The image files of a folder or an archive (that exists); the archive stays open inside the block."""
    if path.is_dir():
        yield _folder(path)
    elif zipfile.is_zipfile(path):
        with _readable(path), zipfile.ZipFile(path) as archive:
            yield _zip(path, archive)
    elif _is_tar(path):
        with _readable(path):
            yield _tar(path)
    else:
        raise SweeplabError(
            f"dataset.path: {path} is neither a folder nor a .tar, .tar.gz or .zip archive "
            "(or the archive is truncated)"
        )


def fingerprint(path: Path) -> str:
    """What changes when the source does: the size and modification time of the archive, or of every
    file in the folder (a folder's own time misses a file edited in place)."""
    if not path.is_dir():
        stat = path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha256()
    for here, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(here, name))
            digest.update(f"{here}/{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, zlib.error):  # a truncated .gz
        return False


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Archive read errors, named with the archive (truncated, corrupt, or not what its name says)."""
    try:
        yield
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise SweeplabError(
            f"dataset.path: {path} cannot be read as an archive ({err}); is it complete?"
        ) from err


def _folder(root: Path) -> SourceFiles:
    images, folders = [], set()
    for here, dirs, files in os.walk(root):
        dirs.sort()
        rel = Path(here).relative_to(root).as_posix()
        if rel != ".":
            folders.add(rel)
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                images.append(name if rel == "." else f"{rel}/{name}")
    return SourceFiles(root, images, folders, lambda name: (root / name).read_bytes())


def _zip(path: Path, archive: zipfile.ZipFile) -> SourceFiles:
    members: dict[str, str] = {}  # normalised name -> the archive's own
    folders = set()
    for info in archive.infolist():
        name = _inside(path, info.filename)
        if info.is_dir():
            folders.add(name)
        elif (info.external_attr >> 16) & 0o170000 == 0o120000:  # a symlink stored by Info-ZIP
            raise SweeplabError(f"dataset.path: {path} holds a link ({info.filename}); give plain files")
        elif _is_image(name):
            members[name] = info.filename
    folders |= _parents(members)
    return SourceFiles(path, sorted(members), folders, lambda name: archive.read(members[name]))


def _tar(path: Path) -> SourceFiles:
    """A tar is read once, in order (a compressed one cannot seek back cheaply), into memory."""
    contents: dict[str, bytes] = {}
    folders = set()
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            name = _inside(path, member.name)
            if member.isdir():
                folders.add(name)
            elif member.issym() or member.islnk():
                link = f"{member.name} -> {member.linkname}"
                raise SweeplabError(f"dataset.path: {path} holds a link ({link}); give plain files")
            elif member.isfile() and _is_image(name):
                contents[name] = archive.extractfile(member).read()  # type: ignore[union-attr]
    folders |= _parents(contents)
    return SourceFiles(path, sorted(contents), folders, contents.__getitem__)


def _inside(archive: Path, name: str) -> str:
    """The member's path, normalised; one that would land outside the archive's root is refused."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (posix.parts and posix.parts[0].endswith(":")):
        raise SweeplabError(
            f"dataset.path: {archive} holds {name!r}, a path outside the archive's root; "
            "refusing it (a data set's archive never needs one)"
        )
    return posix.as_posix().strip("/").removeprefix("./")


def _is_image(name: str) -> bool:
    base = PurePosixPath(name).name
    return PurePosixPath(base).suffix.lower() in IMAGE_SUFFIXES and not base.startswith(".")


def _parents(names: Iterable[str]) -> set[str]:
    return {parent.as_posix() for name in names for parent in PurePosixPath(name).parents if parent.parts}
