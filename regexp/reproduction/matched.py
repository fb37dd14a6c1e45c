"""Comparisons at matched sparsity or accuracy, paired over seeds, with t intervals.

A method's *front* for one seed is its points ``(x, y)`` over λ (or over a pruning level):
``x`` a sparsity measure (inputs kept, parameters kept, ...) and ``y`` the test accuracy.
Two methods are compared where they are equally sparse or equally accurate:

- :func:`read_value`: ``y`` at a given ``x``, by linear interpolation along the front
  (``numpy.interp`` on the points sorted by ``x``; points with equal ``x`` whose ``y``
  agree within :data:`GAP` are averaged first); nothing outside the front's ``x`` range
  (no extrapolation: "grid ends"), nothing between two neighbouring points whose
  accuracies differ by more than :data:`GAP` ("gap": a line into a collapse is not a
  measurement), and nothing at or next to an ``x`` shared by points whose accuracies
  differ by more than :data:`GAP` ("ambiguous": several λ keep the same count, at
  different accuracies, and their mean is no network's).
- :func:`read_level`: the smallest ``x`` at which the front reaches ``y ≥ level``: the
  sparsest network at that accuracy. Where the sparsest point of the grid already reaches
  it, or the front jumps to it by more than :data:`GAP`, only an upper bound is known
  ("≤"); "not reached" if no point reaches it. Where the first ``x`` that reaches it is
  shared by points whose accuracies differ by more than :data:`GAP` (or the segment to it
  starts at such an ``x``), a network at that ``x`` reaches the level but the front has no
  single curve there: again only the bound ("≤").

Every reading carries its mark (:data:`MARKS`); only measured and interpolated values
enter means and intervals, and the seeds left out are counted (``n``).

Per seed, so that methods are paired on the seed (the same split and initial weights):
:func:`paired_interval` of the per-seed differences ``d_s = a_s − b_s`` gives their mean
and the two-sided t interval ``mean ± t_{(1+level)/2, n−1} · sd / √n``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95  # coverage of the intervals
# Never interpolate between two neighbouring points of a front whose accuracies differ by
# more than this (2 points): between them the front falls off and nothing was measured.
GAP = 0.02
# How a value was read off a front; only the first two are measurements.
MARKS = ("measured", "interpolated", "≤", "gap", "ambiguous", "grid ends", "not reached")
USABLE = ("measured", "interpolated")


def front_curve(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The points sorted by ``x``, with the ``y`` of equal ``x`` averaged; NaNs dropped."""
    xs, ys, _, _ = _curve(x, y)
    return xs, ys


