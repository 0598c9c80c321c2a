"""Rendering: Markdown, LaTeX, CSV and HTML from one table; bold best, marked changes, round trips."""

import io
import shutil
import subprocess

import optuna
import pandas as pd
import pytest
from test_report_tables import ablation_study, add, config

from sweeplab.report import render
from sweeplab.report.figures import describe
from sweeplab.report.frame import trials_frame
from sweeplab.report.tables import build_table


@pytest.fixture
def table():
    s = optuna.create_study(study_name="ablation", direction="maximize")
    for seed, test in enumerate([0.41, 0.43]):
        add(s, config(seed=seed), {"val_acc": test, "test_acc": test, "params": 15210})
    for seed, test in enumerate([0.46, 0.48]):
        add(
            s,
            config(act="leaky_relu", lr=5e-3, seed=seed),
            {"val_acc": test, "test_acc": test, "params": 15210},
        )
    add(
        s,
        config(hidden=(1024, 512), act="leaky_relu", lr=5e-3),
        {"val_acc": 0.3, "test_acc": 0.3, "params": 99},
    )
    return build_table(trials_frame(s), {"test_acc": "maximize", "params": "minimize"}, ablation=True)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-3, "1e-3"),
        (5e-3, "5e-3"),
        (1.5e-5, "1.5e-5"),
        (0.05, "0.05"),
        (0.1, "0.1"),
        (100, "100"),
        (15210, "15,210"),
        (10000.0, "10,000"),  # a count in a column that a missing value made float
        (True, "✓"),
        (False, "–"),
        (None, "–"),
        ((1024, 512), "(1024, 512)"),
        ("relu", "relu"),
    ],
)
def test_values_are_written_as_people_write_them(value, text):
    assert render.format_value(value) == text


def test_markdown_bolds_the_best_and_marks_changes(table):
    md = render.to_markdown(table)
    lines = md.splitlines()
    assert lines[0] == "| Layers | Act. | LR | Test acc. | Params | n | Δ Test acc. |"
    # n = 2: mean ± t(0.975, 1) = 12.706 times the standard error 0.01
    assert lines[2] == "| (100) | relu | 2e-3 | 0.420 [0.293, 0.547] | 15,210 | 2 | – |"
    # Welch: se sqrt(1e-4 + 1e-4), 2 degrees of freedom, t(0.975, 2) = 4.303; p = 0.072: no mark
    assert lines[3] == (
        "| (100) | leaky_relu † | 5e-3 † | **0.470 [0.343, 0.597]** | 15,210 | 2 | +0.050 [-0.011, +0.111] |"
    )
    assert lines[4] == "| (1024, 512) † | leaky_relu † | 5e-3 † | 0.300 | **99** | 1 | -0.120 |"  # n = 1
    assert "† changed from the baseline" in md
    assert "95% confidence interval (Student's t)" in md and "(Welch's t); * where" in md


def test_csv_keeps_raw_numbers_and_round_trips(table):
    back = pd.read_csv(io.StringIO(render.to_csv(table)))
    assert list(back.columns) == [
        "model.hidden",
        "model.activation",
        "optimizer.lr",
        "test_acc",
        "test_acc_std",
        "test_acc_ci_low",
        "test_acc_ci_high",
        "params",
        "params_std",
        "params_ci_low",
        "params_ci_high",
        "n",
        "delta",
        "delta_ci_low",
        "delta_ci_high",
        "p_value",
        "significant",
        "trials",
    ]
    assert back["test_acc_ci_low"].tolist() == pytest.approx(
        [0.29294, 0.34294, float("nan")], abs=1e-5, nan_ok=True
    )
    assert back["delta"].tolist() == pytest.approx([float("nan"), 0.05, -0.12], nan_ok=True)
    assert back["p_value"].iloc[1] == pytest.approx(0.07152, abs=1e-4) and not back["significant"].iloc[1]
    assert back["test_acc"].tolist() == pytest.approx([0.42, 0.47, 0.3])
    assert back["optimizer.lr"].tolist() == [0.002, 0.005, 0.005] and back["n"].tolist() == [2, 2, 1]
    assert back["trials"].tolist() == ["0 1", "2 3", "4"]
    assert back["model.hidden"].tolist() == ["[100]", "[100]", "[1024, 512]"]  # JSON, as Hydra writes it


