"""A study's sampler and pruner by name, and the check that a resumed study is the same study: the same
search space, objectives and fixed values."""

from collections.abc import Mapping
from typing import Any

import optuna

from sweeplab.config import ConfigError, SweeplabError
from sweeplab.engine.records import (
    CONSTRAINTS,
    REPLICATES,
    SIGNATURE,
    Replicates,
    StudyRecord,
    TrialRecord,
    describe_replicates,
)
from sweeplab.registry import Registry

SAMPLERS: Registry = Registry("sampler", base=optuna.samplers.BaseSampler)
PRUNERS: Registry = Registry("pruner", base=optuna.pruners.BasePruner)

# Names to Optuna's own classes; the rest of a `sampler` / `pruner` node is passed to them as it is.
for _name, _sampler in {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,  # the controller supplies search_space
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "nsgaii": optuna.samplers.NSGAIISampler,
    "nsgaiii": optuna.samplers.NSGAIIISampler,
    "qmc": optuna.samplers.QMCSampler,
    "bruteforce": optuna.samplers.BruteForceSampler,
}.items():
    SAMPLERS.register(_name)(_sampler)

for _name, _pruner in {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}.items():
    PRUNERS.register(_name)(_pruner)


@PRUNERS.register("percentile")
def percentile(
    percentile: float = 25.0,
    n_startup_trials: int = 5,
    n_warmup_steps: int = 0,
    interval_steps: int = 1,
    n_min_trials: int = 1,
) -> optuna.pruners.BasePruner:
    """Optuna's PercentilePruner, whose percentile has no default there."""
    return optuna.pruners.PercentilePruner(
        percentile, n_startup_trials, n_warmup_steps, interval_steps, n_min_trials=n_min_trials
    )


def build_from(registry: Registry, node: Mapping[str, Any], field: str, **context: Any) -> Any:
    """A sampler or pruner through its registry, its options checked against the class's signature
    like any other config node's (an unknown option, a value of the wrong type: one line). A dotted name
    (a `_target_` of a class sweeplab has no name for) is imported and must be one; what the controller
    supplies (a grid's search space) goes only to the classes sweeplab names. Optuna's own refusals (a
    negative n_startup_trials) are named on the field."""
    name = node.get("name")
    if isinstance(name, str) and "." in name:
        context = {}
    try:
        return registry.build(node, field, **context)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(field, f"{name}: {err}") from err


def optuna_pruner(node: Mapping[str, Any], directions: int) -> optuna.pruners.BasePruner:
    """The study's Optuna pruner. A study of several objectives prunes on one of them (`on`) with
    sweeplab's rule (engine.pareto_pruning), decided in each trial's reporter: Optuna's prunes nothing."""
    if directions > 1:
        return optuna.pruners.NopPruner()
    return build_from(PRUNERS, {k: v for k, v in node.items() if k != "on"}, "hydra.sweeper.pruner")


def check_same_study(
    study: optuna.Study, signature: Mapping[str, Any], where: str, accept_changes: bool = False
) -> str:
    """A resumed study must have the search space, objectives and fixed values it was created with.
    Changed fixed values are accepted with `accept_changes` (and stored): returns what changed."""
    name = study.study_name
    record = StudyRecord.of(study)
    if not record.made_by_sweeplab:
        study.set_user_attr(SIGNATURE, dict(signature))
        return ""
    stored = record.signature
    for part in ("objectives", "space"):
        if stored[part] != signature[part]:
            raise SweeplabError(
                f"study {name!r} in {where} has another {part}: "
                f"{_differences(stored[part], signature[part])}. Resume it with the {part} it was created "
                "with, or start a new study with hydra.sweeper.study_name=NEW_NAME "
                "(nothing stored was changed)."
            )
    if stored.get(CONSTRAINTS, {}) != signature.get(CONSTRAINTS, {}):
        was, asked = (_bounds(c.get(CONSTRAINTS, {})) for c in (stored, signature))
        raise SweeplabError(
            f"study {name!r} in {where} was run with constraints {was}, not {asked}: its trials' "
            "feasibility would mix. Resume it with the constraints it was run with, or start a new study "
            "with hydra.sweeper.study_name=NEW_NAME (nothing stored was changed)."
        )
    replicates = record.replicates, Replicates.read(signature.get(REPLICATES))  # None: one run a trial
    if replicates[0] != replicates[1]:
        was, asked = (describe_replicates(r) for r in replicates)
        raise SweeplabError(
            f"study {name!r} in {where} was run with {was}, not {asked}: its trials would not be "
            "comparable. Resume it with the replicates it was run with (hydra.sweeper.replicates and "
            "companions), or start a new study with hydra.sweeper.study_name=NEW_NAME (nothing stored was "
            "changed)."
        )
    # studies made before fixed values were recorded take the current ones
    before = stored.get("fixed", signature["fixed"])
    changed = _differences(before, signature["fixed"]) if before != signature["fixed"] else ""
    if changed and not accept_changes:
        raise SweeplabError(
            f"study {name!r} in {where} was run with other fixed values: {changed}. Its trials would not "
            "be comparable. Resume it with the values it was run with, start a new study with "
            "hydra.sweeper.study_name=NEW_NAME, or accept the change knowingly with "
            "hydra.sweeper.accept_changes=true (nothing stored was changed)."
        )
    if "fixed" not in stored or changed:
        study.set_user_attr(SIGNATURE, {**stored, "fixed": signature["fixed"]})
    return changed


def _bounds(constraints: Mapping[str, str]) -> str:
    return ", ".join(f"{m} {b}" for m, b in constraints.items()) or "none"


def _differences(stored: Mapping[str, Any], asked: Mapping[str, Any]) -> str:
    lines = [f"{k} is new ({asked[k]})" for k in asked if k not in stored]
    lines += [f"{k} is missing (stored: {stored[k]})" for k in stored if k not in asked]
    lines += [
        f"{k} is {asked[k]}, stored: {stored[k]}" for k in asked if k in stored and asked[k] != stored[k]
    ]
    if list(stored) != list(asked) and not lines:
        lines.append(f"the order differs (stored: {', '.join(stored)})")
    return "; ".join(lines)


def ranked(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The COMPLETE trials of a single-objective study, best first, each run once (a trial that took a
    twin's result is its twin: sweeplab.sweeper.reuse). A tie goes to the earlier trial: the one rule by
    which the summary, `studies show`, the report and its figures name the best."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if TrialRecord.of(t).reused_from is None
    ]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return sorted(sorted(done, key=lambda t: t.number), key=lambda t: -t.value if maximize else t.value)  # type: ignore[operator]


def pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Optuna's Pareto front of a study of several objectives (`best_trials`), each run once."""
    return [t for t in study.best_trials if TrialRecord.of(t).reused_from is None]
