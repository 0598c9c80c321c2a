"""Multi-objective tables: the front of the means and the significance marks against brute force, the
marks in every format, the hypervolume and its interval."""

import random

import numpy as np
import optuna
from scipy import stats
from test_report_tables import add, config

from sweeplab.report.frame import trials_frame
from sweeplab.report.pareto import FRONT, UNDOMINATED, hypervolume, hypervolume_interval, reference_point
from sweeplab.report.render import to_csv, to_html, to_latex, to_markdown
from sweeplab.report.tables import build_table

OBJECTIVES = {"val_acc": "maximize", "params": "minimize", "train_seconds": "minimize"}


def _study(rows: int, seeds, seed: int = 0) -> tuple[optuna.Study, dict[int, dict[str, list[float]]]]:
    """`rows` configurations (width 1..rows), each over seeds(i) runs: accuracy and time noisy, the
    parameter count fixed by the width. Returns the study and each width's runs."""
    rng = random.Random(seed)
    s = optuna.create_study(study_name="pareto", direction="maximize")  # the table alone is tested
    runs = {}
    for width in range(1, rows + 1):
        accuracy, seconds, params = (
            rng.uniform(0.5, 0.9),
            rng.uniform(5, 50),
            rng.choice([1e3, 2e3, 5e3, 1e4]),
        )
        runs[width] = {"val_acc": [], "params": [], "train_seconds": []}
        for s_ in range(seeds(width)):
            metrics = {
                "val_acc": accuracy + rng.gauss(0, 0.02),
                "params": params,
                "train_seconds": seconds + rng.gauss(0, 3),
            }
            for k, v in metrics.items():
                runs[width][k].append(v)
            add(s, config(hidden=(width,), seed=s_), metrics)
    return s, runs


def _brute_front(means: dict[int, np.ndarray]) -> set[int]:
    def dominates(a, b):
        return all(a <= b) and any(a < b)

    return {i for i in means if not any(dominates(means[j], means[i]) for j in means if j != i)}


def _brute_undominated(runs: dict[int, dict[str, list[float]]], level: float) -> set[int]:
    """Rows no row dominates significantly: better on every objective by Welch's t, or exactly equal on
    one whose runs all agree (the parameter count), and better on one."""

    def compare(a, b, direction) -> str:
        x, y = np.array(a), np.array(b)
        if len(x) < 2 or len(y) < 2:
            return "unknown"
        if np.ptp(x) == 0 and np.ptp(y) == 0:  # a fixed objective (the parameter count)
            if x.mean() == y.mean():
                return "equal"
            p = 0.0
        elif (x.mean() > y.mean()) != (direction == "maximize"):
            return "unknown"  # worse on average: no test can make it better (and it saves the test's time)
        else:
            p = stats.ttest_ind(x, y, equal_var=False).pvalue
        better = x.mean() > y.mean() if direction == "maximize" else x.mean() < y.mean()
        return "better" if better and p < 1 - level else "unknown"

    def dominates(j, i) -> bool:
        verdicts = []
        for o, d in OBJECTIVES.items():  # one objective on which it is not better or equal decides
            verdicts.append(compare(runs[j][o], runs[i][o], d))
            if verdicts[-1] == "unknown":
                return False
        return "better" in verdicts

    return {i for i in runs if not any(dominates(j, i) for j in runs if j != i)}


def test_the_marks_equal_a_brute_force_front_and_brute_force_significance_on_200_rows():
    s, runs = _study(200, seeds=lambda width: 1 if width % 10 == 0 else 3)  # some rows of one run
    table = build_table(trials_frame(s), OBJECTIVES, pareto=OBJECTIVES)
    widths = [hidden[0] for hidden in table.rows["model.hidden"]]
    assert sorted(widths) == list(range(1, 201))
    sign = np.array([-1.0, 1.0, 1.0])  # as losses
    means = {w: sign * np.array([np.mean(runs[w][o]) for o in OBJECTIVES]) for w in runs}
    marks = table.pareto
    assert marks is not None and marks.tested
    assert {widths[i] for i in marks.front} == _brute_front(means)
    assert {widths[i] for i in marks.undominated} == _brute_undominated(runs, 0.95)
    # the front is among the undominated, and noise keeps more rows in play than the means alone do
    assert set(marks.front) < set(marks.undominated)
    assert 3 <= len(marks.front) < len(marks.undominated) < 200


