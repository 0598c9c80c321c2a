"""The marginal tables: for each hyperparameter, a metric per value over the completed runs."""

from collections.abc import Sequence

import pandas as pd

from sweeplab.report.frame import distinct_runs

MAX_VALUES = 6  # a numeric hyperparameter with more distinct values is binned in the marginal tables


def marginals(
    frame: pd.DataFrame, metric: str, direction: str, columns: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """For each hyperparameter, the metric per value (a continuous one: per quantile bin, shown as its
    range): mean, best and number of trials."""
    kept = distinct_runs(frame[frame["state"] == "COMPLETE"])
    best = "max" if direction == "maximize" else "min"
    tables = {}
    for c in columns:
        values = kept[c]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        binned = numeric and values.nunique() > MAX_VALUES
        if binned:  # quantile bins, in order, each shown as the range of the values in it
            bins = pd.qcut(values, q=min(5, values.nunique()), duplicates="drop")
            ranges = values.groupby(bins, observed=True).agg(["min", "max"])
            labels = {b: f"{r['min']:.3g} – {r['max']:.3g}" for b, r in ranges.iterrows()}  # in bin order
            values = pd.Series(
                pd.Categorical(bins.map(labels), categories=list(labels.values()), ordered=True),
                index=kept.index,
            )
        table = kept.groupby(values.rename(c), dropna=False, observed=True, sort=True)[metric].agg(
            mean="mean", best=best, n="count"
        )
        tables[c] = table.astype({"n": int}).reset_index()
    return tables
