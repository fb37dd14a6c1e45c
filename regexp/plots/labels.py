"""λ labels on scatter points: nearby points share a label, and labels dodge each other.

:func:`label_points` writes a label per cluster of nearby points; once the figure is laid
out, :func:`declutter` moves each label to a free spot near its point (inside the axes,
over no marker and no other label), with a thin leader line when it had to go far; the
labels that find no such spot are placed by adjustText (``adjust_text``), kept inside the
axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.text import Annotation, Text

from regexp.plots.style import short_number

# Points closer than this (as a fraction of both axes) share one label.
LABEL_MERGE = 0.04
# Where a label may go, in points from its point (tried in order): right, left, above,
# below, then further away in steps of 9 points (with a leader line beyond 12 points).
SPOTS = ((7, 3, "left"), (-7, 3, "right"), (0, 7, "center"), (0, -13, "center"))
SPOTS += tuple(
    spot
    for k in range(1, 6)
    for spot in (
        (7, 3 + 9 * k, "left"),
        (-7, 3 + 9 * k, "right"),
        (7, 3 - 9 * k, "left"),
        (-7, 3 - 9 * k, "right"),
        (7 + 9 * k, 3, "left"),
        (-7 - 9 * k, 3, "right"),
    )
)


def clusters(px: np.ndarray, py: np.ndarray, within: float = LABEL_MERGE) -> list[list[int]]:
    """Greedy groups of point indices: a point joins the first group whose first point is
    closer than ``within`` on both coordinates (``px``, ``py`` in axes fractions)."""
    groups: list[list[int]] = []
    for i in np.lexsort((py, px)):
        for group in groups:
            j = group[0]
            if abs(px[i] - px[j]) < within and abs(py[i] - py[j]) < within:
                group.append(int(i))
                break
        else:
            groups.append([int(i)])
    return groups


def label_points(
    ax: Axes, x: pd.Series, y: pd.Series, lambdas: pd.Series, colors: Sequence
) -> None:
    """Label each cluster (:func:`clusters`) of points ``(x, y)`` with its sorted distinct
    λ values in short form (``1e-4, 1e-3``), in the points' colour (black when they have
    several). Call after the axes limits are final."""
    if not len(x):
        return
    x, y, lambdas = (np.asarray(v, dtype=float) for v in (x, y, lambdas))
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    px, py = (x - x0) / ((x1 - x0) or 1), (y - y0) / ((y1 - y0) or 1)
    for group in clusters(px, py):
        text = ", ".join(short_number(v) for v in sorted(set(lambdas[group])))
        shades = {str(colors[i]) for i in group}
        color = colors[group[0]] if len(shades) == 1 else "black"
        right = px[group[0]] > 0.7
        ax.annotate(
            text,
            (x[group[0]], y[group[0]]),
            xytext=SPOTS[1][:2] if right else SPOTS[0][:2],
            textcoords="offset points",
            ha="right" if right else "left",
            fontsize=7,
            color=color,
            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.5, "shrinkB": 4},
        )


def declutter(ax: Axes) -> None:
    """Move each label of ``ax`` to the first of ``SPOTS`` (its own side first) where it
    stays inside the axes and overlaps no marker and no label placed before it; it keeps
    its side when none is free. The figure must have been drawn (laid out) before."""
    fig = ax.get_figure()
    renderer = fig.canvas.get_renderer()
    centres, radius = _markers(ax)
    frame = ax.get_window_extent(renderer)
    placed: list = []
    crowded = []
    for text in [t for t in ax.texts if isinstance(t, Annotation)]:
        own = SPOTS[1] if text.get_ha() == "right" else SPOTS[0]
        for spot in (own, *SPOTS, own):  # the last try puts it back on its own side
            text.xyann = spot[:2]
            text.set_ha(spot[2])
            text.update_positions(renderer)
            box = Text.get_window_extent(text, renderer)  # the text alone, without its line
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1
            inside &= frame.y0 <= box.y0 and box.y1 <= frame.y1
            near = (np.abs(centres[:, 0] - np.clip(centres[:, 0], box.x0, box.x1)) < radius) & (
                np.abs(centres[:, 1] - np.clip(centres[:, 1], box.y0, box.y1)) < radius
            )
            if inside and not near.any() and not any(box.overlaps(o) for o in placed):
                break
        else:
            crowded.append(text)
        if text.arrow_patch is not None:
            text.arrow_patch.set_visible(max(abs(v) for v in text.xyann) > 12)
        placed.append(box)
    if crowded:
        _adjust(ax, crowded)


def _markers(ax: Axes) -> tuple[np.ndarray, np.ndarray]:
    """The display coordinates of every marker of ``ax`` and the half-width that a label
    keeps away from each: ``max(7, √s / 2 + 1.5)`` points for a marker of area ``s`` pt²
    (7 points: a marker of up to 130 pt² and a margin; a large star keeps labels further)."""
    fig = ax.get_figure()
    centres, radii = [], []
    for collection in ax.collections:
        offsets = collection.get_offsets()
        if not len(offsets):
            continue
        sizes = np.asarray(collection.get_sizes(), dtype=float)
        sizes = np.resize(sizes, len(offsets)) if sizes.size else np.zeros(len(offsets))
        centres.append(ax.transData.transform(offsets))
        radii.append(np.maximum(7.0, np.sqrt(sizes) / 2 + 1.5) * fig.dpi / 72)
    if not centres:
        return np.empty((0, 2)), np.empty(0)
    return np.vstack(centres), np.concatenate(radii)


def _adjust(ax: Axes, texts: list[Annotation]) -> None:
    """adjustText's placement of ``texts``, away from every marker and other label of
    ``ax`` (each with a leader line to its point), then moved back inside the axes where
    it left them."""
    from adjustText import adjust_text

    renderer = ax.get_figure().canvas.get_renderer()
    to_data = ax.transData.inverted()
    offsets = [c.get_offsets() for c in ax.collections if len(c.get_offsets())]
    points = np.vstack(offsets) if offsets else np.empty((0, 2))
    points = points[np.isfinite(points).all(axis=1)]
    targets = np.array([t.xy for t in texts], dtype=float)
    for text in texts:  # adjustText moves texts in data coordinates
        box = Text.get_window_extent(text, renderer)
        text.set_anncoords("data")
        text.xyann = tuple(to_data.transform(((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)))
        text.set_ha("center")
        text.set_va("center")
        if text.arrow_patch is not None:
            text.arrow_patch.set_visible(True)
    others = [t for t in ax.texts if t not in texts]
    with suppress(ValueError):  # a degenerate layout (e.g. one point): the labels stay put
        adjust_text(texts, x=points[:, 0], y=points[:, 1], objects=others or None, ax=ax,
                    target_x=targets[:, 0], target_y=targets[:, 1], ensure_inside_axes=True,
                    expand_axes=False, time_lim=1)  # fmt: skip
    frame = ax.get_window_extent(renderer)
    for text in texts:  # inside the axes, whatever adjustText did
        text.update_positions(renderer)
        box = Text.get_window_extent(text, renderer)
        dx = max(frame.x0 - box.x0, 0) - max(box.x1 - frame.x1, 0)
        dy = max(frame.y0 - box.y0, 0) - max(box.y1 - frame.y1, 0)
        if dx or dy:
            at = ax.transData.transform(text.xyann)
            text.xyann = tuple(to_data.transform((at[0] + dx, at[1] + dy)))
