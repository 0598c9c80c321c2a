"""Ablation tables as data: which columns, which rows (configurations, replicates over seeds grouped),
which cells differ from the baseline, which value is best per metric. Rendering is separate."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sweeplab.config import SweeplabError
from sweeplab.report.frame import distinct_runs, python_value
from sweeplab.report.headers import header
from sweeplab.report.pareto import ParetoMarks, mark_rows
from sweeplab.report.stats import Change, Interval, bounds_of, holm, mean_interval, welch
from sweeplab.sweeper.constraints import Constraint

MISSING = "–"  # how a key that a trial's config lacks is grouped and shown
OUTCOME = "status"  # the State column of a table with FAIL and PRUNED trials


@dataclass(frozen=True)
class Statistics:
    """How a table's rows of n >= 2 runs are compared: `--ci`, `--stats`, `--holm`."""

    level: float = 0.95
    method: str = "t"  # the mean's interval: "t" (Student's t) or "bootstrap"
    holm: bool = False  # Holm's correction over the table's comparisons


@dataclass
class Table:
    rows: pd.DataFrame  # one row per configuration: the shown hyperparameters, then each metric's mean
    hyperparameters: list[str]
    metrics: dict[str, str]  # column -> "maximize" | "minimize"
    std: pd.DataFrame  # each metric's standard deviation over the row's replicates (NaN when n is 1)
    n: list[int]  # replicates per row
    trials: list[tuple[int, ...]]  # the trial numbers behind each row
    headers: dict[str, str]
    # ablation mode: the row each row is compared with (None for the baseline), the cells that differ
    # from it, and of those the ones whose change the rows after kept
    reference: list[int | None] | None = None
    changed: set[tuple[int, str]] = field(default_factory=set)
    kept: set[tuple[int, str]] = field(default_factory=set)
    best: dict[str, list[int]] = field(default_factory=dict)  # metric -> rows holding its best mean
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {value: shown text}
    transpose: bool = False  # render hyperparameters and metrics as rows, configurations as columns
    show_delta: bool = True  # ablation mode: a column of each row's change in the first metric
    samples: dict[str, list[list[float]]] = field(default_factory=dict)  # metric -> each row's runs
    statistics: Statistics = field(default_factory=Statistics)
    intervals: dict[str, list[Interval | None]] = field(default_factory=dict)  # metric -> each row's
    changes: list[Change | None] | None = None  # ablation: the first metric's change, Welch's t
    tied: dict[str, list[int]] = field(default_factory=dict)  # metric -> rows not worse than its best
    comparisons: int = 0  # tests made (what Holm's correction is over)
    pareto: ParetoMarks | None = None  # a multi-objective table's front and significance marks
    constraints: list[Constraint] = field(default_factory=list)  # the study's (hydra.sweeper.constraints)
    infeasible: list[int] = field(default_factory=list)  # rows whose means break one of them

    @property
    def delta(self) -> pd.Series | None:
        """The first metric of each row minus its reference row's, where the table shows it."""
        return self.delta_all if self.show_delta else None

    @property
    def delta_all(self) -> pd.Series | None:
        """The first metric of each row minus its reference row's (ablations)."""
        if self.reference is None:
            return None
        first = self.rows[next(iter(self.metrics))]
        return pd.Series(
            [first.iloc[i] - first.iloc[r] if r is not None else 0.0 for i, r in enumerate(self.reference)]
        )


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
    where: Mapping[str, Any] | None = None,
    choose: str | None = None,
    values: Mapping[str, Mapping[Any, str]] | None = None,
    transpose: bool = False,
    delta: bool = True,
    statistics: Statistics | None = None,
    pareto: Mapping[str, str] | None = None,
    constraints: Sequence[Constraint] = (),
) -> Table:
    """One row per configuration, in sweep order (setup order, else by first trial) or, with `sort_rows`,
    by their values; trials that differ only in `replicate_key` are one row (mean, std, n). Without
    `columns`, the hyperparameters that vary; a column `a+b` shows two keys in one cell.

    `where` keeps the trials whose columns have the given value (or one of a list); `choose` keeps, of
    each setup's configurations, the one with the best mean of that metric (a choice on validation);
    `values` maps a column's values to the text shown for them. `pareto` (objective -> direction, two or
    more of the table's metrics) marks the rows on the front of the means and those no row dominates
    significantly (sweeplab.report.pareto); `constraints` marks the rows whose means break one (they are
    left out of the front)."""
    kept = _where(distinct_runs(frame[frame["state"].isin(states)]), where or {})
    metrics = _expand_metrics(metrics, kept, frame.attrs["metrics"])
    studies = {name: i for i, name in enumerate(dict.fromkeys(frame["study"]))}  # in the order given
    has_setups = "setup" in kept and kept["setup"].notna().any()
    position = kept["setup_position"].fillna(0) if has_setups else 0
    kept = kept.assign(_order=kept["study"].map(studies) * 1e12 + position * 1e6 + kept["trial"]).sort_values(
        "_order"
    )
    replicate_keys = {replicate_key, *frame.attrs.get("replicate_keys", ())}
    varying = _varying(kept, frame.attrs["hyperparameters"], replicate_keys)
    shown = list(columns) if columns is not None else varying
    unknown = [c for c in [*metrics, *(p for c in shown for p in c.split("+"))] if c not in frame]
    if unknown:
        raise SweeplabError(
            f"report: the trials have no {', '.join(map(repr, unknown))}; they have "
            f"{', '.join([*frame.attrs['metrics'], *frame.attrs['hyperparameters']][:40])}"
        )
    for column in shown:
        if "+" in column and column not in kept:  # a composite column: its keys' values side by side
            kept[column] = list(zip(*(kept[part] for part in column.split("+")), strict=True))
    if kept["study"].nunique() > 1 and "study" not in shown:
        shown.insert(0, "study")
    if set(states) != {"COMPLETE"}:  # trials that did not finish get rows of their own, saying so
        kept[OUTCOME] = [_outcome(r) for r in kept.itertuples()]
        shown.insert(0, OUTCOME)
    keys = shown + (["setup"] if (choose or has_setups) and "setup" not in shown else [])
    keys = keys or ["state"]  # no varying column: every trial is a replicate of one configuration
    for key in keys:  # a key the trial's config lacks (a linear model's width) groups as one shown value
        kept[key] = kept[key].map(lambda v: MISSING if _is_missing(v) else v)
    grouped = kept.groupby(keys, sort=False, dropna=False)
    order = list(grouped["_order"].min().sort_values().index)
    if choose:
        order = _chosen(grouped, order, choose, metrics.get(choose, "maximize"), keys)
    if sort_rows and shown:
        order = sorted(order, key=lambda key: [_sort_key(v) for v in (key if len(keys) > 1 else (key,))])
    metric_columns = list(metrics)
    rows = grouped[metric_columns].mean().loc[order].reset_index()
    std = grouped[metric_columns].std(ddof=1).loc[order].reset_index(drop=True)
    table = Table(
        rows=rows[[*shown, *metric_columns]],
        hyperparameters=shown,
        metrics=dict(metrics),
        std=std,
        n=grouped.size().loc[order].tolist(),
        trials=[tuple(dict.fromkeys(t)) for t in grouped["trial"].apply(tuple).loc[order]],  # a trial once
        headers={c: header(c, headers or {}) for c in [*shown, *metric_columns]},
        labels={k: {str(raw): str(text) for raw, text in v.items()} for k, v in (values or {}).items()},
        transpose=transpose,
        samples={m: [list(v) for v in grouped[m].apply(list).loc[order]] for m in metric_columns},
        statistics=statistics or Statistics(),
    )
    finished = rows[OUTCOME] == "completed" if OUTCOME in shown else rows.index >= 0  # best of these
    table.best = {m: _best_rows(rows[m].where(finished), d) for m, d in metrics.items()}
    if ablation and len(rows):
        records = grouped.first().loc[order] if has_setups else None
        _mark_ablation(table, records)
        table.show_delta = delta
    _add_statistics(table)
    usable = [c for c in constraints if c.metric in kept]
    if usable:
        bounded = grouped[[c.metric for c in usable]].mean().loc[order].reset_index(drop=True)
        table.constraints = usable
        table.infeasible = [
            i for i in range(len(rows)) if not all(c.met(float(bounded[c.metric].iloc[i])) for c in usable)
        ]
    if pareto and len(pareto) > 1 and set(pareto) <= set(metrics):
        objectives = list(pareto)
        table.pareto = mark_rows(
            rows[objectives].to_numpy(dtype=float),
            [[table.samples[o][i] for o in objectives] for i in range(len(rows))],
            pareto,
            table.statistics.level,
            table.infeasible,
        )
    return table


