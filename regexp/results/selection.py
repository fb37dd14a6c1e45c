"""Model selection after a sweep: the λ of each regularizer, chosen on validation.

:func:`best` answers "which λ for each regularizer?" without looking at the test split:
per group of the config keys other than λ (regularizer, mode, ...), a rule (``best``,
``1se`` or ``within:TOL``) picks a λ from the mean *validation* metric over seeds, and the
table reports that λ's *test* metric, units removed per layer and parameters kept.
:func:`sparsest_overall` answers the study's question across groups: the sparsest network
of a sweep within a tolerance of its best. Ties always go to the sparser λ, and a λ with
a collapsed run (:func:`is_collapsed`) is never chosen. The test split never chooses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regexp.core.checks import check_rule
from regexp.results import aggregate

RULES = ("best", "1se", "within:TOL")
# How sparsity is counted when a rule prefers the sparser λ: parameters kept, or inputs kept
# (its keys are the values of the config key selection.sparsity: regexp.config).
SPARSITY = {"params": "params_kept", "inputs": "kept_input"}
# The validation metric of each task, larger is better for both.
SELECT = {"classification": "val_accuracy", "regression": "val_r2"}
# Two means closer than this count as equal (a tie, which goes to the sparser λ).
TIE = 1e-9
SPLITS = {"val": "validation", "test": "test"}


def parse_rule(rule: str) -> tuple[str, float]:
    """``"best"`` → ``("best", 0.0)``, ``"1se"`` → ``("1se", 0.0)``, ``"within:0.01"`` →
    ``("within", 0.01)``; anything else is a ``ValueError`` naming the allowed values
    (:func:`regexp.core.checks.check_rule`, which also checks the config key
    ``selection.rule``)."""
    return check_rule("rule", rule)


def is_collapsed(task: object, val_metric: object, chance: object) -> bool:
    """Whether a run collapsed: for classification, validation accuracy ``<= chance`` (the
    accuracy of always predicting the validation split's most frequent class); for
    regression, validation R² ``<= 0`` (no better than predicting the mean). A missing
    metric is not a collapse (the run failed or diverged, which its status says)."""
    value = float(val_metric) if val_metric is not None else float("nan")
    if np.isnan(value):
        return False
    if task == "regression":
        return value <= 0.0
    return value <= float(chance) + TIE


def with_collapsed(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with a boolean ``collapsed`` column for every row.

    Rows that carry one (``metrics.csv`` of newer runs) keep it; others get
    :func:`is_collapsed` with chance ``1 / n_classes`` (the classes: the last number of
    ``architecture``), the chance of a network that has lost every input.
    """
    out = results.copy()
    known = out["collapsed"] if "collapsed" in out.columns else pd.Series(np.nan, out.index)
    tasks = out.get("task", pd.Series("classification", index=out.index))
    val = with_val_metric(out)["val_metric"]
    arch = out.get("architecture", pd.Series("", index=out.index))
    classes = [_classes(a) for a in arch]
    guess = [
        is_collapsed(t, v, 1.0 / c if c else 0.0)
        for t, v, c in zip(tasks, val, classes, strict=True)
    ]
    out["collapsed"] = [
        bool(g) if pd.isna(k) else str(k).lower() in ("true", "1", "1.0")
        for k, g in zip(known, guess, strict=True)
    ]
    return out


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


def reported_metric(select: str) -> str:
    """The test twin of a validation metric (``val_accuracy`` → ``test_accuracy``): the
    metric that a selection reports."""
    return "test_" + select.removeprefix("val_") if select.startswith("val_") else select


def split_of(metric: str) -> str:
    """``"validation"`` or ``"test"`` for a ``val_*`` or ``test_*`` column, else the name."""
    return SPLITS.get(metric.split("_")[0], metric)


def _units(architecture: object) -> list[int]:
    """Units of each layer's inputs: ``"64-40-20-10"`` → ``[64, 40, 20]``; a conv net's
    ``"1x8x8-c8-c16-10"`` → ``[1, 8, 16]`` (image channels, then each conv layer's)."""
    try:
        return [int(u.lstrip("c").split("x")[0]) for u in str(architecture).split("-")][:-1]
    except ValueError:
        return []


def _classes(architecture: object) -> int:
    """Outputs of the last layer: ``"64-40-20-10"`` → 10 (0 when unknown)."""
    try:
        return int(str(architecture).split("-")[-1])
    except ValueError:
        return 0


def smaller_is_better(metric: str) -> bool:
    return any(word in metric for word in aggregate.SMALLER_IS_BETTER)


def check_not_test(metric: str, allow_test: bool = False) -> None:
    """Raise ``ValueError`` when ``metric`` is a column of the test split (``test_*``),
    unless ``allow_test``: λ chosen on the test split makes its test numbers optimistic."""
    if metric.startswith("test_") and not allow_test:
        raise ValueError(
            f"--select {metric}: choosing λ on the test split makes its test numbers "
            "optimistic; choose on a val_* column, or pass --allow-test-selection "
            "(allow_test=True) to do it anyway"
        )


def check_selectable(results: pd.DataFrame, metric: str, allow_test: bool = False) -> None:
    """Raise ``ValueError`` unless ``metric`` may choose λ: a numeric column of ``results``
    (or ``val_metric``), not one of the test split unless ``allow_test``."""
    check_not_test(metric, allow_test)
    if metric.endswith("_metric"):
        return
    if metric not in results.columns:
        raise ValueError(f"unknown metric '{metric}'; choose a val_* column of the results")
    if not pd.api.types.is_numeric_dtype(results[metric]):
        numeric = [
            c
            for c in results.columns
            if c.startswith("val_") and pd.api.types.is_numeric_dtype(results[c])
        ]
        raise ValueError(
            f"metric '{metric}' holds text, not numbers; choose one of: "
            + (", ".join(numeric) or "none (no numeric val_* column)")
        )


def _pick(
    points: pd.DataFrame, metric: str, name: str, tol: float, sparsity: str
) -> tuple[object, float]:
    """The index of the chosen row of ``points`` (one row per λ, or per group and λ, with
    ``<metric>_mean``/``_std``, ``n_ok`` and the sparsity column's ``_mean``) and the mean
    it was compared with (the best mean).

    The candidates are the points whose mean is within ``reach`` of the best mean:
    ``reach = TIE`` for ``best`` (ties only), ``std/√n_ok`` of the best point for ``1se``,
    ``tol`` for ``within``. Among them the sparsest wins (fewest ``<sparsity>_mean``,
    then the largest λ, then the better mean): ties go to the sparser λ under every rule.
    """
    mean = points[f"{metric}_mean"]
    smaller = smaller_is_better(metric)
    top = mean.idxmin() if smaller else mean.idxmax()
    reach = TIE
    if name == "1se":
        std = points.loc[top, f"{metric}_std"]
        reach += 0.0 if np.isnan(std) else std / np.sqrt(points.loc[top, "n_ok"])
    elif name == "within":
        reach += tol
    near = (mean <= mean[top] + reach) if smaller else (mean >= mean[top] - reach)
    candidates = points[near].assign(
        _kept=points.get(f"{sparsity}_mean", pd.Series(np.nan, index=points.index)),
        _score=mean if smaller else -mean,
    )
    order = candidates.sort_values(["_kept", "lambda", "_score"], ascending=[True, False, True])
    return order.index[0], float(mean[top])


def _eligible(
    results: pd.DataFrame,
    metric: str | None,
    by: Sequence[str] | None,
    allow_test: bool = False,
) -> tuple[pd.DataFrame, str, list[str]]:
    """The summary per group and λ that a rule chooses from, the metric and the groups.

    The groups are :func:`aggregate.grouping` less ``lambda``: never two configurations
    that differ beyond the seed and λ. λ points with no ok job, no value of the metric, or
    a collapsed run (:func:`with_collapsed`) are left out: a λ at which any seed collapsed
    is never chosen. A ``test_*`` metric is refused unless ``allow_test``
    (:func:`check_selectable`).
    """
    aggregate.check_results(results)
    if "lambda" not in results.columns:
        raise ValueError("the results have no lambda column to choose from")
    if not pd.api.types.is_numeric_dtype(results["lambda"]):
        raise ValueError("the lambda column holds text, not numbers: not regexp's results")
    metric = metric or selection_metric(results)
    check_selectable(results, metric, allow_test)
    frame = with_val_metric(results) if metric.endswith("_metric") else results
    frame = with_kept_inputs(with_removed_units(with_collapsed(frame)))
    groups = [c for c in aggregate.grouping(frame, by) if c != "lambda"]
    summary = aggregate.summarize(frame, [*groups, "lambda"])
    collapsed = (
        frame[frame["status"].eq("ok")]
        .groupby([*groups, "lambda"], dropna=False, sort=True)["collapsed"]
        .sum()
        .rename("n_collapsed")
    )
    summary = summary.join(collapsed, on=[*groups, "lambda"])
    summary["n_collapsed"] = summary["n_collapsed"].fillna(0).astype(int)
    keep = (summary["n_ok"] > 0) & (summary["n_collapsed"] == 0)
    return summary[keep & summary[f"{metric}_mean"].notna()], metric, groups


def _check_sparsity(sparsity: str) -> str:
    if sparsity not in SPARSITY:
        raise ValueError(f"sparsity must be one of {', '.join(SPARSITY)}, got {sparsity!r}")
    return SPARSITY[sparsity]


def best(
    results: pd.DataFrame,
    metric: str | None = None,
    rule: str = "best",
    by: Sequence[str] | None = None,
    sparsity: str = "params",
    allow_test: bool = False,
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
    rule : {"best", "1se", "within:TOL"}
        With ``m_λ`` the mean of ``metric`` over the ok seeds of λ and ``m*`` the best of
        them (:func:`_pick`): ``best`` chooses among the λ with ``m_λ = m*``; ``1se``
        among those with ``|m_λ − m*| <= s*/√n*`` (the best λ's standard error);
        ``within:TOL`` among those with ``|m_λ − m*| <= TOL`` (in the metric's units:
        ``within:0.01`` is one point of accuracy). In every rule the sparsest candidate
        wins (fewest parameters, or inputs, kept on average), then the largest λ.
    by : sequence of str, optional
        The group columns (default :func:`aggregate.group_columns` less ``lambda``; a
        column that separates configurations is added, :func:`aggregate.grouping`).
    sparsity : {"params", "inputs"}
        What "sparsest" counts: ``params_kept`` or ``kept_input`` (input features kept).
    allow_test : bool
        Allow ``metric`` to be a ``test_*`` column (refused by default: the test split is
        for reporting, never for choosing).

    A λ with a collapsed run (:func:`with_collapsed`) is never chosen.

    Returns
    -------
    DataFrame
        The group keys, ``lambda`` (chosen), ``rule``, ``selected_on`` (the metric that
        chose), ``chosen_on_split`` (``validation``), ``reported_on`` (the test metric),
        ``group_best`` (``m*``), ``n_ok``, ``<metric>_mean``/``_std``, the test metric's
        ``_mean``/``_std``, ``removed_<layer>_mean`` (units removed per layer: the removed
        fraction times the layer's units), ``kept_input_mean`` and
        ``params_kept_mean``/``_std``.
    """
    name, tol = parse_rule(rule)
    kept = _check_sparsity(sparsity)
    summary, metric, groups = _eligible(results, metric, by, allow_test)
    rows, tops = [], []
    for _, g in summary.groupby(groups, dropna=False, sort=True) if groups else [((), summary)]:
        pick, top = _pick(g, metric, name, tol, kept)
        rows.append(g.loc[pick])
        tops.append(top)
    return _table(pd.DataFrame(rows), groups, metric, rule, sparsity, tops)


def _table(
    chosen: pd.DataFrame,
    groups: Sequence[str],
    metric: str,
    rule: str,
    sparsity: str,
    tops: Sequence[float],
) -> pd.DataFrame:
    """The selection table's columns (see :func:`best`) of the chosen summary rows."""
    test = reported_metric(metric)
    if chosen.empty:
        chosen = pd.DataFrame(columns=[*groups, "lambda", "n_ok"])
    out = chosen[[*groups, "lambda"]].copy()
    out["rule"], out["sparsity"], out["selected_on"] = rule, sparsity, metric
    out["chosen_on_split"], out["reported_on"] = split_of(metric), test
    out["group_best"] = list(tops)
    out["n_ok"] = chosen["n_ok"]
    removed = [c.removesuffix("_mean") for c in chosen.columns if c.startswith("removed_")]
    kept = ("kept_input", "units_input", "params_kept", "params_total")
    for column in (metric, test, *removed, *kept):
        for stat in ("mean", "std"):
            if f"{column}_{stat}" in chosen.columns:
                out[f"{column}_{stat}"] = chosen[f"{column}_{stat}"]
    return out.reset_index(drop=True)


def sparsest_overall(
    results: pd.DataFrame,
    tol: float,
    metric: str | None = None,
    by: Sequence[str] | None = None,
    sparsity: str = "params",
    allow_test: bool = False,
) -> pd.DataFrame:
    """The sparsest network of the whole sweep within ``tol`` of its best, per dataset.

    Over every (group, λ) point of a dataset (as in :func:`best`: collapsed λ left out),
    with ``m*`` the best mean of ``metric``: the candidates are the points with
    ``|m − m*| <= tol`` and the sparsest wins (fewest ``params_kept``, or inputs kept,
    on average; then the largest λ; then the better mean). One row per dataset, with the
    columns of :func:`best` and ``group_best`` = ``m*`` of the whole dataset.
    """
    kept = _check_sparsity(sparsity)
    summary, metric, groups = _eligible(results, metric, by, allow_test)
    datasets = summary.groupby("dataset", sort=True) if "dataset" in groups else [((), summary)]
    rows, tops = [], []
    for _, points in datasets:
        pick, top = _pick(points, metric, "within", float(tol), kept)
        rows.append(points.loc[pick])
        tops.append(top)
    return _table(pd.DataFrame(rows), groups, metric, f"within:{tol:g}", sparsity, tops)


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


def with_kept_inputs(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` plus ``units_input`` (the inputs of ``architecture``) and ``kept_input``:
    input features kept, ``units_input · (1 − neuron_sparsity_input)`` (each left as it is
    when already present)."""
    needed = {"architecture", "neuron_sparsity_input"}
    if not needed <= set(results.columns):
        return results
    inputs = np.array([(_units(a) or [np.nan])[0] for a in results["architecture"]], dtype=float)
    out = results if "units_input" in results.columns else results.assign(units_input=inputs)
    if "kept_input" in out.columns:
        return out
    return out.assign(kept_input=out["units_input"] * (1.0 - out["neuron_sparsity_input"]))
