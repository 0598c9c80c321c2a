"""From the sweeper's settings and the command line to what the controller runs: the study's spec
(space, objectives, fixed values, plan, budget), the trial composer, the objectives and the metric the
pruner watches. Everything here is checked before the study is touched."""

import logging
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import CategoricalDistribution

from sweeplab.config import ConfigError
from sweeplab.engine.lifecycle import StudySpec
from sweeplab.engine.records import CONSTRAINTS, REPLICATES
from sweeplab.engine.reference import StudyRef
from sweeplab.engine.storage import study_name_problem
from sweeplab.engine.study import SAMPLERS, build_from, optuna_pruner
from sweeplab.registry import locate
from sweeplab.sweeper.composer import TrialComposer
from sweeplab.sweeper.constraints import Constraint, parse_constraints, stored
from sweeplab.sweeper.grid import GridPlan, grid_of
from sweeplab.sweeper.objectives import monitored_metric, objectives_of
from sweeplab.sweeper.replicates import AGGREGATES, Replication
from sweeplab.sweeper.settings import SweeperSettings
from sweeplab.sweeper.setups import Setup, expand_setups, plan_trials
from sweeplab.sweeper.space import (
    Param,
    as_scalar,
    comma_lists,
    parse_params,
    space_signature,
    split_overrides,
)
from sweeplab.sweeper.task import TaskContract
from sweeplab.sweeper.trial_config import absent, fixed_values
from sweeplab.sweeper.validate import Problems, check_trials, closest
from sweeplab.track.mlflow import reachable

log = logging.getLogger("sweeplab.sweep")


@dataclass
class SweepPlan:
    spec: StudySpec
    composer: TrialComposer
    objectives: dict[str, str]  # metric -> direction, in the order given
    monitor: str | None  # the metric reported to the pruner
    replication: Replication | None = None  # hydra.sweeper.replicates above 1
    constraints: dict[str, Constraint] = field(default_factory=dict)  # hydra.sweeper.constraints


def plan_sweep(
    s: SweeperSettings,
    hydra_context: HydraContext,
    config: DictConfig,
    arguments: list[str],
    contract: TaskContract | None = None,
) -> SweepPlan:
    """Raises SweepRefused listing every problem found, before anything is stored."""
    problems = Problems()
    name_problem = study_name_problem(s.study_name)
    if name_problem:
        problems.add(f"hydra.sweeper.study_name: {name_problem}")
    counts = (
        ("n_trials", s.n_trials),
        ("n_jobs", s.n_jobs),
        ("pack", s.pack),
        ("max_failures", s.max_failures),
    )
    for name, value in counts:
        if value is not None and (not isinstance(value, int) or value < 1):
            problems.add(f"hydra.sweeper.{name}: must be at least 1, got {value}")
    if s.search_space is not None:
        problems.add(
            "hydra.sweeper.search_space is hydra-optuna-sweeper 1.1's key; sweeplab reads the space from "
            "hydra.sweeper.params ({key: sweep expression}, e.g. x: interval(-5, 5)): rename it"
        )
    if s.timeout is not None and s.timeout <= 0:
        problems.add(f"hydra.sweeper.timeout: is in seconds and must be positive, got {s.timeout}")
    cli_sweeps, fixed = split_overrides(arguments)
    loader = hydra_context.config_loader
    expressions = {**s.params, **cli_sweeps}  # the command line wins over the sweep file
    setups: dict[str, Setup] = {}
    with problems.check():
        setups = {setup.label: setup for setup in expand_setups(s.setups, s.ablation)}
    set_keys = {key for setup in setups.values() for key in setup.overrides}
    groups = {k for k in [*expressions, *set_keys] if "." not in k and loader.get_group_options(k)}
    params: dict[str, Param] = {}
    for key, expression in expressions.items():
        with problems.check():
            params.update(parse_params({key: expression}, groups))
    if setups:
        both = sorted(set_keys & set(params))
        if both:
            problems.add(f"hydra.sweeper.setups: {', '.join(both)}: set by setups and params both")
        params = {"setup": Param("setup", CategoricalDistribution(list(setups))), **params}
    objectives: dict[str, str] = {}
    with problems.check():
        objectives = objectives_of(s, contract)
    monitor = None
    with problems.check():
        monitor = monitored_metric(s, objectives, contract)
    grid = None
    with problems.check():
        grid = grid_of(s, params)
    with problems.check():
        optuna_pruner(s.pruner, len(objectives))
    constraints: dict[str, Constraint] = {}
    with problems.check():
        constraints = parse_constraints(s.constraints, contract.metrics if contract is not None else None)
    if grid is not None or s.sampler["name"] != "grid":  # else the grid's problem is listed already
        with problems.check():
            context = {"search_space": grid} if s.sampler["name"] == "grid" else {}
            build_from(SAMPLERS, s.sampler, "hydra.sweeper.sampler", **context)
    if s.sampler["name"] not in ("grid", "bruteforce") and not setups:  # setups run every combination
        for key in comma_lists(expressions):
            log.warning(
                "%s=%s is a choice the %s sampler draws from, as choice(...) is, not a list run once "
                "each: some values may run twice and others never; to run each, use "
                "hydra.sweeper.sampler=grid",
                key,
                expressions[key],
                s.sampler["name"],
            )
    extend = None
    if s.custom_search_space:
        with problems.check():
            extend = locate(s.custom_search_space, "hydra.sweeper.custom_search_space")
    composer = TrialComposer(hydra_context, config, fixed, groups, params, setups, extend)
    replication = None
    if s.aggregate not in AGGREGATES:
        problems.add(
            f"hydra.sweeper.aggregate: unknown aggregate {s.aggregate!r}"
            f"{closest(str(s.aggregate), list(AGGREGATES))}; one of {', '.join(AGGREGATES)}"
        )
    with problems.check():
        replication = _replication(s, composer, fixed, {*params, *set_keys})
    check_trials(problems, composer, params, setups, contract.check if contract else None)
    if not problems.found:  # a tracking server that does not answer: before trial 0, not in each trial
        with problems.check():
            reachable(composer.composed(tuple(fixed)))
    problems.raise_if_any()
    spec = _spec(s, config, composer, objectives, params, setups, set_keys, fixed, grid)
    if constraints:  # part of what the study is: a resume with others would mix feasibilities
        spec.signature[CONSTRAINTS] = stored(constraints)
    if replication is not None:  # a resumed study with other replicates is refused, like other changes
        spec.signature[REPLICATES] = replication.stored().to_attr()
    return SweepPlan(spec, composer, objectives, monitor, replication, constraints)