def test_html_is_self_contained_with_bold_and_changed_cells(table):
    page = render.to_html(table, title="ablation")
    assert (
        page.startswith("<!doctype html>")
        and "<style>" in page
        and "<link" not in page
        and "<script" not in page
    )
    assert "<b>0.470 [0.343, 0.597]</b>" in page and page.count("class='changed'") == len(table.changed) == 5
    assert "<p>Δ: the row&#x27;s Test acc. minus" in page  # the legend, escaped


def test_latex_uses_booktabs_and_escapes(table):
    tex = render.to_latex(table, caption="MLP ablation")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert (
        "leaky\\_relu" in tex and "\\textbf{0.470 [0.343, 0.597]}" in tex and "\\cellcolor{black!10}" in tex
    )
    assert "\\par\\footnotesize $\\Delta$: the row's" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX engine (pdflatex) on this machine")
def test_latex_compiles(table, tmp_path):
    document = (
        "\\documentclass{article}\\usepackage[utf8]{inputenc}\\usepackage{booktabs}\\usepackage{amssymb}"
        "\\usepackage[table]{xcolor}\\begin{document}" + render.to_latex(table) + "\\end{document}"
    )
    (tmp_path / "t.tex").write_text(document)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path, capture_output=True
    )
    assert done.returncode == 0 and (tmp_path / "t.pdf").stat().st_size > 0


def test_value_labels_composite_cells_kept_marks_and_transposed_tables():
    table = build_table(
        trials_frame(ablation_study()),
        {"test_acc": "maximize"},
        columns=["model.activation", "optimizer.lr+model.name"],
        ablation=True,
        values={"model.activation": {"relu": "ReLU"}, "model.name": {"mlp": ""}},
        delta=False,
    )
    md = render.to_markdown(table)
    assert md.splitlines()[0] == "| Act. | LR / Model | Test acc. |"  # no Δ column when delta is off
    assert md.splitlines()[2] == "| ReLU | 2e-3 | 0.390 |"  # labelled; an empty label drops its part
    assert "| leaky_relu ‡ | 2e-3 | 0.400 |" in md and "| leaky_relu | 5e-3 ‡ | **0.460** |" in md
    tex = render.to_latex(table)
    assert "\\cellcolor{green!15}leaky\\_relu" in tex
    table.transpose = True
    lines = render.to_markdown(table).splitlines()
    assert lines[0] == "| Act. | ReLU | leaky_relu ‡ | leaky_relu | leaky_relu |"
    assert lines[3] == "| Test acc. | 0.390 | 0.400 | 0.370 | **0.460** |"


def test_a_setups_learning_curves_are_named_by_their_setup():
    row = pd.Series({"trial": 3, "setup": "(100) ELU", "model.norm": "batch"})
    assert describe(row, []) == "(100) ELU"
    assert describe(row, ["model.norm"]) == "(100) ELU, Norm. batch"
    assert describe(pd.Series({"trial": 3, "setup": float("nan")}), []) == ""


def test_the_importance_figure_names_the_evaluator_it_ran():
    """Optuna 5's default evaluator is PED-ANOVA: the figure's label once said fANOVA. Here the value
    depends on x alone, so x must lead, and the bars must be PED-ANOVA's own numbers."""
    from sweeplab.report.figures import importance

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + 0 * t.suggest_float("y", 0, 1), n_trials=40)
    figure = importance(study, "val_acc")
    ax = figure.axes[0]
    assert ax.get_xlabel() == "importance (PED-ANOVA, sums to 1)"
    names = [tick.get_text() for tick in ax.get_yticklabels()]
    bars = {name: patch.get_width() for name, patch in zip(names, ax.patches, strict=True)}
    expected = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
    )
    assert bars == pytest.approx(expected)
    assert bars["x"] > bars["y"]
