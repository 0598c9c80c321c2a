"""`hydra.sweeper.constraints`: bounds handed to Optuna, kept by the study, marked in the report."""

import optuna
import pandas as pd
import pytest

from sweeplab.config import ConfigError
from sweeplab.sweeper.constraints import Constraint, parse_constraints

BOUND = "+hydra.sweeper.constraints.params='<= 10000'"
PARETO = ["train", "sweep=mnist1d_pareto", "trainer.max_steps=60", "trainer.eval_every=30"]


def test_a_bound_is_parsed_and_measured_as_optuna_wants_it():
    [small] = parse_constraints({"params": "<= 1e4"}, ["params", "val_acc"]).values()
    assert small == Constraint("params", "<=", 10_000.0) and str(small) == "params <= 10000"
    assert small.violation(9_000) == -1_000 and small.violation(12_000) == 2_000
    [good] = parse_constraints({"val_acc": ">= 0.5"}, None).values()
    assert good.met(0.5) and not good.met(0.4) and not good.met(float("nan"))


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"params": "< 10"}, "hydra.sweeper.constraints.params: '< 10' is not a bound"),
        ({"params": 10}, "hydra.sweeper.constraints.params: 10 is not a bound"),
        (
            {"parms": "<= 10"},
            "hydra.sweeper.constraints.parms: 'parms' is not a metric the task returns (did ",
        ),
    ],
)
def test_a_malformed_constraint_is_refused_naming_it(node, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_constraints(node, ["params", "val_acc"])


@pytest.mark.slow  # the default suite stays under 6 minutes; CI runs it with -m slow
def test_constraints_reach_optuna_the_report_and_the_study_identity(tmp_path, sweeplab):
    run = sweeplab(*PARETO, BOUND, "hydra.sweeper.n_trials=8")
    assert run.returncode == 0, run.stdout[-3000:]
    study = optuna.load_study(
        study_name="mnist1d_pareto", storage=f"sqlite:///{tmp_path}/studies/mnist1d_pareto.db"
    )
    for trial in study.trials:
        assert trial.constraints == {"params": trial.values[1] - 10_000}
    assert study.best_trials and all(t.values[1] <= 10_000 for t in study.best_trials)  # Optuna's own front
    report = sweeplab("report", "sweep=mnist1d_pareto", "--out", "rep")
    assert report.returncode == 0, report.stdout
    table = pd.read_csv(tmp_path / "rep" / "table.csv")
    assert (table["meets_constraints"] == (table["params"] <= 10_000)).all()
    assert not table.loc[~table["meets_constraints"], ["pareto_front", "not_significantly_dominated"]].any(
        axis=None
    )
    assert table.loc[table["meets_constraints"], "pareto_front"].any()
    index = (tmp_path / "rep" / "index.md").read_text()
    assert "| Pareto | Constraints |" in index and "Constraints (params <= 10000, on the row's mean)" in index
    # a resume under another bound would mix feasibilities: refused, nothing changed
    again = sweeplab(*PARETO, "+hydra.sweeper.constraints.params='<= 20000'", "hydra.sweeper.n_trials=9")
    assert (
        again.returncode == 2
        and "was run with constraints params <= 10000, not params <= 20000" in again.stdout
    )
    assert len(optuna.load_study(study_name="mnist1d_pareto", storage=study._storage).trials) == 8


def test_a_malformed_constraint_stops_the_sweep_before_trial_0(tmp_path, sweeplab):
    run = sweeplab(*PARETO, "+hydra.sweeper.constraints.params='< 10000'")
    assert run.returncode == 2 and "'< 10000' is not a bound" in run.stdout and "Traceback" not in run.stdout
    assert not (tmp_path / "outputs").exists()
