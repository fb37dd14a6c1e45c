"""Sweep figures and the comparison table: summary rows (mean and std over seeds) against λ.

Each function takes a summary frame from :func:`regexp.aggregate.summarize` (columns
``dataset``, ``lambda``, ``<metric>_mean``, ``<metric>_std``, ...), draws a panel per
dataset and a line per series, and saves atomically with :func:`regexp.report.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from rich.console import Console
from rich.table import Table

from regexp.aggregate import PARAMS_FRACTION, pareto_front
from regexp.report import fmt, save_figure


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


def _lambda_axis(ax: plt.Axes, lambdas: pd.Series) -> None:
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
    fig, axes = plt.subplots(
        1, max(len(datasets), 1), figsize=(5 * max(len(datasets), 1), 4), squeeze=False
    )
    for ax, dataset in zip(axes[0], datasets, strict=False):
        rows = summary[summary["dataset"] == dataset]
        _errorbars(ax, rows, series, metric)
        _lambda_axis(ax, rows["lambda"])
        ax.set_ylabel(f"{metric} (mean ± std over seeds)")
        ax.set_title(dataset)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def _errorbars(ax: plt.Axes, rows: pd.DataFrame, series: Sequence[str], column: str) -> None:
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
    fig, axes = plt.subplots(
        max(len(datasets), 1),
        max(len(layers), 1),
        figsize=(4 * max(len(layers), 1), 3.5 * max(len(datasets), 1)),
        squeeze=False,
    )
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
    front (:func:`regexp.aggregate.pareto_front`: fewer parameters, higher metric) is
    computed per dataset over all its groups.
    """
    datasets = [d for d in sorted(metrics) if (summary["dataset"] == d).any()]
    fig, axes = plt.subplots(
        1, max(len(datasets), 1), figsize=(5 * max(len(datasets), 1), 4), squeeze=False
    )
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


def print_comparison(summary: pd.DataFrame, by: Sequence[str], metric: str) -> None:
    """Print one row per group: its keys, ok/n jobs, the metric and the parameters kept."""
    table = Table(title=f"regexp compare (sorted on {metric})", show_header=True)
    for column in by:
        table.add_column(column)
    table.add_column("ok/n", justify="right")
    table.add_column(f"{metric} mean ± std", justify="right")
    extra = [c for c in ("params_fraction", "weight_sparsity") if f"{c}_mean" in summary.columns]
    for column in extra:
        table.add_column(column, justify="right")
    for row in summary.to_dict("records"):
        cells = [fmt(row[c]) for c in by]
        cells.append(f"{row['n_ok']}/{row['n']}")
        cells.append(f"{fmt(row[f'{metric}_mean'])} ± {fmt(row[f'{metric}_std'])}")
        cells += [fmt(row[f"{c}_mean"]) for c in extra]
        table.add_row(*cells)
    Console().print(table)
