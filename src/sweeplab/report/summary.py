"""The report page's prose: a study's summary (its trials, compute, data and budget, its best trial and
the command that reruns it, or its Pareto front) and its numbers beside an original report's."""

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from sweeplab.engine.records import StudyRecord, TrialRecord
from sweeplab.engine.study import pareto_front, ranked
from sweeplab.report import render
from sweeplab.report.stats import prediction_interval
from sweeplab.report.tables import OUTCOME, Table


def comparison(table: Table, original: Mapping[str, Any]) -> list[str]:
    """Our numbers beside the original report's, row for row: `original: {header, values, metric}`."""
    values, metric = list(original["values"]), original.get("metric", "test_acc")
    if len(values) != len(table.rows) or metric not in table.rows:
        return [
            f"(The original's {len(values)} values do not line up with this table's {len(table.rows)} rows.)",
            "",
        ]
    names = render.cells(table)
    # the row's first hyperparameter (not the State column of --include-failed)
    shown = [i for i, c in enumerate(table.hyperparameters) if c != OUTCOME]
    first = shown[0] if shown else None
    lines = [
        f"Compared with the original report ({metric}):",
        "",
        f"| Row | {table.headers[table.hyperparameters[first]] if first is not None else 'Row'} "
        f"| here | {original.get('header', 'original')} | difference | a run of ours would fall in |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    intervals = table.intervals.get(metric) or [None] * len(table.rows)
    level = table.statistics.level
    for i, (row, theirs) in enumerate(zip(names, values, strict=True), start=1):
        ours, interval = table.rows[metric].iloc[i - 1], intervals[i - 1]
        diff = f"{ours - theirs:+.3f}" if theirs is not None else "–"
        theirs_text = f"{theirs:.4g}" if theirs is not None else "–"
        single = prediction_interval(table.samples[metric][i - 1], level)
        fits = "–"
        if single is not None and theirs is not None:
            fits = f"[{single.low:.3f}, {single.high:.3f}]: {'no' if single.excludes(theirs) else 'yes'}"
        text = render.format_metric(ours, interval)
        name = row[first] if first is not None else ""
        lines.append(f"| {i} | {name} | {text} | {theirs_text} | {diff} | {fits} |")
    if any(len(values) > 1 for values in table.samples.get(metric, [])):
        lines += [
            "",
            f"The original is one run: the last column is the {level:.0%} prediction interval of one run of "
            "ours (Student's t, mean ± t·s·√(1 + 1/n)), and whether the original's number falls in it.",
        ]
    return [*lines, ""]


def study_summary(study: optuna.Study) -> list[str]:
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    seconds = sum(t.duration.total_seconds() for t in trials if t.duration)
    lines = [
        f"## Study `{study.study_name}`",
        "",
        f"- trials: {len(trials)} ({', '.join(f'{n} {k}' for k, n in sorted(states.items()))})",
        f"- compute: {seconds / 60:.1f} min of trial time",
    ]
    lines += [f"- made with: `{command}`" for command in StudyRecord.of(study).commands]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        config = TrialRecord.of(complete[0]).config
        data, trainer = config.get("dataset", {}), config.get("trainer", {})
        if data and trainer:
            budget = (
                f"{trainer['max_steps']} steps"
                if trainer.get("max_steps")
                else f"{trainer.get('epochs')} epochs"
            )
            if trainer.get("limit_steps"):
                budget += f", capped at {trainer['limit_steps']} steps (a smoke run)"
            source = f" (from {data['path']})" if data.get("path") else ""
            lines.append(
                f"- data: {data.get('name')}{source}; budget: {budget} of batch {trainer.get('batch_size')}"
            )
    if complete and len(study.directions) > 1:
        front = ", ".join(str(n) for n in sorted(t.number for t in pareto_front(study)))
        lines.append(f"- best: no one trial; the Pareto front of the trials' values: trials {front}")
    if complete and len(study.directions) == 1:
        best = ranked(study)[0]
        objectives = StudyRecord.of(study).objectives
        wanted = (*objectives, "val_acc", "test_acc", "test_acc_last", "params", "train_seconds")
        shown = {k: v for k, v in TrialRecord.of(best).metrics.items() if k in wanted}
        lines += [
            f"- best: trial {best.number}, "
            + ", ".join(f"{k} {render.format_value(v)}" for k, v in shown.items()),
            f"- its searched values: `{' '.join(f'{k}={v}' for k, v in best.params.items())}`",
        ]
        run_dir, which = _config_folder(best)
        if run_dir:
            # Hydra reads a relative --config-path from its app's file: from the folder the study ran in,
            # $PWD makes it absolute
            run_dir = f"$PWD/{os.path.relpath(run_dir)}" if run_dir.startswith(os.getcwd()) else run_dir
            lines.append(
                f"- reproduce it{which}: `sweeplab train --config-path {run_dir}/.hydra --config-name config "
                f"{REPRODUCE_RUN_DIR}`"
            )
    return [*lines, ""]


def _config_folder(trial: optuna.trial.FrozenTrial) -> tuple[str | None, str]:
    """The run folder whose `.hydra/config.yaml` reruns `trial`, and which run it is: the trial's own
    folder (a single or packed trial), else its first replicate's (`seed_K/`, each member's config)."""
    record = TrialRecord.of(trial)
    runs, members = [record.output_dir], record.replicates
    runs += [m.get("output_dir") for m in members if isinstance(m, dict)]
    for i, run in enumerate(runs):
        if run and (Path(run) / ".hydra" / "config.yaml").is_file():
            return run, "" if i == 0 else f" (its replicate {Path(run).name}, of {len(members)})"
    return None, ""


# A trial's saved config holds no `hydra` node: its rerun goes where `sweeplab train` puts runs
REPRODUCE_RUN_DIR = "'hydra.run.dir=outputs/runs/${now:%Y-%m-%d}/${now:%H-%M-%S}-${pid:}'"
