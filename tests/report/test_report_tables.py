"""Golden tests of the report's data layer on a small study built in memory (no rendering)."""

import math

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeplab.report.command import write_report
from sweeplab.report.frame import studies_frame, trials_frame
from sweeplab.report.marginals import marginals
from sweeplab.report.render import to_csv, to_html, to_latex, to_markdown
from sweeplab.report.tables import build_table


def add(study, config, metrics, state=TrialState.COMPLETE):
    study.add_trial(
        create_trial(
            state=state,
            value=metrics.get("val_acc") if state == TrialState.COMPLETE else None,
            params={"optimizer.lr": config["optimizer"]["lr"]},
            distributions={"optimizer.lr": FloatDistribution(1e-5, 10.0, log=True)},
            user_attrs={"config": config, "metrics": metrics},
        )
    )


def config(hidden=(100,), act="relu", lr=2e-3, seed=0):
    return {
        "model": {"name": "mlp", "hidden": list(hidden), "activation": act},
        "optimizer": {"lr": lr},
        "trainer": {"seed": seed, "max_steps": 1500},
        "data_dir": "data",
    }


@pytest.fixture
def study():
    s = optuna.create_study(study_name="ablation", direction="maximize")
    # baseline, then one change at a time, each over two seeds
    for seed, (val, test, params) in enumerate([(0.40, 0.41, 1000), (0.42, 0.43, 1000)]):
        add(
            s,
            config(seed=seed),
            {
                "val_acc": val,
                "test_acc": test,
                "params": params,
                "per_class_test_acc": {"cat": 0.3, "dog": 0.5},
            },
        )
    for seed, (val, test) in enumerate([(0.45, 0.46), (0.47, 0.48)]):
        add(s, config(act="leaky_relu", seed=seed), {"val_acc": val, "test_acc": test, "params": 1000})
    for seed, (val, test) in enumerate([(0.30, 0.31), (0.34, 0.33)]):
        add(
            s,
            config(hidden=(100, 50), act="leaky_relu", seed=seed),
            {"val_acc": val, "test_acc": test, "params": 1500},
        )
    add(s, config(lr=5.0), {"status": "diverged"}, state=TrialState.FAIL)
    return s


def test_frame_has_a_row_per_trial_with_every_hyperparameter_and_metric(study):
    frame = trials_frame(study)
    assert len(frame) == 7 and list(frame["trial"]) == list(range(7))
    assert frame.loc[0, "model.hidden"] == (100,) and frame.loc[4, "model.hidden"] == (100, 50)
    assert frame.loc[0, "test_acc[cat]"] == 0.3 and math.isnan(frame.loc[2, "test_acc[cat]"])
    assert frame.loc[6, "state"] == "FAIL" and "trainer.seed" in frame.attrs["hyperparameters"]
    assert {"val_acc", "test_acc", "params"} <= set(frame.attrs["metrics"])


def test_only_varying_hyperparameters_become_columns_and_seeds_are_grouped(study):
    table = build_table(trials_frame(study), {"test_acc": "maximize", "params": "minimize"})
    assert table.hyperparameters == ["model.hidden", "model.activation"]  # not seed, steps, data_dir, lr
    assert [table.headers[c] for c in table.rows.columns] == ["Layers", "Act.", "Test acc.", "Params"]
    assert table.rows["model.activation"].tolist() == ["relu", "leaky_relu", "leaky_relu"]  # sweep order
    assert table.n == [2, 2, 2] and table.trials == [(0, 1), (2, 3), (4, 5)]
    assert table.rows["test_acc"].tolist() == pytest.approx([0.42, 0.47, 0.32])
    assert table.std["test_acc"].tolist() == pytest.approx([math.sqrt(2e-4)] * 2 + [math.sqrt(2e-4)])


def test_a_run_drawn_again_with_the_same_config_and_seed_counts_once(study):
    # TPE drew (100,) relu seed 0 a second time; a machine setting differs (it cannot change a result)
    again = {**config(seed=0), "data_dir": "elsewhere"}
    add(study, again, {"val_acc": 0.40, "test_acc": 0.41, "params": 1000})
    add(study, config(seed=2), {"val_acc": 0.44, "test_acc": 0.45, "params": 1000})  # a new seed counts
    frame = trials_frame(study)
    table = build_table(frame, {"test_acc": "maximize"})
    assert table.n == [3, 2, 2] and table.trials[0] == (0, 1, 8)
    assert table.samples["test_acc"][0] == pytest.approx([0.41, 0.43, 0.45])
    [by_activation] = marginals(frame, "test_acc", "maximize", ["model.activation"]).values()
    assert by_activation.set_index("model.activation")["n"].to_dict() == {"leaky_relu": 4, "relu": 3}


