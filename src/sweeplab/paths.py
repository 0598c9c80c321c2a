"""Where sweeplab's own config folder is: inside the package when installed from a wheel, else the
repository's `conf/` (an editable install, where users edit the configs in place)."""

from pathlib import Path


def config_dir() -> Path:
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"