def _add_statistics(table: Table) -> None:
    """Each row's interval per metric; an ablation's changes (Welch's t against the row each is
    compared with); else, per metric, the rows not significantly worse than the best one."""
    st = table.statistics
    table.intervals = {
        m: [mean_interval(values, st.level, st.method, bounds_of(m)) for values in table.samples[m]]
        for m in table.metrics
    }
    if table.reference is not None:
        first = table.samples[next(iter(table.metrics))]
        pairs = enumerate(table.reference)
        table.changes = [welch(first[i], first[r], st.level) if r is not None else None for i, r in pairs]
        _decide(table, [c for c in table.changes if c is not None])
        return
    for m in table.metrics:
        if not table.best.get(m):
            continue
        best = table.best[m][0]
        tests = {
            i: welch(values, table.samples[m][best], st.level)
            for i, values in enumerate(table.samples[m])
            if i not in table.best[m]
        }
        tests = {i: c for i, c in tests.items() if c is not None}
        decided = _decide(table, list(tests.values()))
        table.tied[m] = [i for (i, _), c in zip(tests.items(), decided, strict=True) if not c.significant]


def _decide(table: Table, changes: list[Change]) -> list[Change]:
    """Marks each change significant at the table's level, after Holm's correction when asked."""
    st = table.statistics
    p = holm([c.p_value for c in changes]) if st.holm else [c.p_value for c in changes]
    table.comparisons += len(changes)
    for change, adjusted in zip(changes, p, strict=True):
        change.p_adjusted, change.significant = adjusted, adjusted < 1 - st.level
    return changes


