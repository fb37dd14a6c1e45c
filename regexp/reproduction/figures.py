"""The figures that only the reproduction draws: pixel maps of kept inputs, accuracy fronts.

Drawn on :class:`matplotlib.figure.Figure` objects and saved atomically with
:func:`regexp.io.atomic.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from regexp.io.atomic import save_figure


def plot_feature_maps(
    maps: Mapping[tuple[str, str], np.ndarray],
    image_shape: tuple[int, int],
    path: Path,
    marked: np.ndarray | None = None,
    marked_label: str = "",
    title: str = "",
) -> None:
    """A grid of image maps of per-feature keep fractions in [0, 1] (white: always kept).

    ``maps[(row, column)]`` is drawn in that row and column (in first-seen order), the row
    named on the left; missing cells stay blank. Each title gives the column and the
    expected number of kept features, ``Σ fraction``. Features where the bool mask
    ``marked`` is true get a red dot, named ``marked_label`` in the legend.
    """
    rows = list(dict.fromkeys(r for r, _ in maps))
    cols = list(dict.fromkeys(c for _, c in maps))
    fig = Figure(figsize=(2.1 * len(cols) + 1.6, 2.3 * len(rows) + 0.6))
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    im = None
    for i, row in enumerate(rows):
        named = False
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (row, col) not in maps:
                ax.set_axis_off()
                continue
            frac = np.asarray(maps[row, col], dtype=float)
            im = ax.imshow(frac.reshape(image_shape), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{col}: {frac.sum():.1f}/{frac.size} kept", fontsize=9)
            if not named:
                ax.set_ylabel(row, fontsize=10)
                named = True
            if marked is not None and marked.any():
                r, c = np.unravel_index(np.flatnonzero(marked), image_shape)
                ax.plot(c, r, "o", color="red", ms=3, label=marked_label)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="fraction of runs keeping the feature")
    if marked is not None and marked.any() and marked_label:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles[:1], labels[:1], loc="lower center", fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_front(
    front: pd.DataFrame,
    refs: pd.DataFrame,
    xs: Mapping[str, str],
    path: Path,
    title: str,
    ylim: tuple[float, float] | None = None,
    vlines: Mapping[str, tuple[float, str]] | None = None,
    colors: Mapping[str, object] | None = None,
    gap: float | None = None,
) -> None:
    """Test accuracy (%) against each ``xs`` column, one line per ``method`` of ``front``.

    Both frames hold ``method``, ``test_accuracy_mean``/``_std`` and ``<x>_mean``/``_std``
    for each ``x`` in ``xs`` (whose values are axis labels; a method whose ``<x>_mean`` is
    NaN is left out of that panel); ``front`` may hold ``point``, the text at each point
    (none where empty), and ``refs`` rows are drawn as single black markers. Points below
    ``ylim[0]`` (in %) are left out (the caller names them). ``vlines[x] = (value, label)``
    draws a dotted vertical line in the panel of ``x``. One legend, under the panels.

    ``colors[method]`` fixes a method's colour (so that it is the same in every figure;
    others get the next free colour of ``tab10``/``tab20``). The reference markers are
    drawn above the lines. With ``gap`` (a fraction), a segment between two consecutive
    points whose mean accuracies differ by more than ``gap`` is drawn thin and dashed: no
    network was measured along it.
    """
    if "point" not in front:
        front = front.assign(point="")
    if ylim is not None:
        front = front[100 * front["test_accuracy_mean"] >= ylim[0]]
    fig = Figure(figsize=(5.5 * len(xs), 4.2))
    axes = fig.subplots(1, len(xs), sharey=True, squeeze=False)
    # one colour per method in every panel (a panel may leave a method out)
    methods = list(dict.fromkeys(front["method"]))
    fixed = dict(colors or {})
    free = [m for m in methods if m not in fixed]
    palette = "tab10" if len(free) <= 10 else "tab20"
    colors = {**{m: colormaps[palette](i) for i, m in enumerate(free)}, **fixed}
    dashed = False
    for ax, (x, label) in zip(axes[0], xs.items(), strict=True):
        for method, g in front.groupby("method", sort=False):
            g = g.dropna(subset=[f"{x}_mean"])
            if g.empty:
                continue
            px, py = g[f"{x}_mean"].to_numpy(float), 100 * g["test_accuracy_mean"].to_numpy(float)
            ax.errorbar(
                px,
                py,
                xerr=g[f"{x}_std"],
                yerr=100 * g["test_accuracy_std"],
                marker="o",
                ms=4,
                capsize=2,
                ls="none",
                color=colors[method],
            )
            ax.plot([], [], marker="o", ms=4, color=colors[method], label=method)
            jump = np.abs(np.diff(py)) > (100 * gap if gap is not None else np.inf)
            for i in range(len(py) - 1):
                seg = ([px[i], px[i + 1]], [py[i], py[i + 1]])
                if jump[i]:
                    ax.plot(*seg, color=colors[method], ls=(0, (3, 3)), lw=0.7, alpha=0.7)
                    dashed = True
                else:
                    ax.plot(*seg, color=colors[method], lw=1.5)
            for r in g[g["point"] != ""].to_dict("records"):
                xy = (r[f"{x}_mean"], 100 * r["test_accuracy_mean"])
                ax.annotate(r["point"], xy, fontsize=7, alpha=0.8)
        for r, marker in zip(refs.to_dict("records"), "*Dsv^", strict=False):
            ax.plot(
                r[f"{x}_mean"],
                100 * r["test_accuracy_mean"],
                "k" + marker,
                ms=7,
                label=r["method"],
                zorder=10,
            )
        if vlines and x in vlines:
            value, text = vlines[x]
            ax.axvline(value, color="gray", ls=":", lw=1, label=text)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        if ylim is not None:
            ax.set_ylim(*ylim)
    axes[0, 0].set_ylabel("test accuracy (%)")
    legend: dict = {}
    for ax in axes[0]:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(text, handle)
    if dashed:
        (handle,) = axes[0, 0].plot([], [], color="gray", ls=(0, (3, 3)), lw=0.7)
        legend[f"jump of more than {100 * gap:g} points (nothing measured between)"] = handle
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title)
    save_figure(fig, path)
