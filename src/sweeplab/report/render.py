"""Tables rendered as people put them in reports: Markdown (GitHub), LaTeX (booktabs), CSV (raw
numbers) and self-contained HTML. Best values are bold; in ablations, changed cells are marked: shaded
grey when the change was tried, green when the rows after it kept it (as the reports colour them)."""

import html
import json
import math
from collections.abc import Callable

import pandas as pd

from sweeplab.report.frame import python_value
from sweeplab.report.stats import Change, Interval
from sweeplab.report.tables import Table

CHANGED = "†"  # Markdown's marker for a cell that differs from the row it is compared with
KEPT = "‡"  # ... for such a cell whose change the rows after it kept
SIGNIFICANT = "*"  # a change whose interval excludes 0 (after Holm's correction where asked)
TIED = "≈"  # a row not significantly worse than the best
INFEASIBLE = "✗"  # a row whose mean breaks one of the study's constraints


def format_value(value: object) -> str:
    """A hyperparameter as people write it: `(1024, 512)`, `1e-3`, `0.05`, `✓`/`–`, `15,210`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "✓" if value else "–"
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float) and value.is_integer() and 1000 <= abs(value) < 1e15:
        return format_value(int(value))  # a count made float by a missing value in its column
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
            mantissa, exponent = f"{value:.3e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:.4g}"
    return str(value)


def format_metric(mean: float, interval: Interval | None, whole: bool = False) -> str:
    """A metric cell: `0.652` for one run, `0.652 [0.640, 0.664]` (the mean and its interval) over
    several, `15,210` for counts."""
    if mean is None or math.isnan(mean):
        return "–"
    text = f"{mean:,.0f}" if whole or abs(mean) >= 1000 else f"{mean:.3f}"
    if interval is None or whole:
        return text
    return f"{text} [{interval.low:.3f}, {interval.high:.3f}]"


def format_change(change: Change | None, delta: float) -> str:
    """A Δ cell: `+0.041 [+0.020, +0.062]*`, or the bare difference where runs are too few to test."""
    if change is None:
        return f"{delta:+.3f}"
    mark = SIGNIFICANT if change.significant else ""
    return f"{delta:+.3f} [{change.interval.low:+.3f}, {change.interval.high:+.3f}]{mark}"


def legend(table: Table) -> list[str]:
    """What the table's intervals and marks mean, with the test and the level named."""
    st, lines = table.statistics, []
    intervals = [i for values in table.intervals.values() for i in values if i is not None]
    level = f"{st.level:.0%}"
    if intervals:
        lines.append(
            f"Metrics: the mean over the row's n runs and its {level} confidence interval "
            f"({intervals[0].method})."
        )
    correction = (
        f", after Holm's correction over the table's {table.comparisons} comparisons" if st.holm else ""
    )
    if table.changes and any(c is not None for c in table.changes) and table.delta is not None:
        first = table.headers[next(iter(table.metrics))]
        lines.append(
            f"Δ: the row's {first} minus that of the row it is compared with, with its {level} interval "
            f"(Welch's t); {SIGNIFICANT} where the difference is significant (two-sided p < "
            f"{1 - st.level:.2g}{correction}). Rows with one run have no interval."
        )
    if table.reference is None and table.comparisons:
        line, other = ("row", "column") if table.transpose else ("column", "row")
        lines.append(
            f"Bold: the best mean of its {line}; {TIED}: a {other} not significantly different from it "
            f"(Welch's t, two-sided p ≥ {1 - st.level:.2g}{correction}), so the best is not claimed over "
            f"it; the other {other}s with n ≥ 2 are significantly worse."
        )
    if table.pareto is not None:
        lines.append(table.pareto.legend())
    if table.constraints:
        bounds = ", ".join(map(str, table.constraints))
        lines.append(f"Constraints ({bounds}, on the row's mean): ✓ met, {INFEASIBLE} broken.")
    return lines


def cells(table: Table) -> list[list[str]]:
    """Each row's formatted cells (hyperparameters, metrics, then n and Δ when they apply)."""
    whole = {m: _counts(table.rows[m]) for m in table.metrics}
    rows = []
    for i in range(len(table.rows)):
        row = [_shown(table, c, table.rows.iloc[i][c]) for c in table.hyperparameters]
        row += [
            format_metric(table.rows.iloc[i][m], _interval(table, m, i), whole[m])
            + (f" {TIED}" if i in table.tied.get(m, ()) else "")
            for m in table.metrics
        ]
        if max(table.n) > 1:
            row.append(str(table.n[i]))
        if table.delta is not None:
            change = table.changes[i] if table.changes else None
            row.append("–" if table.reference[i] is None else format_change(change, table.delta.iloc[i]))
        if table.pareto is not None:
            row.append(table.pareto.mark(i))
        if table.constraints:
            row.append(INFEASIBLE if i in table.infeasible else "✓")
        rows.append(row)
    return rows


