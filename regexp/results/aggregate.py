"""Sweep results as DataFrames: grouping, mean and std over seeds, the Pareto front.

Pure functions over the *results* frame, one row per job with the columns of
``metrics.csv`` plus ``job`` (and ``source`` when several sweeps are read together). Config
and metric columns are told apart by :mod:`regexp.results.schema`. Reading and writing files is
:mod:`regexp.hydra_app.lifecycle`'s work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from regexp.results import schema
from regexp.results.identity import NOT_IDENTITY

log = logging.getLogger(__name__)

# Always grouped on (when present): one point of the accuracy-against-λ curves.
BASE_GROUP = ("dataset", "regularizer", "mode", "lambda")
# Never grouped on: seeds are averaged over; architecture follows from the config and the
# data (data_id), both grouped on; the config_id differs with every seed; resume and
# objectives (and the other keys of identity.NOT_IDENTITY) cannot change a run's numbers.
# Everything else that varies separates groups: task, data_id and every dotted key.
NOT_GROUPED = ("seed", "architecture", "config_id", *NOT_IDENTITY)
# One run: the same config (config_id, seed included), on the same data.
RUN_IDENTITY = ("config_id", "data_id", "seed")
# Where the main metric of each task lives: accuracy for classification, R² for regression.
TASK_METRIC = {"classification": "accuracy", "regression": "r2"}
PARAMS_FRACTION = "params_fraction"
# Metrics for which smaller is better (``regexp compare`` sorts these ascending).
SMALLER_IS_BETTER = ("rmse", "loss", "params_kept", PARAMS_FRACTION, "seconds", "epochs_run")


def config_columns(results: pd.DataFrame) -> list[str]:
    """The config columns of ``results``, by declaration (:func:`schema.is_config`)."""
    return [c for c in results.columns if schema.is_config(c, results.columns)]


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

    Rows share a group exactly when their configs differ in the seed alone: every config
    column (the identity's ``data_id``, ``task`` and each dotted key of the resolved config
    included) that holds more than one distinct value is a group column, a missing value
    counting as its own (``l1_ratio`` in a sweep over ``l1`` and ``elastic_net``). Left
    out: :data:`NOT_GROUPED` (and keys under them, e.g. ``logger.name``), columns that
    follow the seed (:func:`follows_seed`), and dotted keys whose short copy is present
    (``optimizer.lr`` when ``lr`` is there).
    """
    base = [c for c in BASE_GROUP if c in results.columns]
    short = schema.short_columns(results.columns)
    copied = {short[c] for c in results.columns if short.get(c)}
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


def grouping(results: pd.DataFrame, by: Sequence[str] | None = None) -> list[str]:
    """``by`` (default :func:`group_columns`) plus every column of :func:`group_columns`
    that it leaves out: a grouping chosen by hand may split groups further (``source``),
    never pool runs whose configs differ beyond the seed."""
    by = list(group_columns(results) if by is None else by)
    return by + [c for c in group_columns(results) if c not in by]


def duplicate_runs(results: pd.DataFrame) -> pd.Series:
    """Mask of the rows that repeat an earlier row's run: the same :data:`RUN_IDENTITY`
    (``config_id``, ``data_id`` and ``seed``), whatever path it was read from (a copied
    sweep, a sweep and one of its jobs). Of the copies, the first ``ok`` one is kept (the
    first one when none is ok); rows without a ``config_id`` are never duplicates."""
    if "config_id" not in results.columns or results.empty:
        return pd.Series(False, index=results.index)
    keys = [c for c in RUN_IDENTITY if c in results.columns]
    ok = results["status"].eq("ok").to_numpy() if "status" in results.columns else None
    order = np.argsort(~ok, kind="stable") if ok is not None else np.arange(len(results))
    repeated = np.empty(len(results), dtype=bool)  # by position: the index may repeat
    repeated[order] = results.iloc[order].duplicated(keys, keep="first").to_numpy()
    return pd.Series(repeated, index=results.index) & results["config_id"].notna()


def unique_runs(results: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``results`` less its :func:`duplicate_runs`, and how many rows were dropped."""
    twice = duplicate_runs(results)
    return results[~twice], int(twice.sum())


def duplicates_note(count: int) -> str:
    """The one line that says how many rows were dropped as copies of a run."""
    return (
        f"{count} row(s) repeat a run already read (the same config_id, data_id and seed, "
        "from any path) and are counted once"
    )


def with_params_fraction(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` plus ``params_fraction = params_kept / params_total`` (when both exist)."""
    if not {"params_kept", "params_total"} <= set(results.columns):
        return results
    return results.assign(**{PARAMS_FRACTION: results["params_kept"] / results["params_total"]})


def summarize(results: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and sample standard deviation of every metric per group, over ``status=ok`` jobs.

    The groups are those of :func:`grouping` (``by``, default :func:`group_columns`, plus
    any column that separates configurations it would pool), so runs are averaged only
    when their configs differ in the seed alone. A run read twice (:func:`duplicate_runs`)
    counts once, with a warning. For each group and each metric column ``m`` (plus
    ``params_fraction``), with ``x_1..x_k`` the values of its ``k = n_ok`` jobs whose
    status is ``ok``: ``m_mean = Σx_i / k`` and ``m_std = sqrt(Σ(x_i − m_mean)² / (k − 1))``
    (NaN when ``k < 2``). Failed and diverged jobs are left out of both; ``n`` counts all
    jobs of the group and ``n_ok`` those averaged, so a group with ``n_ok < n`` shows it.
    Groups are sorted by their keys; missing keys form their own group.
    """
    check_results(results)
    missing = [c for c in (by or ()) if c not in results.columns]
    if missing:
        allowed = ", ".join(c for c in results.columns if c not in ("status", "error"))
        raise ValueError(
            f"cannot group by {', '.join(missing)}: not a column; choose from {allowed}"
        )
    results, dropped = unique_runs(results)
    if dropped:
        log.warning(duplicates_note(dropped))
    by = grouping(results, by)
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


def check_results(results: pd.DataFrame) -> None:
    """Raise ``ValueError`` unless ``results`` is a results frame with at least one row."""
    if not isinstance(results, pd.DataFrame):
        raise ValueError(f"expected a DataFrame of results, got {type(results).__name__}")
    if results.empty:
        raise ValueError("no runs to summarize: the results frame has no rows")
    if "status" not in results.columns:
        raise ValueError(
            "the frame has no status column: not a results frame "
            "(read one with regexp.load_results)"
        )


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