def test_best_is_found_in_both_directions_with_ties(study):
    table = build_table(trials_frame(study), {"test_acc": "maximize", "params": "minimize"})
    assert table.best == {"test_acc": [1], "params": [0, 1]}


def test_ablation_marks_cells_that_differ_from_the_baseline_and_the_delta(study):
    table = build_table(trials_frame(study), {"test_acc": "maximize"}, ablation=True)
    assert table.reference == [None, 0, 0]
    assert table.changed == {(1, "model.activation"), (2, "model.activation"), (2, "model.hidden")}
    assert table.delta.tolist() == pytest.approx([0.0, 0.05, -0.10])


def test_failed_trials_are_left_out_unless_asked_for(study):
    frame = trials_frame(study)
    assert 6 not in sum(build_table(frame, {"val_acc": "maximize"}).trials, ())
    with_failed = build_table(frame, {"val_acc": "maximize"}, states=("COMPLETE", "FAIL"))
    assert "optimizer.lr" in with_failed.hyperparameters and with_failed.trials[-1] == (6,)


def test_with_failed_trials_a_state_column_says_how_each_row_ended(study):
    add(study, config(lr=0.5), {"val_acc": 0.9, "steps": 300, "status": "pruned"}, state=TrialState.PRUNED)
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            user_attrs={
                "config": config(lr=1.0),
                "metrics": {"steps": 200, "status": "diverged"},
                "error": "diverged: the loss became NaN or infinite by step 200",
            },
        )
    )
    table = build_table(trials_frame(study), {"val_acc": "maximize"}, states=("COMPLETE", "PRUNED", "FAIL"))
    assert table.hyperparameters[0] == "status" and table.headers["status"] == "State"
    assert table.rows["status"].tolist() == [
        "completed",
        "completed",
        "completed",
        "failed",
        "pruned at step 300",
        "diverged at step 200",
    ]
    # a trial stopped early is never the best: its value was measured before the end
    assert table.best["val_acc"] == [1]
    csv = to_csv(table).splitlines()
    assert csv[0].startswith("status,") and csv[5].startswith("pruned at step 300,")
    assert "| State |" in to_markdown(table) and "pruned at step 300" in to_latex(table)
    assert ">pruned at step 300<" in to_html(table)


def test_headers_and_columns_can_be_chosen(study):
    table = build_table(
        trials_frame(study),
        {"test_acc": "maximize"},
        columns=["model.activation"],
        headers={"model.activation": "Activation func."},
    )
    assert list(table.rows.columns) == ["model.activation", "test_acc"] and len(table.rows) == 2
    assert table.headers["model.activation"] == "Activation func." and table.n == [2, 4]


def test_several_studies_compare_in_one_table(study):
    other = optuna.create_study(study_name="cnn", direction="maximize")
    add(other, config(act="relu"), {"val_acc": 0.6, "test_acc": 0.61, "params": 5000})
    table = build_table(studies_frame([study, other]), {"test_acc": "maximize"})
    assert table.hyperparameters[0] == "study" and table.rows["study"].tolist()[-1] == "cnn"
    assert table.best["test_acc"] == [len(table.rows) - 1]


def test_marginals_give_the_metric_per_value(study):
    tables = marginals(trials_frame(study), "test_acc", "maximize", ["model.activation"])
    by_value = tables["model.activation"].set_index("model.activation")
    assert by_value.loc["relu", "n"] == 2 and by_value.loc["leaky_relu", "best"] == 0.48
    assert by_value.loc["leaky_relu", "mean"] == pytest.approx((0.46 + 0.48 + 0.31 + 0.33) / 4)


def test_marginals_bin_a_continuous_hyperparameter_and_count_in_integers():
    s = optuna.create_study(study_name="lr", direction="maximize")
    for i in reversed(range(15)):  # in another order than their values
        add(s, config(lr=10 ** (-4 + i * 0.2)), {"val_acc": i / 100, "test_acc": i / 100})
    [table] = marginals(trials_frame(s), "val_acc", "maximize", ["optimizer.lr"]).values()
    assert len(table) == 5 and table["n"].tolist() == [3, 3, 3, 3, 3] and table["n"].dtype.kind == "i"
    assert table["optimizer.lr"].tolist()[0] == "0.0001 – 0.000251"  # quantile bins, in order
    assert table["best"].tolist() == [0.02, 0.05, 0.08, 0.11, 0.14]


