"""Reading a run folder's records back (its config, history, summary and best checkpoint), and naming
each that is missing or damaged, so a report or an export says so instead of passing over it."""

import csv
import json
import zipfile
from pathlib import Path
from typing import Any

import yaml

# What a finished run leaves; a run stopped early (pruned, diverged) may have no best checkpoint.
FINISHED = ("config.yaml", "history.csv", "summary.json", "best.pt")
STOPPED_EARLY = ("config.yaml", "history.csv", "summary.json")


class DamagedRecord(Exception):
    """A record that cannot be read: its message names the file and what is wrong with it."""


def read_history(folder: Path) -> list[dict[str, float]]:
    """history.csv's rows, each value a number; DamagedRecord when it is missing, cut mid-row or holds
    what is not a number."""
    path = folder / "history.csv"
    text = _text(path)
    if text and not text.endswith("\n"):
        raise DamagedRecord(f"{path} is cut off mid-row (its last line is incomplete)")
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise DamagedRecord(f"{path} is empty")
    header, body = rows[0], rows[1:]
    parsed = []
    for number, row in enumerate(body, start=2):
        try:
            if len(row) != len(header):
                raise ValueError
            parsed.append({k: float(v) for k, v in zip(header, row, strict=True)})
        except ValueError:
            raise DamagedRecord(f"{path} line {number} is not a row of {len(header)} numbers") from None
    return parsed


def read_summary(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    try:
        summary = json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise DamagedRecord(f"{path} is damaged (not JSON: {err.msg} at line {err.lineno})") from None
    if not isinstance(summary, dict):
        raise DamagedRecord(f"{path} is damaged (not a JSON object)")
    return summary


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.yaml"
    try:
        config = yaml.safe_load(_text(path))
    except yaml.YAMLError:
        raise DamagedRecord(f"{path} is damaged (not YAML)") from None
    if not isinstance(config, dict):
        raise DamagedRecord(f"{path} is damaged (not a config)")
    return config


def check_checkpoint(folder: Path) -> None:
    """best.pt is a whole torch checkpoint (a zip archive whose every member matches its checksum)."""
    path = folder / "best.pt"
    if not path.is_file():
        raise DamagedRecord(f"{path} is missing")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DamagedRecord(f"{path} is damaged ({err})") from None
    if bad is not None:
        raise DamagedRecord(f"{path} is damaged (its part {bad} fails its checksum)")


def problems(folder: Path, finished: bool) -> list[str]:
    """What is missing or damaged in a run's folder: every record of a `finished` run (COMPLETE), else
    those of a run stopped early (its best checkpoint checked only where it has one)."""
    checks = {
        "config.yaml": read_config,
        "history.csv": read_history,
        "summary.json": read_summary,
        "best.pt": check_checkpoint,
    }
    wanted = FINISHED if finished or (folder / "best.pt").exists() else STOPPED_EARLY
    found = []
    for name in wanted:
        try:
            checks[name](folder)
        except DamagedRecord as err:
            found.append(str(err))
    return found


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise DamagedRecord(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DamagedRecord(f"{path} cannot be read ({getattr(err, 'strerror', None) or err})") from None
