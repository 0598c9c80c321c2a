"""`sweeplab report STUDY [STUDY ...]`: a study's tables (md, tex, csv, html), figures and an index.md
(and the same as one self-contained index.html)
that summarises it and shows the command that reproduces its best trial."""

import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf

from sweeplab.config import SweeplabError
from sweeplab.engine.records import StudyRecord
from sweeplab.engine.reference import StudyRef
from sweeplab.engine.storage import (
    StorageMissing,
    checked_study_name,
    masked,
    open_storage_readonly,
    studies_folder,
)
from sweeplab.files import write_atomic
from sweeplab.paths import config_dir
from sweeplab.report import render
from sweeplab.report.arguments import parser
from sweeplab.report.figures import write_figures
from sweeplab.report.folder import check_out, report_folder
from sweeplab.report.frame import python_value, studies_frame
from sweeplab.report.front import pareto_section
from sweeplab.report.marginals import marginals
from sweeplab.report.page import to_page
from sweeplab.report.summary import comparison, study_summary
from sweeplab.report.tables import Statistics, build_table
from sweeplab.run_records import problems
from sweeplab.stopping import signals_raise
from sweeplab.sweeper.constraints import parse_constraints

log = logging.getLogger(__name__)
FORMATS = {"md": render.to_markdown, "tex": render.to_latex, "csv": render.to_csv, "html": render.to_html}


