"""A finer λ grid where accuracy falls: between the last good and the first collapsed λ.

After a sweep, :func:`drop_intervals` finds in each group (regularizer, mode, ...) the
last *good* λ (its mean validation metric within a tolerance of the group's best, no run
collapsed: :func:`regexp.results.selection.is_collapsed`) and the first *collapsed* λ
above it (or, where none collapsed, the first λ above it out of the tolerance: diabetes's
R² falls to about 0.05, not to 0); :func:`finer_grid` puts log-spaced λ values strictly
between them. ``regexp
refine SWEEP_DIR`` prints the command that adds them to the sweep with ``resume=true``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regexp.results import selection


def round_sig(x: float, digits: int = 2) -> float:
    """``x`` to ``digits`` significant digits: ``0.0031622`` → ``0.0032``."""
    return float(f"{x:.{digits - 1}e}")


def between(low: float, high: float, points: int) -> list[float]:
    """``points`` λ values log-spaced strictly between ``low`` and ``high`` (> 0),
    ``geomspace(low, high, points + 2)[1:-1]`` rounded to 2 significant digits, without
    repeats or the ends themselves."""
    inner = np.geomspace(low, high, points + 2)[1:-1]
    out = sorted({round_sig(v) for v in inner} - {round_sig(low), round_sig(high)})
    return [v for v in out if low < v < high]


def drop_intervals(
    results: pd.DataFrame,
    tol: float = 0.01,
    metric: str | None = None,
    by: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per group: ``last_good`` and ``first_bad`` λ (NaN when none), and ``bad``.

    A λ is good when no run of it collapsed and its mean ``metric`` (default: the
    validation metric, :func:`selection.selection_metric`) is within ``tol`` of the
    group's best mean; collapsed when any of its ok runs collapsed. ``first_bad`` is the
    smallest collapsed λ above ``last_good`` (the largest good λ), ``bad = "collapsed"``;
    where none collapsed, the smallest λ above ``last_good``, ``bad = "out of tolerance"``.
    """
    frame = selection.with_collapsed(results)
    metric = metric or selection.selection_metric(frame)
    frame = selection.with_val_metric(frame) if metric.endswith("_metric") else frame
    good = selection.best(frame, metric, rule=f"within:{tol}", by=by)
    groups = list(good.columns[: list(good.columns).index("lambda")])
    ok = frame[frame["status"].eq("ok")]
    keys = [*groups, "lambda"]
    points = ok.groupby(keys, dropna=False, sort=True).agg(
        mean=(metric, "mean"), collapsed=("collapsed", "any")
    )
    points = points.reset_index()
    rows = []
    for _, chosen in good.iterrows():
        mine = points
        for c in groups:
            mine = mine[(mine[c] == chosen[c]) | (mine[c].isna() & pd.isna(chosen[c]))]
        best = chosen["group_best"]
        smaller = selection.smaller_is_better(metric)
        near = (mine["mean"] <= best + tol) if smaller else (mine["mean"] >= best - tol)
        fine = mine[near & ~mine["collapsed"]]
        last_good = fine["lambda"].max() if len(fine) else np.nan
        above = mine[mine["lambda"] > last_good]
        bad = "collapsed" if above["collapsed"].any() else "out of tolerance"
        above = above[above["collapsed"]] if bad == "collapsed" else above
        first = above["lambda"].min() if len(above) else np.nan
        rows.append({**{c: chosen[c] for c in groups}, "last_good": last_good,
                     "first_bad": first, "bad": bad if len(above) else ""})  # fmt: skip
    return pd.DataFrame(rows, columns=[*groups, "last_good", "first_bad", "bad"])


def finer_grid(intervals: pd.DataFrame, lambdas: Sequence[float], points: int = 4) -> list[float]:
    """The new λ values, sorted: :func:`between` the ``last_good`` and ``first_bad`` of
    each interval that has both, less the values already in ``lambdas``."""
    have = {round_sig(v, 6) for v in lambdas}
    new: set[float] = set()
    for low, high in zip(intervals["last_good"], intervals["first_bad"], strict=True):
        if np.isfinite(low) and np.isfinite(high) and low > 0:
            new |= {v for v in between(low, high, points) if round_sig(v, 6) not in have}
    return sorted(new)
