"""Multi-objective tables: the rows on the Pareto front of their means, the rows that no other row
dominates significantly, and the hypervolume of the front with its interval over replicates.

A row on the front of the means may be no better than a dominated one once the runs' noise is counted:
with replicates, row j *significantly dominates* row i when j's mean is better on every objective and
Welch's t finds each of those differences significant at the table's level. Optuna's own front and
hypervolume are used, on the rows' means (as losses: a maximized objective negated).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from optuna._hypervolume import compute_hypervolume
from optuna.study._multi_objective import _is_pareto_front

from sweeplab.config import SweeplabError
from sweeplab.report.stats import BOOTSTRAP_SEED, Interval

Runs = Sequence[Sequence[float]]  # one row's runs: per objective, the values of its runs

FRONT = "◆"  # a row on the Pareto front of the means
UNDOMINATED = "◇"  # a row off that front that no row dominates significantly
HYPERVOLUME_RESAMPLES = 999
REFERENCE_MARGIN = (
    0.1  # the default reference point: each objective's worst mean, a tenth of its range beyond
)


@dataclass
class ParetoMarks:
    objectives: dict[str, str]  # objective -> "maximize" | "minimize"
    front: list[int]  # rows on the front of the means
    undominated: list[int]  # rows no other row dominates significantly (all rows on the front among them)
    tested: bool  # some rows have n >= 2: the significance was tested; else the marks ignore noise
    level: float
    infeasible: list[int] = field(default_factory=list)  # rows whose means break a constraint: unmarked

    def mark(self, row: int) -> str:
        if row in self.front:
            return FRONT
        return UNDOMINATED if self.tested and row in self.undominated else ""

    def legend(self) -> str:
        names = " and ".join(f"{o} ({d}d)" for o, d in self.objectives.items())
        text = f"Pareto ({names}): {FRONT} on the front of the rows' means"
        if self.infeasible:
            text += ", of the rows that meet the constraints"
        if not self.tested:
            return text + "; one run per row, so the marks ignore the runs' noise."
        return (
            f"{text}; {UNDOMINATED} off it, but no row dominates it significantly (better on every "
            f"objective by Welch's t, two-sided p < {1 - self.level:.2g}, or equal on one whose runs all "
            "agree, such as a parameter count; no correction over the pairs of rows): the front cannot be "
            "told from these rows at this level. Unmarked rows are dominated "
            "significantly" + (" or break a constraint." if self.infeasible else ".")
        )


def losses(means: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Rows x objectives as values to minimize."""
    return means * np.array([1.0 if d == "minimize" else -1.0 for d in directions])


def front_of(loss: np.ndarray) -> list[int]:
    """The rows on the Pareto front (Optuna's), rows with a missing value left out."""
    finite = np.flatnonzero(np.isfinite(loss).all(axis=1))
    if not len(finite):
        return []
    on_front = _is_pareto_front(loss[finite], assume_unique_lexsorted=False)
    return sorted(int(i) for i in finite[on_front])