def main(argv: Sequence[str]) -> None:
    args = parser().parse_args(argv)
    overrides = [a for a in args.studies if "=" in a]  # `sweep=NAME size=smoke`, as for `train`
    names = [a for a in args.studies if "=" not in a]
    if args.sweep:
        overrides.append(f"sweep={args.sweep}")
    spec: dict[str, Any] = {}
    storage = args.storage
    if overrides:
        sweeper = _sweeper_settings(overrides)
        names = names or [sweeper.study_name]
        storage = storage or sweeper.get("storage")
        spec = OmegaConf.to_container(sweeper.report, resolve=True)  # type: ignore[assignment]
    if not names:
        raise SweeplabError("sweeplab report: name a study, or a sweep file with --sweep NAME")
    for name in names:
        checked_study_name(name, "study")
    if not 0 < args.ci < 1:
        raise SweeplabError(f"--ci: a confidence level between 0 and 1 (e.g. 0.95), got {args.ci:g}")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise SweeplabError(f"--format: unknown {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    notes = ""
    if args.notes:
        try:
            notes = args.notes.read_text()
        except OSError as err:
            raise SweeplabError(f"--notes: cannot read {args.notes}: {err.strerror}") from None
    spec_out = spec.pop("out", None)
    protected = [studies_folder(), *(StudyRef.of(name, storage, "study").file for name in names)]
    out = check_out(
        args.out or Path(spec_out or Path("outputs", "reports", "_vs_".join(names))),
        [p for p in protected if p is not None],
    )
    studies = _distinct([_load(name, storage) for name in names])
    # notes kept inside the report's folder are the user's words: they stay there, without --force
    keep = Path(os.path.abspath(args.notes)) if args.notes else None
    # SIGTERM as Ctrl-C: the half-written report's hidden folder is removed on the way out
    with signals_raise(), report_folder(out, args.force, keep) as folder:
        write_report(
            studies,
            folder,
            formats,
            spec,
            args.include_failed,
            args.ablation,
            command=shlex.join(["sweeplab", "report", *argv]),
            notes=notes,
            statistics=Statistics(args.ci, args.stats, args.holm),
        )
    print(f"report written: {os.path.relpath(out / 'index.md')}")


def write_report(
    studies: Sequence[optuna.Study],
    out: Path,
    formats: Sequence[str],
    spec: Mapping[str, Any],
    include_failed: bool,
    ablation: bool,
    command: str,
    notes: str = "",
    statistics: Statistics | None = None,
) -> Path:
    """The report's files, written into the folder `out`. `spec` (a sweep file's `hydra.sweeper.report`)
    may hold one table's options (metrics, columns, headers, values, where, choose, transpose, ablation,
    delta, original) or a list of `tables`, each with those options and a `title`. `notes` (Markdown)
    goes before the summary."""
    out.mkdir(parents=True, exist_ok=True)
    frame = studies_frame(studies)
    defaults = {k: v for k, v in spec.items() if k != "tables"}
    specs = [{**defaults, **t} for t in spec.get("tables") or []] or [defaults]
    states = ("COMPLETE", "PRUNED", "FAIL") if include_failed else ("COMPLETE",)
    if not frame["state"].isin(states).any():
        raise SweeplabError(
            f"no {' or '.join(states)} trials to report yet in {', '.join(s.study_name for s in studies)}"
            + ("" if include_failed else " (--include-failed shows the others)")
        )
    in_order = bool(frame["setup"].notna().any())  # setups keep their own order, as the reports list them
    lines = [f"# Report: {', '.join(s.study_name for s in studies)}", "", f"Made with `{command}`.", ""]
    if notes.strip():
        lines += [notes.strip(), ""]
    for study in studies:
        lines += study_summary(study)
    damaged = damaged_records(frame)
    if damaged:
        print(
            f"warning: {len(damaged)} run records are missing or damaged; index.md names them",
            file=sys.stderr,
        )
        lines += [
            "## Records missing or damaged",
            "",
            "The tables hold the values the study's storage keeps; the figures leave out what cannot be "
            "read.",
            "",
            *(f"- {line}" for line in damaged),
            "",
        ]
    objectives = StudyRecord.of(studies[0]).objectives
    constraints = list(parse_constraints(StudyRecord.of(studies[0]).constraints, None).values())
    tables = []
    for i, table_spec in enumerate(specs, start=1):
        marked = ablation or table_spec.get("ablation", False)
        table = build_table(
            frame,
            dict(table_spec.get("metrics") or _default_metrics(studies[0], frame)),
            columns=table_spec.get("columns"),
            headers=table_spec.get("headers"),
            ablation=marked,
            sort_rows=not (marked or in_order),
            states=states,
            where=table_spec.get("where"),
            choose=table_spec.get("choose"),
            values=table_spec.get("values"),
            transpose=table_spec.get("transpose", False),
            delta=table_spec.get("delta", True),
            statistics=statistics,
            pareto=objectives if len(objectives) > 1 else None,
            constraints=constraints,
        )
        title = table_spec.get("title")
        lines += [f"## Table {i}: {title}" if title else "## Table", ""]
        if table.rows.empty:
            lines += ["No completed trials for this table yet.", ""]
            continue
        stem = "table" if len(specs) == 1 else f"table_{i}"
        for fmt in formats:
            write_atomic(out / f"{stem}.{fmt}", FORMATS[fmt](table))
        lines += [render.to_markdown(table)]
        lines += [" · ".join(f"[{fmt.upper()}]({stem}.{fmt})" for fmt in formats if fmt != "md"), ""]
        if table_spec.get("original"):
            lines += comparison(table, table_spec["original"])
        tables.append(table)
    if not tables:
        raise SweeplabError("no table of the report spec has a row: check each table's `where`")
    if tables[0].pareto is not None and len(studies) == 1:
        lines += pareto_section(studies[0], tables[0], spec.get("pareto") or {}, out)
    first_metric, direction = next(iter(tables[0].metrics.items()))
    varied = [c for c in tables[0].hyperparameters if c in frame.attrs["hyperparameters"]]
    if varied and len(tables) == 1 and not in_order:
        lines += [f"## {tables[0].headers[first_metric]} per value", ""]
        for column, marginal in marginals(frame, first_metric, direction, varied).items():
            lines += [f"| {tables[0].headers[column]} | mean | best | n |", "| --- | --- | --- | --- |"]
            for _, r in marginal.iterrows():
                value = render.format_value(python_value(r[column]))
                lines.append(f"| {value} | {r['mean']:.3f} | {r['best']:.3f} | {int(r['n'])} |")
            lines.append("")
    several = len(studies) > 1  # each study's figures, named and titled by their study
    for study in studies:
        figures = write_figures(
            study,
            frame[frame["study"] == study.study_name],
            first_metric,
            varied,
            out,
            named=several,
            level=(statistics or Statistics()).level,
        )
        if figures:
            lines += [f"## Figures: study `{study.study_name}`" if several else "## Figures", ""]
            lines += [f"![{p.stem.replace('_', ' ')}]({p.name}) ([PDF]({p.stem}.pdf))" for p in figures]
            lines += [""]
    text = "\n".join(lines)
    write_atomic(out / "index.html", to_page(text, out, lines[0].lstrip("# ")))
    return write_atomic(out / "index.md", text)


def damaged_records(frame) -> list[str]:
    """Each missing or damaged record of the finished runs in `frame`, naming its trial and file."""
    found = []
    finished = frame[frame["state"].isin(("COMPLETE", "PRUNED"))]
    for study, trial, state, run_dir in finished[["study", "trial", "state", "run_dir"]].itertuples(
        index=False
    ):
        if not isinstance(run_dir, str) or not run_dir:
            found.append(f"study `{study}`, trial {trial}: no run folder is recorded")
            continue
        found += [
            f"study `{study}`, trial {trial}: {p}" for p in problems(Path(run_dir), state == "COMPLETE")
        ]
    return found


def _default_metrics(study: optuna.Study, frame) -> dict[str, str]:
    """The study's objectives, then the test accuracy when the runs recorded it."""
    stored = StudyRecord.of(study).objectives or {"val_acc": "maximize"}
    metrics = {m: d for m, d in stored.items() if m in frame.columns}
    if "test_acc" in frame.columns:
        metrics.setdefault("test_acc", "maximize")
    return metrics or {"val_acc": "maximize"}


def _load(name: str, storage: str | None) -> optuna.Study:
    """The study, read-only: a report never creates or changes a file, a table or a journal mode."""
    url = StudyRef.of(name, storage, "study").url
    try:
        return optuna.load_study(study_name=name, storage=open_storage_readonly(url))
    except StorageMissing as err:
        raise SweeplabError(f"no study {name!r}: {err}; give its --storage, or --sweep NAME") from None
    except KeyError as err:
        raise SweeplabError(
            f"no study {name!r} in {masked(url)}; give its --storage, or --sweep NAME"
        ) from err


def _distinct(studies: list[optuna.Study]) -> list[optuna.Study]:
    """Each study once: named twice, or stored twice (a copy of its file holds the same sweeplab id),
    its trials would be counted twice in every table, with intervals narrower than the data allow."""
    kept: dict[object, optuna.Study] = {}
    for study in studies:
        key = StudyRecord.of(study).study_id or study.study_name
        if key in kept:
            first = kept[key].study_name
            same = "is named twice" if first == study.study_name else f"is the same study as {first!r}"
            print(f"warning: study {study.study_name!r} {same}: its trials are counted once", file=sys.stderr)
            continue
        kept[key] = study
    return list(kept.values())


def _sweeper_settings(overrides: list[str]):
    """The `hydra.sweeper` node that `sweeplab train` composes from these overrides."""
    sweeps = [o.split("=", 1)[1] for o in overrides if o.startswith("sweep=")]
    if not sweeps:
        raise SweeplabError(f"sweeplab report: overrides {' '.join(overrides)} need sweep=NAME among them")
    path = config_dir() / "sweep" / f"{sweeps[-1]}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SweeplabError(f"no sweep file {path}; choose one of: {', '.join(options)}")
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        try:
            config = compose("config", overrides=overrides, return_hydra_config=True)
        except HydraException as err:
            raise SweeplabError(f"sweeplab report: {err}") from err
    return config.hydra.sweeper