def _mark_ablation(table: Table, records: pd.DataFrame | None) -> None:
    """With setups, each row is compared with the last kept setup before it, and its changes are the
    keys its setup changed; otherwise every row is compared with the first."""
    rows, shown = table.rows, table.hyperparameters
    if records is None:
        table.reference = [None, *[0] * (len(rows) - 1)]
        base = rows.iloc[0]
        table.changed = {
            (i, c)
            for i in range(len(rows))
            for c in shown
            if c != OUTCOME and not _same(rows.iloc[i][c], base[c])
        }
        return
    table.reference, last_kept = [], None
    for i, (changed, keep) in enumerate(zip(records["setup_changed"], records["setup_keep"], strict=True)):
        table.reference.append(last_kept if i else None)
        # a changed group (`scheduler`) changes every key under it (`scheduler.name`)
        cells = {(i, c) for c in shown for k in changed or () for part in c.split("+") if _under(part, k)}
        table.changed |= cells
        if keep:
            table.kept |= cells
            last_kept = i


def _under(column: str, key: str) -> bool:
    return column == key or column.startswith(key + ".")


def _chosen(grouped, order: list, metric: str, direction: str, keys: list[str]) -> list:
    """Of each setup's configurations (in `order`), the one with the best mean `metric`."""
    means = grouped[metric].mean()
    setup_of = {key: (key if len(keys) > 1 else (key,))[keys.index("setup")] for key in order}
    best: dict[Any, Any] = {}
    for key in order:
        current = best.get(setup_of[key])
        if current is None or _better(means.loc[key], means.loc[current], direction):
            best[setup_of[key]] = key
    return [key for key in order if best[setup_of[key]] == key]


def _better(value: float, than: float, direction: str) -> bool:
    if pd.isna(than):
        return not pd.isna(value)
    return bool(value > than if direction == "maximize" else value < than)


def _expand_metrics(metrics: Mapping[str, str], kept: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """`test_acc[*]` stands for the per-class columns of the shown trials, in their data set's order."""
    expanded: dict[str, str] = {}
    for metric, direction in metrics.items():
        if metric.endswith("[*]"):
            prefix = metric[:-2]
            shown = [c for c in columns if c.startswith(prefix) and kept[c].notna().any()]
            expanded.update(dict.fromkeys(shown, direction))
        else:
            expanded[metric] = direction
    return expanded


def _where(frame: pd.DataFrame, where: Mapping[str, Any]) -> pd.DataFrame:
    for column, wanted in where.items():
        if column not in frame:
            raise SweeplabError(f"report spec: where names {column!r}, which the trials do not have")
        options = wanted if isinstance(wanted, list) else [wanted]
        texts = {str(tuple(o) if isinstance(o, list) else o) for o in options}
        frame = frame[frame[column].map(lambda v, texts=texts: str(python_value(v)) in texts)]
    return frame


def _outcome(row: Any) -> str:
    """A trial's state as the table shows it: completed, pruned or diverged at its step, or failed."""
    if row.state == "PRUNED":
        why = "diverged" if str(row.error or "").startswith("diverged") else "pruned"
        steps = getattr(row, "steps", None)
        return f"{why} at step {int(steps)}" if steps is not None and not pd.isna(steps) else why
    return {"COMPLETE": "completed", "FAIL": "failed"}.get(row.state, row.state.lower())


def _sort_key(value: object) -> tuple:
    """Sorts mixed values: missing last, numbers by value, tuples by length then value, text as text."""
    if _is_missing(value):
        return (3,)
    if isinstance(value, tuple):
        return (1, len(value), tuple(_sort_key(v) for v in value))
    return (0, value) if isinstance(value, int | float) and not isinstance(value, bool) else (2, str(value))


def _varying(frame: pd.DataFrame, hyperparameters: Sequence[str], replicate_keys: set[str]) -> list[str]:
    return [c for c in hyperparameters if c not in replicate_keys and frame[c].nunique(dropna=False) > 1]


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
