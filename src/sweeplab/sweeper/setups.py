"""Setups: a study given as an ordered list of configurations, as reports tabulate them.

`hydra.sweeper.setups` is a list; each entry maps config keys (or groups) to values, and may have a
`name` (its row's name; by default its 1-based position). A value may be a sweep, `choice(3,5,7)` or
`range(...)`: the entry then stands for each of its values, and the report can pick the best of them on
validation (`choose` in the report spec).

With `hydra.sweeper.ablation: true` the entries are an ordered ablation: the first is the starting
configuration, and each later one changes only what it names, on top of the changes kept so far. An
entry's changes are kept for the rows after it unless it says `keep: false` (a change tried and undone).
"""

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

from sweeplab.config import ConfigError
from sweeplab.sweeper.space import Param, override_text, to_param

FIELD = "hydra.sweeper.setups"


@dataclass(frozen=True)
class Setup:
    label: str  # unique: the value of the trial's `setup` parameter in Optuna
    name: str  # shared by the configurations one entry stands for
    position: int  # 1-based position of its entry
    overrides: dict[str, str]  # key -> override text: everything the trial sets
    changed: tuple[str, ...]  # ablation: the keys this entry changes from the kept configuration
    keep: bool  # ablation: whether the rows after it keep its changes

    def record(self) -> dict[str, Any]:
        """What the trial stores of its setup, for the report."""
        return {"name": self.name, "position": self.position, "changed": [*self.changed], "keep": self.keep}


def expand_setups(entries: Sequence[Mapping[str, Any]], ablation: bool) -> list[Setup]:
    setups: list[Setup] = []
    kept: dict[str, str] = {}
    names: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        where = f"{FIELD}[{position - 1}]"
        if not isinstance(entry, Mapping) or not entry:
            raise ConfigError(where, f"is a mapping of config keys to values, got {entry!r}")
        own = dict(entry)
        name = str(own.pop("name", position))
        keep = own.pop("keep", True)
        if "keep" in entry and not ablation:
            raise ConfigError(f"{where}.keep", "applies to ablations only (hydra.sweeper.ablation: true)")
        if not isinstance(keep, bool):
            raise ConfigError(f"{where}.keep", f"is true or false, got {keep!r}")
        if name in names:
            raise ConfigError(f"{where}.name", f"{name!r} names an earlier setup too; names must differ")
        names.add(name)
        texts = {k: v if isinstance(v, str) else override_text(v) for k, v in own.items()}
        variants = _variants(texts, where)
        if ablation and keep and len(variants) > 1:
            raise ConfigError(where, "a kept ablation step must be one configuration; add keep: false")
        base = kept if ablation else {}
        for variant, swept in variants:
            compared = ablation and position > 1  # the first entry of an ablation is its baseline
            changed = tuple(k for k, v in variant.items() if base.get(k) != v) if compared else ()
            label = name if not swept else f"{name}: " + " ".join(f"{k}={variant[k]}" for k in swept)
            setups.append(Setup(label, name, position, {**base, **variant}, changed, keep))
        if ablation and keep:
            kept = {**kept, **variants[0][0]}
    return setups


def _variants(entry: dict[str, str], where: str) -> list[tuple[dict[str, str], list[str]]]:
    """The configurations an entry stands for (the product of its sweeps), and which keys it sweeps."""
    parser = OverridesParser.create()
    options: dict[str, list[str]] = {}
    for key, text in entry.items():
        try:
            override = parser.parse_override(f"{key}={text}")
        except Exception as err:  # Hydra's grammar errors say where the text is wrong
            raise ConfigError(f"{where}.{key}", f"cannot parse {text!r}: {err}") from err
        if override.is_sweep_override():
            values = to_param(override, is_group=False).grid_values()
            options[key] = [v if isinstance(v, str) else override_text(v) for v in values]
        else:
            options[key] = [text]
    swept = [k for k, values in options.items() if len(values) > 1]
    return [(dict(zip(options, combo, strict=True)), swept) for combo in itertools.product(*options.values())]


def plan_trials(setups: Mapping[str, Setup], params: Mapping[str, Param]) -> list[dict[str, Any]]:
    """Every trial's parameters, setup by setup, each with every combination of the other params (which
    must then be discrete), in the order they run."""
    if not setups:
        return []
    others = {key: p.grid_values() for key, p in params.items() if key != "setup"}
    return [
        {"setup": label, **dict(zip(others, combo, strict=True))}
        for label in setups
        for combo in itertools.product(*others.values())
    ]
