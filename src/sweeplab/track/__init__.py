"""Trackers: a run's numbers shown where people already look, besides its own folder (the `logger`
config group: `logger=tensorboard`, several as `logger=[tensorboard,...]`).

A tracker gets each history row as it is recorded and the run's summary when it ends (`RunRecorder`
feeds it, so single runs, packed members and replicates each log their own run). Tracking never costs a
result: a tracker that fails is dropped for the rest of the run with one warning line saying what was
not logged, and the run goes on with all its records in its folder.
"""

import importlib.util
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

from sweeplab.config import MACHINE_KEYS, ConfigError, to_dict
from sweeplab.registry import Registry

log = logging.getLogger(__name__)


class Tracker(Protocol):
    def log(self, row: dict[str, float]) -> None: ...

    def finish(self, summary: dict[str, Any]) -> None: ...


LOGGERS: Registry = Registry("logger")


def require_package(package: str, extra: str, field: str) -> None:
    """A logger whose package is missing is refused before any work, with the line that adds it."""
    if importlib.util.find_spec(package) is None:
        raise ConfigError(
            field, f"needs the {package} package, which is not installed: pip install 'sweeplab[{extra}]'"
        )


def _options(node: Mapping | None) -> dict[str, dict[str, Any]]:
    return {name: to_dict(options or {}) for name, options in to_dict(node or {}).items()}


def _build(name: str, options: dict[str, Any], run_dir: Path | None, cfg: DictConfig | None) -> Any:
    LOGGERS.get(name, f"logger.{name}")  # an unknown one named as the user wrote it, not as `.name`
    return LOGGERS.build({"name": name, **options}, f"logger.{name}", run_dir=run_dir, cfg=cfg)


def check_loggers(node: Mapping | None) -> None:
    """Raises ConfigError for an unknown logger, a wrong option or a missing package (no run needed)."""
    for name, options in _options(node).items():
        _build(name, options, None, None)


class Trackers:
    """The run's trackers, each dropped at its first failure (with one warning line)."""

    def __init__(self, trackers: dict[str, Tracker], run_dir: Path) -> None:
        self.trackers, self.run_dir = trackers, run_dir

    def log(self, row: dict[str, float]) -> None:
        self._each("log", row, f"step {row.get('step', '?')} and after")

    def finish(self, summary: dict[str, Any]) -> None:
        self._each("finish", summary, "its final metrics")

    def _each(self, method: str, argument: Any, what: str) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                getattr(tracker, method)(argument)
            except Exception as err:  # never the run's own records: those are written before this
                del self.trackers[name]
                describe = getattr(tracker, "describe", None)
                why = describe(err) if describe else f"{type(err).__name__}: {str(err)[:200]}"
                recovery = getattr(tracker, "recovery", "")
                log.warning(
                    "logger %s failed (%s): %s of %s not logged there; the run goes on with its records "
                    "in its folder%s",
                    name,
                    why,
                    what,
                    self.run_dir,
                    f"; {recovery}" if recovery else "",
                )


def open_trackers(cfg: DictConfig, run_dir: Path) -> Trackers | None:
    """The trackers of `cfg.logger` for the run writing into `run_dir`; None when there are none."""
    options = _options(cfg.get("logger"))
    if not options:
        return None
    trackers = {name: _build(name, values, run_dir, cfg) for name, values in options.items()}
    return Trackers(trackers, run_dir)


SKIPPED = ("hydra", "sweep", "size", *MACHINE_KEYS)  # MACHINE_KEYS holds "logger"


def run_values(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The run's hyperparameters as a tracker shows them: the keys its command line and its trial set
    (Hydra's `.hydra/overrides.yaml` of its folder, or of the trial's above a replicate's), each with the
    run's own value, and its seed; a config group by its option's name."""
    keys = ["trainer.seed"]
    for folder in (run_dir, run_dir.parent):
        path = folder / ".hydra" / "overrides.yaml"
        if path.is_file():
            overrides = OmegaConf.load(path)
            keys += [str(o).split("=", 1)[0].lstrip("+~") for o in overrides]  # type: ignore[union-attr]
            break
    values: dict[str, Any] = {}
    for key in dict.fromkeys(keys):
        if any(key == s or key.startswith(s + ".") for s in SKIPPED):
            continue
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, DictConfig):  # a group: its option's name
            value = value.get("name")
        if value is not None:
            plain = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            values[key] = plain if isinstance(plain, bool | int | float | str) else str(plain)
    return values


from sweeplab.track import mlflow as _mlflow  # noqa: E402,F401  (register the loggers)
from sweeplab.track import tensorboard as _tensorboard  # noqa: E402,F401
