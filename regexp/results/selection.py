"""Model selection after a sweep: the best λ of each regularizer, chosen on validation.

:func:`best` answers "which λ is best for each regularizer?" without looking at the test
split: per group of the config keys other than λ (regularizer, mode, ...), it picks the λ
whose mean *validation* metric over seeds is best, and reports that λ's *test* metric,
units removed per layer and parameters kept. The test split is never used to choose.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regexp.results import aggregate

RULES = ("best", "1se")
# The validation metric of each task, larger is better for both.
SELECT = {"classification": "val_accuracy", "regression": "val_r2"}


def selection_metric(results: pd.DataFrame) -> str:
    """``val_accuracy``, ``val_r2``, or ``val_metric`` when jobs of both tasks are pooled
    (each job's own; see :func:`with_val_metric`)."""
    tasks = set(results.get("task", pd.Series(dtype=str)).dropna())
    found = [SELECT[t] for t in sorted(tasks) if t in SELECT and SELECT[t] in results.columns]
    if not found:
        raise ValueError("no val_accuracy or val_r2 column in the results; pass --select")
    return found[0] if len(found) == 1 else "val_metric"


def with_val_metric(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` plus ``val_metric`` and ``test_metric``: each job's own accuracy, or R²."""
    out = results.copy()
    for split in ("val", "test"):
        acc = out.get(f"{split}_accuracy", pd.Series(np.nan, index=out.index))
        out[f"{split}_metric"] = acc.fillna(out.get(f"{split}_r2", np.nan))
    return out


def _test_metric(select: str) -> str:
    """The test twin of a validation metric (``val_accuracy`` → ``test_accuracy``)."""
    return "test_" + select.removeprefix("val_") if select.startswith("val_") else select


def _units(architecture: object) -> list[int]:
    """Units of each layer's inputs: ``"64-40-20-10"`` → ``[64, 40, 20]``."""
    try:
        return [int(u) for u in str(architecture).split("-")][:-1]
    except ValueError:
        return []


def best(
    results: pd.DataFrame,
    metric: str | None = None,
    rule: str = "best",
    by: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per group of the non-λ config keys: the λ chosen on ``metric``.

    Parameters
    ----------
    results : DataFrame
        One row per job (``results.csv``, :func:`regexp.runs.collect.load_results`).
    metric : str, optional
        The validation metric to choose on, larger is better unless its name is one of
        :data:`aggregate.SMALLER_IS_BETTER` (e.g. ``val_rmse``). Default: the task's
        (:func:`selection_metric`).
    rule : {"best", "1se"}
        ``best``: the λ with the best mean over the ok seeds. ``1se``: the one-standard-error
        rule, the sparsest λ (fewest ``params_kept`` on average, then the largest λ) whose
        mean is within one standard error (std / √n_ok) of the best mean.
    by : sequence of str, optional
        The group columns (default :func:`aggregate.group_columns` less ``lambda``).

    Returns
    -------
    DataFrame
        The group keys, ``lambda`` (chosen), ``rule``, ``selected_on``, ``n_ok``,
        ``<metric>_mean``/``_std``, the test metric's ``_mean``/``_std``,
        ``removed_<layer>_mean`` (units removed per layer: the removed fraction times the
        layer's units) and ``params_kept_mean``/``_std``.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if "lambda" not in results.columns:
        raise ValueError("the results have no lambda column to choose from")
    metric = metric or selection_metric(results)
    frame = with_val_metric(results) if metric.endswith("_metric") else results
    if metric not in frame.columns:
        raise ValueError(f"unknown metric '{metric}'; choose a val_* column of the results")
    frame = with_removed_units(frame)
    groups = list(by) if by is not None else aggregate.group_columns(frame)
    groups = [c for c in groups if c != "lambda"]
    summary = aggregate.summarize(frame, [*groups, "lambda"])
    summary = summary[summary["n_ok"] > 0]
    smaller = any(word in metric for word in aggregate.SMALLER_IS_BETTER)
    test = _test_metric(metric)
    rows = []
    for _, g in summary.groupby(groups, dropna=False, sort=True) if groups else [((), summary)]:
        mean = g[f"{metric}_mean"]
        if mean.isna().all():
            continue
        pick = mean.idxmin() if smaller else mean.idxmax()
        if rule == "1se":
            std = g.loc[pick, f"{metric}_std"]
            se = 0.0 if np.isnan(std) else std / np.sqrt(g.loc[pick, "n_ok"])
            near = g[(mean <= mean[pick] + se) if smaller else (mean >= mean[pick] - se)]
            near = near.assign(_kept=near.get("params_kept_mean", np.nan))
            pick = near.sort_values(["_kept", "lambda"], ascending=[True, False]).index[0]
        rows.append(g.loc[pick])
    if not rows:
        raise ValueError(f"no group has an ok run with a {metric} to choose λ on")
    chosen = pd.DataFrame(rows)
    out = chosen[[*groups, "lambda"]].copy()
    out["rule"], out["selected_on"] = rule, metric
    out["n_ok"] = chosen["n_ok"]
    removed = [c.removesuffix("_mean") for c in chosen.columns if c.startswith("removed_")]
    for column in (metric, test, *removed, "params_kept"):
        for stat in ("mean", "std"):
            if f"{column}_{stat}" in chosen.columns:
                out[f"{column}_{stat}"] = chosen[f"{column}_{stat}"]
    return out.reset_index(drop=True)


def with_removed_units(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` plus ``removed_<layer>``: units removed per layer, each row's
    ``neuron_sparsity_<layer>`` times that layer's units in its ``architecture``."""
    out = results.copy()
    if "architecture" not in out.columns:
        return out
    for i in range(max((len(_units(a)) for a in out["architecture"]), default=0)):
        layer = "input" if i == 0 else f"hidden{i}"
        if f"neuron_sparsity_{layer}" not in out.columns:
            continue
        units = [(_units(a) + [np.nan] * (i + 1))[i] for a in out["architecture"]]
        out[f"removed_{layer}"] = out[f"neuron_sparsity_{layer}"] * np.array(units, dtype=float)
    return out