def _curve(
    x: Sequence[float], y: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`front_curve`, with the ``max − min`` and the max of the ``y`` at each ``x``."""
    frame = pd.DataFrame({"x": np.asarray(x, float), "y": np.asarray(y, float)}).dropna()
    g = frame.groupby("x", sort=True)["y"]
    mean, low, high = g.mean(), g.min(), g.max()
    return (
        mean.index.to_numpy(float),
        mean.to_numpy(float),
        (high - low).to_numpy(float),
        high.to_numpy(float),
    )


def value_at(
    x: Sequence[float], y: Sequence[float], targets: Iterable[float], gap: float | None = None
) -> np.ndarray:
    """``y`` interpolated at each target ``x``; NaN outside ``[min x, max x]`` and, with
    ``gap``, between two neighbouring points whose ``y`` differ by more than ``gap``."""
    return np.array([read_value(x, y, t, gap)[0] for t in targets], float)


def read_value(
    x: Sequence[float], y: Sequence[float], target: float, gap: float | None = GAP
) -> tuple[float, str]:
    """``y`` of the front at ``x = target`` and how it was read (:data:`MARKS`):
    ``measured`` (a point at ``target``), ``interpolated`` (``numpy.interp`` between the two
    neighbouring points, whose ``y`` differ by at most ``gap``), else NaN with ``grid ends``
    (``target`` outside ``[min x, max x]``) or ``gap`` (the neighbours' ``y`` differ by more
    than ``gap``: no number without data under it) or ``ambiguous`` (the point at
    ``target``, or a neighbour, stands for several points of equal ``x`` whose ``y`` differ
    by more than ``gap``: their mean is no network's accuracy). Equal-``x`` points within
    ``gap`` of each other are averaged. With ``gap=None`` neither rule applies."""
    xs, ys, spread, _ = _curve(x, y)
    if len(xs) == 0 or not xs[0] <= target <= xs[-1]:
        return math.nan, "grid ends"
    mixed = spread > gap if gap is not None else np.zeros(len(xs), bool)
    hit = np.flatnonzero(np.isclose(xs, target, rtol=1e-12, atol=0))
    if len(hit):
        if mixed[hit[0]]:
            return math.nan, "ambiguous"
        return float(ys[hit[0]]), "measured"
    i = int(np.searchsorted(xs, target))  # xs[i-1] < target < xs[i]
    if mixed[i] or mixed[i - 1]:
        return math.nan, "ambiguous"
    if gap is not None and abs(ys[i] - ys[i - 1]) > gap:
        return math.nan, "gap"
    return float(np.interp(target, xs, ys)), "interpolated"


def x_at_level(x: Sequence[float], y: Sequence[float], level: float) -> float:
    """``min {x : f(x) ≥ level}`` for the piecewise-linear front ``f`` through the points
    (no gap rule; NaN if no point reaches ``level``): :func:`read_level` with ``gap=None``,
    the bound itself where that is censored."""
    value, mark = read_level(x, y, level, None)
    return value if mark != "not reached" else math.nan


def read_level(
    x: Sequence[float], y: Sequence[float], level: float, gap: float | None = GAP
) -> tuple[float, str]:
    """The sparsest ``x`` at which the front reaches ``y ≥ level``, and how it was read.

    Scanning from the sparsest point to the first point ``i`` at or above ``level``:
    ``measured`` when that point sits at ``level`` exactly; ``≤`` when it is the sparsest
    point of the front (the grid ends there: the method may reach ``level`` sparser still,
    so ``x_i`` is an upper bound) or when the segment that climbs to it rises by more than
    ``gap`` (``x_i`` again an upper bound); else ``interpolated``, the crossing of that
    segment. NaN with ``not reached`` when no point reaches ``level``.

    Points of equal ``x`` whose ``y`` differ by more than ``gap`` (several λ keeping the
    same count at different accuracies) are not averaged: such an ``x`` reaches ``level``
    when one of its points does, and a crossing at or next to it is only the bound ``≤``
    (a network at ``x_i`` reaches the level; the front has no single curve there).
    Equal-``x`` points within ``gap`` are averaged. With ``gap=None`` neither rule applies.
    """
    xs, ys, spread, high = _curve(x, y)
    mixed = spread > gap if gap is not None else np.zeros(len(xs), bool)
    reach = np.where(mixed, high, ys)
    for i in range(len(xs)):
        if reach[i] >= level:
            if i == 0 or mixed[i] or mixed[i - 1]:
                return float(xs[i]), "≤"
            x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
            if y1 == level:
                return float(x1), "measured"
            if gap is not None and y1 - y0 > gap:
                return float(x1), "≤"
            return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0)), "interpolated"
    return math.nan, "not reached"


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` paired differences and its two-sided t interval ``[low, high]``."""

    mean: float
    low: float
    high: float
    n: int

    def contains(self, value: float = 0.0) -> bool:
        return bool(self.low <= value <= self.high)

    def text(self, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
        """``+0.27 [−0.35, +0.89] points (n = 5)`` style, values times ``scale``."""
        if not math.isfinite(self.mean):
            return f"no pair (n = {self.n})"
        m, lo, hi = (scale * v for v in (self.mean, self.low, self.high))
        if not math.isfinite(lo):
            return f"{m:+.{digits}f}{unit} (n = {self.n}, no interval)"
        return f"{m:+.{digits}f}{unit} [{lo:+.{digits}f}, {hi:+.{digits}f}] (n = {self.n})"


def paired_means(*series: pd.Series) -> list[float]:
    """The mean of each of ``series`` over the index entries (seeds) where every one has a
    value: those of :func:`paired_interval`; each one's own mean where none is shared."""
    both = pd.concat(series, axis=1).dropna()
    if both.empty:
        return [float(v.mean()) for v in series]
    return [float(both.iloc[:, i].mean()) for i in range(len(series))]


def paired_interval(a: pd.Series, b: pd.Series, level: float = LEVEL) -> Interval:
    """t interval of the mean of ``a − b``, paired on the index (seeds); NaN pairs dropped.

    With ``n`` pairs, ``mean ± t.ppf((1 + level)/2, n − 1) · sd(ddof=1) / √n``: scipy's
    ``ttest_rel(a, b).confidence_interval(level)``; for ``n < 2`` the bounds are NaN (and
    the mean too when ``n = 0``).
    """
    d = (a - b).dropna()
    n = len(d)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(d.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    if float(d.std(ddof=1)) == 0:  # every seed the same difference (scipy warns here)
        return Interval(mean, mean, mean, n)
    pairs = pd.concat([a, b], axis=1).dropna()
    ci = stats.ttest_rel(pairs.iloc[:, 0], pairs.iloc[:, 1]).confidence_interval(level)
    return Interval(mean, float(ci.low), float(ci.high), n)


def per_seed(
    points: pd.DataFrame,
    x: str,
    y: str,
    targets: Sequence[float],
    how: str,
    gap: float | None = GAP,
) -> pd.DataFrame:
    """Per ``method`` and ``seed`` of ``points``, the front read at each target.

    ``how="value"``: ``y`` at ``x = target`` (:func:`read_value`); ``how="level"``: ``x`` at
    ``y = target`` (:func:`read_level`). Returns columns ``method``, ``seed``, ``target``,
    ``value``, ``mark`` (:data:`MARKS`); ``value`` is NaN unless the mark is in
    :data:`USABLE`, and ``bound`` holds the upper bound of a ``≤`` mark; a target listed
    twice is read once.
    """
    if how not in ("value", "level"):
        raise ValueError(f"how must be 'value' or 'level', got {how!r}")
    targets = list(dict.fromkeys(float(t) for t in targets))  # each target once
    read = read_value if how == "value" else read_level
    rows = []
    for (method, seed), g in points.groupby(["method", "seed"], sort=False):
        for t in targets:
            v, mark = read(g[x], g[y], t, gap)
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "target": t,
                    "value": v if mark in USABLE else math.nan,
                    "mark": mark,
                    "bound": v if mark == "≤" else math.nan,
                }
            )
    return pd.DataFrame(rows, columns=["method", "seed", "target", "value", "mark", "bound"])


def compare(table: pd.DataFrame, a: str, b: str, target: float) -> Interval:
    """:func:`paired_interval` of method ``a`` minus ``b`` at ``target`` in a :func:`per_seed`
    table."""
    at = table[np.isclose(table["target"], target)]
    va = at[at["method"] == a].set_index("seed")["value"]
    vb = at[at["method"] == b].set_index("seed")["value"]
    return paired_interval(va, vb)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per ``method`` and ``target`` of a :func:`per_seed` table: ``mean``, ``std``, ``n`` over
    seeds with a value (measured or interpolated)."""
    g = table.groupby(["method", "target"], sort=False)["value"]
    return g.agg(mean="mean", std="std", n="count").reset_index()
