"""The tables' statistics on fixed numbers (worked by hand from t tables, and matching scipy.stats), and
their verdicts on studies with a real effect and with none."""

import random

import optuna
import pytest
from test_report_tables import add, config

from sweeplab.report import render
from sweeplab.report.frame import trials_frame
from sweeplab.report.stats import holm, mean_interval, prediction_interval, welch
from sweeplab.report.tables import Statistics, build_table

A = [0.5, 0.6, 0.7]
B = [0.2, 0.3, 0.4, 0.5]


def test_the_mean_interval_is_students_t():
    # mean 0.6, standard error 0.1 / sqrt(3), t(0.975, 2) = 4.3027
    interval = mean_interval(A, 0.95)
    assert (interval.low, interval.high) == pytest.approx((0.351586, 0.848414), abs=1e-6)
    assert interval.method == "Student's t"
    narrower = mean_interval(A, 0.80)  # t(0.9, 2) = 1.8856
    assert (narrower.low, narrower.high) == pytest.approx((0.6 - 0.108865, 0.6 + 0.108865), abs=1e-5)
    assert mean_interval([0.4], 0.95) is None  # one run: no interval
    same = mean_interval([0.4, 0.4, 0.4], 0.95)
    assert (same.low, same.high) == pytest.approx((0.4, 0.4))


def test_one_more_run_falls_in_the_prediction_interval():
    # mean ± t(0.975, 2) · s · sqrt(1 + 1/3): 0.6 ± 4.3027 · 0.1 · 1.1547
    interval = prediction_interval(A, 0.95)
    assert (interval.low, interval.high) == pytest.approx((0.103172, 1.096828), abs=1e-6)
    assert prediction_interval([0.4], 0.95) is None


def test_the_bootstrap_interval_is_repeatable_and_holds_the_mean():
    values = [0.41, 0.44, 0.45, 0.47, 0.52, 0.43, 0.46, 0.49]
    first, again = mean_interval(values, 0.95, "bootstrap"), mean_interval(values, 0.95, "bootstrap")
    assert first == again and first.method.startswith("bootstrap, BCa")
    assert first.low < sum(values) / len(values) < first.high
    t = mean_interval(values, 0.95)
    assert t.low - 0.02 < first.low and first.high < t.high + 0.02  # close to the t interval here


def test_a_change_is_welchs_t():
    change = welch(A, B, 0.95)
    assert change.delta == pytest.approx(0.25)
    # se sqrt(0.01/3 + 0.01667/4) = 0.0866, t = 2.887 on 4.96 degrees of freedom (Welch-Satterthwaite)
    assert change.p_value == pytest.approx(0.034648, abs=1e-6)
    assert (change.interval.low, change.interval.high) == pytest.approx((0.026829, 0.473171), abs=1e-6)
    assert welch(A, [0.3], 0.95) is None  # a side with one run cannot be tested


def test_holm_adjusts_step_down():
    # sorted: 0.005 x 4, 0.01 x 3, 0.03 x 2, 0.04 x 1 -> 0.02, 0.03, 0.06, then at least the one before
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def study_of(rows: list[tuple[str, float]], seeds: int = 5, noise: float = 0.01) -> optuna.Study:
    """Rows (activation, true accuracy), each over `seeds` seeds with Gaussian noise."""
    rng = random.Random(0)
    s = optuna.create_study(study_name="effects", direction="maximize")
    for act, accuracy in rows:
        for seed in range(seeds):
            value = accuracy + rng.gauss(0, noise)
            add(s, config(act=act, seed=seed), {"val_acc": value, "test_acc": value})
    return s


def test_a_real_effect_is_marked_and_a_change_of_seed_only_is_not():
    s = study_of([("relu", 0.40), ("elu", 0.40), ("leaky_relu", 0.45)])
    table = build_table(trials_frame(s), {"test_acc": "maximize"}, ablation=True)
    assert table.changes[0] is None
    no_effect, effect = table.changes[1], table.changes[2]
    assert not no_effect.significant and no_effect.interval.low < 0 < no_effect.interval.high
    assert effect.significant and effect.interval.low > 0.03
    md = render.to_markdown(table)
    assert md.count("]" + render.SIGNIFICANT + " |") == 1  # the one real change is marked
    # plain table: the best row, and no tie claimed with a row 0.05 worse
    plain = build_table(trials_frame(s), {"test_acc": "maximize"})
    best = plain.best["test_acc"]
    assert plain.rows["model.activation"][best[0]] == "leaky_relu" and plain.tied["test_acc"] == []
    close = build_table(trials_frame(study_of([("relu", 0.40), ("elu", 0.403)])), {"test_acc": "maximize"})
    assert len(close.tied["test_acc"]) == 1  # 0.003 apart with noise 0.01: not told apart
    assert render.TIED in render.to_markdown(close)


def test_holms_correction_can_take_a_mark_away():
    s = study_of([("relu", 0.40), ("elu", 0.41), ("leaky_relu", 0.42), ("tanh", 0.43)], seeds=3)
    frame = trials_frame(s)
    plain = build_table(frame, {"test_acc": "maximize"}, ablation=True)
    corrected = build_table(frame, {"test_acc": "maximize"}, ablation=True, statistics=Statistics(holm=True))
    raw = [c.p_value for c in plain.changes if c]
    assert [c.p_adjusted for c in corrected.changes if c] == pytest.approx(holm(raw))
    assert sum(c.significant for c in corrected.changes if c) <= sum(
        c.significant for c in plain.changes if c
    )
    assert "after Holm's correction over the table's 3 comparisons" in render.to_markdown(corrected)
    assert "p_holm" in render.to_csv(corrected)


def test_an_interval_stays_in_the_metrics_range():
    from sweeplab.report.stats import bounds_of, mean_interval

    accuracies = [0.99, 1.0, 0.9]  # Student's t around their mean reaches past 1
    assert mean_interval(accuracies, 0.95).high > 1
    cut = mean_interval(accuracies, 0.95, bounds=bounds_of("val_acc"))
    assert cut.high == 1.0 and cut.low == mean_interval(accuracies, 0.95).low
    assert bounds_of("test_acc[cat]") == (0.0, 1.0) and bounds_of("val_loss")[0] == 0.0
    assert bounds_of("my_score") == (float("-inf"), float("inf"))
