"""The life of a study's trials in a storage shared by any number of processes and machines.

    open     create the study once, or load it and check it is the same study; queue its plan once
    claim    ask Optuna for the next trial within the budget, stamped with its owner (this process)
    beat     a background thread stamps this process's running trials every `heartbeat_interval`
    reclaim  a RUNNING trial whose owner is gone (this host: at once; another host: silent for
             `stale_after` seconds) is marked FAIL and queued again, to resume from its checkpoint
    finish   COMPLETE, PRUNED or FAIL; an interrupted trial is queued again

Opening, queueing and claiming happen under the study's lock (`storage.study_lock`), one process at a
time, so 8 processes starting together create one study, queue its plan once, never run a queued trial
twice and stop together at `n_trials`. The queue of trials to run first is `plan_queue`'s; what a
claim reads of the storage, read once, is `reads`'.
"""

import contextlib
import copy
import logging
import threading
import time
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from sweeplab.config import SweeplabError
from sweeplab.engine.attrs import set_user_attrs
from sweeplab.engine.owner import this_process
from sweeplab.engine.plan_queue import PlanQueue, fixed_params
from sweeplab.engine.reads import StudyReads
from sweeplab.engine.records import (
    COMMANDS,
    ERROR,
    HEARTBEAT,
    OWNER,
    RESUME_DIR,
    RETRIES,
    RETRY_OF,
    SAMPLER_EXHAUSTED,
    STUDY_ID,
    StudyRecord,
    TrialRecord,
    last_sign,
)
from sweeplab.engine.storage import masked, open_storage, study_lock
from sweeplab.engine.study import SAMPLERS, build_from, check_same_study, optuna_pruner

log = logging.getLogger("sweeplab.sweep")

DONE = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class StudySpec:
    """What a study is (compared on resume) and how its trials are run."""

    name: str
    storage_url: str
    directions: list[str]
    signature: dict[str, Any]  # {"space": ..., "objectives": ..., "fixed": ...}
    n_trials: int
    plan: Sequence[dict[str, Any]] = field(default_factory=list)  # planned trials, in order
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # the user's trials to run first
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    sampler_context: dict[str, Any] = field(default_factory=dict)  # e.g. a grid's search_space
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    command: str = ""
    accept_changes: bool = False
    max_retries: int = 3
    heartbeat_interval: float = 10.0
    stale_after: float = 60.0


@dataclass(frozen=True)
class Elsewhere:
    """A trial running in another process."""

    number: int
    owner: str
    silent_for: float  # seconds since its last heartbeat


