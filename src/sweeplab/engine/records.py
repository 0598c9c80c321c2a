"""What sweeplab stores on a study and on its trials (Optuna's user attributes), by name and type, in
one place: the names writers use, and typed views that readers (the report, `studies`, export, the
lifecycle) read them through. A study or trial of an older version may lack any of them: each view
gives the empty value then, never a KeyError.

Trial attributes: `config` (the resolved config, minus Hydra's node), `overrides`, `output_dir`, `setup`
(the setup's record), `metrics` (what the run returned), `replicates` (each member's seed and metrics),
`error`, `owner` and `heartbeat` (who runs it, when it last said so), `resume_dir`, `retry_of` and
`retries` (a retry and where it resumes), `packed_with`, `slurm_job`, `reused_from` (the twin whose result
it took), `reported` and `known` (what a trial of several objectives reported for pruning, by step, and the
objectives it knew before training).
Study attributes: `sweeplab` (the study's signature: space, objectives, fixed values, replicates),
`sweeplab_id`, `commands`, `plan_queued`, `sampler_exhausted`, `slurm_jobs`.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna import Study
from optuna.trial import FrozenTrial

from sweeplab.engine.owner import Owner

# a trial's
CONFIG, OVERRIDES, OUTPUT_DIR, SETUP = "config", "overrides", "output_dir", "setup"
METRICS, REPLICATES, ERROR = "metrics", "replicates", "error"
OWNER, HEARTBEAT = "owner", "heartbeat"
RESUME_DIR, RETRY_OF, RETRIES = "resume_dir", "retry_of", "retries"
PACKED_WITH, SLURM_JOB = "packed_with", "slurm_job"
REUSED_FROM = "reused_from"  # the completed trial of the same config whose result it took (sweeper.reuse)
REPORTED, KNOWN = "reported", "known"  # pruning on one of several objectives (engine.pareto_pruning)
# a study's
SIGNATURE, STUDY_ID, COMMANDS = "sweeplab", "sweeplab_id", "commands"
PLAN_QUEUED, SAMPLER_EXHAUSTED, SLURM_JOBS = "plan_queued", "sampler_exhausted", "slurm_jobs"
CONSTRAINTS = "constraints"  # of a study's signature: {metric: "<= bound"} (sweeplab.sweeper.constraints)


@dataclass(frozen=True)
class Replicates:
    """A study's replicates signature: each trial is `n` runs that set `key` to their seed (`seeds`, or
    the config's value + 0..n-1), its value their `aggregate`."""

    n: int
    key: str
    seeds: tuple[int, ...] = ()
    aggregate: str = "mean"

    @classmethod
    def read(cls, stored: Mapping[str, Any] | None) -> "Replicates | None":
        if not stored:
            return None  # one run per trial
        seeds = tuple(stored.get("seeds") or ())
        return cls(int(stored["n"]), str(stored["key"]), seeds, str(stored.get("aggregate", "mean")))

    def to_attr(self) -> dict[str, Any]:
        return {"n": self.n, "key": self.key, "seeds": list(self.seeds), "aggregate": self.aggregate}

    def describe(self) -> str:
        """The one way it is said: by `studies show`, a dry run, and a refused resume."""
        seeds = f"seeds {', '.join(map(str, self.seeds))}" if self.seeds else f"its value + 0..{self.n - 1}"
        return f"replicates {self.n} of {self.key} ({seeds}), aggregate {self.aggregate}"


def describe_replicates(replicates: Replicates | None) -> str:
    return replicates.describe() if replicates else "one run per trial (replicates 1)"


@dataclass(frozen=True)
class TrialRecord:
    """A trial's sweeplab attributes, typed."""

    attrs: Mapping[str, Any]

    @classmethod
    def of(cls, trial: FrozenTrial | Any) -> "TrialRecord":
        return cls(trial.user_attrs)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.attrs.get(CONFIG) or {})

    @property
    def output_dir(self) -> str | None:
        return self.attrs.get(OUTPUT_DIR) or None

    @property
    def setup(self) -> dict[str, Any]:
        return dict(self.attrs.get(SETUP) or {})

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.attrs.get(METRICS) or {})

    @property
    def replicates(self) -> list[dict[str, Any]]:
        """Each member's seed and metrics (a trial with replicates); [] for a single run."""
        return list(self.attrs.get(REPLICATES) or [])

    @property
    def error(self) -> str | None:
        return self.attrs.get(ERROR) or None

    @property
    def error_line(self) -> str:
        return str(self.error).splitlines()[0] if self.error else ""

    @property
    def owner(self) -> Owner | None:
        return Owner.from_record(self.attrs.get(OWNER))

    @property
    def heartbeat(self) -> float | None:
        beat = self.attrs.get(HEARTBEAT)
        return float(beat) if isinstance(beat, int | float) else None

    @property
    def resume_dir(self) -> str | None:
        return self.attrs.get(RESUME_DIR) or None

    @property
    def retry_of(self) -> int | None:
        return self.attrs.get(RETRY_OF)

    @property
    def retries(self) -> int:
        return int(self.attrs.get(RETRIES, 0))

    @property
    def reused_from(self) -> int | None:
        """The completed trial of the same config whose result this one took, not training again."""
        return self.attrs.get(REUSED_FROM)

    @property
    def slurm_job(self) -> dict[str, Any]:
        return dict(self.attrs.get(SLURM_JOB) or {})


def last_sign(trial: FrozenTrial) -> float:
    """When the trial last showed it was alive: its heartbeat, else its start, else now."""
    beat = TrialRecord.of(trial).heartbeat
    if beat is not None:
        return beat
    return trial.datetime_start.timestamp() if trial.datetime_start else time.time()


@dataclass(frozen=True)
class StudyRecord:
    """A study's sweeplab attributes, typed."""

    attrs: Mapping[str, Any]

    @classmethod
    def of(cls, study: Study) -> "StudyRecord":
        return cls(study.user_attrs)

    @property
    def signature(self) -> dict[str, Any]:
        """What the study is (compared on resume): space, objectives, fixed values, replicates."""
        return dict(self.attrs.get(SIGNATURE) or {})

    @property
    def made_by_sweeplab(self) -> bool:
        return SIGNATURE in self.attrs

    @property
    def objectives(self) -> dict[str, str]:
        return dict(self.signature.get("objectives") or {})

    @property
    def constraints(self) -> dict[str, str]:
        return dict(self.signature.get(CONSTRAINTS) or {})

    @property
    def space(self) -> dict[str, str]:
        return dict(self.signature.get("space") or {})

    @property
    def replicates(self) -> Replicates | None:
        return Replicates.read(self.signature.get(REPLICATES))

    @property
    def study_id(self) -> str | None:
        return self.attrs.get(STUDY_ID)

    @property
    def commands(self) -> list[str]:
        return list(self.attrs.get(COMMANDS) or [])

    @property
    def plan_queued(self) -> int | None:
        queued = self.attrs.get(PLAN_QUEUED)
        return None if queued is None else int(queued)

    @property
    def sampler_exhausted(self) -> bool:
        return bool(self.attrs.get(SAMPLER_EXHAUSTED))

    @property
    def slurm_jobs(self) -> list[str]:
        return list(self.attrs.get(SLURM_JOBS) or [])
