"""Pruning a study of several objectives on one of them (`hydra.sweeper.pruner.on`): a trial is compared
only with completed trials no worse than it on the objectives known before training."""

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from sweeplab.config import ConfigError
from sweeplab.engine.pareto_pruning import ParetoPruner
from sweeplab.engine.records import KNOWN, REPORTED

OBJECTIVES = {"val_acc": "maximize", "params": "minimize"}


def done(params: float, curve: dict[int, float]) -> optuna.trial.FrozenTrial:
    """A completed trial of `params` parameters whose val_acc was `curve[step]`."""
    return create_trial(
        state=TrialState.COMPLETE,
        values=[max(curve.values()), params],
        user_attrs={REPORTED: {str(k): v for k, v in curve.items()}, KNOWN: {"params": params}},
    )


def pruner(**options) -> ParetoPruner:
    return ParetoPruner.of({"name": "median", "on": "val_acc", **options}, OBJECTIVES, ("params",))


def test_a_small_model_is_never_pruned_by_larger_ones_however_much_better():
    large = [done(100_000, {10: 0.9}) for _ in range(5)]
    assert not pruner(n_startup_trials=1).prunes(10, 0.2, {"params": 1_000}, large)
    # the same accuracy in a model as large as theirs, or larger: pruned
    assert pruner(n_startup_trials=1).prunes(10, 0.2, {"params": 100_000}, large)
    assert pruner(n_startup_trials=1).prunes(10, 0.2, {"params": 500_000}, large)


def test_it_is_the_median_of_the_peers_at_that_step():
    peers = [done(1_000, {10: v, 20: v + 0.1}) for v in (0.3, 0.5, 0.7)]
    rule = pruner(n_startup_trials=3)
    assert rule.prunes(10, 0.49, {"params": 1_000}, peers) and not rule.prunes(
        10, 0.51, {"params": 1_000}, peers
    )
    assert not rule.prunes(30, 0.0, {"params": 1_000}, peers)  # no peer reported step 30
    # its best value so far is what counts (Optuna's median pruner alike)
    assert rule.prunes(20, 0.59, {"params": 1_000}, peers) and not rule.prunes(
        20, 0.61, {"params": 1_000}, peers
    )


def test_startup_warmup_and_percentile():
    peers = [done(1_000, {10: v}) for v in (0.3, 0.5, 0.7)]
    assert not pruner(n_startup_trials=4).prunes(10, 0.0, {"params": 1_000}, peers)  # too few peers
    assert not pruner(n_startup_trials=1, n_warmup_steps=11).prunes(10, 0.0, {"params": 1_000}, peers)
    # Optuna's meaning: percentile 25 keeps the top 25% (here above 0.6, the peers' 75th percentile)
    top = ParetoPruner.of(
        {"name": "percentile", "on": "val_acc", "percentile": 25.0, "n_startup_trials": 1},
        OBJECTIVES,
        ("params",),
    )
    assert top.prunes(10, 0.59, {"params": 1_000}, peers) and not top.prunes(
        10, 0.61, {"params": 1_000}, peers
    )


def test_reach_prunes_a_trial_that_even_the_largest_gain_seen_leaves_below_a_smaller_peer():
    # peers no larger than it: the best ends at 0.80; the median at step 10 is 0.55. The largest gain any
    # completed trial made after step 10 is 0.20: a large model's, no peer, but it shows what a run can
    # still learn
    peers = [done(1_000, {10: 0.70, 20: 0.80}), done(1_000, {10: 0.40, 20: 0.45})]
    late = done(50_000, {10: 0.40, 20: 0.60})
    trials, mine = [*peers, late], {"params": 2_000}
    rule, only_median = pruner(n_startup_trials=2, reach=True), pruner(n_startup_trials=2)
    assert not only_median.prunes(10, 0.56, mine, trials)  # above the median
    assert rule.prunes(10, 0.56, mine, trials)  # but 0.56 + 0.20 cannot beat 0.80
    assert not rule.prunes(10, 0.61, mine, trials)  # 0.81 could
    # a model smaller than every completed one has no peer: reach never stops it either
    assert not rule.prunes(10, 0.0, {"params": 500}, trials)
    # at step 20 every completed trial had ended: nothing more to gain, below 0.80 stops, 0.80 goes on
    assert rule.prunes(20, 0.79, mine, trials) and not rule.prunes(20, 0.80, mine, trials)


