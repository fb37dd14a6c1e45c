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


def save_figure(fig: plt.Figure, path: Path, tight: bool = True) -> None:
    """Save ``fig`` as PNG atomically and close it.

    ``tight`` crops the PNG to what is drawn (it renders twice: about 60% slower). The
    figures written for every run of a sweep pass ``False``: their labels fit matplotlib's
    default margins.
    """
    tmp = _tmp(path)
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight" if tight else None)
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
    fig.subplots_adjust(left=0.16)  # room for log-scale tick labels and the y label
    save_figure(fig, path, tight=False)


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
    save_figure(fig, path, tight=False)


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
    # Rotated feature names need the cropping; the pixel map fits the default margins.
    save_figure(fig, path, tight=image_shape is None)


def plot_feature_maps(
    maps: Mapping[tuple[str, str], np.ndarray], image_shape: tuple[int, int], path: Path
) -> None:
    """A grid of image maps of per-feature keep fractions in [0, 1] (white: always kept).

    ``maps[(row, column)]`` is drawn in that row and column (in first-seen order); missing
    cells stay blank. Each title gives the expected number of kept features, ``Σ fraction``.
    """
    rows = list(dict.fromkeys(r for r, _ in maps))
    cols = list(dict.fromkeys(c for _, c in maps))
    fig, axes = plt.subplots(
        len(rows), len(cols), squeeze=False, figsize=(2.2 * len(cols), 2.5 * len(rows))
    )
    im = None
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (row, col) not in maps:
                ax.set_axis_off()
                continue
            frac = np.asarray(maps[row, col], dtype=float)
            im = ax.imshow(frac.reshape(image_shape), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{col} ({row})\n{frac.sum():.1f}/{frac.size} kept", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="fraction of runs keeping the feature")
    save_figure(fig, path)


def plot_front(
    front: pd.DataFrame,
    refs: pd.DataFrame,
    xs: Mapping[str, str],
    path: Path,
    title: str,
    ylim: tuple[float, float] | None = None,
) -> None:
    """Test accuracy (%) against each ``xs`` column, one line per ``method`` of ``front``.

    Both frames hold ``method``, ``test_accuracy_mean``/``_std`` and ``<x>_mean``/``_std``
    for each ``x`` in ``xs`` (whose values are axis labels); ``front`` also holds ``point``,
    the text at each point (none where empty), and ``refs`` rows are drawn as single black
    markers. ``ylim`` (in %) may leave points off the chart.
    """
    fig, axes = plt.subplots(1, len(xs), figsize=(5.5 * len(xs), 4.2), sharey=True, squeeze=False)
    for ax, (x, label) in zip(axes[0], xs.items(), strict=True):
        for method, g in front.groupby("method", sort=False):
            ax.errorbar(
                g[f"{x}_mean"],
                100 * g["test_accuracy_mean"],
                xerr=g[f"{x}_std"],
                yerr=100 * g["test_accuracy_std"],
                marker="o",
                ms=4,
                capsize=2,
                label=method,
            )
            for r in g[g["point"] != ""].to_dict("records"):
                xy = (r[f"{x}_mean"], 100 * r["test_accuracy_mean"])
                ax.annotate(r["point"], xy, fontsize=7, alpha=0.8)
        for r, marker in zip(refs.to_dict("records"), "*Dsv^", strict=False):
            ax.plot(
                r[f"{x}_mean"], 100 * r["test_accuracy_mean"], "k" + marker, ms=7, label=r["method"]
            )
        ax.set_xlabel(label)
        if ylim is not None:
            ax.set_ylim(*ylim)
    axes[0, 0].set_ylabel("test accuracy (%)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
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


def fmt(value: object) -> str:
    """A table cell: floats to 4 significant digits (``nan`` for NaN), the rest as text."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def print_summary(row: Mapping, layers: pd.DataFrame | None) -> None:
    """Print a run's metrics and per-layer sparsity as a table."""
    table = Table(title="regexp run", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    keys = ["dataset", "regularizer", "mode", "lambda", "seed", "architecture", "status"]
    keys += [k for k in row if k.startswith(("test_", "val_"))]
    keys += ["weight_sparsity", "params_kept", "params_total", "train_seconds"]
    for key in keys:
        if key in row:
            table.add_row(key, fmt(row[key]))
    for layer in layers.itertuples() if layers is not None else ():
        table.add_row(f"units removed: {layer.layer}", f"{layer.removed}/{layer.units}")
    Console().print(table)