def test_rows_can_be_sorted_by_their_values(study):
    table = build_table(trials_frame(study), {"test_acc": "maximize"}, sort_rows=True)
    assert list(zip(table.rows["model.hidden"], table.rows["model.activation"], strict=True)) == [
        ((100,), "leaky_relu"),
        ((100,), "relu"),
        ((100, 50), "leaky_relu"),
    ]
    assert table.trials == [(2, 3), (0, 1), (4, 5)] and table.best["test_acc"] == [0]


def add_setup(study, name, position, config, val, test, changed=(), keep=True):
    study.add_trial(
        create_trial(
            value=val,
            params={"setup": name},
            distributions={"setup": optuna.distributions.CategoricalDistribution([name])},
            user_attrs={
                "config": config,
                "metrics": {"val_acc": val, "test_acc": test},
                "setup": {"name": name, "position": position, "changed": list(changed), "keep": keep},
            },
        )
    )


def ablation_study():
    s = optuna.create_study(study_name="ordered", direction="maximize")
    add_setup(s, "1", 1, config(), 0.40, 0.39)
    add_setup(s, "2", 2, config(act="leaky_relu"), 0.42, 0.40, ["model.activation"])
    add_setup(s, "3", 3, config(hidden=(100, 50), act="leaky_relu"), 0.38, 0.37, ["model.hidden"], keep=False)
    add_setup(s, "4", 4, config(act="leaky_relu", lr=5e-3), 0.47, 0.46, ["optimizer.lr"])
    return s


def test_ordered_ablation_compares_each_row_with_the_last_kept_one():
    frame = trials_frame(ablation_study())
    table = build_table(
        frame,
        {"test_acc": "maximize"},
        columns=["model.hidden", "model.activation", "optimizer.lr+trainer.max_steps"],
        ablation=True,
    )
    assert table.reference == [None, 0, 1, 1]  # row 3 builds on row 2, and so does row 4 (3 was undone)
    assert table.changed == {
        (1, "model.activation"),
        (2, "model.hidden"),
        (3, "optimizer.lr+trainer.max_steps"),
    }
    assert table.kept == {(1, "model.activation"), (3, "optimizer.lr+trainer.max_steps")}
    assert table.delta.tolist() == pytest.approx([0.0, 0.01, -0.03, 0.06])
    assert table.rows["optimizer.lr+trainer.max_steps"].iloc[3] == (5e-3, 1500)
    assert table.headers["optimizer.lr+trainer.max_steps"] == "LR / Steps"


def test_choose_keeps_each_setups_best_on_validation_and_where_filters():
    s = optuna.create_study(study_name="chosen", direction="maximize")
    for width, val, test in [(100, 0.90, 0.95), (300, 0.93, 0.91), (1000, 0.92, 0.99)]:
        add_setup(s, "mlp", 2, config(hidden=(width,)), val, test)
    add_setup(s, "linear", 1, {"model": {"name": "linear"}, "trainer": {"seed": 0}}, 0.85, 0.86)
    frame = trials_frame(s)
    table = build_table(frame, {"test_acc": "maximize"}, columns=["setup", "model.hidden"], choose="val_acc")
    # setup order, one row each; the mlp row is the width best on validation, not on test
    assert table.rows["setup"].tolist() == ["linear", "mlp"]
    assert table.rows["model.hidden"].tolist() == ["–", (300,)]
    assert table.rows["test_acc"].tolist() == pytest.approx([0.86, 0.91])
    only = build_table(
        frame, {"test_acc": "maximize"}, columns=["model.hidden"], where={"model.hidden": [[100], [1000]]}
    )
    assert sorted(only.rows["test_acc"]) == pytest.approx([0.95, 0.99])


def test_a_report_of_several_studies_names_each_figure_by_its_study(study, tmp_path):
    other = optuna.create_study(study_name="cnn", direction="maximize")
    for lr in (1e-3, 1e-2):
        add(other, config(act="elu", lr=lr), {"val_acc": 0.6, "test_acc": 0.61, "params": 5000})
    write_report([study, other], tmp_path, ["md"], {}, False, False, command="sweeplab report ablation cnn")
    index = (tmp_path / "index.md").read_text()
    assert "## Figures: study `ablation`" in index and "## Figures: study `cnn`" in index
    assert (tmp_path / "ablation_optimization_history.png").is_file()
    assert (tmp_path / "cnn_optimization_history.png").is_file()
    assert not (tmp_path / "optimization_history.png").exists()