def compare_rows(
    runs: Sequence[Sequence[float]], direction: str, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """For every pair of rows at once ([j, i]; sweeplab.report.stats.welch per pair would take seconds on
    200 rows): whether row j is significantly better than row i (its mean better, Welch's t two-sided
    p < 1 - level), and whether the two are certainly equal (runs that all agree, on the same value: a
    parameter count). Rows with fewer than two runs are never either; rows whose runs all agree are
    significantly apart whenever their values differ."""
    from scipy import stats

    values = [np.asarray([v for v in r if v is not None and math.isfinite(v)], dtype=float) for r in runs]
    n = np.array([len(v) for v in values], dtype=float)
    mean = np.array([v.mean() if len(v) else math.nan for v in values])
    var = np.array([v.var(ddof=1) if len(v) > 1 else math.nan for v in values])
    delta = mean[:, None] - mean[None, :]
    share = var / n
    se2 = share[:, None] + share[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = delta / np.sqrt(se2)
        df = se2**2 / ((share**2 / (n - 1))[:, None] + (share**2 / (n - 1))[None, :])
        p = 2 * stats.t.sf(np.abs(t), df)
    p = np.where(se2 == 0, np.where(delta != 0, 0.0, 1.0), p)  # no spread at all: as sweeplab's welch
    enough = (n >= 2)[:, None] & (n >= 2)[None, :]
    better = delta < 0 if direction == "minimize" else delta > 0
    return enough & better & (p < 1 - level), enough & (se2 == 0) & (delta == 0)


def mark_rows(
    means: np.ndarray,
    samples: Sequence[Runs],
    objectives: Mapping[str, str],
    level: float,
    infeasible: Sequence[int] = (),
) -> ParetoMarks:
    """`means` rows x objectives; `samples[row][objective]` that row's runs. Rows `infeasible` (their
    means break a constraint) are neither marked nor dominate others: the front is of the feasible."""
    directions = list(objectives.values())
    feasible_means = means.copy()
    feasible_means[list(infeasible)] = np.nan
    front = front_of(losses(feasible_means, directions))
    finite = np.isfinite(feasible_means).all(axis=1)
    # [j, i]: j dominates i significantly: on every objective significantly better or certainly equal,
    # and better on one
    no_worse = np.ones((len(means), len(means)), dtype=bool)
    better_once = np.zeros((len(means), len(means)), dtype=bool)
    for k, direction in enumerate(directions):
        better, equal = compare_rows([row[k] for row in samples], direction, level)
        no_worse &= better | equal
        better_once |= better
    dominated = no_worse & better_once & finite[:, None] & finite[None, :]
    undominated = [i for i in range(len(means)) if finite[i] and not dominated[:, i].any()]
    tested = any(min(len(r) for r in samples[i]) >= 2 for i in range(len(means)) if finite[i])
    return ParetoMarks(dict(objectives), front, undominated, tested, level, sorted(infeasible))


def reference_point(
    means: np.ndarray, directions: Sequence[str], given: Sequence[float] | None
) -> np.ndarray:
    """The hypervolume's reference point as losses: `given` (`report.pareto.reference`, in the objectives'
    own units), else each objective's worst mean a tenth of its range beyond (one tenth of the value
    itself where all rows agree)."""
    if given is not None:
        if len(given) != len(directions) or not all(isinstance(v, int | float) for v in given):
            raise SweeplabError(
                f"report.pareto.reference: give one number per objective ({len(directions)}); got {given}"
            )
        return losses(np.asarray(given, dtype=float)[None, :], directions)[0]
    loss = losses(means, directions)
    loss = loss[np.isfinite(loss).all(axis=1)]
    worst, spread = loss.max(axis=0), np.ptp(loss, axis=0)
    spread = np.where(spread > 0, spread, np.maximum(np.abs(worst), 1.0))
    return worst + REFERENCE_MARGIN * spread


def hypervolume(loss: np.ndarray, reference: np.ndarray) -> float:
    """The hypervolume (Optuna's) that the points better than `reference` on every objective span."""
    inside = loss[np.isfinite(loss).all(axis=1) & (loss < reference).all(axis=1)]
    return float(compute_hypervolume(inside, reference)) if len(inside) else 0.0


def hypervolume_interval(
    samples: Sequence[Sequence[Sequence[float]]],
    directions: Sequence[str],
    reference: np.ndarray,
    level: float,
) -> Interval | None:
    """The hypervolume's percentile bootstrap interval over replicates: each row's runs drawn again with
    replacement (a run's objectives kept together), the rows' means' front measured each time. None when
    no row has two runs."""
    runs = [np.asarray(row, dtype=float).T for row in samples]  # per row: runs x objectives
    if not any(len(r) >= 2 for r in runs):
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    volumes = []
    for _ in range(HYPERVOLUME_RESAMPLES):
        means = np.array([r[rng.integers(0, len(r), len(r))].mean(axis=0) for r in runs])
        volumes.append(hypervolume(losses(means, directions), reference))
    low, high = np.quantile(volumes, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high), f"bootstrap, percentile, {HYPERVOLUME_RESAMPLES} resamples")


def format_volume(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "–"
