"""The grid and brute-force samplers' plan: every value of every param, and the grid's points made one
at a time as they are queued."""

import math
from collections.abc import Sequence
from typing import Any, overload

from sweeplab.sweeper.settings import SweeperSettings
from sweeplab.sweeper.space import Param


class GridPlan(Sequence[dict[str, Any]]):
    """A grid's points in `itertools.product` order, each made when asked for: a grid of any size costs
    nothing until its points are queued (a few at a time, as trials start)."""

    def __init__(self, grid: dict[str, list]) -> None:
        self.keys, self.values = list(grid), [list(v) for v in grid.values()]
        self.size = math.prod(len(v) for v in self.values)

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        if not -self.size <= index < self.size:
            raise IndexError(index)
        index %= self.size
        point = {}
        for key, values in zip(reversed(self.keys), reversed(self.values), strict=True):
            index, at = divmod(index, len(values))
            point[key] = values[at]
        return {key: point[key] for key in self.keys}


def grid_of(s: SweeperSettings, params: dict[str, Param]) -> dict[str, list] | None:
    """Every value of every param, for the grid and brute-force samplers (which need discrete ones)."""
    if s.sampler["name"] not in ("grid", "bruteforce"):
        return None
    return {key: p.grid_values() for key, p in params.items()}