def _replication(
    s: SweeperSettings, composer: TrialComposer, fixed: list[str], searched: set[str]
) -> Replication | None:
    """hydra.sweeper.replicates and its companions, checked; None for one run per trial."""
    n, seeds, key = s.replicates, s.replicate_seeds, s.replicate_key
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError("hydra.sweeper.replicates", f"must be at least 1, got {n}")
    if seeds is not None:
        seeds = list(seeds)
        if not seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
            raise ConfigError("hydra.sweeper.replicate_seeds", f"must list integers, got {seeds}")
        if len(set(seeds)) != len(seeds):
            raise ConfigError("hydra.sweeper.replicate_seeds", f"lists a seed twice: {seeds}")
        if n not in (1, len(seeds)):
            raise ConfigError(
                "hydra.sweeper.replicate_seeds",
                f"lists {len(seeds)} seeds but replicates is {n}: "
                f"set replicates to {len(seeds)}, or leave it out",
            )
        n = len(seeds)
    if n == 1:
        return None
    if key in searched:
        raise ConfigError(
            "hydra.sweeper.replicate_key",
            f"{key} is swept (params or setups) and replicated both: sweep it or replicate it, not both "
            f"(replicates set it to each member's seed)",
        )
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", key):
        raise ConfigError(
            "hydra.sweeper.replicate_key", f"{key!r} is not a config key: a dotted name, e.g. trainer.seed"
        )
    base = composer.composed(tuple(fixed))
    if absent(base, key) or not isinstance(OmegaConf.select(base, key), int):
        raise ConfigError(
            "hydra.sweeper.replicate_key",
            f"{key!r} is not an integer key of the config{closest(key, _keys(base))}; "
            "the members set it to their seeds",
        )
    return Replication(key=key, seeds=tuple(seeds) if seeds else None, n=n, aggregate=s.aggregate)


def _keys(config: Any, prefix: str = "") -> list[str]:
    """The dotted keys of a composed config (Hydra's own node left out), for a typo's suggestion."""
    keys = []
    for key in config:
        if key == "hydra" and not prefix:
            continue
        value = config._get_node(key)
        keys += _keys(value, f"{prefix}{key}.") if OmegaConf.is_dict(value) else [f"{prefix}{key}"]
    return keys


def _spec(
    s: SweeperSettings,
    config: DictConfig,
    composer: TrialComposer,
    objectives: dict[str, str],
    params: dict[str, Param],
    setups: dict[str, Setup],
    set_keys: set[str],
    fixed: list[str],
    grid: dict[str, list] | None,
) -> StudySpec:
    plan = [{k: as_scalar(v) for k, v in p.items()} for p in plan_trials(setups, params)]
    context, grid_size = {}, 0
    if grid is not None and s.sampler["name"] == "grid":
        context, grid_size = {"search_space": grid}, math.prod(len(v) for v in grid.values())
        if not setups:  # the grid is a plan: its points queued in order, so packs fill from the queue
            plan = GridPlan(grid)
    space = space_signature(params)
    if setups:  # a setup's contents are part of the space
        space["setup"] = "; ".join(
            f"{label}: {' '.join(f'{k}={v}' for k, v in setup.overrides.items())}"
            for label, setup in setups.items()
        )
    base = composer.composed(tuple(fixed))
    overrides = [*config.hydra.overrides.hydra, *config.hydra.overrides.task]
    return StudySpec(
        name=s.study_name,
        storage_url=StudyRef.of(s.study_name, s.storage).url,
        directions=list(objectives.values()),
        signature={
            "space": space,
            "objectives": objectives,
            "fixed": fixed_values(base, {*params, *set_keys}),
        },
        n_trials=s.n_trials or len(plan) or grid_size or 20,
        plan=plan,
        enqueue=[{k: as_scalar(v) for k, v in p.items()} for p in s.enqueue],
        sampler=dict(s.sampler),
        sampler_context=context,
        pruner=dict(s.pruner),
        command=_command(overrides),
        accept_changes=s.accept_changes,
        max_retries=s.max_retries,
        heartbeat_interval=s.heartbeat_interval,
        stale_after=s.stale_after,
    )


# Environment variables the configs read (conf/) that change what a run computes or whether it runs;
# SWEEPLAB_DATA_DIR and SWEEPLAB_STUDIES_DIR say where, not what, like the config's machine keys.
RECORDED_ENVIRONMENT = ("SWEEPLAB_CIFAR10", "SWEEPLAB_VERIFY_MD5")


def _command(overrides: list[str]) -> str:
    """The command as the user could run it again, with the environment it needed in front."""
    environment = [f"{k}={os.environ[k]}" for k in RECORDED_ENVIRONMENT if k in os.environ]
    return shlex.join([*environment, "sweeplab", "train", "-m", *overrides])
