"""Ablation tables as data: which columns, which rows (configurations, replicates over seeds grouped),
which cells differ from the baseline, which value is best per metric. Rendering is separate."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

# Headers as people write them in reports; any other column keeps its key.
HEADERS = {
    "model.name": "Model",
    "model.hidden": "Layers",
    "model.activation": "Act.",
    "model.norm": "Norm.",
    "model.dropout": "Dropout",
    "model.channels": "Channels",
    "model.kernel_size": "Filter size",
    "optimizer.name": "Optim.",
    "optimizer.lr": "LR",
    "optimizer.momentum": "Momentum",
    "optimizer.weight_decay": "L2",
    "scheduler.name": "LR schedule",
    "trainer.batch_size": "Batch size",
    "trainer.max_steps": "Steps",
    "trainer.epochs": "Epochs",
    "loss.name": "Loss",
    "preprocess.name": "Preproc.",
    "val_acc": "Val. acc.",
    "test_acc": "Test acc.",
    "test_acc_last": "Test acc. (last)",
    "params": "Params",
    "train_seconds": "Train s",
    "study": "Study",
    "trainer.seed": "Seed",
}


@dataclass
class Table:
    rows: pd.DataFrame  # one row per configuration: the shown hyperparameters, then each metric's mean
    hyperparameters: list[str]
    metrics: dict[str, str]  # column -> "maximize" | "minimize"
    std: pd.DataFrame  # each metric's standard deviation over the row's replicates (NaN when n is 1)
    n: list[int]  # replicates per row
    trials: list[tuple[int, ...]]  # the trial numbers behind each row
    headers: dict[str, str]
    baseline: int | None = None  # the row the others are compared with (ablation mode)
    changed: set[tuple[int, str]] = field(default_factory=set)  # (row, column) cells unlike the baseline
    best: dict[str, list[int]] = field(default_factory=dict)  # metric -> rows holding its best mean

    @property
    def delta(self) -> pd.Series | None:
        """The first metric of each row minus the baseline's."""
        if self.baseline is None:
            return None
        first = next(iter(self.metrics))
        return self.rows[first] - self.rows[first].iloc[self.baseline]


def build_table(
    frame: pd.DataFrame,
    metrics: Mapping[str, str],
    *,
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    ablation: bool = False,
    replicate_key: str = "trainer.seed",
    states: Sequence[str] = ("COMPLETE",),
    sort_rows: bool = False,
) -> Table:
    """One row per configuration, in sweep order (by first trial) or, with `sort_rows`, by their values;
    trials that differ only in `replicate_key` are one row (mean, std, n). Without `columns`, the
    hyperparameters that vary."""
    studies = {name: i for i, name in enumerate(dict.fromkeys(frame["study"]))}  # in the order given
    kept = frame[frame["state"].isin(states)]
    kept = kept.assign(_order=kept["study"].map(studies) * 1_000_000_000 + kept["trial"]).sort_values(
        "_order"
    )
    shown = (
        list(columns)
        if columns is not None
        else _varying(kept, frame.attrs["hyperparameters"], replicate_key)
    )
    if kept["study"].nunique() > 1 and "study" not in shown:
        shown.insert(0, "study")
    keys = shown or ["state"]  # no varying column: every trial is a replicate of one configuration
    grouped = kept.groupby(keys, sort=False, dropna=False)
    order = grouped["_order"].min().sort_values().index  # sweep order: the baseline first
    if sort_rows and shown:
        order = sorted(order, key=lambda key: [_sort_key(v) for v in (key if len(keys) > 1 else (key,))])
    metric_columns = list(metrics)
    rows = grouped[metric_columns].mean().loc[order].reset_index()
    if not shown:
        rows = rows.drop(columns="state")
    std = grouped[metric_columns].std(ddof=1).loc[order].reset_index(drop=True)
    table = Table(
        rows=rows[[*shown, *metric_columns]],
        hyperparameters=shown,
        metrics=dict(metrics),
        std=std,
        n=grouped.size().loc[order].tolist(),
        trials=[tuple(t) for t in grouped["trial"].apply(tuple).loc[order]],
        headers={c: (headers or {}).get(c, HEADERS.get(c, c)) for c in [*shown, *metric_columns]},
    )
    table.best = {m: _best_rows(rows[m], d) for m, d in metrics.items()}
    if ablation and len(rows):
        table.baseline = 0
        base = rows.iloc[0]
        table.changed = {
            (i, c) for i in range(len(rows)) for c in shown if not _same(rows.iloc[i][c], base[c])
        }
    return table


def marginals(
    frame: pd.DataFrame, metric: str, direction: str, columns: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """For each hyperparameter, the metric per value: mean, best and number of trials."""
    kept = frame[frame["state"] == "COMPLETE"]
    best = "max" if direction == "maximize" else "min"
    return {
        c: kept.groupby(c, dropna=False)[metric].agg(mean="mean", best=best, n="count").reset_index()
        for c in columns
    }


def _sort_key(value: object) -> tuple:
    """Sorts mixed values: missing last, numbers by value, tuples by length then value, text as text."""
    if _is_missing(value):
        return (3,)
    if isinstance(value, tuple):
        return (1, len(value), tuple(_sort_key(v) for v in value))
    return (0, value) if isinstance(value, int | float) and not isinstance(value, bool) else (2, str(value))


def _varying(frame: pd.DataFrame, hyperparameters: Sequence[str], replicate_key: str) -> list[str]:
    return [c for c in hyperparameters if c != replicate_key and frame[c].nunique(dropna=False) > 1]


def _best_rows(values: pd.Series, direction: str) -> list[int]:
    if values.isna().all():
        return []
    target = values.max() if direction == "maximize" else values.min()
    return [i for i, v in enumerate(values) if abs(v - target) <= 1e-12 * max(1.0, abs(target))]


def _same(a: object, b: object) -> bool:
    if _is_missing(a) or _is_missing(b):
        return _is_missing(a) and _is_missing(b)
    return bool(a == b)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))