def test_a_minimised_objective_is_pruned_when_higher():
    objectives = {"val_loss": "minimize", "params": "minimize"}
    peers = [done(1_000, {10: v}) for v in (0.3, 0.5, 0.7)]
    rule = ParetoPruner.of(
        {"name": "median", "on": "val_loss", "n_startup_trials": 1}, objectives, ("params",)
    )
    assert rule.prunes(10, 0.6, {"params": 1_000}, peers) and not rule.prunes(
        10, 0.4, {"params": 1_000}, peers
    )


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"name": "hyperband", "on": "val_acc"}, "hyperband cannot prune a study of several objectives"),
        ({"name": "median", "on": "val_acc", "min_resource": 3}, "min_resource: not an option of median"),
        ({"name": "median", "on": "val_acc", "reach": "yes"}, "reach true or false; got reach='yes'"),
        (
            {"name": "percentile", "on": "val_acc", "percentile": 150.0},
            r"percentile with `on` needs percentile in \(0, 100\], .*; got percentile=150.0",
        ),
        ({"name": "median", "on": "val_acc", "n_startup_trials": -1}, "got n_startup_trials=-1"),
    ],
)
def test_a_pruner_that_cannot_prune_on_one_objective_is_refused(node, message):
    with pytest.raises(ConfigError, match=message):
        ParetoPruner.of(node, OBJECTIVES, ("params",))


PARETO = ["train", "sweep=mnist1d_pareto", "trainer.max_steps=200", "trainer.eval_every=20"]


@pytest.mark.slow  # the default suite stays under 6 minutes; CI runs it with -m slow
def test_a_study_of_two_objectives_prunes_on_one_in_two_workers_with_packed_replicates(tmp_path, sweeplab):
    median = ["hydra.sweeper.pruner.name=median", "+hydra.sweeper.pruner.on=val_acc"]
    run = sweeplab(
        *PARETO, *median, "+hydra.sweeper.pruner.n_startup_trials=2", "hydra.sweeper.n_trials=12",
        "hydra.sweeper.n_jobs=2", process=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    study = optuna.load_study(
        study_name="mnist1d_pareto", storage=f"sqlite:///{tmp_path}/studies/mnist1d_pareto.db"
    )
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and len(completed) + len(pruned) == 12
    for trial in pruned:  # its peers (completed then, so completed now) were no larger, and enough of them
        size, last = trial.user_attrs[KNOWN]["params"], max(trial.user_attrs[REPORTED], key=int)
        peers = [t for t in completed if t.values[1] <= size and last in t.user_attrs[REPORTED]]
        assert len(peers) >= 2, (trial.number, size)
    for trial in completed:  # each trial's value is its 3 replicates' mean, reported at every evaluation
        assert len(trial.user_attrs[REPORTED]) == 10 and trial.user_attrs[KNOWN] == {
            "params": trial.values[1]
        }


@pytest.mark.parametrize(
    ("pruner", "message"),
    [
        (["hydra.sweeper.pruner.name=median"], "a study of several objectives prunes on one of them: set "
         "hydra.sweeper.pruner.on to one of val_acc, params, or use pruner none"),
        (["hydra.sweeper.pruner.name=median", "+hydra.sweeper.pruner.on=val_ac"],
         "hydra.sweeper.pruner.on: 'val_ac' is not an objective (did you mean val_acc?)"),
        (["hydra.sweeper.pruner.name=median", "+hydra.sweeper.pruner.on=params"],
         "pruning needs an objective the task reports during a run (val_acc, val_loss, train_acc, "
         "train_loss), not 'params'"),
        (["hydra.sweeper.pruner.name=hyperband", "+hydra.sweeper.pruner.on=val_acc"],
         "hyperband cannot prune a study of several objectives; use median or percentile with `on`"),
    ],
)  # fmt: skip
def test_a_pruner_a_study_of_several_objectives_cannot_use_is_one_line_before_trial_0(
    tmp_path, sweeplab, pruner, message
):
    run = sweeplab(*PARETO, *pruner)
    assert run.returncode == 2 and message in run.stdout and "Traceback" not in run.stdout, run.stdout
    assert not (tmp_path / "outputs").exists()
