"""The figures beside the tables, each written as PNG and PDF: learning curves, the metric against each
varied hyperparameter, optimisation history, parallel coordinates, hyperparameter importance and
per-class test accuracy of the best trial."""

import functools
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import optuna
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from sweeplab.engine.study import ranked
from sweeplab.files import write_atomic
from sweeplab.report.headers import HEADERS
from sweeplab.report.render import format_value
from sweeplab.report.stats import bounds_of, mean_interval
from sweeplab.run_records import DamagedRecord, read_history

log = logging.getLogger(__name__)


def write_figures(
    study: optuna.Study,
    frame: pd.DataFrame,
    metric: str,
    varied: Sequence[str],
    out: Path,
    curves: int = 4,
    named: bool = False,
    level: float = 0.95,
) -> list[Path]:
    """Every figure that the study's data allow; returns the PNG paths (a PDF lies beside each).
    `named` (a report of several studies): each file and title names the study."""
    sns.set_theme(style="whitegrid", context="paper")
    # best first; a tie keeps trial order, as `ranked` names the best
    done = frame[frame["state"] == "COMPLETE"].sort_values(metric, ascending=_ascending(study), kind="stable")
    best = ranked(study)[0].number if len(study.directions) == 1 and not done.empty else None
    written = []
    figures = {
        "learning_curves": lambda: learning_curves(study, done, metric, varied, curves, level),
        "metric_vs_hyperparameters": lambda: metric_vs_hyperparameters(done, metric, varied, level),
        "optimization_history": lambda: optimization_history(frame, metric, study),
        "parallel_coordinates": lambda: parallel_coordinates(done, metric, varied),
        "importance": lambda: importance(study, metric),
        "per_class_accuracy": lambda: per_class_accuracy(done[done["trial"] == best]),
    }
    for name, draw in figures.items():
        figure = draw()
        if figure is None:
            continue
        if named:
            title = figure.get_suptitle()
            figure.suptitle(f"Study {study.study_name}" + (f": {title}" if title else ""), fontweight="bold")
            name = f"{study.study_name}_{name}"
        figure.tight_layout()
        try:
            for suffix in ("png", "pdf"):
                # drawn in memory and written whole: matplotlib's own writers meet a full disk with an
                # error of their own on top (the PDF writer's AttributeError), and leave half a file
                image = io.BytesIO()
                figure.savefig(image, format=suffix, dpi=150, bbox_inches="tight")  # "tight": the legend
                write_atomic(out / f"{name}.{suffix}", image.getvalue())
        finally:
            plt.close(figure)
        written.append(out / f"{name}.png")
    return written


def label(column: str) -> str:
    return HEADERS.get(column, column)


def describe(row: pd.Series, varied: Sequence[str]) -> str:
    """A configuration named by its varied values (`Layers (100, 50), Act. elu`), else by its setup."""
    named = ", ".join(f"{label(c)} {format_value(row[c])}" for c in varied)
    setup = row.get("setup")
    if isinstance(setup, str) and setup:
        named = f"{setup}, {named}" if named else setup
    return named


