"""Comparisons at matched sparsity or accuracy, paired over seeds, with t intervals.

A method's *front* for one seed is its points ``(x, y)`` over λ (or over a pruning level):
``x`` a sparsity measure (inputs kept, parameters kept, ...) and ``y`` the test accuracy.
Two methods are compared where they are equally sparse or equally accurate:

- :func:`value_at`: ``y`` at a given ``x``, by linear interpolation along the front
  (``numpy.interp`` on the points sorted by ``x``; points with equal ``x`` are averaged
  first); NaN outside the front's ``x`` range (no extrapolation).
- :func:`x_at_level`: the smallest ``x`` at which the interpolated front reaches ``y ≥
  level``: the sparsest network at that accuracy; NaN if the front never reaches it.

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


def front_curve(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The points sorted by ``x``, with the ``y`` of equal ``x`` averaged; NaNs dropped."""
    frame = pd.DataFrame({"x": np.asarray(x, float), "y": np.asarray(y, float)}).dropna()
    curve = frame.groupby("x", sort=True)["y"].mean()
    return curve.index.to_numpy(float), curve.to_numpy(float)


def value_at(x: Sequence[float], y: Sequence[float], targets: Iterable[float]) -> np.ndarray:
    """``y`` interpolated at each target ``x`` (NaN outside ``[min x, max x]``)."""
    xs, ys = front_curve(x, y)
    t = np.asarray(list(targets), float)
    if len(xs) == 0:
        return np.full(t.shape, math.nan)
    out = np.interp(t, xs, ys)
    return np.where((t >= xs[0]) & (t <= xs[-1]), out, math.nan)


def x_at_level(x: Sequence[float], y: Sequence[float], level: float) -> float:
    """``min {x : f(x) ≥ level}`` for the piecewise-linear front ``f`` through the points.

    Scanning from the sparsest point: the first point at or above ``level``, or the
    crossing inside the first segment that climbs to it. NaN if no point reaches it.
    """
    xs, ys = front_curve(x, y)
    for i in range(len(xs)):
        if ys[i] >= level:
            if i == 0:
                return float(xs[0])
            x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
            return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))
    return math.nan


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
    points: pd.DataFrame, x: str, y: str, targets: Sequence[float], how: str
) -> pd.DataFrame:
    """Per ``method`` and ``seed`` of ``points``, the front read at each target.

    ``how="value"``: ``y`` at ``x = target`` (:func:`value_at`); ``how="level"``: ``x`` at
    ``y = target`` (:func:`x_at_level`). Returns columns ``method``, ``seed``, ``target``,
    ``value``; a target listed twice is read once.
    """
    if how not in ("value", "level"):
        raise ValueError(f"how must be 'value' or 'level', got {how!r}")
    targets = list(dict.fromkeys(float(t) for t in targets))  # each target once
    rows = []
    for (method, seed), g in points.groupby(["method", "seed"], sort=False):
        if how == "value":
            vals = value_at(g[x], g[y], targets)
        else:
            vals = [x_at_level(g[x], g[y], t) for t in targets]
        rows += [
            {"method": method, "seed": seed, "target": t, "value": v}
            for t, v in zip(targets, vals, strict=True)
        ]
    return pd.DataFrame(rows, columns=["method", "seed", "target", "value"])


def compare(table: pd.DataFrame, a: str, b: str, target: float) -> Interval:
    """:func:`paired_interval` of method ``a`` minus ``b`` at ``target`` in a :func:`per_seed`
    table."""
    at = table[np.isclose(table["target"], target)]
    va = at[at["method"] == a].set_index("seed")["value"]
    vb = at[at["method"] == b].set_index("seed")["value"]
    return paired_interval(va, vb)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per ``method`` and ``target`` of a :func:`per_seed` table: ``mean``, ``std``, ``n`` over
    seeds with a value (NaN: the front does not reach the target)."""
    g = table.groupby(["method", "target"], sort=False)["value"]
    return g.agg(mean="mean", std="std", n="count").reset_index()
