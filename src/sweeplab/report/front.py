"""The Pareto section of a multi-objective report: the front named, its hypervolume with the reference
point and an interval over replicates, the trade-off figure, the hypervolume's history and each
objective's hyperparameter importance."""

import io
import itertools
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import optuna

from sweeplab.engine.records import StudyRecord
from sweeplab.files import write_atomic
from sweeplab.report import render
from sweeplab.report.figures import importance, label
from sweeplab.report.pareto import (
    REFERENCE_MARGIN,
    format_volume,
    front_of,
    hypervolume,
    hypervolume_interval,
    losses,
    reference_point,
)
from sweeplab.report.tables import Table


def pareto_section(study: optuna.Study, table: Table, spec: Mapping[str, Any], out: Path) -> list[str]:
    """The section's Markdown lines; its figures are written into `out`. `spec` is `report.pareto`:
    `reference` (one number per objective, in their own units) for the hypervolume."""
    marks = table.pareto
    assert marks is not None
    objectives, directions = list(marks.objectives), list(marks.objectives.values())
    feasible = [i for i in range(len(table.rows)) if i not in marks.infeasible]  # the front is of these
    means = table.rows[objectives].to_numpy(dtype=float)[feasible]
    samples = [[table.samples[o][i] for o in objectives] for i in feasible]
    given = spec.get("reference")
    reference = reference_point(means, directions, given)
    volume = hypervolume(losses(means, directions), reference)
    interval = hypervolume_interval(samples, directions, reference, table.statistics.level)
    in_units = losses(reference[None, :], directions)[0]  # back in the objectives' own units
    point = ", ".join(f"{o} {v:.4g}" for o, v in zip(objectives, in_units, strict=True))
    where = (
        "`report.pareto.reference`"
        if given is not None
        else f"the default: each objective's worst row mean, {REFERENCE_MARGIN:.0%} of its range beyond"
    )
    names = render.cells(table)
    shown = [k for k, c in enumerate(table.hyperparameters) if c != "status"]
    front = "; ".join(
        f"row {i + 1}" + (f" ({', '.join(names[i][k] for k in shown)})" if shown else "") for i in marks.front
    )
    lines = [
        "## Pareto front",
        "",
        f"- on the front of the means ({len(marks.front)} of {len(table.rows)} rows): {front}",
    ]
    if marks.tested:
        lines.append(
            f"- not dominated significantly ({len(marks.undominated)} rows): the front cannot be told "
            "from these at the table's level (see the legend)"
        )
    lines.append(
        f"- hypervolume of the means' front: {format_volume(volume)}"
        + (
            f", {table.statistics.level:.0%} interval [{format_volume(interval.low)}, "
            f"{format_volume(interval.high)}] ({interval.method} over each row's runs)"
            if interval
            else " (one run per row: no interval)"
        )
        + f"; reference point ({point}): {where}"
    )
    figures = {"pareto_front": _front_figure(table), "hypervolume_history": _history(study, in_units)}
    for k, objective in enumerate(objectives[1:], start=1):
        figures[f"importance_{objective}"] = importance(study, objective, k)
    lines.append("")
    for name, figure in figures.items():
        if figure is None:
            continue
        _save(figure, out, name)
        lines.append(f"![{name.replace('_', ' ')}]({name}.png) ([PDF]({name}.pdf))")
    return [*lines, ""]


def _front_figure(table: Table) -> plt.Figure:
    """Each pair of objectives: the rows' means with their intervals, the front drawn, the rows that
    are dominated significantly faint."""
    marks = table.pareto
    assert marks is not None
    objectives = list(marks.objectives)
    pairs = list(itertools.combinations(range(len(objectives)), 2))
    figure, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs, strict=True):
        x, y = (table.rows[objectives[k]].to_numpy(dtype=float) for k in (a, b))
        for i in range(len(x)):
            if i in marks.infeasible:
                ax.plot(x[i], y[i], "x", color="0.5", ms=5)
                continue
            on_front, kept = i in marks.front, i in marks.undominated or not marks.tested
            xerr, yerr = (_error(table, objectives[k], i) for k in (a, b))
            ax.errorbar(
                x[i], y[i], xerr=xerr, yerr=yerr, fmt="D" if on_front else "o",
                color="C3" if on_front else "C0", mfc="C3" if on_front else ("white" if kept else "C0"),
                alpha=1.0 if kept else 0.25, ms=6 if on_front else 4, elinewidth=0.8,
            )  # fmt: skip
        shown = np.array([i not in marks.infeasible for i in range(len(x))])
        stairs = _staircase(x[shown], y[shown], [marks.objectives[objectives[k]] for k in (a, b)])
        ax.plot(stairs[:, 0], stairs[:, 1], color="C3", lw=1, label="front of this pair")
        for k, axis in ((a, ax.set_xlabel), (b, ax.set_ylabel)):
            better = "higher" if marks.objectives[objectives[k]] == "maximize" else "lower"
            axis(f"{label(objectives[k])} ({better} is better)")
        ax.legend(loc="best", fontsize=7)
    figure.suptitle(
        "Pareto front: ◆ on the front of the means, ◇ not dominated significantly, faint: dominated"
    )
    return figure


def _error(table: Table, metric: str, row: int) -> list[list[float]] | None:
    interval = table.intervals.get(metric, [None] * (row + 1))[row]
    if interval is None:
        return None
    mean = float(table.rows[metric].iloc[row])
    return [[max(0.0, mean - interval.low)], [max(0.0, interval.high - mean)]]


def _staircase(x: np.ndarray, y: np.ndarray, directions: list[str]) -> np.ndarray:
    """The boundary of what the two-objective front of (x, y) dominates, as vertices: drawn between
    the front's points as losses (both minimized), then turned back into the objectives' values."""
    loss = losses(np.column_stack([x, y]), directions)
    front = loss[sorted(front_of(loss), key=lambda i: tuple(loss[i]))]
    vertices = [front[0]]
    for point in front[1:]:
        vertices += [np.array([point[0], vertices[-1][1]]), point]
    return losses(np.array(vertices), directions)  # negating twice restores a maximized value


def _history(study: optuna.Study, reference: np.ndarray) -> plt.Figure | None:
    """Optuna's hypervolume history (its feasible trials' values: each trial's runs' means), against the
    table's reference point in the objectives' own units."""
    if sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)) < 2:
        return None
    # experimental in Optuna 5 (the figure is what we show, not an API); it sets its ggplot style for the
    # whole process, which rc_context takes back once the figure is drawn
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_hypervolume_history(study, reference_point=list(reference))
    feasible = " (trials meeting the constraints)" if StudyRecord.of(study).constraints else ""
    ax.set_title(f"Hypervolume of the trials so far{feasible}")
    return ax.figure


def _save(figure: plt.Figure, out: Path, name: str) -> None:
    figure.tight_layout()
    try:
        for suffix in ("png", "pdf"):
            image = io.BytesIO()  # written whole, as the other figures (sweeplab.report.figures)
            figure.savefig(image, format=suffix, dpi=150, bbox_inches="tight")
            write_atomic(out / f"{name}.{suffix}", image.getvalue())
    finally:
        plt.close(figure)
