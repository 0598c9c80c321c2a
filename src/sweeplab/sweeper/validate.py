"""A sweep checked whole before its first trial: every problem found is listed in one message, and
nothing is created (no study, no trial, no folder).

Beyond the settings and expressions (checked where they are parsed, in `spec`), this composes the
config of every kind of trial the sweep can make (each combination of the swept config groups' options,
for each setup; the first MAX_KINDS) and checks against them: the swept keys exist in at least one (a
key only some group options have is a conditional parameter), each setup's keys exist in its config,
and the task's own check (for `train`: model, optimizer, loss, schedule, without data) passes with each
choice of the searched values.
"""

import contextlib
import difflib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from omegaconf import DictConfig

from sweeplab.config import SweeplabError
from sweeplab.sweeper.composer import TrialComposer
from sweeplab.sweeper.setups import Setup
from sweeplab.sweeper.space import Param
from sweeplab.sweeper.trial_config import absent, with_values

MAX_KINDS = 64  # compositions of group choices and setups checked, at about 0.1 s each
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
    """The hint to put after a typo'd key, ` (did you mean X?)`, or "". A dotted key is compared by its
    last part with its siblings (a shared `hydra.sweeper.slurm.` would make any two keys look alike),
    then, for a typo in the path (`optimzer.lr`), by its path with the keys of the same last part."""
    parent, _, leaf = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    namesakes = {k.rpartition(".")[0]: k for k in known if "." in k and k.rpartition(".")[2] == leaf}
    for part, candidates in ((leaf, siblings), (parent, namesakes)):
        match = difflib.get_close_matches(part, list(candidates), n=1, cutoff=0.6)
        if match:
            return f" (did you mean {candidates[match[0]]}?)"
    return ""


class Kind(NamedTuple):
    """One kind of trial: its group choices composed by Hydra, and the values its setup sets."""

    context: str  # how problems of this kind are introduced: "setup 'Adam' with model=cnn: "
    config: DictConfig
    values: list[str]


def check_trials(
    problems: Problems,
    composer: TrialComposer,
    params: dict[str, Param],
    setups: dict[str, Setup],
    check: Callable[[DictConfig], None] | None,
) -> None:
    """Compose each kind of trial and check it (see the module's doc); problems go to `problems`."""
    loader = composer.hydra_context.config_loader
    options = []  # for each swept config group, the overrides of its options
    for p in params.values():
        if p.is_group:
            known = loader.get_group_options(p.key)
            for choice in p.grid_values():
                if choice not in known:
                    problems.add(f"{p.key}: no option {choice!r}; choose from: {', '.join(known)}")
            options.append([f"{p.key}={c}" for c in p.grid_values() if c in known])
    bases = [("", [], [])]  # (context, groups, values) of each setup, or of the one config
    if setups:
        bases = [
            (
                f"setup {label!r}",
                [f"{k}={v}" for k, v in setup.overrides.items() if k in composer.groups],
                [f"{k}={v}" for k, v in setup.overrides.items() if k not in composer.groups],
            )
            for label, setup in setups.items()
        ]
    kinds: list[Kind] = []
    every = itertools.product(bases, itertools.product(*options))
    for (context, groups, values), choices in itertools.islice(every, MAX_KINDS):
        text = " ".join(filter(None, [context, f"with {' '.join(choices)}" if choices else ""]))
        try:
            config = composer.composed(tuple([*composer.fixed, *groups, *choices]))
        except Exception as err:  # Hydra names what does not compose
            problems.add(f"{text + ': ' if text else ''}the config does not compose: {err}")
            continue
        kinds.append(Kind(f"{text}: " if text else "", config, values))
    if not kinds:
        return
    keys = sorted(set().union(*(_paths(kind.config) for kind in kinds)))
    searched = [p for p in params.values() if not p.is_group and p.key != "setup"]
    for p in searched:
        if p.key not in keys:
            problems.add(f"{p.key}: the config has no such key{closest(p.key, keys)}")
    buildable, named = [], set()
    for kind in kinds:
        lacking = [key for key in (v.split("=", 1)[0] for v in kind.values) if absent(kind.config, key)]
        for key in sorted(set(lacking) - named):  # named once: later setups of an ablation inherit it
            problems.add(f"{kind.context}sets {key}, which its config lacks{closest(key, keys)}")
        named.update(lacking)
        if not lacking:
            buildable.append(kind)
    if check is not None:
        _check_builds(problems, buildable, searched, check)


def _check_builds(
    problems: Problems, kinds: list[Kind], searched: list[Param], check: Callable[[DictConfig], None]
) -> None:
    """The task's check on each kind of trial, and on each value of the searched keys (one at a time,
    on the first kind of trial that has the key)."""
    runs = list(kinds)
    for p in searched:
        first = next((kind for kind in kinds if not absent(kind.config, p.key)), None)
        if first is not None:
            runs += [
                Kind(_with(first.context, probe), first.config, [*first.values, probe])
                for probe in _probes(p)
            ]
    seen: set[str] = set()  # a fault every kind of trial shares is listed once
    for context, config, values in itertools.islice(runs, MAX_CHECKS):
        try:
            check(with_values(config, values) if values else config)
        except Exception as err:  # a builder's own error (not a SweeplabError): it cannot work either
            error = str(err) if isinstance(err, SweeplabError) else f"{type(err).__name__}: {err}"
            if error not in seen:
                seen.add(error)
                problems.add(f"{context}{error}")


def _with(context: str, value: str) -> str:
    """ "with a=1: " -> "with a=1, b=2: "; "setup 'x': " -> "setup 'x' with b=2: "; "" -> "with b=2: "."""
    text = context.removesuffix(": ")
    if not text:
        return f"with {value}: "
    return f"{text}, {value}: " if " with " in f" {text}" else f"{text} with {value}: "


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
