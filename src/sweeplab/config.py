"""Checking config nodes against the builders they feed, so bad input fails before any training.

Every option in a config group maps to a builder function whose keyword arguments *are* its schema:
`call_with(builder, node, "optimizer")` rejects unknown keys, missing keys and values of the wrong type
with a message naming the full field (`optimizer.lr`), then calls the builder. Range checks live in the
builders themselves, next to the code that relies on them, through `require`.
"""

import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf._utils import get_omega_conf_dumper

# Keys that say where a run happens, not what it computes: a retry may run on another machine, and a
# study's trials may run on several.
MACHINE_KEYS = (
    "data_dir",
    "trainer.device",
    "trainer.num_threads",
    "trainer.progress",
    "trainer.checkpoint_every",
    "logger",  # where a run's numbers are also shown (`sweeplab.track`)
)


class SweeplabError(Exception):
    """An error caused by the user's input; the CLI prints its message without a traceback."""


class ConfigError(SweeplabError, ValueError):
    """A config value that cannot work, with the field it is in."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise ConfigError(field, message)


def to_dict(node: Mapping | DictConfig) -> dict[str, Any]:
    """A plain, resolved dict of a config node (OmegaConf containers become lists and dicts)."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)


def comparable_values(cfg: DictConfig) -> dict[str, Any]:
    """What a config computes, as dotted key -> value: every resolved leaf but Hydra's node and the
    keys of the machine (MACHINE_KEYS). Two runs with equal values compute the same thing."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if prefix in MACHINE_KEYS:
            return
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    plain = {k: to_dict(cfg[k]) if isinstance(cfg[k], DictConfig) else cfg[k] for k in cfg if k != "hydra"}
    walk(plain, "")
    return flat


def structure(cfg: DictConfig, packable: set[str]) -> str:
    """What trials packed together share: the comparable values but the `packable` keys, as text."""
    values = {k: v for k, v in comparable_values(cfg).items() if k not in packable}
    return json.dumps(values, sort_keys=True, default=str)


def call_with(builder: Callable, node: Mapping, path: str, **context: Any) -> Any:
    """Call `builder(**context, **node)` after checking the node's keys and value types.

    `context` holds what the code supplies (parameters, shapes); `node` holds what the user wrote.
    """
    params = {
        name: p
        for name, p in inspect.signature(builder).parameters.items()
        if name not in context and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    hints = _type_hints(builder)
    values = to_dict(node)
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise ConfigError(
            f"{path}.{unknown[0]}", f"unknown option; {path} takes: {', '.join(params) or 'no options'}"
        )
    for name, param in params.items():
        if name not in values and param.default is inspect.Parameter.empty:
            raise ConfigError(f"{path}.{name}", f"missing; expected {_describe(hints.get(name, Any))}")
    for name, value in values.items():
        hint = hints.get(name, Any)
        if not _conforms(value, hint):
            raise ConfigError(f"{path}.{name}", f"expected {_describe(hint)}, got {value!r}")
    return builder(**context, **values)


def _type_hints(builder: Callable) -> dict[str, Any]:
    """The builder's parameter types (a class's: its `__init__`'s). A hint that names what its module
    imports only for type checkers (Optuna's samplers have some) is not checked: Any."""
    target = builder.__init__ if isinstance(builder, type) else builder  # type: ignore[misc]
    try:
        return typing.get_type_hints(target)
    except NameError:
        namespace = getattr(target, "__globals__", {})
        hints = {}
        for name, hint in getattr(target, "__annotations__", {}).items():
            try:
                hints[name] = eval(hint, namespace) if isinstance(hint, str) else hint
            except Exception:
                hints[name] = Any
        return hints


def _conforms(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar | str):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin in (list, tuple):
        item = args[0] if args else Any
        return isinstance(value, list | tuple) and all(_conforms(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is not None:  # dict[str, float], Callable[..., float], Sequence[int]: the container's kind
        return isinstance(origin, type) and isinstance(value, origin)
    return not isinstance(hint, type) or isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_PLURALS.get(args[0], 'values') if args else 'values'}"
    if hint is type(None):
        return "null"
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(hint, str(hint))


_PLURALS = {float: "numbers", int: "integers", str: "strings"}


_PURE = get_omega_conf_dumper()


class _FastDumper(getattr(yaml, "CDumper", _PURE)):  # type: ignore[misc]
    """OmegaConf's dumper on libyaml's emitter (PyYAML's own where libyaml is missing)."""


_FastDumper.add_representer(str, _PURE.yaml_representers[str])


def config_yaml(config: DictConfig | ListConfig, resolve: bool = False) -> str:
    """`OmegaConf.to_yaml(config, resolve=resolve)`, the same text (tests/sweeper/test_hydra_job.py),
    written by libyaml's emitter: ten times faster, 4 ms less for a Hydra job's hydra.yaml."""
    container = OmegaConf.to_container(config, resolve=resolve, enum_to_str=True)
    return yaml.dump(
        container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=_FastDumper
    )
