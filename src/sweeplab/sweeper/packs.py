"""Which trials can join a pack (`hydra.sweeper.pack`): those whose composed config differs from the
first one's only in the keys the task calls packable (its `Packing.keys`)."""

import json
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig
from optuna.trial import FixedTrial

from sweeplab.config import SweeplabError, structure
from sweeplab.sweeper.composer import TrialComposer
from sweeplab.sweeper.task import Packing


class PackMatcher:
    def __init__(self, composer: TrialComposer, packing: Packing | None, study_name: str) -> None:
        self.composer, self.packing, self.study_name = composer, packing, study_name
        self._structures: dict[str, str] = {}

    def matcher(
        self, first: dict[str, Any], config: DictConfig
    ) -> tuple[Callable[[dict[str, Any]], bool], dict[str, Any]]:
        """For a pack started by a trial with values `first` and composed `config`: whether other
        values fit it, and first's structural values (to fix when the sampler draws more)."""
        assert self.packing is not None
        packable = self.packing.keys(config)
        structural = {k: v for k, v in first.items() if k not in packable}

        def fits(params: dict[str, Any]) -> bool:
            if {k: v for k, v in params.items() if k not in packable} == structural:
                return True  # the same values but packable ones: nothing to compose
            return self._structure(params) == self._structure(first)

        return fits, structural

    def _structure(self, params: dict[str, Any]) -> str:
        """The composed config of a trial with these values, but its packable keys (once per values):
        two setups that differ only in a rate, or set a value to its default, pack together."""
        text = json.dumps(params, sort_keys=True, default=str)
        if text not in self._structures:
            try:
                config = self.composer.compose(FixedTrial(params), self.study_name)[0]
                self._structures[text] = structure(config, self.packing.keys(config))  # type: ignore[union-attr]
            except SweeplabError:  # it fails on its own when it runs
                self._structures[text] = text
        return self._structures[text]
