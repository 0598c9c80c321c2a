"""The statistics of a table (rliable's lesson: intervals, not point estimates), all from scipy.stats:

- a row's interval for its mean: Student's t (default), or a bootstrap (BCa, percentile where BCa cannot be
  computed) with `--stats bootstrap`;
- a change between two rows (an ablation's step): Welch's t (unequal variances), its interval and p-value;
- Holm's step-down correction of a table's p-values (`--holm`).

Everything needs n >= 2 runs on each side; with fewer, there is no interval (None)."""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = {"t": "Student's t", "bootstrap": "bootstrap"}
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # a report renders the same numbers each time


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # how it was computed, as the legend names it

    def excludes(self, value: float) -> bool:
        return value < self.low or value > self.high


@dataclass
class Change:
    """Row minus the row it is compared with: Welch's t. `significant` is decided over the table's
    comparisons (sweeplab.report.tables), with Holm's correction where asked."""

    delta: float
    interval: Interval
    p_value: float
    p_adjusted: float | None = None  # Holm's where the table asks for it, else the p-value itself
    significant: bool = False  # p_adjusted below 1 - level


def bounds_of(metric: str) -> tuple[float, float]:
    """The values a metric can take: an accuracy (`val_acc`, `test_acc[cat]`) lies in [0, 1], a loss,
    a count or a time is not negative. An interval is cut to them: the mean of accuracies is never
    above 1, whatever a symmetric interval around it says."""
    name = metric.split("[", 1)[0]
    if name.endswith("_acc") or name.endswith("_acc_last") or name == "acc":
        return 0.0, 1.0
    if name.endswith(("_loss", "params", "_seconds", "steps")):
        return 0.0, math.inf
    return -math.inf, math.inf


def mean_interval(
    values: Sequence[float], level: float, method: str = "t", bounds: tuple[float, float] | None = None
) -> Interval | None:
    """The interval of the mean of `values`, within `bounds` (`bounds_of` the metric); None below two
    values. Runs that all agree (std 0) have the degenerate interval [mean, mean]."""
    interval = _mean_interval(values, level, method)
    if interval is None or bounds is None:
        return interval
    low, high = bounds
    return Interval(min(max(interval.low, low), high), max(min(interval.high, high), low), interval.method)


def _mean_interval(values: Sequence[float], level: float, method: str) -> Interval | None:
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) < 2:
        return None
    mean = float(x.mean())
    if np.ptp(x) == 0:
        return Interval(mean, mean, METHODS[method])
    if method == "t":
        low, high = stats.t.interval(level, len(x) - 1, loc=mean, scale=stats.sem(x))
        return Interval(float(low), float(high), METHODS["t"])
    for kind in ("BCa", "percentile"):  # BCa needs a jackknife that can fail on tiny or tied samples
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.bootstrap(
                (x,),
                np.mean,
                confidence_level=level,
                n_resamples=BOOTSTRAP_RESAMPLES,
                method=kind,
                rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
        low, high = result.confidence_interval
        if math.isfinite(low) and math.isfinite(high):
            return Interval(float(low), float(high), f"bootstrap, {kind}, {BOOTSTRAP_RESAMPLES} resamples")
    return None


def prediction_interval(values: Sequence[float], level: float) -> Interval | None:
    """Where one more run would fall (Student's t): mean ± t(n-1) · s · sqrt(1 + 1/n). The range to
    hold a single run of someone else's against (a report's one number), wider than the mean's."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) < 2:
        return None
    half = stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) * math.sqrt(1 + 1 / len(x))
    return Interval(float(x.mean() - half), float(x.mean() + half), "prediction interval, Student's t")


def welch(a: Sequence[float], b: Sequence[float], level: float) -> Change | None:
    """mean(a) - mean(b) with Welch's interval and two-sided p-value; None unless both have n >= 2."""
    from scipy import stats

    x, y = (np.asarray([v for v in s if v is not None and math.isfinite(v)], dtype=float) for s in (a, b))
    if len(x) < 2 or len(y) < 2:
        return None
    delta = float(x.mean() - y.mean())
    if np.ptp(x) == 0 and np.ptp(y) == 0:  # no spread at all: t is undefined
        p = 1.0 if delta == 0 else 0.0
        return Change(delta, Interval(delta, delta, "Welch's t"), p)
    with warnings.catch_warnings():  # runs that agree to the last digits: scipy warns, the numbers stand
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(x, y, equal_var=False)
        ci = result.confidence_interval(confidence_level=level)
    p = float(result.pvalue)
    return Change(delta, Interval(float(ci.low), float(ci.high), "Welch's t"), p)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (scipy.stats has Benjamini-Hochberg but not Holm): the i-th
    smallest of m is multiplied by m - i, then made monotone and capped at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [1.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
