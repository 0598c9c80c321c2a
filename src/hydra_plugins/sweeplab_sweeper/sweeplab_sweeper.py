"""The plugin Hydra discovers: the `hydra/sweeper=sweeplab` config and a thin Sweeper that hands the
work to `sweeplab.sweep.controller`. Hydra imports this module at every start: it imports nothing heavy."""

import logging
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from sweeplab.sweep.settings import SweeperSettings

ConfigStore.instance().store(
    group="hydra/sweeper", name="sweeplab", node=SweeperSettings, provider="sweeplab"
)


class SweeplabSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        plain = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in settings.items()}
        self.settings = SweeperSettings(**plain)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def sweep(self, arguments: list[str]) -> None:
        from sweeplab.config import SweeplabError
        from sweeplab.sweep.controller import SweepController

        try:
            SweepController(self.settings, self.hydra_context, self.task_function, self.config).run(arguments)
        except SweeplabError as err:  # the user's input: its message, no traceback
            logging.getLogger("sweeplab.sweep").error("%s", err)
            raise SystemExit(2) from None
