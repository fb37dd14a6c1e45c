"""Sweep figures: summary rows (mean and std over seeds) against λ, and the Pareto front.

Each ``*_figure`` function takes a summary frame from
:func:`regexp.results.aggregate.summarize` (columns ``dataset``, ``lambda``, ``n_ok``,
``<metric>_mean``, ``<metric>_std``, ...), draws a panel per dataset and a series per
value of the ``series`` columns (styles, λ axes and error bars:
:mod:`regexp.plots.style`), and returns a constrained-layout
:class:`matplotlib.figure.Figure`; the matching ``plot_*`` saves it atomically with
:func:`regexp.io.atomic.save_figure`. The title names the data sets and what varies.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from regexp.io.atomic import save_figure
from regexp.plots.labels import declutter, label_points
from regexp.plots.style import (
    errorbars,
    lambda_axis,
    legend_height,
    outside_legend,
    per_text,
    seeds_text,
    short_number,
    split_series,
    summary_styles,
)
from regexp.results.aggregate import PARAMS_FRACTION, pareto_front

METRIC_LABELS = {
    "test_accuracy": "test accuracy (fraction correct)",
    "test_r2": "test R² (1 = perfect, 0 = the mean)",
    "test_metric": "test accuracy or R²",
}


def _metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _metric_name(metric: str) -> str:
    return _metric_label(metric).split(" (")[0]


def _sentence(text: str) -> str:
    """``text`` with its first letter in upper case (``str.capitalize`` lowers "R²")."""
    return text[:1].upper() + text[1:]


def _datasets(summary: pd.DataFrame, column: str) -> list[str]:
    return [d for d, rows in summary.groupby("dataset", sort=True) if rows[column].notna().any()]


def plot_metric_vs_lambda(
    summary: pd.DataFrame, metric: str, series: Sequence[str], path: Path
) -> None:
    """Save :func:`metric_vs_lambda_figure` as ``path``."""
    save_figure(metric_vs_lambda_figure(summary, metric, series), path, tight=False)


def metric_vs_lambda_figure(summary: pd.DataFrame, metric: str, series: Sequence[str]) -> Figure:
    """``<metric>_mean`` ± ``<metric>_std`` against λ, a panel per dataset, a line per series."""
    datasets = _datasets(summary, f"{metric}_mean")
    columns, styles = summary_styles(summary, series)
    height = max(4.0, legend_height(len(styles)))
    fig = Figure(figsize=(4.2 * max(len(datasets), 1) + 2, height), layout="constrained")
    axes = fig.subplots(1, max(len(datasets), 1), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=False):
        rows = summary[summary["dataset"] == dataset]
        errorbars(ax, rows, columns, metric, styles)
        lambda_axis(ax, rows["lambda"])
        ax.set_ylabel(_metric_label(metric))
        ax.set_title(dataset)
    outside_legend(axes, title=" ".join(columns) or None)
    fig.suptitle(
        f"{_sentence(_metric_name(metric))} against λ: {', '.join(datasets)}\n"
        f"mean ± std over {seeds_text(summary)}, {per_text(columns, 'line')}"
    )
    return fig


def plot_sparsity_vs_lambda(summary: pd.DataFrame, series: Sequence[str], path: Path) -> None:
    """Save :func:`sparsity_vs_lambda_figure` as ``path``."""
    save_figure(sparsity_vs_lambda_figure(summary, series), path, tight=False)


def sparsity_vs_lambda_figure(summary: pd.DataFrame, series: Sequence[str]) -> Figure:
    """Fraction of units removed against λ: a row of panels per dataset, one per layer."""
    layers = [
        c[: -len("_mean")]
        for c in summary.columns
        if c.startswith("neuron_sparsity_") and c.endswith("_mean")
    ]
    datasets = sorted(summary["dataset"].dropna().unique())
    columns, styles = summary_styles(summary, series)
    nrows, ncols = max(len(datasets), 1), max(len(layers), 1)
    height = max(3.2 * nrows + 0.9, legend_height(len(styles)))
    fig = Figure(figsize=(3.6 * ncols + 2, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for row, dataset in zip(axes, datasets, strict=False):
        rows = summary[summary["dataset"] == dataset]
        for ax, layer in zip(row, layers, strict=True):
            if rows[f"{layer}_mean"].isna().all():
                ax.set_axis_off()
                continue
            errorbars(ax, rows, columns, layer, styles)
            lambda_axis(ax, rows["lambda"])
            ax.set_ylim(-0.04, 1.04)
            ax.set_ylabel("fraction of units removed")
            name = layer.removeprefix("neuron_sparsity_")
            ax.set_title(f"{dataset}: {'input features' if name == 'input' else name}")
    outside_legend(axes.ravel(), title=" ".join(columns) or None)
    fig.suptitle(
        f"Fraction of units removed against λ: {', '.join(datasets)}\n"
        f"mean ± std over {seeds_text(summary)}; a panel per data set and layer, "
        f"{per_text(columns, 'line')}"
    )
    return fig


def view_floor(values: np.ndarray) -> float | None:
    """The bottom of a Pareto panel's view, or ``None`` to show every point.

    ``floor = median − max(3·(max − median), (max − min)/10)`` over the finite values:
    at least half the points lie above it, and it leaves out only points far below the
    bulk (e.g. chance-level networks with every unit removed). ``None`` when no point is
    below the floor or there are fewer than 4 points.
    """
    y = np.asarray(values, dtype=float)
    y = y[np.isfinite(y)]
    if len(y) < 4:
        return None
    top, mid = y.max(), np.median(y)
    floor = mid - max(3 * (top - mid), (top - y.min()) / 10)
    return float(floor) if (y < floor).any() else None


def plot_pareto(
    summary: pd.DataFrame, metrics: Mapping[str, str], series: Sequence[str], path: Path
) -> None:
    """Save :func:`pareto_figure` as ``path``."""
    save_figure(pareto_figure(summary, metrics, series), path, tight=False)


def pareto_figure(
    summary: pd.DataFrame, metrics: Mapping[str, str], series: Sequence[str]
) -> Figure:
    """Main metric against the fraction of parameters kept, with the Pareto front drawn.

    ``metrics`` maps each dataset to its metric (``test_accuracy`` or ``test_r2``). The
    front (:func:`regexp.results.aggregate.pareto_front`: fewer parameters, higher metric)
    is computed per dataset over all its groups. Each point is labelled with its λ
    (:func:`regexp.plots.labels.label_points`: nearby points share a label). Points
    below :func:`view_floor` are left out of the view, which fits the others, and the
    panel title lists them (series, λ, value; per λ when more than 3). Markers are hollow
    and shrink from the first series to the last, so that equal points stay visible.
    """
    datasets = [d for d in sorted(metrics) if (summary["dataset"] == d).any()]
    columns, styles = summary_styles(summary, series)
    height = max(4.6, legend_height(len(styles) + 1) + 0.8)  # + 0.8: the panel notes
    fig = Figure(figsize=(4.8 * max(len(datasets), 1) + 2, height), layout="constrained")
    axes = fig.subplots(1, max(len(datasets), 1), squeeze=False)[0]
    x = f"{PARAMS_FRACTION}_mean"
    for ax, dataset in zip(axes, datasets, strict=False):
        y = f"{metrics[dataset]}_mean"
        rows = summary[summary["dataset"] == dataset]
        _pareto_panel(ax, rows, x, y, columns, styles)
        ax.set_xlabel("fraction of parameters kept (weights and biases)")
        ax.set_ylabel(f"{_metric_label(metrics[dataset])}, mean")
    outside_legend(axes, title=" ".join(columns) or None)
    names = {_metric_name(metrics[d]) for d in datasets}
    name = names.pop() if len(names) == 1 else "test accuracy or R²"
    fig.suptitle(
        f"{_sentence(name)} against parameters kept: {', '.join(datasets)}\n"
        f"mean over {seeds_text(summary)}; {per_text(columns, 'marker')}; labels: λ"
    )
    FigureCanvasAgg(fig).draw()  # lays the figure out, so labels can dodge each other
    for ax in axes:
        declutter(ax)
    return fig


def _pareto_panel(
    ax: Axes, rows: pd.DataFrame, x: str, y: str, columns: Sequence[str], styles: dict
) -> None:
    """One dataset's points, its front, the λ labels and the view (see :func:`pareto_figure`)."""
    rows = rows.dropna(subset=[x, y])
    floor = view_floor(rows[y].to_numpy())
    shown = rows[rows[y] >= floor] if floor is not None else rows
    labels = list(styles)
    for label, points in split_series(shown, columns):
        # Hollow, and smaller for later series: equal points show as nested outlines.
        i, style = labels.index(label), styles[label]
        size = 130 - 90 * i / max(len(labels) - 1, 1)
        ax.scatter(
            points[x], points[y], s=size, label=label, marker=style["marker"],
            facecolors="none", edgecolors=style["color"], linewidths=1.6,
        )  # fmt: skip
    front = rows[pareto_front(rows[x].to_numpy(), rows[y].to_numpy())].sort_values(x)
    ring = front[front.index.isin(shown.index)]
    ax.scatter(ring[x], ring[y], facecolors="none", edgecolors="black", s=190, lw=1, zorder=3)
    ax.plot([], [], color="black", lw=1, marker="o", mfc="none", ms=13, label="Pareto front")
    title = str(rows["dataset"].iloc[0]) if len(rows) else ""
    if floor is not None:  # the view: the points shown, with the front running out below
        ax.autoscale_view()
        xlim, top = ax.get_xlim(), shown[y].max()
        low = shown[y].min()
        pad = 0.08 * ((top - low) or abs(top) or 1)
        ax.set_ylim(low - pad, top + pad)
        title += "\n" + _below_note(rows[rows[y] < floor], y, floor, columns)
    ax.step(front[x], front[y], where="post", color="black", lw=1, scalex=False, scaley=False)
    if floor is not None:
        ax.set_xlim(xlim)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    ax.set_title(title, fontsize=9)
    color_of = {
        i: styles[label]["color"] for label, g in split_series(shown, columns) for i in g.index
    }
    label_points(ax, shown[x], shown[y], shown["lambda"], [color_of[i] for i in shown.index])


def _below_note(below: pd.DataFrame, y: str, floor: float, columns: Sequence[str]) -> str:
    """What a panel leaves out: ``"3 points below 0.88 not shown: sgl λ=1e-2 (0.10), ..."``
    for up to 3 points, else a count and value range per λ; wrapped between items."""
    n = len(below)
    if n <= 3:
        items = [
            f"{label} λ={short_number(lam)} ({value:.2f})".strip()
            for label, points in split_series(below, columns)
            for lam, value in zip(points["lambda"], points[y], strict=True)
        ]
    else:
        items = []
        for lam, points in below.groupby("lambda", sort=True):
            low, high = points[y].min(), points[y].max()
            values = f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}–{high:.2f}"
            items.append(f"λ={short_number(lam)}: {len(points)} ({values})")
    head = f"{n} point{'s' if n > 1 else ''} below {floor:.3g} not shown: "
    # No-break spaces inside items: lines break between items only.
    text = head + ", ".join(item.replace(" ", "\u00a0") for item in items)
    return "\n".join(textwrap.wrap(text, 60))
