"""The figures of one run: learning curves, units kept per layer, input features kept.

Each function draws on a :class:`matplotlib.figure.Figure` (no pyplot, no backend) and
saves it atomically with :func:`regexp.outputs.files.save_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from regexp.outputs.files import save_figure


def plot_learning_curves(history: pd.DataFrame, path: Path) -> None:
    """Save :func:`learning_curves_figure` of ``history`` as ``path``."""
    save_figure(learning_curves_figure(history), path, tight=False)


def learning_curves_figure(history: pd.DataFrame) -> Figure:
    """Training loss (data loss and total) against validation loss, per epoch (log scale:
    non-finite and non-positive losses are left out of the drawing)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
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
    return fig


def plot_sparsity(layers: pd.DataFrame, path: Path) -> None:
    """Stacked bars of kept and removed units per layer (``sparsity.csv``)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
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
        fig = Figure(figsize=(4, 4))
        ax = fig.subplots()
        im = ax.imshow(alive.reshape(image_shape).astype(float), cmap="gray", vmin=0, vmax=1)
        if alive.dtype != bool:
            fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title}: {n_kept}/{alive.size} pixels")
    else:
        heights = np.ones(len(names)) if importance is None else importance
        colors = np.where(alive.astype(bool), "tab:blue", "tab:red")
        fig = Figure(figsize=(max(4, 0.3 * len(names)), 4))
        ax = fig.subplots()
        ax.bar(range(len(names)), heights, color=colors)
        removed = np.flatnonzero(~alive.astype(bool))
        ax.scatter(removed, np.zeros(len(removed)), marker="x", color="tab:red", zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_ylabel("‖outgoing weights‖₂" if importance is not None else "kept")
        ax.set_title(f"{title}: {n_kept}/{alive.size} (red ×: removed)")
    # Rotated feature names need the cropping; the pixel map fits the default margins.
    save_figure(fig, path, tight=image_shape is None)