def _interval(table: Table, metric: str, row: int) -> Interval | None:
    values = table.intervals.get(metric)
    return values[row] if values else None


def _shown(table: Table, column: str, value: object) -> str:
    """A hyperparameter cell: its value as people write it, or the text the report spec gives for it;
    a composite column `a+b` joins its parts (leaving out those shown as empty text)."""
    if "+" in column:
        parts = [_shown(table, key, v) for key, v in zip(column.split("+"), value, strict=True)]  # type: ignore[call-overload]
        return ", ".join(p for p in parts if p)
    value = python_value(value)
    text = format_value(value)
    labels = table.labels.get(column, {})
    return labels.get(text, labels.get(str(value), text))


def header(table: Table) -> list[str]:
    names = [table.headers[c] for c in [*table.hyperparameters, *table.metrics]]
    first = next(iter(table.metrics))
    return (
        names
        + (["n"] if max(table.n) > 1 else [])
        + ([f"Δ {table.headers[first]}"] if table.delta is not None else [])
        + (["Pareto"] if table.pareto is not None else [])
        + (["Constraints"] if table.constraints else [])
    )


def to_markdown(table: Table) -> str:
    head, body = _grid(
        table,
        header(table),
        _styled(
            table,
            bold=lambda s: f"**{s}**",
            changed=lambda s: f"{s} {CHANGED}",
            kept=lambda s: f"{s} {KEPT}",
        ),
    )
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    notes = legend(table)
    if notes:
        lines += ["", *notes]
    if table.kept:
        lines += [
            "",
            f"{KEPT} a change kept in the rows after it; {CHANGED} a change tried and not kept (each row "
            "is compared with the last kept one before it). Best value per metric in bold.",
        ]
    elif table.changed:
        lines += ["", f"{CHANGED} changed from the baseline (first row). Best value per metric in bold."]
    return "\n".join(lines) + "\n"


