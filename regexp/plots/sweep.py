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
    bounds,
    clipped_yerr,
    errorbars,
    lambda_axis,
    legend_height,
    outside_legend,
    per_text,
    seeds_text,
    short_number,
    split_series,
    spread_text,
    summary_styles,
)
from regexp.results.aggregate import PARAMS_FRACTION, pareto_front

METRIC_LABELS = {
    "test_accuracy": "test accuracy (fraction correct)",
    "test_r2": "test R² (1 = perfect, 0 = the mean)",
    "test_metric": "test accuracy or R²",
    "val_accuracy": "validation accuracy (fraction correct)",
    "val_r2": "validation R² (1 = perfect, 0 = the mean)",
    "val_metric": "validation accuracy or R²",
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


# The zoom panel of accuracy (R²) against λ: this far below the best mean (metric units).
ZOOM = {"accuracy": 0.05, "r2": 0.1}


def zoom_window(means: np.ndarray, metric: str) -> tuple[float, float] | None:
    """``(bottom, top)`` of the zoom on the best means: ``top = max + pad``, ``bottom =
    max − ZOOM`` (``ZOOM`` by metric: 0.05 of accuracy, 0.1 of R²), ``pad`` = a tenth of
    that; ``None`` for other metrics, or when every mean is already inside."""
    depth = next((v for k, v in ZOOM.items() if k in metric), None)
    y = np.asarray(means, dtype=float)
    y = y[np.isfinite(y)]
    if depth is None or not len(y) or y.min() >= y.max() - depth:
        return None
    return float(y.max() - depth), float(y.max() + depth / 10)


def metric_vs_lambda_figure(summary: pd.DataFrame, metric: str, series: Sequence[str]) -> Figure:
    """``<metric>_mean`` ± ``<metric>_std`` against λ, a panel per dataset, a line per series.

    Where some means lie more than :data:`ZOOM` below the best (accuracy, R²), a second
    panel per dataset zooms on the top (:func:`zoom_window`): the differences of a point
    that decide a choice. A sweep of a single λ draws each series as a point with its error
    bar, a series per position. Points with a collapsed run carry a grey cross.
    """
    datasets = _datasets(summary, f"{metric}_mean")
    columns, styles = summary_styles(summary, series)
    zooms = {
        d: zoom_window(summary.loc[summary["dataset"] == d, f"{metric}_mean"], metric)
        for d in datasets
    }
    panels = [(d, None) for d in datasets]
    panels += [(d, zooms[d]) for d in datasets if zooms[d] is not None]
    height = max(4.0, legend_height(len(styles) + 1))
    fig = Figure(figsize=(4.2 * max(len(panels), 1) + 2, height), layout="constrained")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    single = summary["lambda"].nunique() == 1
    for ax, (dataset, zoom) in zip(axes, panels, strict=False):
        rows = summary[summary["dataset"] == dataset]
        if single:
            _points_by_series(ax, rows, columns, metric, styles)
        else:
            errorbars(ax, rows, columns, metric, styles)
            lambda_axis(ax, rows["lambda"])
        _mark_collapsed(ax, rows, metric, single, columns)
        ax.set_ylabel(_metric_label(metric))
        ax.set_title(dataset)
        if zoom is not None:
            ax.set_ylim(*zoom)
            depth = next(v for k, v in ZOOM.items() if k in metric)
            ax.set_title(f"{dataset}: zoom, {depth:g} below the best and up")
    outside_legend(axes, title=" ".join(columns) or None)
    fig.suptitle(
        f"{_sentence(_metric_name(metric))} against λ: {', '.join(datasets)}\n"
        f"{spread_text(summary)}, {per_text(columns, 'point' if single else 'line')}"
    )
    return fig


def _points_by_series(
    ax: Axes, rows: pd.DataFrame, columns: Sequence[str], metric: str, styles: dict
) -> None:
    """A single λ: each series as one point with its (clipped) error bar, side by side."""
    low, high = bounds(metric)
    found = split_series(rows, columns)
    for i, (label, point) in enumerate(found):
        mean = point[f"{metric}_mean"].to_numpy(dtype=float)
        yerr = clipped_yerr(mean, point[f"{metric}_std"].to_numpy(dtype=float), low, high)
        style = {k: v for k, v in styles[label].items() if k != "linestyle"}
        ax.errorbar([i] * len(mean), mean, yerr=yerr, capsize=4, ls="none", label=label, **style)
    ax.set_xticks(range(len(found)), [label or "all" for label, _ in found], rotation=30,
                  ha="right")  # fmt: skip
    ax.set_xlim(-0.6, len(found) - 0.4)
    ax.set_xlabel(f"series at λ = {short_number(rows['lambda'].iloc[0])}")


def _mark_collapsed(
    ax: Axes, rows: pd.DataFrame, metric: str, single: bool, columns: Sequence[str]
) -> None:
    """A grey cross on each point of ``rows`` with a collapsed run (``collapsed_mean`` > 0)."""
    if "collapsed_mean" not in rows.columns:
        return
    bad = rows[rows["collapsed_mean"] > 0]
    if bad.empty:
        return
    if single:
        where = {label: i for i, (label, _) in enumerate(split_series(rows, columns))}
        xs = [where[label] for label, g in split_series(bad, columns) for _ in range(len(g))]
        ys = [v for _, g in split_series(bad, columns) for v in g[f"{metric}_mean"]]
    else:
        xs, ys = bad["lambda"], bad[f"{metric}_mean"]
    ax.scatter(xs, ys, marker="x", s=70, color="0.3", lw=1.4, zorder=4,
               label="a run collapsed (at or below chance)")  # fmt: skip


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
            if summary["lambda"].nunique() == 1:
                _points_by_series(ax, rows, columns, layer, styles)
            else:
                errorbars(ax, rows, columns, layer, styles)
                lambda_axis(ax, rows["lambda"])
            ax.set_ylim(-0.04, 1.04)
            ax.set_ylabel("fraction of units removed")
            name = layer.removeprefix("neuron_sparsity_")
            ax.set_title(f"{dataset}: {'input features' if name == 'input' else name}")
    outside_legend(axes.ravel(), title=" ".join(columns) or None)
    fig.suptitle(
        f"Fraction of units removed against λ: {', '.join(datasets)}\n"
        f"{spread_text(summary)}; a panel per data set and layer, "
        f"{per_text(columns, 'point' if summary['lambda'].nunique() == 1 else 'line')}"
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
    summary: pd.DataFrame,
    metrics: Mapping[str, str],
    series: Sequence[str],
    path: Path,
    selected: pd.DataFrame | None = None,
    answer: pd.DataFrame | None = None,
) -> None:
    """Save :func:`pareto_figure` as ``path``."""
    fig = pareto_figure(summary, metrics, series, selected, answer)
    save_figure(fig, path, tight=False)


def validation_twin(metric: str) -> str:
    """``test_accuracy`` → ``val_accuracy``: the metric that chooses, of a reported one."""
    return "val_" + metric.removeprefix("test_") if metric.startswith("test_") else metric


def pareto_figure(
    summary: pd.DataFrame,
    metrics: Mapping[str, str],
    series: Sequence[str],
    selected: pd.DataFrame | None = None,
    answer: pd.DataFrame | None = None,
) -> Figure:
    """Validation metric against the fraction of parameters kept, with the Pareto front
    drawn, and the test metric beside it.

    ``metrics`` maps each dataset to its reported metric (``test_accuracy`` or
    ``test_r2``); the left panel of each dataset shows its validation twin
    (:func:`validation_twin`), which chooses, and the right panel the test metric, which
    only reports (no front: it must not invite choosing). The front
    (:func:`regexp.results.aggregate.pareto_front`: fewer parameters, higher metric) is
    computed per dataset over all its groups. ``selected`` (a table of
    :func:`regexp.results.selection.best`) marks each group's chosen λ with a star in
    both panels; ``answer`` (:func:`regexp.results.selection.sparsest_overall`) marks the
    sparsest network within the tolerance with a large star and shades the tolerance band
    below the best validation mean. Points with a collapsed run carry a grey cross. Each
    point of the validation panel is labelled with its λ
    (:func:`regexp.plots.labels.label_points`; placed by
    :func:`regexp.plots.labels.declutter`), and the chosen points of the test panel.
    Points below :func:`view_floor` are left out of the view, and the panel title lists
    them. Without a validation column, only the
    test panel is drawn.
    """
    datasets = [d for d in sorted(metrics) if (summary["dataset"] == d).any()]
    columns, styles = summary_styles(summary, series)
    splits = ["val", "test"]
    if not all(f"{validation_twin(metrics[d])}_mean" in summary.columns for d in datasets):
        splits = ["test"]
    nrows, ncols = max(len(datasets), 1), len(splits)
    extra = 2 + (selected is not None) + (answer is not None)
    height = max(4.8 * nrows, legend_height(len(styles) + extra) + 0.8)
    fig = Figure(figsize=(4.9 * ncols + 2.4, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    x = f"{PARAMS_FRACTION}_mean"
    for row_axes, dataset in zip(axes, datasets, strict=False):
        rows = summary[summary["dataset"] == dataset]
        for ax, split in zip(row_axes, splits, strict=True):
            metric = validation_twin(metrics[dataset]) if split == "val" else metrics[dataset]
            y = f"{metric}_mean"
            band = _tolerance(answer, dataset) if split == "val" else None
            # The test panel labels only the chosen points (when there are any): it reports.
            marks = pd.concat([_matching(rows, selected), _matching(rows, answer)])
            only = marks.index if split != splits[0] and len(marks) else None
            _pareto_panel(
                ax, rows, x, y, columns, styles, front=split == splits[0], band=band, only=only
            )
            _mark_chosen(ax, rows, x, y, columns, styles, selected, answer)
            ax.set_xlabel("fraction of parameters kept (weights and biases)")
            ax.set_ylabel(f"{_metric_label(metric)}, mean")
            role = "chooses" if split == "val" else "reports only, never chooses"
            head = f"{dataset}: {'validation' if split == 'val' else 'test'} ({role})"
            ax.set_title(f"{head}\n{ax.get_title()}".rstrip("\n"), fontsize=9)
    outside_legend(axes.ravel(), title=" ".join(columns) or None)
    names = {_metric_name(validation_twin(metrics[d])) for d in datasets}
    name = names.pop() if len(names) == 1 else "accuracy or R²"
    if splits == ["test"]:
        name = _metric_name(metrics[datasets[0]]) if datasets else "test metric"
    fig.suptitle(
        f"{_sentence(name)} against parameters kept: {', '.join(datasets)}\n"
        f"mean over {seeds_text(summary)}; {per_text(columns, 'marker')}; labels: λ"
    )
    FigureCanvasAgg(fig).draw()  # lays the figure out, so labels can dodge each other
    for ax in axes.ravel():
        declutter(ax)
    return fig


def _tolerance(answer: pd.DataFrame | None, dataset: str) -> tuple[float, float] | None:
    """``(best, tol)`` of ``dataset``'s row of ``answer`` (rule ``within:TOL``), or None."""
    if answer is None or answer.empty:
        return None
    rows = answer[answer["dataset"] == dataset] if "dataset" in answer.columns else answer
    if rows.empty:
        return None
    tol = float(str(rows["rule"].iloc[0]).partition(":")[2] or 0)
    return float(rows["group_best"].iloc[0]), tol


def _matching(rows: pd.DataFrame, table: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of ``rows`` (a dataset's summary) that ``table`` chose: equal on the
    columns they share among the table's group columns and λ."""
    if table is None or table.empty or "lambda" not in table.columns:
        return rows.iloc[0:0]
    keys = list(table.columns[: list(table.columns).index("lambda") + 1])
    keys = [c for c in keys if c in rows.columns]
    marks = table[keys].drop_duplicates()
    return rows.reset_index().merge(marks, on=keys, how="inner").set_index("index")


def _mark_chosen(
    ax: Axes,
    rows: pd.DataFrame,
    x: str,
    y: str,
    columns: Sequence[str],
    styles: dict,
    selected: pd.DataFrame | None,
    answer: pd.DataFrame | None,
) -> None:
    """Stars on the chosen λ of each group (``selected``) and a large one on ``answer``."""
    low, high = ax.get_ylim()
    chosen = _matching(rows, selected).dropna(subset=[x, y])
    if selected is not None:
        chosen = chosen[chosen[y].between(low, high)]
        rule = str(selected["rule"].iloc[0]) if len(selected) else ""
        ax.scatter(
            chosen[x], chosen[y], marker="*", s=150, facecolors="white", edgecolors="black",
            linewidths=0.9, zorder=4, label=f"chosen λ per group (rule {rule})",
        )  # fmt: skip
    if answer is not None:
        best = _matching(rows, answer).dropna(subset=[x, y])
        best = best[best[y].between(low, high)]
        ax.scatter(
            best[x], best[y], marker="*", s=420, facecolors="gold", edgecolors="black",
            linewidths=1.0, zorder=5, label="sparsest within the tolerance of the best",
        )  # fmt: skip
    ax.set_ylim(low, high)


def _pareto_panel(
    ax: Axes,
    rows: pd.DataFrame,
    x: str,
    y: str,
    columns: Sequence[str],
    styles: dict,
    front: bool = True,
    band: tuple[float, float] | None = None,
    only: pd.Index | None = None,
) -> None:
    """One dataset's points, its front (``front``), the tolerance band ``(best, tol)``, the
    λ labels (of the rows in ``only``, when given) and the view (see
    :func:`pareto_figure`)."""
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
    collapsed = shown[shown.get("collapsed_mean", pd.Series(0.0, index=shown.index)) > 0]
    if len(collapsed):
        ax.scatter(collapsed[x], collapsed[y], marker="x", s=60, color="0.4", lw=1.2,
                   zorder=3, label="a run collapsed (at or below chance)")  # fmt: skip
    dominant = rows[pareto_front(rows[x].to_numpy(), rows[y].to_numpy())].sort_values(x)
    if front:
        ring = dominant[dominant.index.isin(shown.index)]
        ax.scatter(ring[x], ring[y], facecolors="none", edgecolors="black", s=190, lw=1, zorder=3)
        ax.plot([], [], color="black", lw=1, marker="o", mfc="none", ms=13, label="Pareto front")
    title = ""
    ax.autoscale_view()
    xlim = ax.get_xlim()
    if floor is not None:  # the view: the points shown, with the front running out below
        top, low = shown[y].max(), shown[y].min()
        pad = 0.08 * ((top - low) or abs(top) or 1)
        ax.set_ylim(low - pad, top + pad)
        title = _below_note(rows[rows[y] < floor], y, floor, columns)
    if band is not None:
        best, tol = band
        bottom, top = ax.get_ylim()
        ax.axhspan(best - tol, best, color="0.85", zorder=0,
                   label=f"within {tol:g} of the best validation mean")  # fmt: skip
        ax.set_ylim(min(bottom, best - tol - 0.1 * tol), max(top, best))
    if front:
        ax.step(dominant[x], dominant[y], where="post", color="black", lw=1,
                scalex=False, scaley=False)  # fmt: skip
    ax.set_xlim(xlim)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    ax.set_title(title, fontsize=9)
    color_of = {
        i: styles[label]["color"] for label, g in split_series(shown, columns) for i in g.index
    }
    named = shown if only is None else shown[shown.index.isin(only)]
    label_points(ax, named[x], named[y], named["lambda"], [color_of[i] for i in named.index])


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
