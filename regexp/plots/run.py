"""The figures of one run: learning curves, units kept per layer, input features kept.

Each ``*_figure`` function builds a :class:`matplotlib.figure.Figure` with constrained
layout (no pyplot, no backend) and the matching ``plot_*`` saves it atomically with
:func:`regexp.io.atomic.save_figure`. ``title`` is the run's identity
(:func:`run_title`), shown under the figure's name. Kept units are blue and removed ones
red in every figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogFormatter, MaxNLocator

from regexp.core.regularizers import option_names
from regexp.io.atomic import save_figure
from regexp.plots.style import outside_legend, short_number

KEPT_COLOR, REMOVED_COLOR = "tab:blue", "tab:red"
# The bar chart of input features draws at most this many (the largest outgoing-weight
# norms): one bar and label per column of a 20 000-column CSV took minutes and gigabytes.
MAX_FEATURES = 100


def run_title(row: Mapping) -> str:
    """The identity of a run from its ``metrics.csv`` row.

    ``"digits, sgl (penalty), λ = 1e-3, seed 0"``; the options of the regularizer's class
    (:func:`regexp.core.regularizers.option_names`: ``l1_ratio``, ``p``) join the mode, and
    a run whose ``status`` is not ``ok`` says so at the end.
    """
    mode = [str(row["mode"])] if _present(row.get("mode")) else []
    options = option_names(str(row.get("regularizer")))
    mode += [f"{k}={_option(row[k])}" for k in options if _present(row.get(k))]
    parts = [str(row.get("dataset", "?"))]
    parts.append(f"{row.get('regularizer', '?')}" + (f" ({', '.join(mode)})" if mode else ""))
    if _present(row.get("lambda")):
        parts.append(f"λ = {short_number(row['lambda'])}")
    if _present(row.get("seed")):
        parts.append(f"seed {int(row['seed'])}")
    status = row.get("status", "ok")
    return ", ".join(parts) + ("" if status == "ok" else f" [{status}]")


def _option(value: object) -> str:
    """An option's value in a title: a number as ``%g``, anything else as it is."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:g}" if number else str(value)


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


