"""Sweep results as DataFrames: grouping, mean and std over seeds, the Pareto front.

Pure functions over the *results* frame, one row per job with the columns of
``metrics.csv`` plus ``job`` (and ``source`` when several sweeps are read together). Config
and metric columns are told apart by :mod:`regexp.results.schema`. Reading and writing files is
:mod:`regexp.hydra_app.lifecycle`'s work.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regexp.results import schema
from regexp.results.identity import NOT_IDENTITY

# Always grouped on (when present): one point of the accuracy-against-λ curves.
BASE_GROUP = ("dataset", "regularizer", "mode", "lambda")
# Never grouped on: seeds are averaged over; task and architecture follow from grouped
# columns; the config_id differs with every seed; resume and objectives (and the other
# keys of identity.NOT_IDENTITY) cannot change a run's numbers.
NOT_GROUPED = ("seed", "task", "architecture", "config_id", *NOT_IDENTITY)
# Where the main metric of each task lives: accuracy for classification, R² for regression.
TASK_METRIC = {"classification": "accuracy", "regression": "r2"}
PARAMS_FRACTION = "params_fraction"
# Metrics for which smaller is better (``regexp compare`` sorts these ascending).
SMALLER_IS_BETTER = ("rmse", "loss", "params_kept", PARAMS_FRACTION, "seconds", "epochs_run")


def config_columns(results: pd.DataFrame) -> list[str]:
    """The config columns of ``results``, by declaration (:func:`schema.is_config`)."""
    return [c for c in results.columns if schema.is_config(c)]


def metric_columns(results: pd.DataFrame) -> list[str]:
    """The numeric outcome columns of ``results`` (:func:`schema.is_metric`), in order."""
    return [
        c
        for c in results.columns
        if schema.is_metric(c) and pd.api.types.is_numeric_dtype(results[c])
    ]


def follows_seed(results: pd.DataFrame, column: str) -> bool:
    """Whether ``column`` equals ``seed`` in every row (e.g. ``dataset.split_seed: ${seed}``):
    a replicate key, averaged over like the seed."""
    if "seed" not in results.columns or column == "seed":
        return False
    a = pd.to_numeric(results[column], errors="coerce")
    b = pd.to_numeric(results["seed"], errors="coerce")
    return bool(a.notna().all() and b.notna().all() and (a == b).all())


def group_columns(results: pd.DataFrame) -> list[str]:
    """Default grouping: ``BASE_GROUP`` plus every other config column that varies.

    A config column varies when it holds more than one distinct value, a missing value
    counting as its own (``l1_ratio`` in a sweep over ``l1`` and ``elastic_net``). Left
    out: :data:`NOT_GROUPED` (and keys under them, e.g. ``logger.name``), columns that
    follow the seed (:func:`follows_seed`), and dotted keys whose short copy is present
    (``optimizer.lr`` when ``lr`` is there).
    """
    base = [c for c in BASE_GROUP if c in results.columns]
    copied = {schema.SHORT[c] for c in results.columns if schema.SHORT.get(c)}
    extra = [
        c
        for c in config_columns(results)
        if c not in base
        and c.split(".")[0] not in NOT_GROUPED
        and c not in copied
        and results[c].nunique(dropna=False) > 1
        and not follows_seed(results, c)
    ]
    return base + extra


def with_params_fraction(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` plus ``params_fraction = params_kept / params_total`` (when both exist)."""
    if not {"params_kept", "params_total"} <= set(results.columns):
        return results
    return results.assign(**{PARAMS_FRACTION: results["params_kept"] / results["params_total"]})


def summarize(results: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and sample standard deviation of every metric per group, over ``status=ok`` jobs.

    For each group of ``by`` (default :func:`group_columns`) and each metric column ``m``
    (plus ``params_fraction``), with ``x_1..x_k`` the values of its ``k = n_ok`` jobs whose
    status is ``ok``: ``m_mean = Σx_i / k`` and ``m_std = sqrt(Σ(x_i − m_mean)² / (k − 1))``
    (NaN when ``k < 2``). Failed and diverged jobs are left out of both; ``n`` counts all
    jobs of the group and ``n_ok`` those averaged, so a group with ``n_ok < n`` shows it.
    Groups are sorted by their keys; missing keys form their own group.
    """
    by = list(group_columns(results) if by is None else by)
    missing = [c for c in by if c not in results.columns]
    if missing:
        allowed = ", ".join(c for c in results.columns if c not in ("status", "error"))
        raise ValueError(
            f"cannot group by {', '.join(missing)}: not a column; choose from {allowed}"
        )
    frame = with_params_fraction(results)
    ok = frame["status"].eq("ok")
    metrics = metric_columns(frame)
    counts = (
        frame.assign(n=1, n_ok=ok.astype(int))
        .groupby(by, dropna=False, sort=True)[["n", "n_ok"]]
        .sum()
    )
    if metrics:  # none when every job failed before training
        stats = frame[ok].groupby(by, dropna=False, sort=True)[metrics].agg(["mean", "std"])
        stats.columns = [f"{m}_{s}" for m, s in stats.columns]
        counts = counts.join(stats, how="left")
    summary = counts.reset_index()
    return summary


def main_metric(task: str, split: str = "test") -> str:
    """The column of a task's main metric: ``test_accuracy`` or ``test_r2``."""
    if task not in TASK_METRIC:
        raise ValueError(f"task must be one of {', '.join(TASK_METRIC)}, got '{task}'")
    return f"{split}_{TASK_METRIC[task]}"


def sort_by_metric(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``summary`` sorted best first on ``<metric>_mean``, groups without a value last.

    Larger is better, except for metrics named in ``SMALLER_IS_BETTER`` (e.g. ``test_rmse``).
    """
    column = f"{metric}_mean"
    if column not in summary.columns:
        names = sorted(c[: -len("_mean")] for c in summary.columns if c.endswith("_mean"))
        raise ValueError(f"unknown metric '{metric}'; choose one of: {', '.join(names)}")
    ascending = any(word in metric for word in SMALLER_IS_BETTER)
    return summary.sort_values(column, ascending=ascending, na_position="last", kind="stable")


def pareto_front(cost: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Mask of the points that no other point dominates (smaller cost, larger gain).

    Point ``i`` is dominated when some ``j`` has ``cost_j <= cost_i`` and
    ``gain_j >= gain_i`` with at least one strict. Points with a NaN are never on the
    front. Equal points are all on it.
    """
    cost, gain = np.asarray(cost, dtype=float), np.asarray(gain, dtype=float)
    valid = ~(np.isnan(cost) | np.isnan(gain))
    # dominates[i, j]: point j dominates point i
    c_i, g_i, c_j, g_j = cost[:, None], gain[:, None], cost[None, :], gain[None, :]
    dominates = (c_j <= c_i) & (g_j >= g_i) & ((c_j < c_i) | (g_j > g_i))
    dominated = (dominates & valid[None, :]).any(axis=1)
    return valid & ~dominated