def learning_curves(
    study: optuna.Study, done: pd.DataFrame, metric: str, varied: Sequence[str], shown: int, level: float
) -> plt.Figure | None:
    """Train and validation loss and accuracy against step for the best `shown` configurations: one line
    per configuration, the mean over its runs (replicates, or seeds swept as a key), its interval a band."""
    runs = done.assign(configuration=[describe(row, varied) or "all runs" for _, row in done.iterrows()])
    means = runs.groupby("configuration", sort=False)[metric].mean()
    best = means.sort_values(ascending=_ascending(study)).index[:shown]
    histories = []
    for name in best:
        group = runs[runs["configuration"] == name]
        for _, row in group.iterrows():
            try:  # a missing or damaged history is named in the report's index, not drawn
                rows = read_history(Path(str(row.get("run_dir") or "")))
            except DamagedRecord:
                continue
            n = f"n={len(group)}" if len(group) > 1 else f"trial {row['trial']}"
            histories.append(pd.DataFrame(rows).assign(configuration=f"{name} ({n})"))
    if not histories:
        return None
    data = pd.concat(histories, ignore_index=True)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    palette = dict(zip(data["configuration"].unique(), sns.color_palette(), strict=False))
    for ax, quantity in zip(axes, ("loss", "acc"), strict=True):
        for split, style in (("train", "--"), ("val", "-")):
            sns.lineplot(
                data=data,
                x="step",
                y=f"{split}_{quantity}",
                hue="configuration",
                palette=palette,
                errorbar=functools.partial(_band, level=level, bounds=bounds_of(f"val_{quantity}")),
                linestyle=style,
                marker=".",
                alpha=0.7 if split == "train" else 1.0,
                legend=split == "val",
                ax=ax,
            )
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.set_ylabel("loss" if quantity == "loss" else "accuracy")
        ax.set_title(f"{'Loss' if quantity == 'loss' else 'Accuracy'} (solid: validation, dashed: training)")
        if ax.get_legend():
            ax.get_legend().remove()
    # below the plots, where it covers no curve
    handles, labels = axes[1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=7, ncol=2)
    if data.groupby("configuration")["step"].size().max() > data["step"].nunique():
        figure.suptitle(f"Mean over runs; band: {level:.0%} confidence interval of the mean (Student's t)")
    return figure


