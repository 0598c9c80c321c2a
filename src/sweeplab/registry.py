"""A name -> builder map, so a config string meets its code in exactly one place (timm-style)."""

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from sweeplab.config import ConfigError, call_with, require, to_dict

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Builders of one kind ("model", "activation", ...) registered under the names configs use."""

    def __init__(self, kind: str, base: type | None = None) -> None:
        """`base`: a registry of a library's classes (Optuna's samplers) also takes a dotted path to any
        subclass of it, as a `_target_` names one."""
        self.kind, self.base = kind, base
        self._builders: dict[str, T] = {}
        self._packable: dict[str, tuple[str, ...]] = {}

    def register(self, name: str, packable: tuple[str, ...] = ()) -> Callable[[T], T]:
        """`packable`: the options that change neither tensor shapes nor control flow (a rate, a seed),
        in which trials packed into one model may differ (`sweeplab.packed`)."""

        def add(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            self._packable[name] = packable
            return builder

        return add

    def packable(self, name: str) -> tuple[str, ...]:
        return self._packable.get(name, ())

    def get(self, name: str, field: str) -> T:
        """The builder for `name`; an unknown name is a ConfigError on `field` listing the choices."""
        if self.base is not None and isinstance(name, str) and "." in name:
            return self._class_at(name, field)
        if name not in self._builders:
            raise ConfigError(field, f"unknown {self.kind} {name!r}; choose one of: {', '.join(self)}")
        return self._builders[name]

    def build(self, node: Mapping, path: str, **context: Any) -> Any:
        """Build what config node `path` describes: its `name` picks the builder, the rest are its options."""
        params = to_dict(node)
        name = params.pop("name", None)
        require(name is not None, f"{path}.name", f"missing; choose one of: {', '.join(self)}")
        return call_with(self.get(name, f"{path}.name"), params, path, **context)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._builders))

    def _class_at(self, path: str, field: str) -> T:
        found = locate(path, field.removesuffix(".name") + "._target_")
        if not (isinstance(found, type) and issubclass(found, self.base)):  # type: ignore[arg-type]
            raise ConfigError(field.removesuffix(".name") + "._target_", f"{path} is not a {self.kind} class")
        return found  # type: ignore[return-value]


def locate(path: str, field: str) -> Any:
    """The object at a dotted path (`package.module.name`), as a config's `_target_` names it; a path that
    does not import is a ConfigError on `field`, with Python's reason."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(field, f"cannot import {path}: {err}") from None
