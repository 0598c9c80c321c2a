"""A study's objectives (metrics and directions, hydra-optuna-sweeper's `direction` included) and the
one its pruner watches, checked against what the task reports before anything runs."""

from sweeplab.config import ConfigError
from sweeplab.engine.pareto_pruning import ParetoPruner
from sweeplab.sweeper.settings import SweeperSettings
from sweeplab.sweeper.task import TaskContract
from sweeplab.sweeper.validate import closest


def _directions(s: SweeperSettings) -> list[str] | None:
    """`directions`, or hydra-optuna-sweeper's `direction` (a word or a list); None where neither is set."""
    if s.direction is None:
        return None if s.directions is None else list(s.directions)
    given = [s.direction] if isinstance(s.direction, str) else list(s.direction)
    if s.directions is not None and list(s.directions) != given:
        raise ConfigError(
            "hydra.sweeper.direction",
            f"{s.direction} and hydra.sweeper.directions={list(s.directions)} disagree; keep one of them",
        )
    return given


def objectives_of(s: SweeperSettings, contract: TaskContract | None) -> dict[str, str]:
    """The metrics and their directions. Unset: sweeplab's train maximizes val_acc; another task's
    value (a float, or a tuple of them) is `value` or `value_0`, `value_1`, ..., minimized by default as
    hydra-optuna-sweeper does."""
    directions = _directions(s)
    if s.objectives is not None:
        metrics = list(s.objectives)
    elif contract is not None:
        metrics = [next(iter(contract.metrics))] if directions is None or len(directions) == 1 else []
    else:
        n = len(directions or [None])
        metrics = ["value"] if n == 1 else [f"value_{i}" for i in range(n)]
    if directions is None:
        directions = ["maximize" if contract is not None else "minimize"] * len(metrics)
    if not metrics or len(metrics) != len(directions) or len(set(metrics)) != len(metrics):
        raise ConfigError(
            "hydra.sweeper.objectives",
            f"name distinct metrics, one direction each; got objectives={metrics}, directions={directions}",
        )
    for direction in directions:
        if direction not in ("maximize", "minimize"):
            key = "hydra.sweeper.direction" if s.direction is not None else "hydra.sweeper.directions"
            raise ConfigError(key, f"each is maximize or minimize, got {direction!r}")
    unknown = [m for m in metrics if contract is not None and m not in contract.metrics]
    if unknown:
        known = list(contract.metrics)  # type: ignore[union-attr]
        raise ConfigError(
            "hydra.sweeper.objectives",
            "; ".join(f"{m!r} is not a metric the task reports{closest(m, known)}" for m in unknown)
            + f"; it reports: {', '.join(known)}",
        )
    return dict(zip(metrics, directions, strict=True))


def monitored_metric(
    s: SweeperSettings, objectives: dict[str, str], contract: TaskContract | None
) -> str | None:
    """The objective the pruner watches: the only one, or `pruner.on` of several (sweeplab's rule,
    engine.pareto_pruning, whose options are checked here)."""
    if s.pruner["name"] == "none" or not objectives:
        return None
    on = s.pruner.get("on")
    if len(objectives) > 1 and on is None:
        raise ConfigError(
            "hydra.sweeper.pruner",
            f"a study of several objectives prunes on one of them: set hydra.sweeper.pruner.on to one of "
            f"{', '.join(objectives)}, or use pruner none",
        )
    watched = next(iter(objectives)) if on is None else on
    if watched not in objectives:
        raise ConfigError(
            "hydra.sweeper.pruner.on",
            f"{watched!r} is not an objective{closest(watched, list(objectives))}; the study's objectives: "
            f"{', '.join(objectives)}",
        )
    if contract is not None and watched not in contract.intermediate:
        raise ConfigError(
            "hydra.sweeper.pruner",
            f"pruning needs an objective the task reports during a run ({', '.join(contract.intermediate)})"
            f", not {watched!r}{closest(watched, contract.intermediate)}",
        )
    if len(objectives) > 1:
        ParetoPruner.of(s.pruner, objectives, contract.known if contract is not None else ())
    return watched
