"""The figures that only the reproduction draws: pixel maps of kept inputs, accuracy fronts.

Drawn on :class:`matplotlib.figure.Figure` objects and saved atomically with
:func:`regexp.outputs.files.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from regexp.outputs.files import save_figure


def plot_feature_maps(
    maps: Mapping[tuple[str, str], np.ndarray], image_shape: tuple[int, int], path: Path
) -> None:
    """A grid of image maps of per-feature keep fractions in [0, 1] (white: always kept).

    ``maps[(row, column)]`` is drawn in that row and column (in first-seen order); missing
    cells stay blank. Each title gives the expected number of kept features, ``Σ fraction``.
    """
    rows = list(dict.fromkeys(r for r, _ in maps))
    cols = list(dict.fromkeys(c for _, c in maps))
    fig = Figure(figsize=(2.2 * len(cols), 2.5 * len(rows)))
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
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
    fig = Figure(figsize=(5.5 * len(xs), 4.2))
    axes = fig.subplots(1, len(xs), sharey=True, squeeze=False)
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