def test_every_format_shows_both_marks_and_the_legend_names_the_test():
    s, _ = _study(12, seeds=lambda width: 3, seed=8)
    table = build_table(trials_frame(s), OBJECTIVES, pareto=OBJECTIVES)
    marks = table.pareto
    off_front = [i for i in marks.undominated if i not in marks.front]
    assert marks.front and off_front
    md = to_markdown(table)
    assert md.splitlines()[0].endswith("| Pareto |")
    assert md.count(f"| {FRONT} |") == len(marks.front) and md.count(f"| {UNDOMINATED} |") == len(off_front)
    assert "no row dominates it significantly" in md and "Welch's t, two-sided p < 0.05" in md
    assert "or equal on one whose runs all agree, such as a parameter count" in md
    csv = to_csv(table).splitlines()
    assert csv[0].split(",")[-3:] == ["pareto_front", "not_significantly_dominated", "trials"]
    assert sum(line.split(",")[-3] == "True" for line in csv[1:]) == len(marks.front)
    latex = to_latex(table)
    assert "$\\blacklozenge$" in latex and "$\\lozenge$" in latex
    assert FRONT in to_html(table)


def test_without_replicates_the_legend_says_the_marks_ignore_noise():
    s, _ = _study(8, seeds=lambda width: 1)
    table = build_table(trials_frame(s), OBJECTIVES, pareto=OBJECTIVES)
    assert not table.pareto.tested
    md = to_markdown(table)
    assert "one run per row, so the marks ignore the runs' noise" in md and UNDOMINATED not in md


def test_hypervolume_of_a_known_front_and_its_reference_point():
    loss = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.5, 3.5]])  # the last is dominated
    assert hypervolume(loss, np.array([4.0, 4.0])) == 6.0
    assert hypervolume(loss, np.array([0.5, 0.5])) == 0.0  # no point beats the reference
    # the default: each objective's worst mean, a tenth of its range beyond; a given one in its own units
    means = np.array([[0.9, 100.0], [0.7, 50.0]])
    assert np.allclose(reference_point(means, ["maximize", "minimize"], None), [-0.68, 105.0])
    assert np.allclose(reference_point(means, ["maximize", "minimize"], [0.5, 200]), [-0.5, 200.0])


def test_the_hypervolume_interval_is_repeatable_and_holds_the_estimate():
    rng = np.random.default_rng(0)
    samples = [[list(0.8 - 0.1 * k + rng.normal(0, 0.01, 5)), [1000.0 * (k + 1)] * 5] for k in range(4)]
    directions, means = ["maximize", "minimize"], np.array([[np.mean(a), b[0]] for a, b in samples])
    from sweeplab.report.pareto import losses

    reference = reference_point(means, directions, None)
    estimate = hypervolume(losses(means, directions), reference)
    interval = hypervolume_interval(samples, directions, reference, 0.95)
    assert interval == hypervolume_interval(samples, directions, reference, 0.95)
    assert interval.low < estimate < interval.high
    assert hypervolume_interval([[[0.8], [1.0]]], directions, reference, 0.95) is None  # one run a row


def test_the_example_pareto_sweep_becomes_a_report_with_its_front(tmp_path, sweeplab):
    from PIL import Image

    sweep = sweeplab(
        "train",
        "sweep=mnist1d_pareto",
        "hydra.sweeper.n_trials=6",
        "trainer.max_steps=40",
        "trainer.eval_every=20",
    )
    assert sweep.returncode == 0, sweep.stdout
    done = sweeplab("report", "sweep=mnist1d_pareto", "--out", "rep")
    assert done.returncode == 0 and "warning" not in done.stdout, done.stdout
    out = tmp_path / "rep"
    index = (out / "index.md").read_text()
    assert "- best: no one trial; the Pareto front of the trials' values: trials " in index
    assert "| Layers | Act. | Norm. | Val. acc. | Params | Test acc. | n | Pareto |" in index
    assert "## Pareto front" in index and "- hypervolume of the means' front: " in index
    assert "95% interval [" in index and "reference point (val_acc " in index
    for name in ("pareto_front", "hypervolume_history", "importance", "importance_params"):
        assert f"({name}.png)" in index
        with Image.open(out / f"{name}.png") as image:
            image.verify()
    csv = (out / "table.csv").read_text().splitlines()
    assert "pareto_front,not_significantly_dominated" in csv[0]
