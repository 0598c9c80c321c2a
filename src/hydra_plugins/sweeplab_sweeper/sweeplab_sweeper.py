"""The plugin Hydra discovers: the `hydra/sweeper=sweeplab` config and a thin Sweeper that hands the
work to `sweeplab.sweeper.controller`. Hydra imports this module at every start: it imports nothing heavy."""

import logging
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from sweeplab.paths import register_resolvers
from sweeplab.sweeper.settings import SAMPLER_CLASSES, SweeperSettings

register_resolvers()
# `params` and `constraints` hold the user's own keys: open, so that `hydra.sweeper.params={...}` and
# `hydra.sweeper.constraints.params="<= 1e5"` work from the command line as in a sweep file (the sweep
# checks their keys against the config); every other key of the settings stays closed to typos
_settings = OmegaConf.structured(SweeperSettings)
for _open_map in ("params", "constraints"):
    OmegaConf.set_struct(_settings[_open_map], False)
ConfigStore.instance().store(group="hydra/sweeper", name="sweeplab", node=_settings, provider="sweeplab")
# `override hydra/sweeper/sampler: grid`, as with hydra-optuna-sweeper; options go beside the name
for _sampler in SAMPLER_CLASSES.values():
    ConfigStore.instance().store(
        group="hydra/sweeper/sampler",
        name=_sampler,
        node={"name": _sampler, "seed": None},
        provider="sweeplab",
    )


class SweeplabSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        plain = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in settings.items()}
        self.settings = SweeperSettings(**plain)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        if self.settings.study_name is None:  # hydra-optuna-sweeper's default: a name of the app's own
            self.settings.study_name = str(config.hydra.job.name)

    def sweep(self, arguments: list[str]) -> None:
        from sweeplab.faults import expected_fault
        from sweeplab.sweeper.controller import SweepController

        try:
            SweepController(self.settings, self.hydra_context, self.task_function, self.config).run(arguments)
        except Exception as err:  # the user's input or the machine's fault: its message, no traceback
            expected = expected_fault(err, self._storage_url())
            if expected is None:
                raise
            logging.getLogger("sweeplab.sweep").error("%s", expected[1])
            raise SystemExit(expected[0]) from None

    def _storage_url(self) -> str | None:
        """The study's storage, for a storage failure's message (None: the name was not one)."""
        from sweeplab.config import SweeplabError
        from sweeplab.engine.reference import StudyRef

        try:
            return StudyRef.of(self.settings.study_name, self.settings.storage).url
        except SweeplabError:
            return None
