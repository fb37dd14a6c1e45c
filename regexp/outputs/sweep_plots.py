"""Sweep figures: summary rows (mean and std over seeds) against λ, and the Pareto front.

Each function takes a summary frame from :func:`regexp.outputs.aggregate.summarize` (columns
``dataset``, ``lambda``, ``<metric>_mean``, ``<metric>_std``, ...), draws a panel per
dataset and a line per series, and saves atomically with :func:`regexp.outputs.files.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from regexp.outputs.aggregate import PARAMS_FRACTION, pareto_front
from regexp.outputs.files import save_figure


def _series(summary: pd.DataFrame, series: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """``(label, rows sorted by lambda)`` per distinct value of the ``series`` columns.

    Labels name the regularizer and the other series columns that vary in ``summary``.
    """
    series = [c for c in series if c == "regularizer" or summary[c].nunique(dropna=False) > 1]
    if not series:
        return [("", summary.sort_values("lambda"))]
    out = []
    for key, rows in summary.groupby(list(series), dropna=False, sort=True):
        pairs = zip(series, key, strict=True)
        parts = [str(v) if c == "regularizer" else f"{c}={v}" for c, v in pairs]
        out.append((" ".join(parts), rows.sort_values("lambda")))
    return out


def _lambda_axis(ax: Axes, lambdas: pd.Series) -> None:
    """Log λ axis; symlog (linear near 0) when λ = 0 is among the values."""
    positive = lambdas[lambdas > 0]
    if (lambdas == 0).any() and len(positive):
        ax.set_xscale("symlog", linthresh=float(positive.min()))
    elif len(positive):
        ax.set_xscale("log")
    ax.set_xlabel("λ")


def _datasets(summary: pd.DataFrame, column: str) -> list[str]:
    return [d for d, rows in summary.groupby("dataset", sort=True) if rows[column].notna().any()]


def plot_metric_vs_lambda(
    summary: pd.DataFrame, metric: str, series: Sequence[str], path: Path
) -> None:
    """``<metric>_mean`` ± ``<metric>_std`` against λ, a panel per dataset, a line per series."""
    datasets = _datasets(summary, f"{metric}_mean")
    fig = Figure(figsize=(5 * max(len(datasets), 1), 4))
    axes = fig.subplots(1, max(len(datasets), 1), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=False):
        rows = summary[summary["dataset"] == dataset]
        _errorbars(ax, rows, series, metric)
        _lambda_axis(ax, rows["lambda"])
        ax.set_ylabel(f"{metric} (mean ± std over seeds)")
        ax.set_title(dataset)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def _errorbars(ax: Axes, rows: pd.DataFrame, series: Sequence[str], column: str) -> None:
    """``<column>_mean`` ± ``<column>_std`` against λ, a line per series."""
    for label, line in _series(rows, series):
        ax.errorbar(
            line["lambda"],
            line[f"{column}_mean"],
            yerr=line[f"{column}_std"],
            marker="o",
            capsize=3,
            label=label,
        )


def plot_sparsity_vs_lambda(summary: pd.DataFrame, series: Sequence[str], path: Path) -> None:
    """Fraction of units removed against λ: a row of panels per dataset, one per layer."""
    layers = [
        c[: -len("_mean")]
        for c in summary.columns
        if c.startswith("neuron_sparsity_") and c.endswith("_mean")
    ]
    datasets = sorted(summary["dataset"].dropna().unique())
    fig = Figure(figsize=(4 * max(len(layers), 1), 3.5 * max(len(datasets), 1)))
    axes = fig.subplots(max(len(datasets), 1), max(len(layers), 1), squeeze=False)
    for row, dataset in zip(axes, datasets, strict=False):
        rows = summary[summary["dataset"] == dataset]
        for ax, layer in zip(row, layers, strict=True):
            if rows[f"{layer}_mean"].isna().all():
                ax.set_axis_off()
                continue
            _errorbars(ax, rows, series, layer)
            _lambda_axis(ax, rows["lambda"])
            ax.set_ylim(-0.05, 1.05)
            ax.set_ylabel("fraction of units removed")
            ax.set_title(f"{dataset}: {layer.removeprefix('neuron_sparsity_')}")
        row[0].legend(fontsize=8)
    save_figure(fig, path)


def plot_pareto(
    summary: pd.DataFrame, metrics: Mapping[str, str], series: Sequence[str], path: Path
) -> None:
    """Main metric against the fraction of parameters kept, with the Pareto front drawn.

    ``metrics`` maps each dataset to its metric (``test_accuracy`` or ``test_r2``). The
    front (:func:`regexp.outputs.aggregate.pareto_front`: fewer parameters, higher metric) is
    computed per dataset over all its groups.
    """
    datasets = [d for d in sorted(metrics) if (summary["dataset"] == d).any()]
    fig = Figure(figsize=(5 * max(len(datasets), 1), 4))
    axes = fig.subplots(1, max(len(datasets), 1), squeeze=False)
    x = f"{PARAMS_FRACTION}_mean"
    for ax, dataset in zip(axes[0], datasets, strict=False):
        y = f"{metrics[dataset]}_mean"
        rows = summary[summary["dataset"] == dataset]
        for label, points in _series(rows, series):
            ax.scatter(points[x], points[y], label=label, alpha=0.8)
        front = rows[pareto_front(rows[x].to_numpy(), rows[y].to_numpy())].sort_values(x)
        ax.step(front[x], front[y], where="post", color="black", lw=1, label="Pareto front")
        ax.scatter(front[x], front[y], facecolors="none", edgecolors="black", s=80)
        ax.set_xlabel("fraction of parameters kept")
        ax.set_ylabel(f"{metrics[dataset]} (mean over seeds)")
        ax.set_title(dataset)
        ax.legend(fontsize=8)
    save_figure(fig, path)
