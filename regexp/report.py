"""Writing results: atomic CSVs, matplotlib figures, the progress bar and summary table."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_temporaries(folder: Path, names: Sequence[str]) -> None:
    """Delete the temporary files of ``names`` that a killed writer left in ``folder``."""
    for name in names:
        for path in folder.glob(f".{name}.*.tmp"):
            path.unlink(missing_ok=True)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` to ``path`` atomically: a temporary file, then a rename.

    A killed process leaves either the old file or the complete new one, never a part.
    """
    tmp = _tmp(path)
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    tmp = _tmp(path)
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def plot_learning_curves(history: pd.DataFrame, path: Path) -> None:
    """Training loss (data loss and total) against validation loss, per epoch."""
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(history):
        ax.plot(history["epoch"], history["data_loss"], label="train data loss")
        if (history["penalty"] != 0).any():
            ax.plot(history["epoch"], history["train_loss"], "--", label="train loss + penalty")
        ax.plot(history["epoch"], history["val_loss"], label="validation loss")
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title("Learning curves")
    save_figure(fig, path)


def plot_sparsity(layers: pd.DataFrame, path: Path) -> None:
    """Stacked bars of kept and removed units per layer (``sparsity.csv``)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    kept = layers["units"] - layers["removed"]
    ax.bar(layers["layer"], kept, label="kept", color="tab:blue")
    ax.bar(layers["layer"], layers["removed"], bottom=kept, label="removed", color="tab:red")
    for i, (k, u) in enumerate(zip(kept, layers["units"], strict=True)):
        ax.text(i, u, f"{k}/{u}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, layers["units"].max() * 1.12)
    ax.set_ylabel("units")
    ax.set_title("Units kept per layer")
    ax.legend()
    save_figure(fig, path)


def plot_features(
    alive: np.ndarray,
    names: Sequence[str],
    image_shape: tuple[int, int] | None,
    path: Path,
    importance: np.ndarray | None = None,
    title: str = "Input features kept",
) -> None:
    """Which input features survive.

    With ``image_shape`` (digits): the pixel map, white where the feature survives (or the
    fraction of runs keeping it, when ``alive`` holds fractions). Otherwise a bar per
    feature name: the norm of its outgoing weights ``importance`` (or 1 if not given),
    blue when kept and red when removed.
    """
    n_kept = int((alive > 0).sum()) if alive.dtype != bool else int(alive.sum())
    if image_shape is not None:
        fig, ax = plt.subplots(figsize=(4, 4))
        im = ax.imshow(alive.reshape(image_shape).astype(float), cmap="gray", vmin=0, vmax=1)
        if alive.dtype != bool:
            fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title}: {n_kept}/{alive.size} pixels")
    else:
        heights = np.ones(len(names)) if importance is None else importance
        colors = np.where(alive.astype(bool), "tab:blue", "tab:red")
        fig, ax = plt.subplots(figsize=(max(4, 0.3 * len(names)), 4))
        ax.bar(range(len(names)), heights, color=colors)
        removed = np.flatnonzero(~alive.astype(bool))
        ax.scatter(removed, np.zeros(len(removed)), marker="x", color="tab:red", zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_ylabel("‖outgoing weights‖₂" if importance is not None else "kept")
        ax.set_title(f"{title}: {n_kept}/{alive.size} (red ×: removed)")
    save_figure(fig, path)


class _Bar:
    """A rich progress bar over epochs that can be switched off."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._progress = None
        if enabled:
            self._progress = Progress(
                TextColumn("epoch"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                transient=True,
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=total)

    def advance(self, text: str = "") -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=text)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def progress(total: int, enabled: bool = True) -> _Bar:
    """A progress bar over ``total`` epochs (a no-op when ``enabled`` is false)."""
    return _Bar(total, enabled)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def print_summary(row: Mapping, layers: pd.DataFrame) -> None:
    """Print a run's metrics and per-layer sparsity as a table."""
    table = Table(title="regexp run", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    keys = ["dataset", "regularizer", "mode", "lambda", "seed", "architecture", "status"]
    keys += [k for k in row if k.startswith(("test_", "val_"))]
    keys += ["weight_sparsity", "params_kept", "params_total", "train_seconds"]
    for key in keys:
        if key in row:
            table.add_row(key, _fmt(row[key]))
    for layer in layers.itertuples():
        table.add_row(f"units removed: {layer.layer}", f"{layer.removed}/{layer.units}")
    Console().print(table)


# --- Sweeps: summary rows (one per group, mean and std over seeds) against λ -----------


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
        for label, line in _series(rows, series):
            ax.errorbar(
                line["lambda"],
                line[f"{metric}_mean"],
                yerr=line[f"{metric}_std"],
                marker="o",
                capsize=3,
                label=label,
            )
        _lambda_axis(ax, rows["lambda"])
        ax.set_ylabel(f"{metric} (mean ± std over seeds)")
        ax.set_title(dataset)
        ax.legend(fontsize=8)
    save_figure(fig, path)


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
            for label, line in _series(rows, series):
                ax.errorbar(
                    line["lambda"],
                    line[f"{layer}_mean"],
                    yerr=line[f"{layer}_std"],
                    marker="o",
                    capsize=3,
                    label=label,
                )
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
    from regexp.aggregate import PARAMS_FRACTION, pareto_front

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
        cells = [_fmt(row[c]) for c in by]
        cells.append(f"{row['n_ok']}/{row['n']}")
        cells.append(f"{_fmt(row[f'{metric}_mean'])} ± {_fmt(row[f'{metric}_std'])}")
        cells += [_fmt(row[f"{c}_mean"]) for c in extra]
        table.add_row(*cells)
    Console().print(table)
