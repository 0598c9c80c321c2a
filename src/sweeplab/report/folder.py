"""The folder a report is written into, and the one rule it keeps: a report removes only files that a
report wrote (listed, with their hashes, in the folder's manifest) and never loses what was there.

The new report is written whole into a hidden sibling folder (`.NAME.new-PID`), then swapped with the
old one in one step (Linux's renameat2 RENAME_EXCHANGE; elsewhere two renames, which the next report
repairs if a kill falls between them). Files of the old folder that no report wrote (the user's notes,
say) are carried into the new one as hard links before the swap, so they stay in place; files a
report wrote and the user edited since are replaced only with `--force`, and named. The old folder is
checked again after the swap: a file that appeared or changed meanwhile swaps the old folder back.
Leftovers of a report that was killed are repaired or cleaned up by the next one, by the same rule.
"""

import ctypes
import errno
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sweeplab.config import SweeplabError
from sweeplab.engine.owner import pid_exists
from sweeplab.files import write_atomic

MANIFEST = ".sweeplab-report.json"  # the files a report wrote, with their hashes
WRITING = ".sweeplab-report-writing"  # in a new folder until it is complete: all of it is a report's


@dataclass
class Contents:
    """A report folder's files, as a report sees them."""

    written: dict[str, str] = field(default_factory=dict)  # a report's files, unchanged: path -> hash
    edited: dict[str, str] = field(default_factory=dict)  # a report's files, changed since: path -> hash
    foreign: dict[str, str] = field(default_factory=dict)  # files no report wrote: path -> hash


def check_out(out: Path, storages: list[Path]) -> Path:
    """The report folder `out`, made absolute, refused (even with --force) where a report would mix with
    what it must never replace: `/`, the home folder, the folder the command runs in or one above it,
    a project's root, a folder holding a study's storage, or a file."""
    folder = Path(os.path.abspath(out))
    here = Path.cwd()
    why = None
    if folder == Path(folder.anchor):
        why = "it is the root of the filesystem"
    elif folder == Path.home():
        why = "it is your home folder"
    elif folder == here or folder in here.parents:
        why = "it is the folder this command runs in, or one above it"
    elif any((folder / marker).exists() for marker in ("pyproject.toml", ".git", "setup.py")):
        why = "it is the root of a project (it holds pyproject.toml, .git or setup.py)"
    elif folder.exists() and not folder.is_dir():
        why = "it is a file"
    else:
        held = [s for s in storages if Path(os.path.abspath(s)).is_relative_to(folder)]
        if held:
            why = f"it holds {os.path.abspath(held[0])}, where studies are stored"
    if why:
        raise SweeplabError(
            f"--out {out}: {why}; a report needs a folder of its own (e.g. --out reports/NAME). "
            "Nothing was written"
        )
    return folder


@contextmanager
def report_folder(out: Path, force: bool, keep: Path | None = None) -> Iterator[Path]:
    """A new folder to write the report into, swapped in for `out` once the report is complete.
    `keep`: a file in `out` (the notes the report reads) that may stay without --force."""
    repair_leftovers(out)
    before = inspect(out)
    foreign = {p for p in before.foreign if out / p != keep}
    if not force and (foreign or before.edited):
        _refuse(out, sorted(foreign | set(before.edited)))
    new = out.with_name(f".{out.name}.new-{os.getpid()}")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    (new / WRITING).touch()
    swapped = False
    try:
        yield new
        written = {p: _digest(new / p) for p in _files(new) if p != WRITING}
        write_atomic(new / MANIFEST, json.dumps(written, indent=1) + "\n")
        now = inspect(out)  # again, at the swap: what changed while the report was written counts too
        changed = {p for p, h in now.edited.items() if before.edited.get(p) != h}
        if changed and not force:
            _refuse(out, sorted(changed), while_writing=True)
        collide = sorted(p for p in now.foreign if p in written)
        if collide:
            raise SweeplabError(
                f"{out / collide[0]} was not written by a report, and the new report has a file of that "
                f"name: move it, then run the report again. Nothing was replaced"
            )
        for path in now.foreign:  # the user's files stay where they are, in the new folder
            _carry(out / path, new / path)
        (new / WRITING).unlink()
        old = _swap(out, new)
        swapped = True
        if old is not None:
            _finish(out, old, now)
        _say_replaced(out, now, force)
    finally:
        if not swapped:  # a report's files and links to the user's: nothing of the user's is lost
            shutil.rmtree(new, ignore_errors=True)


def inspect(folder: Path) -> Contents:
    """Which of the folder's files a report wrote (per its manifest) and which it did not."""
    contents = Contents()
    if not folder.is_dir():
        return contents
    try:
        listed = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        listed = {}
    for path in _files(folder):
        if path == MANIFEST:
            continue
        digest = _digest(folder / path)
        kind = contents.foreign if path not in listed else contents.written
        if path in listed and listed[path] != digest:
            kind = contents.edited
        kind[path] = digest
    return contents