class SharedStudy:
    def __init__(
        self, spec: StudySpec, check: Callable[[str, list[FrozenTrial]], None] | None = None
    ) -> None:
        """Opens (or creates) the study and queues its plan. `check(study id, trials)` may refuse the
        sweep before anything is queued: a study this call created is then removed again, so a refused
        sweep leaves the storage as it found it."""
        self.spec = spec
        self.url = spec.storage_url
        self.mine: set[int] = set()  # the ids of this process's running trials
        self._beating = threading.Event()
        self._heart: threading.Thread | None = None
        storage = open_storage(self.url)
        with self.locked():
            existed = spec.name in optuna.get_all_study_names(storage)
            self.study = optuna.create_study(
                storage=storage,
                study_name=spec.name,
                sampler=self._sampler(spec.sampler.get("seed")),
                pruner=optuna_pruner(spec.pruner, len(spec.directions)),
                directions=spec.directions,
                load_if_exists=True,
            )
            self.reads = StudyReads(self.study)
            self.queue = PlanQueue(self.study, spec.plan, self.reads)
            try:
                self.id = self._check_identity()
                if check is not None:
                    check(self.id, self.study.get_trials(deepcopy=False))
            except BaseException:
                if not existed:
                    optuna.delete_study(study_name=spec.name, storage=storage)
                raise
            # reclaim first: a planned trial whose retries a dead process used up is then a failed
            # planned trial, which a rerun queues again like any other
            self.reclaim()
            self.queue.enqueue(spec.enqueue, retry_planned=True)
            self.queue.top_up(self.to_start())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with study_lock(self.url, self.spec.name):
            yield

    # --- open -------------------------------------------------------------------------------------

    def _check_identity(self) -> str:
        study, spec = self.study, self.spec
        record = StudyRecord.of(study)
        if not record.made_by_sweeplab and study.trials:
            raise SweeplabError(
                f"study {spec.name!r} in {masked(self.url)} was not created by sweeplab; "
                "choose another hydra.sweeper.study_name"
            )
        changed = check_same_study(study, spec.signature, masked(self.url), spec.accept_changes)
        if changed:
            log.warning("study %r: fixed values changed, accepted (accept_changes): %s", spec.name, changed)
        if record.study_id is None:  # names the study in its trials' folders
            study.set_user_attr(STUDY_ID, uuid.uuid4().hex)
        if spec.command and spec.command not in record.commands:  # the report shows how it was made
            study.set_user_attr(COMMANDS, [*record.commands, spec.command])
        return StudyRecord.of(study).study_id  # type: ignore[return-value]

    # --- budget -----------------------------------------------------------------------------------

    def count(self, *states: TrialState) -> int:
        return self.reads.count(*states)

    def to_start(self) -> int:
        """Trials still to start: every process on this storage counts the same stored trials."""
        return self.spec.n_trials - self.count(*DONE, TrialState.RUNNING)

    def exhausted(self) -> bool:
        if self.queue.all_taken():
            return True
        sampler = self.study.sampler
        if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(self.study):
            return True
        return StudyRecord(self.reads.attrs()).sampler_exhausted

    # --- claim and heartbeat ----------------------------------------------------------------------

    def claim(self) -> Trial | None:
        """The next trial for this process, or None when the budget is taken or nothing is left."""
        with self.locked(), self.reads.once():
            self.reclaim()
            self.queue.top_up(self.to_start())
            if self.to_start() <= 0 or self.exhausted():
                return None
            self.study.sampler = self._draw_sampler(self.study.sampler)
            self.reads.wrote()
            trial = self.study.ask()
            _stamp(trial)
        self.mine.add(trial._trial_id)
        self._start_heartbeat()
        return trial

    def claim_like(
        self, count: int, fits: Callable[[Mapping[str, Any]], bool], fixed: dict[str, Any]
    ) -> list[Trial]:
        """Up to `count` more trials to pack with a first one: queued ones whose values `fit` it, in
        queue order; then, once nothing at all is queued, new ones from the sampler with `fixed` (the
        first's structural values) fixed, so packs fill even when the space mixes structural and
        packable keys."""
        claimed: list[Trial] = []
        with self.locked(), self.reads.once():
            self.queue.top_up(self.to_start())
            count = min(count, self.to_start())
            for waiting in self.reads.trials((TrialState.WAITING,)):
                if len(claimed) >= count:
                    break
                if fits(fixed_params(waiting)):
                    trial = self._claim_waiting(waiting._trial_id)
                    claimed += [trial] if trial else []
            self.reads.wrote()
            while len(claimed) < count and not self.spec.plan and not self.count(TrialState.WAITING):
                if self.exhausted():
                    break
                base = self._draw_sampler(self.study.sampler)
                # a trial suggests its values later, from its study's sampler: its own study object
                study = copy.copy(self.study)
                with warnings.catch_warnings():  # Optuna's "experimental" notice is not the user's concern
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.sampler = optuna.samplers.PartialFixedSampler(fixed, base)
                claimed.append(study.ask())
                self.reads.wrote()
            for trial in claimed:
                _stamp(trial)
        self.mine.update(t._trial_id for t in claimed)
        return claimed

    def _claim_waiting(self, trial_id: int) -> Trial | None:
        """This queued trial, as `Study.ask` takes the first queued one (Optuna's `_pop_waiting_trial_id`)."""
        self.study._thread_local.cached_all_trials = None
        try:
            if not self.study._storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return None
        except optuna.exceptions.UpdateFinishedTrialError:
            return None
        return optuna.Trial(self.study, trial_id)

    def _draw_sampler(self, current: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
        """With a sampler seed, a sampler seeded for the next draw: by the seed and the number of draws
        the study has had, which a retry (queued, not drawn) leaves as it is, so a seeded study that was
        interrupted draws the same values as one that was not; no process or rerun repeats a draw."""
        seed = self.spec.sampler.get("seed")
        if seed is None:
            return current
        return self._sampler(draw_seed(seed, self.reads.trials()))

    def _sampler(self, seed: int | None) -> optuna.samplers.BaseSampler:
        node = {**self.spec.sampler, "seed": seed}
        return build_from(SAMPLERS, node, "hydra.sweeper.sampler", **self.spec.sampler_context)

    def _start_heartbeat(self) -> None:
        if self._heart is None:
            self._heart = threading.Thread(target=self._beat, daemon=True, name="sweeplab-heartbeat")
            self._heart.start()

    def _beat(self) -> None:
        storage = self.study._storage
        while not self._beating.wait(self.spec.heartbeat_interval):
            for trial_id in list(self.mine):
                # a finished trial takes no more stamps; a busy database gets the next one
                with contextlib.suppress(Exception):
                    storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())

    def close(self) -> None:
        self._beating.set()
        if self._heart is not None:
            self._heart.join()

    # --- reclaim ----------------------------------------------------------------------------------

    def reclaim(self) -> list[int]:
        """Mark FAIL and queue again the RUNNING trials whose owner is gone. Call under the lock."""
        reclaimed = []
        for trial in self.reads.trials((TrialState.RUNNING,)):
            if trial._trial_id in self.mine:
                continue
            reason = self._gone(trial)
            if reason is not None:
                self._end(trial, reason, requeue=True, counts_as_retry=True)
                reclaimed.append(trial.number)
        return reclaimed

    def _gone(self, trial: FrozenTrial) -> str | None:
        owner = TrialRecord.of(trial).owner
        alive = owner.is_alive() if owner else None
        if alive is False:
            return f"its process ({owner.describe()}) is gone"  # type: ignore[union-attr]
        silent = time.time() - last_sign(trial)
        if alive is None and silent > self.spec.stale_after:
            where = owner.describe() if owner else "its process"
            return f"no heartbeat from {where} for {silent:.0f} s (stale_after {self.spec.stale_after:g} s)"
        return None

    def completed(self) -> list[FrozenTrial]:
        """The completed trials as the last claim read them (one read of the storage a trial; one that
        completed since is missed, which costs a twin's reuse at most), else as stored now."""
        trials = self.reads.claimed_from
        if trials is None:
            trials = self.study.get_trials(deepcopy=False)
        return [t for t in trials if t.state == TrialState.COMPLETE]

    def elsewhere(self) -> list[Elsewhere]:
        """The trials other processes are running."""
        return [
            Elsewhere(t.number, _owner_text(t), time.time() - last_sign(t))
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t._trial_id not in self.mine
        ]

    # --- finish -----------------------------------------------------------------------------------

    def complete(self, trial: Trial, values: list[float]) -> None:
        self._tell(trial, values=values)

    def prune(self, trial: Trial) -> None:
        self._tell(trial, state=TrialState.PRUNED)

    def fail(self, trial: Trial, error: str, requeue: bool = False, counts_as_retry: bool = False) -> None:
        """FAIL with `error`. `requeue`: run it again, resuming from its last evaluation (it was
        interrupted; `counts_as_retry` when it may be at fault, as a worker killed for memory)."""
        with self.locked():
            frozen = self.study._storage.get_trial(trial._trial_id)
            self._end(frozen, error, requeue=requeue, counts_as_retry=counts_as_retry)
        self.mine.discard(trial._trial_id)

    def _end(self, trial: FrozenTrial, error: str, requeue: bool, counts_as_retry: bool) -> None:
        self.reads.wrote()
        storage = self.study._storage
        try:
            storage.set_trial_user_attr(trial._trial_id, ERROR, error)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            return  # it finished meanwhile
        params = fixed_params(trial)
        record = TrialRecord.of(trial)
        retries = record.retries + counts_as_retry
        # a trial without values is queued again only where the study searches nothing: elsewhere it
        # ended before it had them, and a retry would draw others and resume in its folder
        if not requeue or (not params and self.spec.signature.get("space")):
            return
        if retries > self.spec.max_retries:
            log.warning("trial %d: %s; not queued again (%d retries used)", trial.number, error, retries - 1)
            return
        attrs = {RETRY_OF: trial.number, RETRIES: retries}
        if record.output_dir:  # its retry carries on in the same folder
            attrs[RESUME_DIR] = record.output_dir
        self.study.enqueue_trial(params, user_attrs=attrs)
        log.warning("trial %d: %s; marked FAIL and queued again", trial.number, error)

    def _tell(self, trial: Trial, **kwargs: Any) -> None:
        self.mine.discard(trial._trial_id)
        try:
            self.study.tell(trial, **kwargs)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning(
                "trial %d was reclaimed by another process while it ran (its heartbeat looked stale): "
                "its result stays in its folder, not in the study",
                trial.number,
            )
        except RuntimeError as err:
            # The grid and brute-force samplers call `study.stop()` once every point is taken, which
            # raises outside `optimize` (the result is stored before that): remember the study is done.
            if "Study.stop" not in str(err):
                raise
            self.study.set_user_attr(SAMPLER_EXHAUSTED, True)


def draw_seed(seed: int, trials: Sequence[FrozenTrial]) -> int:
    """The sampler's seed for a study's next draw: its seed and the number of trials the sampler drew
    (not queued ones: a retry or a planned trial is not a draw)."""
    draws = sum("fixed_params" not in t.system_attrs for t in trials)
    return zlib.crc32(f"{seed}:{draws}".encode())


def _stamp(trial: Trial) -> None:
    """A claimed trial's owner (this process) and first heartbeat."""
    set_user_attrs(trial, {OWNER: this_process().record(), HEARTBEAT: time.time()})


def _owner_text(trial: FrozenTrial) -> str:
    owner = TrialRecord.of(trial).owner
    return owner.describe() if owner else "an unknown process"
