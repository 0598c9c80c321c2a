"""The arguments of `sweeplab report`, apart from the report's code, so that `sweeplab report --help`
(and a mistyped option) answers without loading the report's libraries (pandas, seaborn, SciPy: about
2 s of start-up)."""

import argparse
from pathlib import Path

from sweeplab.report.stats import METHODS

DESCRIPTION = (
    "A study's tables (md, tex, csv, html), figures and an index.md (and the same as one self-contained "
    "index.html) that summarises it and shows the command that reproduces its best trial."
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweeplab report", description=DESCRIPTION)
    p.add_argument(
        "studies",
        nargs="*",
        help="study names; or sweep=NAME and other overrides (size=smoke), as `sweeplab train` takes them",
    )
    p.add_argument(
        "--sweep", help="a sweep file's name (sweeps/NAME.yaml): its study, storage and report spec"
    )
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/<study>.db)")
    p.add_argument("--out", type=Path, help="output folder (default: outputs/reports/<study>)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an output folder that holds files the report did not write",
    )
    p.add_argument("--format", default="md,tex,csv,html", help="table formats, comma-separated")
    p.add_argument("--include-failed", action="store_true", help="also show FAIL and PRUNED trials as rows")
    p.add_argument("--ablation", action="store_true", help="mark cells that differ from the first row")
    p.add_argument(
        "--notes", type=Path, help="a Markdown file put at the top of index.md (what was run, on what)"
    )
    p.add_argument(
        "--ci", type=float, default=0.95, help="the confidence level of intervals and tests (default 0.95)"
    )
    p.add_argument(
        "--stats",
        choices=list(METHODS),
        default="t",
        help="a row's interval for its mean: t (Student's t, default) or bootstrap (BCa, percentile "
        "where BCa cannot be computed); changes between rows always use Welch's t",
    )
    p.add_argument(
        "--holm", action="store_true", help="Holm's correction over each table's comparisons (p-values)"
    )
    return p