def _files(folder: Path) -> list[str]:
    """Every file below `folder`, and every symbolic link (a link is the user's: kept as a link)."""
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_symlink() or p.is_file()
    )


def _digest(path: Path) -> str:
    if path.is_symlink():
        return f"symlink to {os.readlink(path)}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refuse(out: Path, paths: list[str], while_writing: bool = False) -> None:
    shown = ", ".join(str(out / p) for p in paths[:5]) + (" ..." if len(paths) > 5 else "")
    if while_writing:
        raise SweeplabError(
            f"{shown} changed while the report was written: nothing was replaced, your changes are kept. "
            "Run the report again (--force replaces report files you edited)"
        )
    raise SweeplabError(
        f"{out} holds files this report did not write, or that were edited since: {shown}. Nothing "
        "was written. Choose another folder with --out, or write into it with --force (files no report "
        "wrote are kept; report files you edited are replaced)"
    )


def _carry(source: Path, target: Path) -> None:
    """`source` into the new folder as a hard link (the same file), or a copy where links are refused."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        target.symlink_to(os.readlink(source))
        return
    try:
        os.link(source, target)
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, target)


def _swap(out: Path, new: Path) -> Path | None:
    """Put `new` in place of `out`; returns where the old folder went (None if there was none)."""
    if not out.exists():
        new.rename(out)
        return None
    if _exchange(out, new):
        return new
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.rename(old)
    new.rename(out)  # a kill before this line: the next report puts `old` back (repair_leftovers)
    return old


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux renameat2 RENAME_EXCHANGE); False where that is missing."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_cwd, exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # a filesystem without it
        return False
    raise OSError(code, os.strerror(code), str(a))


def _finish(out: Path, old: Path, expected: Contents) -> None:
    """The old folder, now swapped out: if a file appeared or changed in it since the last look, the
    swap is undone; otherwise what a report wrote, and the links of carried files, are removed."""
    late = inspect(old)
    known = {**expected.written, **expected.edited, **expected.foreign}
    changed = sorted(
        p for p, h in {**late.written, **late.edited, **late.foreign}.items() if known.get(p) != h
    )
    if changed:
        if not _exchange(out, old):
            held = out.with_name(f".{out.name}.held-{os.getpid()}")
            out.rename(held)
            old.rename(out)
            shutil.rmtree(held)  # a report's new folder: every file in it is a report's or a link
        else:
            shutil.rmtree(old)
        _refuse(out, changed, while_writing=True)
    leftover = _clean(old, out, replaced=expected.edited)
    if leftover:
        print(
            f"warning: kept {old}: it holds files no report wrote ({', '.join(leftover[:3])})",
            file=sys.stderr,
        )


def _clean(old: Path, current: Path, replaced: dict[str, str] | None = None) -> list[str]:
    """Remove from `old` the files a report wrote (unchanged, per its manifest, or as edited when the
    user let them be `replaced` with --force) and the links of files carried into `current`; then the
    folder itself if nothing else is left. Returns what is left."""
    replaced = replaced or {}
    try:
        listed = json.loads((old / MANIFEST).read_text())
    except (OSError, ValueError):
        listed = {}
    left = []
    for path in _files(old):
        file = old / path
        twin = current / path
        if file.is_symlink():  # carried as a link of its own
            linked = twin.is_symlink() and os.readlink(twin) == os.readlink(file)
        else:
            linked = twin.is_file() and not twin.is_symlink() and os.path.samefile(file, twin)
        if linked or path == MANIFEST or _digest(file) in (listed.get(path), replaced.get(path)):
            file.unlink()
        else:
            left.append(path)
    if not left:
        shutil.rmtree(old)
    return left


def repair_leftovers(out: Path) -> None:
    """Repair or clean up what killed reports left beside `out`: a folder swapped out but never put
    back (two renames cut in half), or never cleaned up. Folders of live reports are left alone."""
    for leftover in sorted(out.parent.glob(f".{out.name}.*-*")) if out.parent.is_dir() else []:
        kind, _, pid = leftover.name.removeprefix(f".{out.name}.").rpartition("-")
        if kind not in ("new", "old", "held") or not pid.isdigit() or pid_exists(int(pid)):
            continue
        if (leftover / WRITING).exists():  # a report cut short while it was written: all of it ours
            shutil.rmtree(leftover)
        elif not out.exists():  # cut between two renames: put the complete folder back
            leftover.rename(out)
        else:
            left = _clean(leftover, out)
            if left:
                print(
                    f"warning: {leftover} (left by a report that was stopped) holds files no report "
                    f"wrote: {', '.join(left[:3])}; kept",
                    file=sys.stderr,
                )


def _say_replaced(out: Path, contents: Contents, force: bool) -> None:
    if force and contents.edited:
        print(f"replaced report files you had edited: {', '.join(sorted(contents.edited))}")
    if contents.foreign:
        print(f"kept files no report wrote, in {out}: {', '.join(sorted(contents.foreign)[:5])}")
