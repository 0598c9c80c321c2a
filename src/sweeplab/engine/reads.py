"""What a claim reads of a study, read once.

Within one claim, under the study's lock, the study's trials and attributes are read from the storage
once (each read is about a millisecond on SQLite, more on a server; a claim asked five times), and again
only after this process writes. Other processes only finish trials meanwhile, which changes no count a
claim makes (finished or running are both taken)."""

import contextlib
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState


class StudyReads:
    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self._cache: dict[str, Any] | None = None  # within `once`: what was read
        self.claimed_from: list[FrozenTrial] | None = None  # the trials the last claim read

    @contextlib.contextmanager
    def once(self) -> Iterator[None]:
        self._cache, self.claimed_from = {}, None
        try:
            yield
        finally:
            self._cache = None

    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        if self._cache is None:
            return self.study.get_trials(deepcopy=False, states=states)
        if "trials" not in self._cache:
            self._cache["trials"] = self.claimed_from = self.study.get_trials(deepcopy=False)
        trials = self._cache["trials"]
        return trials if states is None else [t for t in trials if t.state in states]

    def count(self, *states: TrialState) -> int:
        return len(self.trials(states))

    def attrs(self) -> dict[str, Any]:
        if self._cache is None:
            return self.study.user_attrs
        if "attrs" not in self._cache:
            self._cache["attrs"] = self.study.user_attrs
        return self._cache["attrs"]

    def wrote(self) -> None:
        """This process wrote: what was read is read again."""
        if self._cache is not None:
            self._cache.clear()
