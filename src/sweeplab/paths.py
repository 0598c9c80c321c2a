"""Where sweeplab's own config folder is (inside the package when installed from a wheel, else the
repository's `conf/`, where users edit the configs in place), and the config resolvers for paths."""

import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf


def config_dir() -> Path:
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"


def register_resolvers() -> None:
    """`${abspath:data}`: a path made absolute against the folder the command was started in, so a job
    that changes folder (hydra.job.chdir=true) reads the same data. `${pid:}`: this process's id, which
    keeps the folders of runs started in the same second apart."""
    if not OmegaConf.has_resolver("abspath"):
        OmegaConf.register_new_resolver("abspath", _abspath)
        OmegaConf.register_new_resolver("pid", os.getpid)


def _abspath(path: str) -> str:
    start = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()
    return os.path.join(start, os.path.expanduser(str(path)))
