"""A sweep checked whole before its first trial: every problem found is listed in one message, and
nothing is created (no study, no trial, no folder).

Beyond the settings and expressions (checked where they are parsed, in `spec`), this composes the
config of every kind of trial the sweep can make (each option of a swept config group, each setup)
and checks against them: the swept keys exist in at least one (a key only some group options have is
a conditional parameter), each setup's keys exist in its config, and the task's own check (for
`train`: model, optimizer, loss, schedule, without data) passes with each choice of the searched values.
"""

import contextlib
import difflib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from omegaconf import DictConfig

from sweeplab.config import SweeplabError
from sweeplab.sweep.composer import TrialComposer
from sweeplab.sweep.setups import Setup
from sweeplab.sweep.space import Param
from sweeplab.sweep.trial_config import absent, with_values

MAX_CHECKS = 200  # builds of trial objects per sweep check, at a few ms each


class SweepRefused(SweeplabError):
    """A sweep with problems, all of them listed."""

    def __init__(self, problems: Sequence[str]) -> None:
        if len(problems) == 1:
            text = f"sweep refused (nothing was run or stored): {problems[0]}"
        else:
            text = f"sweep refused, {len(problems)} problems (nothing was run or stored):\n" + "\n".join(
                f"  - {p}" for p in problems
            )
        super().__init__(text)
        self.problems = list(problems)


class Problems:
    """Collects the problems of a sweep, so the user sees all of them at once."""

    def __init__(self) -> None:
        self.found: list[str] = []

    @contextlib.contextmanager
    def check(self, context: str = "") -> Iterator[None]:
        """Runs a block; a SweeplabError in it is recorded (with `context` in front), not raised."""
        try:
            yield
        except SweeplabError as err:
            self.add(f"{context}{err}")

    def add(self, problem: str) -> None:
        if problem not in self.found:
            self.found.append(problem)

    def raise_if_any(self) -> None:
        if self.found:
            raise SweepRefused(self.found)


def closest(key: str, known: Sequence[str]) -> str:
    match = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def check_trials(
    problems: Problems,
    composer: TrialComposer,
    params: dict[str, Param],
    setups: dict[str, Setup],
    check: Any,
) -> None:
    """Compose each kind of trial and check it (see the module's doc); problems go to `problems`."""
    loader = composer.hydra_context.config_loader
    kinds: list[tuple[str, list[str], list[str]]] = [("", [], [])]  # (what it is, groups, values)
    for p in params.values():
        if p.is_group:
            options = loader.get_group_options(p.key)
            for choice in p.grid_values():
                if choice not in options:
                    problems.add(f"{p.key}: no option {choice!r}; choose from: {', '.join(options)}")
                else:
                    kinds.append((f"with {p.key}={choice}: ", [f"{p.key}={choice}"], []))
    for label, setup in setups.items():
        groups = [f"{k}={v}" for k, v in setup.overrides.items() if k in composer.groups]
        values = [f"{k}={v}" for k, v in setup.overrides.items() if k not in composer.groups]
        kinds.append((f"setup {label!r}: ", groups, values))

    composed: list[tuple[str, DictConfig, list[str]]] = []
    for context, groups, values in kinds:
        try:
            composed.append((context, composer.composed(tuple([*composer.fixed, *groups])), values))
        except Exception as err:  # Hydra names what does not compose
            problems.add(f"{context}the config does not compose: {err}")
    if not composed:
        return
    keys = sorted(set().union(*(_paths(config) for _, config, _ in composed)))
    searched = [p for p in params.values() if not p.is_group and p.key != "setup"]
    for p in searched:
        if p.key not in keys:
            problems.add(f"{p.key}: the config has no such key{closest(p.key, keys)}")
    buildable, named = [], set()
    for kind in composed:
        context, config, values = kind
        lacking = [key for key in (v.split("=", 1)[0] for v in values) if absent(config, key)]
        for key in sorted(set(lacking) - named):  # named once: later setups of an ablation inherit it
            problems.add(f"{context}sets {key}, which its config lacks{closest(key, keys)}")
        named.update(lacking)
        if not lacking:
            buildable.append(kind)
    if check is not None:
        _check_builds(problems, buildable, searched, check)


def _check_builds(
    problems: Problems, composed: list[tuple[str, DictConfig, list[str]]], searched: list[Param], check: Any
) -> None:
    """The task's check on each kind of trial, and on each value of the searched keys (one at a time,
    on the first kind of trial that has the key)."""
    runs = list(composed)
    for p in searched:
        first = next((kind for kind in composed if not absent(kind[1], p.key)), None)
        if first is not None:
            context, config, values = first
            runs += [(f"{context}with {probe}: ", config, [*values, probe]) for probe in _probes(p)]
    seen: set[str] = set()  # a fault every kind of trial shares is listed once
    for context, config, values in itertools.islice(runs, MAX_CHECKS):
        try:
            check(with_values(config, values) if values else config)
        except Exception as err:  # a builder's own error (not a SweeplabError): it cannot work either
            error = str(err) if isinstance(err, SweeplabError) else f"{type(err).__name__}: {err}"
            if error not in seen:
                seen.add(error)
                problems.add(f"{context}{error}")


def _probes(p: Param) -> list[str]:
    """Overrides of the values worth checking: each value of a choice or a short range, else the middle."""
    try:
        values = p.grid_values()
    except SweeplabError:  # continuous
        d = p.distribution
        values = [(d.low * d.high) ** 0.5 if d.log else (d.low + d.high) / 2]  # type: ignore[attr-defined]
        if isinstance(d.low, int):  # type: ignore[attr-defined]
            values = [round(values[0])]
    return [p.override(v) for v in values[:20]]


def _paths(config: DictConfig) -> set[str]:
    """Every key path of a config but Hydra's node: leaves and the nodes above them."""
    found: set[str] = set()

    def walk(node: DictConfig, prefix: str) -> None:
        for key in node:
            if prefix or key != "hydra":
                path = f"{prefix}{key}"
                found.add(path)
                child = node._get_node(key)
                if isinstance(child, DictConfig):
                    walk(child, path + ".")

    walk(config, "")
    return found