def _band(values: pd.Series, level: float, bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """seaborn's errorbar: the t interval of the mean within the metric's `bounds` (the mean itself for
    a single run)."""
    interval = mean_interval(list(values), level, bounds=bounds)
    mean = float(values.mean())
    return (interval.low, interval.high) if interval else (mean, mean)


def metric_vs_hyperparameters(
    done: pd.DataFrame, metric: str, varied: Sequence[str], level: float = 0.95
) -> plt.Figure | None:
    """Every run's metric against each varied hyperparameter, with each value's mean and its interval."""
    if not varied or done.empty:
        return None
    figure, axes = plt.subplots(1, len(varied), figsize=(3.2 * len(varied), 3.2), squeeze=False)
    for ax, column in zip(axes[0], varied, strict=True):
        values = (
            done[column].map(format_value)
            if not pd.api.types.is_numeric_dtype(done[column])
            else done[column]
        )
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 6:
            ax.scatter(values, done[metric], s=14)
            if column.endswith(".lr") or ((values > 0).all() and values.max() / values.min() > 100):
                ax.set_xscale("log")
        else:
            x = values.map(format_value)
            sns.stripplot(x=x, y=done[metric], ax=ax, size=4, alpha=0.6)
            sns.pointplot(
                x=x,
                y=done[metric],
                ax=ax,
                errorbar=functools.partial(_band, level=level, bounds=bounds_of(metric)),
                color="black",
                linestyle="none",
                markers="_",
                capsize=0.2,
            )
        ax.set_xlabel(label(column))
        ax.set_ylabel(label(metric))
    figure.suptitle(f"{label(metric)} against each varied hyperparameter (black: mean, {level:.0%} interval)")
    return figure


def optimization_history(frame: pd.DataFrame, metric: str, study: optuna.Study) -> plt.Figure | None:
    # a trial's value: the mean of its runs (its replicates' numbers are recorded per run)
    done = frame[frame["state"] == "COMPLETE"].groupby("trial", as_index=False)[metric].mean()
    if done.empty:
        return None
    best_so_far = done[metric].cummin() if _ascending(study) else done[metric].cummax()
    figure, ax = plt.subplots(figsize=(6, 3.4))
    ax.scatter(done["trial"], done[metric], s=12, label="trial")
    ax.step(done["trial"], best_so_far, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial number")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers are whole numbers
    ax.set_ylabel(label(metric))
    ax.set_title(f"Optimization history ({len(done)} completed trials)")
    ax.legend()
    return figure


def parallel_coordinates(done: pd.DataFrame, metric: str, varied: Sequence[str]) -> plt.Figure | None:
    if len(varied) < 2 or len(done) < 2:
        return None
    columns = [*varied, metric]
    codes = pd.DataFrame({c: _rank01(done[c]) for c in columns})
    figure, ax = plt.subplots(figsize=(1.8 * len(columns) + 2, 3.6))
    colors = plt.get_cmap("viridis")(codes[metric].to_numpy())
    for i in range(len(codes)):
        ax.plot(range(len(columns)), codes.iloc[i].to_numpy(), color=colors[i], alpha=0.7)
    for x, column in enumerate(columns):  # each axis labelled with its values (or its range)
        shown = (
            done[column]
            if not pd.api.types.is_numeric_dtype(done[column])
            else done[column].agg(["min", "max"])
        )
        for value, y in dict(zip(shown.map(format_value), _rank01(shown), strict=True)).items():
            ax.annotate(value, (x, y), xytext=(4, 0), textcoords="offset points", fontsize=7, va="center")
    ax.set_xticks(range(len(columns)), [label(c) for c in columns])
    ax.set_yticks([])
    ax.set_title(f"Parallel coordinates (colour: {label(metric)})")
    return figure


# named, not left to Optuna's default (PED-ANOVA in Optuna 5, fANOVA in 4), so that the figure's
# label says what was computed whatever Optuna's version; fANOVA would need scikit-learn besides
IMPORTANCE = ("PED-ANOVA", optuna.importance.PedAnovaImportanceEvaluator)


def importance(study: optuna.Study, metric: str, objective: int = 0) -> plt.Figure | None:
    """Optuna's hyperparameter importance (its PED-ANOVA evaluator), on the trials' searched parameters;
    in a study of several objectives, for objective number `objective` (`metric` names it)."""
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < 4:
        return None
    target = None
    if len(study.directions) > 1:
        # PED-ANOVA with a target takes low values as good, whatever the direction: maximized negated
        sign = 1.0 if study.directions[objective] == optuna.study.StudyDirection.MINIMIZE else -1.0
        target = lambda t: sign * t.values[objective]  # noqa: E731
    try:
        with warnings.catch_warnings():  # its warning that low target values are taken as good: they are
            warnings.filterwarnings("ignore", message=".*low `target` values")
            scores = optuna.importance.get_param_importances(study, evaluator=IMPORTANCE[1](), target=target)
    except (RuntimeError, ValueError) as err:  # too few trials, or a single searched value
        log.info("no importance figure: %s", err)
        return None
    if not scores:
        return None
    figure, ax = plt.subplots(figsize=(6, 0.5 * len(scores) + 1.2))
    ax.barh([label(k) for k in scores][::-1], list(scores.values())[::-1])
    ax.set_xlabel(f"importance ({IMPORTANCE[0]}, sums to 1)")
    ax.set_title(f"Hyperparameter importance for {label(metric)}")
    return figure


def per_class_accuracy(best: pd.DataFrame) -> plt.Figure | None:
    """The best trial's runs (one, or its replicates: their mean)."""
    columns = [c for c in best.columns if c.startswith("test_acc[")]
    if best.empty or not columns or best[columns].isna().all(axis=None):
        return None
    mean = best[columns].mean()
    figure, ax = plt.subplots(figsize=(max(5, 0.6 * len(columns)), 3.4))
    ax.bar([c[len("test_acc[") : -1] for c in columns], [mean[c] for c in columns])
    ax.set_ylim(0, 1)
    ax.set_xlabel("class")
    ax.set_ylabel("test accuracy")
    runs = f", mean of its {len(best)} runs" if len(best) > 1 else ""
    ax.set_title(f"Per-class test accuracy of the best trial ({best['trial'].iloc[0]}{runs})")
    return figure


def _ascending(study: optuna.Study) -> bool:
    return study.directions[0] == optuna.study.StudyDirection.MINIMIZE


def _rank01(values: pd.Series) -> pd.Series:
    """Values mapped to [0, 1] for parallel coordinates: numbers by value, others by their order."""
    if pd.api.types.is_numeric_dtype(values):
        low, high = values.min(), values.max()
        return (values - low) / (high - low) if high > low else values * 0 + 0.5
    order = {v: i for i, v in enumerate(dict.fromkeys(values.map(format_value)))}
    codes = values.map(format_value).map(order)
    return codes / max(1, len(order) - 1)
