"""A study as a tidy DataFrame: one row per run (a trial, or each member of a trial with replicates);
every resolved hyperparameter (dotted config keys, `optimizer.lr`) and every recorded metric (`test_acc`,
per class as `test_acc[cat]`) a column. `run_dir` is the run's folder (its history.csv)."""

from collections.abc import Iterable, Mapping
from typing import Any

import optuna
import pandas as pd

from sweeplab.config import MACHINE_KEYS
from sweeplab.engine.records import OUTPUT_DIR, StudyRecord, TrialRecord

META = [
    "study",
    "trial",
    "state",
    "duration_s",
    "error",
    "setup",
    "setup_position",
    "setup_changed",
    "setup_keep",
    "run_dir",
]


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """The frame of one study. `frame.attrs` names its hyperparameter and metric columns, and the keys
    its replicates set (`replicate_keys`)."""
    rows, hyperparameters, metrics = [], {}, {}
    replicates = StudyRecord.of(study).replicates
    replicate_key = replicates.key if replicates else None
    for trial in study.get_trials(deepcopy=False):
        record = TrialRecord.of(trial)
        config = flatten(record.config)
        duration = trial.duration.total_seconds() if trial.duration else None
        setup = record.setup
        common = {
            "study": study.study_name,
            "trial": trial.number,
            "state": trial.state.name,
            "duration_s": duration,
            "error": record.error,
            "setup": setup.get("name"),
            "setup_position": setup.get("position"),
            "setup_changed": tuple(setup.get("changed", ())),
            "setup_keep": setup.get("keep"),
        }
        for member in record.replicates or [{}]:  # with replicates: a row per member, its seed in the config
            recorded = dict(member or record.metrics)
            seed = {replicate_key: recorded.pop(replicate_key)} if replicate_key in recorded else {}
            run_dir = recorded.pop(OUTPUT_DIR, None) or record.output_dir
            values = _numbers(recorded)
            hyperparameters.update(dict.fromkeys(k for k in config if not _of_the_machine(k)))
            metrics.update(dict.fromkeys(values))
            rows.append({**common, "run_dir": run_dir, **config, **seed, **values})
    frame = pd.DataFrame(rows, columns=[*META, *hyperparameters, *metrics])
    frame.attrs.update(
        hyperparameters=list(hyperparameters),
        metrics=list(metrics),
        replicate_keys=[replicate_key] if replicate_key else [],
    )
    return frame


def _of_the_machine(key: str) -> bool:
    """A key that cannot change a result (where the run ran, how often it saved): never a hyperparameter,
    even where two studies set it differently."""
    return any(key == m or key.startswith(m + ".") for m in MACHINE_KEYS)


def _numbers(recorded: dict[str, Any]) -> dict[str, float]:
    """A run's numeric metrics, its per-class test accuracies as `test_acc[class]`."""
    per_class = recorded.pop("per_class_test_acc", None) or {}
    values = {k: v for k, v in recorded.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    values.update({f"test_acc[{name}]": acc for name, acc in per_class.items()})
    return values


def studies_frame(studies: Iterable[optuna.Study]) -> pd.DataFrame:
    """Several studies in one frame (for a comparison across studies); `study` tells them apart."""
    frames = [trials_frame(s) for s in studies]
    frame = pd.concat(frames, ignore_index=True)
    for key in ("hyperparameters", "metrics", "replicate_keys"):
        frame.attrs[key] = list(dict.fromkeys(c for f in frames for c in f.attrs[key]))
    return frame


def distinct_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with each run once: rows of one study, state and setup equal on every hyperparameter
    and replicate seed are one run trained twice (a trial drawn again: a trial is a function of its config
    and seed), or the same run reused. Counted twice they would narrow a row's interval without a new
    sample; the first is kept."""
    if frame.empty:
        return frame
    attrs = frame.attrs
    identity = [
        "study",
        "state",
        "setup",
        *attrs.get("hyperparameters", ()),
        *attrs.get("replicate_keys", ()),
    ]
    present = list(dict.fromkeys(c for c in identity if c in frame))
    keys = frame[present].apply(lambda column: column.map(repr)).agg("\x1f".join, axis=1)
    return frame[~keys.duplicated()]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys; lists become tuples, so that values can be compared and grouped."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _hashable(value)
    return flat


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list | tuple) else value


def python_value(value: object) -> object:
    """numpy scalars from pandas as plain Python values, so they format and compare like the config's."""
    return value.item() if hasattr(value, "item") and not isinstance(value, tuple) else value