class PlainLogFormatter(LogFormatter):
    """The ticks that :class:`~matplotlib.ticker.LogFormatter` labels, as plain numbers
    (``0.4``, ``2``): clearer than 4×10⁻¹, and mathtext is slow to lay out."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _suptitle(fig: Figure, name: str, title: str) -> None:
    fig.suptitle(f"{name}\n{title}" if title else name)


def plot_learning_curves(history: pd.DataFrame, path: Path, title: str = "") -> None:
    """Save :func:`learning_curves_figure` of ``history`` as ``path``."""
    save_figure(learning_curves_figure(history, title), path, tight=False)


def learning_curves_figure(history: pd.DataFrame, title: str = "") -> Figure:
    """Two panels per epoch: the losses, and the validation metric.

    Left (log scale: non-finite and non-positive losses are left out of the drawing): the
    training data loss, the training loss plus penalty (when the penalty is not 0) and the
    validation loss. Right: ``val_accuracy`` or ``val_r2`` of ``history`` (empty, and says
    so, when it has neither). The loss is the cross-entropy for classification (a
    ``val_accuracy`` column) and the mean squared error of the standardized target for
    regression (``val_r2``).
    """
    fig = Figure(figsize=(9, 4), layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    metric = next((c for c in ("val_accuracy", "val_r2") if c in history.columns), None)
    loss_name = {"val_accuracy": "loss (cross-entropy)", "val_r2": "loss (mean squared error)"}
    loss_title = "Loss (log scale" + ("; standardized target)" if metric == "val_r2" else ")")
    if len(history):
        loss_ax.plot(history["epoch"], history["data_loss"], label="train data loss")
        if (history["penalty"] != 0).any():
            loss_ax.plot(
                history["epoch"], history["train_loss"], "--", label="train loss + penalty"
            )
        loss_ax.plot(history["epoch"], history["val_loss"], label="validation loss")
        loss_ax.set_yscale("log")
        loss_ax.yaxis.set_major_formatter(PlainLogFormatter())
        loss_ax.yaxis.set_minor_formatter(PlainLogFormatter(minor_thresholds=(2, 0.5)))
        loss_ax.legend(fontsize=8, loc="best")
    loss_ax.set_ylabel(loss_name.get(metric, "loss"))
    loss_ax.set_title(loss_title)
    metric_label = {"val_accuracy": "validation accuracy (fraction correct)"}
    metric_label["val_r2"] = "validation R² (1 = perfect, 0 = the mean)"
    if metric is not None:
        metric_ax.plot(history["epoch"], history[metric], color="tab:green", marker=".")
        metric_ax.set_ylabel(metric_label[metric])
        name = metric_label[metric].split(" (")[0]
        metric_ax.set_title(name[:1].upper() + name[1:])  # str.capitalize would lower "R²"
    else:
        metric_ax.text(0.5, 0.5, "no validation metric in history.csv", ha="center")
        metric_ax.set_title("Validation metric")
    for ax in (loss_ax, metric_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _suptitle(fig, "Learning curves", title)
    return fig


def plot_sparsity(layers: pd.DataFrame, path: Path, title: str = "") -> None:
    """Save :func:`sparsity_figure` of ``layers`` as ``path``."""
    save_figure(sparsity_figure(layers, title), path, tight=False)


def sparsity_figure(layers: pd.DataFrame, title: str = "") -> Figure:
    """Stacked bars of kept (``units − removed``) and removed units per layer
    (``sparsity.csv``), each labelled ``kept/units``."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    kept = layers["units"] - layers["removed"]
    ax.bar(layers["layer"], kept, label="kept", color=KEPT_COLOR)
    ax.bar(layers["layer"], layers["removed"], bottom=kept, label="removed", color=REMOVED_COLOR)
    for i, (k, u) in enumerate(zip(kept, layers["units"], strict=True)):
        ax.text(i, u, f"{k}/{u}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, layers["units"].max() * 1.12)
    conv = layers["layer"].str.startswith("conv").any()
    ax.set_xlabel(
        "layer inputs (input: image channels; convK: channels of conv layer K)"
        if conv
        else "layer (input = input features)"
    )
    ax.set_ylabel("units or channels (count)" if conv else "units (count)")
    ax.set_title("kept/units above each bar", fontsize=9)
    outside_legend([ax])
    _suptitle(fig, "Units and channels kept per layer" if conv else "Units kept per layer", title)
    return fig


def plot_channels(channels: Mapping[str, np.ndarray], path: Path, title: str = "") -> None:
    """Save :func:`channels_figure` as ``path``."""
    save_figure(channels_figure(channels, title), path, tight=False)


def channels_figure(channels: Mapping[str, np.ndarray], title: str = "") -> Figure:
    """One panel per layer of a conv net whose units are channels: the L2 norm of each
    channel's group of weights (all weights that read it, ``regexp.core.groupings``), bars
    for the kept channels and a red × at 0 for the removed ones."""
    names = list(channels)
    fig = Figure(figsize=(7, 1.9 + 1.6 * len(names)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(names), 1, squeeze=False)[:, 0])
    for ax, name in zip(axes, names, strict=True):
        norms = np.asarray(channels[name], dtype=float)
        index = np.arange(len(norms))
        kept = norms > 0
        ax.bar(index[kept], norms[kept], color=KEPT_COLOR, label="kept")
        ax.scatter(
            index[~kept],
            np.zeros((~kept).sum()),
            marker="x",
            color=REMOVED_COLOR,
            zorder=3,
            label="removed",
            clip_on=False,
        )
        ax.set_xticks(index)
        ax.set_xlim(-0.6, len(norms) - 0.4)
        ax.set_ylim(0, max(norms.max(), 1e-12) * 1.15)
        ax.set_ylabel("group L2 norm")
        ax.set_title(f"{name}: {int(kept.sum())}/{len(norms)} channels kept", fontsize=9)
    axes[-1].set_xlabel("channel")
    handles = [
        Patch(color=KEPT_COLOR, label="kept"),
        Line2D([], [], marker="x", color=REMOVED_COLOR, linestyle="", label="removed"),
    ]
    outside_legend(list(axes), handles)
    _suptitle(fig, "Channels kept per layer", title)
    return fig


def plot_features(
    alive: np.ndarray,
    names: Sequence[str],
    image_shape: tuple[int, int] | None,
    path: Path,
    importance: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Save :func:`features_figure` as ``path``."""
    fig = features_figure(alive, names, image_shape, importance, title)
    save_figure(fig, path, tight=False)


def features_figure(
    alive: np.ndarray,
    names: Sequence[str],
    image_shape: tuple[int, int] | None,
    importance: np.ndarray | None = None,
    title: str = "",
    max_features: int = MAX_FEATURES,
) -> Figure:
    """Which input features survive.

    With ``image_shape`` (digits): the pixel map, blue where the feature is kept and red
    where it is removed, with a legend; when ``alive`` holds fractions (of runs keeping
    the pixel) a colour bar instead. Otherwise a bar per feature: the norm of its outgoing
    weights ``importance`` (1 if not given), blue when kept, red with a × when removed.
    Of more than ``max_features`` features only the ``max_features`` with the largest
    ``importance`` are drawn (ties: the first columns), in column order, and the title
    counts the rest.
    """
    alive = np.asarray(alive)
    kept = alive.astype(bool)
    n_kept = int(kept.sum())
    if image_shape is not None:
        return _pixel_map(alive, image_shape, title, n_kept)
    heights = np.ones(len(names)) if importance is None else np.asarray(importance, dtype=float)
    shown = np.arange(len(names))
    note = ""
    if len(names) > max_features:
        order = np.argsort(-np.nan_to_num(heights, nan=-np.inf), kind="stable")
        shown = np.sort(order[:max_features])
        rest = np.ones(len(names), dtype=bool)
        rest[shown] = False
        n_rest, rest_kept = int(rest.sum()), int(kept[rest].sum())
        which = "first" if importance is None else "largest norms"
        note = (
            f"; the {len(shown)} {which} shown, {n_rest:,} more not shown "
            f"({rest_kept:,} kept, {n_rest - rest_kept:,} removed)"
        )
    fig = Figure(figsize=(max(6.0, 2.5 + 0.12 * len(shown)), 4.5), layout="constrained")
    ax = fig.subplots()
    colors = np.where(kept[shown], KEPT_COLOR, REMOVED_COLOR)
    ax.bar(range(len(shown)), heights[shown], color=colors)
    removed = np.flatnonzero(~kept[shown])
    ax.scatter(removed, np.zeros(len(removed)), marker="x", color=REMOVED_COLOR, zorder=3)
    ax.set_xticks(
        range(len(shown)),
        [str(names[i]) for i in shown],
        rotation=90,
        fontsize=7 if len(shown) <= 40 else 5,
    )
    ax.set_xlim(-1, len(shown))
    ax.set_xlabel("input feature" + (" (column order)" if note else ""))
    ax.set_ylabel("‖outgoing weights‖₂ (L2 norm)" if importance is not None else "kept")
    ax.set_title(f"{n_kept:,}/{len(names):,} features kept{note}", fontsize=9, wrap=True)
    handles = [
        Patch(color=KEPT_COLOR, label="kept"),
        Line2D([], [], color=REMOVED_COLOR, marker="x", ls="none", label="removed (norm 0)"),
    ]
    outside_legend([ax], handles)
    _suptitle(fig, "Input features kept", title)
    return fig


def _pixel_map(alive: np.ndarray, shape: tuple[int, int], title: str, n_kept: int) -> Figure:
    """The features of an image as its pixel grid: kept/removed, or the fraction kept."""
    fig = Figure(figsize=(5.5, 4.6), layout="constrained")
    ax = fig.subplots()
    rows, cols = shape
    if alive.dtype == bool:
        cmap = ListedColormap([REMOVED_COLOR, KEPT_COLOR])
        ax.imshow(alive.reshape(shape).astype(float), cmap=cmap, vmin=0, vmax=1)
        handles = [
            Patch(color=KEPT_COLOR, label=f"kept ({n_kept})"),
            Patch(color=REMOVED_COLOR, label=f"removed ({alive.size - n_kept})"),
        ]
        outside_legend([ax], handles)
        ax.set_title(f"{n_kept}/{alive.size} pixels kept", fontsize=9)
    else:
        im = ax.imshow(alive.reshape(shape).astype(float), cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, label="fraction of runs keeping the pixel")
        ax.set_title(f"{n_kept}/{alive.size} pixels kept by some run", fontsize=9)
    # White lines between pixels, so that single pixels can be counted.
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("pixel column")
    ax.set_ylabel("pixel row")
    _suptitle(fig, "Input features kept", title)
    return fig
