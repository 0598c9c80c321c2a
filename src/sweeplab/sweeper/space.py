"""Hydra's sweep syntax as Optuna distributions.

`optimizer.lr=tag(log, interval(1e-4, 1e-1))` is a log-uniform float, `int(interval(a, b))` an integer,
`range(a, b[, step])` the values Hydra's basic sweeper would take (b excluded), `choice(...)` a
categorical. Choices that are not plain scalars (lists such as `[100, 100]`) are stored in Optuna as
their override text, because Optuna's categorical values must be scalars.
"""

import contextlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial

from sweeplab.config import ConfigError

Scalar = None | bool | int | float | str
TAGS = {IntervalSweep: {"log"}}  # tags each kind of sweep understands


def override_text(value: Any) -> str:
    """A value as Hydra override text: `[100,100]`, `relu`, `0.001`, `null`, `'a b'`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        plain = value.replace("_", "").replace("-", "").replace(".", "").replace("/", "").isalnum()
        return value if plain else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Iterable):
        return "[" + ",".join(override_text(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as an override")


def as_scalar(value: Any) -> Scalar:
    """How a choice is stored in Optuna: scalars as they are, anything else as its override text."""
    return value if value is None or isinstance(value, bool | int | float | str) else override_text(value)


@dataclass(frozen=True)
class Param:
    """One searched key: its distribution, and whether it picks a config group (`model=choice(mlp,cnn)`)."""

    key: str
    distribution: BaseDistribution
    is_group: bool = False

    def suggest(self, trial: Trial) -> Scalar:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return trial.suggest_categorical(self.key, d.choices)
        if isinstance(d, IntDistribution):
            return trial.suggest_int(self.key, d.low, d.high, step=d.step, log=d.log)
        assert isinstance(d, FloatDistribution)
        return trial.suggest_float(self.key, d.low, d.high, step=d.step, log=d.log)

    def override(self, value: Scalar) -> str:
        # categorical values that were lists are already override text
        return f"{self.key}={value if isinstance(value, str) else override_text(value)}"

    def grid_values(self) -> list[Scalar]:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices)
        if isinstance(d, IntDistribution) and d.step and not d.log:
            return list(range(d.low, d.high + 1, d.step))
        if isinstance(d, FloatDistribution) and d.step:
            n = round((d.high - d.low) / d.step)
            return [round(d.low + i * d.step, 12) for i in range(n + 1)]
        raise ConfigError(
            self.key,
            "the grid and brute-force samplers need discrete values: use choice(...) or range(...), "
            "not interval(...)",
        )


def parse_params(overrides: Mapping[str, str], is_group: set[str]) -> dict[str, Param]:
    """Sweep overrides (key -> Hydra sweep expression) as Params, in the given order."""
    parser = OverridesParser.create()
    params = {}
    for key, expression in overrides.items():
        line = f"{key}={expression}"
        try:
            override = parser.parse_override(line)
        except Exception as err:  # Hydra's grammar errors say where the text is wrong
            raise ConfigError(key, f"cannot parse {expression!r}: {err}") from err
        params[override.key_or_group] = to_param(override, override.key_or_group in is_group)
    return params


def split_overrides(arguments: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Command-line overrides split into sweep expressions (key -> expression) and fixed overrides."""
    parser = OverridesParser.create()
    sweeps, fixed = {}, []
    for override in parser.parse_overrides(list(arguments)):
        if override.is_sweep_override():
            sweeps[override.get_key_element()] = override.input_line.split("=", 1)[1]
        else:
            fixed.append(override.input_line)
    return sweeps, fixed


def comma_lists(expressions: dict[str, str]) -> list[str]:
    """The keys swept with Hydra's comma list (`trainer.seed=0,1,2`), which Hydra's basic sweeper runs
    once each but an Optuna sampler treats as a choice it draws from."""
    parser = OverridesParser.create()
    keys = []
    for key, expression in expressions.items():
        with contextlib.suppress(Exception):  # a bad expression is reported where it is parsed
            value = parser.parse_override(f"{key}={expression}").value()
            if isinstance(value, ChoiceSweep) and value.simple_form:
                keys.append(key)
    return keys


def to_param(override: Override, is_group: bool) -> Param:
    key, value = override.key_or_group, override.value()
    where = key
    tags = set(getattr(value, "tags", None) or ())
    if tags - TAGS.get(type(value), set()):
        raise ConfigError(
            where,
            f"unknown tag {', '.join(sorted(tags))} in {override.input_line}; the only tag is log, as in "
            "tag(log, interval(1e-4, 1e-1))",
        )
    if isinstance(value, ChoiceSweep):
        if not value.list:
            raise ConfigError(where, f"{override.input_line} is empty: give at least one value")
        choices = [as_scalar(v) for v in value.list]
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(where, f"choice has repeated values: {choices}")
        return Param(key, CategoricalDistribution(choices), is_group)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        # by index, not by adding steps: Hydra's float ranges accumulate rounding error and can
        # include their end (range(0.1, 0.4, 0.1) gives 0.30000000000000004 and 0.4)
        n = math.ceil((stop - start) / step - 1e-9) if step > 0 else 0
        if n <= 0:
            raise ConfigError(where, f"{override.input_line} is empty (the end of a range is excluded)")
        if all(isinstance(v, int) for v in (start, stop, step)):
            return Param(key, IntDistribution(start, start + (n - 1) * step, step=step))
        return Param(key, FloatDistribution(start, round(start + (n - 1) * step, 12), step=step))
    if isinstance(value, IntervalSweep):
        log = "log" in tags
        if value.start >= value.end:
            raise ConfigError(
                where,
                f"{override.input_line}: the start must be below the end "
                f"(interval({value.end}, {value.start})?)",
            )
        if log and value.start <= 0:
            raise ConfigError(where, f"a log interval needs a positive start, got {value.start:g}")
        if isinstance(value.start, int) and isinstance(value.end, int):
            return Param(key, IntDistribution(value.start, value.end, log=log))
        return Param(key, FloatDistribution(float(value.start), float(value.end), log=log))
    raise ConfigError(where, f"{override.input_line} is not a sweep: use choice, range or interval")


def describe(distribution: BaseDistribution) -> str:
    """A distribution as people read it: `log-uniform [0.0001, 0.1]`, `choice of relu, elu`."""
    d = distribution
    if isinstance(d, CategoricalDistribution):
        return "choice of " + ", ".join(map(str, d.choices))
    kind = "integers" if isinstance(d, IntDistribution) else "log-uniform" if d.log else "uniform"
    if isinstance(d, IntDistribution) and d.log:
        kind = "log-spaced integers"
    step = f" step {d.step}" if d.step not in (None, 1) else ""
    return f"{kind} [{d.low}, {d.high}]{step}"


def space_signature(params: Mapping[str, Param]) -> dict[str, str]:
    """A comparable description of the space, stored with the study to detect a changed space."""
    return {key: describe(p.distribution) for key, p in params.items()}