def to_latex(table: Table, caption: str | None = None) -> str:
    """A booktabs table; changed cells are shaded (needs `\\usepackage[table]{xcolor}` and booktabs)."""
    head, body = _grid(
        table,
        [_latex_escape(h) for h in header(table)],
        _styled(
            table,
            escape=_latex_escape,
            bold=lambda s: f"\\textbf{{{s}}}",
            changed=lambda s: f"\\cellcolor{{black!10}}{s}",
            kept=lambda s: f"\\cellcolor{{green!15}}{s}",
        ),
    )
    labels = 1 if table.transpose else len(table.hyperparameters)
    align = "l" * labels + "r" * (len(head) - labels)
    lines = ["\\begin{table}[t]", "\\centering"]
    if caption:
        lines.append(f"\\caption{{{_latex_escape(caption)}}}")
    lines += [
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(head) + " \\\\",
        "\\midrule",
    ]
    lines += [" & ".join(row) + " \\\\" for row in body]
    lines += ["\\bottomrule", "\\end{tabular}"]
    lines += [f"\\par\\footnotesize {_latex_escape(note)}" for note in legend(table)]
    lines += ["\\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Raw numbers: hyperparameters, each metric's mean, std and interval, n, an ablation's change with
    its interval, p-value and verdict (or a plain table's ties with the best), the trials of each row."""
    frame = table.rows.copy()
    for column in table.hyperparameters:  # (100, 50) as [100, 50]: JSON, and Hydra's override syntax
        frame[column] = frame[column].map(lambda v: json.dumps(list(v)) if isinstance(v, tuple) else v)
    for m in table.metrics:
        at = frame.columns.get_loc(m) + 1
        intervals = [_interval(table, m, i) for i in range(len(frame))]
        frame.insert(at, f"{m}_std", table.std[m].to_numpy())
        frame.insert(at + 1, f"{m}_ci_low", [i.low if i else math.nan for i in intervals])
        frame.insert(at + 2, f"{m}_ci_high", [i.high if i else math.nan for i in intervals])
        if table.reference is None and m in table.tied:
            frame[f"{m}_tied_with_best"] = [i in table.tied[m] for i in range(len(frame))]
    frame["n"] = table.n
    if table.reference is not None:
        changes = table.changes or [None] * len(frame)
        deltas = zip(table.reference, table.delta_all, strict=True)  # type: ignore[arg-type]
        frame["delta"] = [math.nan if r is None else d for r, d in deltas]
        frame["delta_ci_low"] = [c.interval.low if c else math.nan for c in changes]
        frame["delta_ci_high"] = [c.interval.high if c else math.nan for c in changes]
        frame["p_value"] = [c.p_value if c else math.nan for c in changes]
        if table.statistics.holm:
            frame["p_holm"] = [c.p_adjusted if c else math.nan for c in changes]
        frame["significant"] = [c.significant if c else None for c in changes]
    if table.pareto is not None:
        frame["pareto_front"] = [i in table.pareto.front for i in range(len(frame))]
        tested = table.pareto.tested
        frame["not_significantly_dominated"] = [
            (i in table.pareto.undominated) if tested else None for i in range(len(frame))
        ]
    if table.constraints:
        frame["meets_constraints"] = [i not in table.infeasible for i in range(len(frame))]
    frame["trials"] = [" ".join(map(str, t)) for t in table.trials]
    return frame.to_csv(index=False)


def to_html(table: Table, title: str = "") -> str:
    """A self-contained page: bold best values, changed cells on a tinted background."""
    names, body = _grid(
        table,
        [html.escape(h) for h in header(table)],
        _styled(
            table, escape=html.escape, bold=lambda s: f"<b>{s}</b>", changed=_td("changed"), kept=_td("kept")
        ),
    )
    head = "".join(f"<th>{h}</th>" for h in names)
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in legend(table))
    rows = "\n".join(
        f"<tr>{''.join(c if c.startswith('<td') else f'<td>{c}</td>' for c in row)}</tr>" for row in body
    )
    style = (
        "body{font-family:sans-serif}table{border-collapse:collapse}th,td{padding:4px 10px;"
        "border-bottom:1px solid #ccc;text-align:right}"
        "td.changed{background:#e6e6e6}td.kept{background:#d4f0d4}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n"
        f"</tbody></table>{notes}</body></html>\n"
    )


def _td(kind: str) -> Callable[[str], str]:
    return lambda s: f"<td class='{kind}'>{s}</td>"


def _styled(
    table: Table,
    bold: Callable[[str], str],
    changed: Callable[[str], str],
    kept: Callable[[str], str],
    escape: Callable[[str], str] = lambda s: s,
) -> list[list[str]]:
    columns = [*table.hyperparameters, *table.metrics]
    styled = []
    for i, row in enumerate(cells(table)):
        out = []
        for j, text in enumerate(row):
            column = columns[j] if j < len(columns) else None
            text = escape(text)
            if column in table.best and i in table.best[column]:
                text = bold(text)
            if (i, column) in table.kept:
                text = kept(text)
            elif (i, column) in table.changed:
                text = changed(text)
            out.append(text)
        styled.append(out)
    return styled


def _grid(table: Table, head: list[str], body: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """The header and rows as rendered: transposed tables show each configuration as a column."""
    if not table.transpose:
        return head, body
    columns = [list(c) for c in zip(*[head, *body], strict=True)]
    return columns[0], columns[1:]


def _counts(values: pd.Series) -> bool:
    """Whether a metric column holds counts (parameters, steps): whole numbers, some above 1."""
    present = values.dropna()
    return bool(len(present)) and all(float(v).is_integer() for v in present) and present.abs().max() > 1


def _latex_escape(text: str) -> str:
    replacements = {
        "\\": "\\textbackslash{}",
        "&": "\\&",
        "%": "\\%",
        "$": "\\$",
        "#": "\\#",
        "_": "\\_",
        "{": "\\{",
        "}": "\\}",
        "~": "\\textasciitilde{}",
        "^": "\\textasciicircum{}",
        "±": "$\\pm$",
        "Δ": "$\\Delta$",
        "✓": "$\\checkmark$",
        "–": "--",
        "†": "$\\dagger$",
        "◆": "$\\blacklozenge$",  # amssymb
        "◇": "$\\lozenge$",
        "✗": "$\\times$",
    }
    return "".join(replacements.get(ch, ch) for ch in text)
