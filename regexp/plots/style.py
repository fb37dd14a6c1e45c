"""Shared pieces of the figures: short λ labels, series styles, λ axes, clipped error bars.

A series (a regularizer, or a combination of varying config columns) keeps one style in
every panel and figure: each regularizer has a fixed colour and marker
(:data:`REGULARIZER_STYLES`), the same in every figure whatever else the sweep holds, and
its variants (modes, architectures, ...) differ by line style; series without a
regularizer get a distinct (colour, marker, line style) each (:func:`series_styles`).
Lines against λ are shifted sideways by a few points each (a display offset: their data
stay the exact λ values), so that equal curves do not hide each other. Error
bars of bounded metrics (fractions, accuracy, R² ≤ 1) are clipped to the valid range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import PurePath

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import LogLocator, NullFormatter, NullLocator
from matplotlib.transforms import ScaledTranslation

# 7 markers, 4 line styles and 10 or 20 colours: the (colour, marker, line style) triples
# of series 0..139 are all distinct. "v" is left out: it marks points below a view.
MARKERS = ("o", "s", "^", "D", "P", "X", "h")
LINESTYLES = ("-", "--", ":", "-.")
_NUMBER_LIKE = re.compile(r"[-+.\deE]*|nan|None")
_TAB10 = mpl.colormaps["tab10"].colors
# (colour, marker, line style) of each regularizer, fixed across all panels and figures.
REGULARIZER_STYLES = {
    "l1": (_TAB10[0], "o", "-"),
    "l2": (_TAB10[1], "s", "--"),
    "group_lasso": (_TAB10[2], "^", ":"),
    "sgl": (_TAB10[3], "D", "-."),
    "elastic_net": (_TAB10[4], "P", "-"),
    "weight_decay": (_TAB10[5], "X", "--"),
    "norm": (_TAB10[6], "h", ":"),
    "none": (_TAB10[7], "o", "-."),
}
# Columns whose values are paths or hashes: a legend shows a short name instead.
PATH_COLUMNS = ("source", "dataset.path")
HASH_COLUMNS = ("data_id", "config_id")


def short_number(x: float) -> str:
    """A λ-style short form: ``1e-3``, ``2.5e-4``, ``0``, ``0.5``, ``10``.

    At most 3 significant digits: scientific outside [0.1, 1000), ``%g`` inside.
    """
    x = float(x)
    if x == 0 or not math.isfinite(x) or 0.1 <= abs(x) < 1000:
        return f"{x:.3g}"
    return np.format_float_scientific(x, precision=2, trim="-", exp_digits=1)


def bounds(column: str) -> tuple[float, float]:
    """The valid range of a metric: [0, 1] for accuracy and fractions, (−∞, 1] for R²."""
    if "accuracy" in column or "sparsity" in column or "fraction" in column:
        return 0.0, 1.0
    if "r2" in column or column == "test_metric":
        return -np.inf, 1.0
    return -np.inf, np.inf


def clipped_yerr(mean: np.ndarray, std: np.ndarray, low: float, high: float) -> np.ndarray:
    """Asymmetric error bars ``[below; above]`` of ``mean ± std`` clipped to [low, high]:
    ``below = min(std, mean − low)``, ``above = min(std, high − mean)`` (never < 0)."""
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    below = np.maximum(np.minimum(std, mean - low), 0.0)
    above = np.maximum(np.minimum(std, high - mean), 0.0)
    return np.vstack([below, above])


def series_columns(summary: pd.DataFrame, series: Sequence[str]) -> list[str]:
    """The ``series`` columns that name a series: ``regularizer``, and others that vary."""
    return [
        c
        for c in series
        if c in summary.columns and (c == "regularizer" or summary[c].nunique(dropna=False) > 1)
    ]


def split_series(rows: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """``(label, rows sorted by lambda)`` per distinct value of ``columns``.

    Labels join the values (``sgl proximal``), with ``column=value`` for numbers and
    number-like text (``hidden=40-20``), whose column would be a guess.
    """
    if not columns:
        return [("", rows.sort_values("lambda"))]
    out = []
    for key, group in rows.groupby(list(columns), dropna=False, sort=True):
        pairs = zip(columns, key, strict=True)
        parts = [display(c, v) for c, v in pairs]
        out.append((" ".join(p for p in parts if p), group.sort_values("lambda")))
    return out


# What tells data sets of one name apart; figures name them by the file instead.
DATASET_SOURCES = ("dataset.path", "data_id")


def named_datasets(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with each CSV data set (``dataset == "csv"``) named by its file's stem
    (``dataset.path`` ``data/pima.csv`` → ``pima``), so that two CSV files get two
    panels under their own names; other rows are left as they are."""
    if "dataset" not in results.columns or "dataset.path" not in results.columns:
        return results
    csv = results["dataset"].eq("csv") & results["dataset.path"].notna()
    if not csv.any():
        return results
    out = results.copy()
    out.loc[csv, "dataset"] = [display("dataset.path", p) for p in out.loc[csv, "dataset.path"]]
    return out


def display(column: str, value: object) -> str:
    """A legend's name for ``value`` of ``column``: a path by its file's stem (a
    ``results.csv``/``metrics.csv`` by its folder), a hash by its first 8 digits after
    ``column=``, a number (or number-like text) as ``column=value``, else the value."""
    text = str(value)
    if column in PATH_COLUMNS:
        path = PurePath(text.rstrip("/"))
        return path.parent.name if path.name in ("results.csv", "metrics.csv") else path.stem
    if column in HASH_COLUMNS:
        return f"{column.removesuffix('_id')}={text.rpartition(':')[2][:8]}"
    return f"{column}={text}" if _NUMBER_LIKE.fullmatch(text) else text


def legend_height(n: int) -> float:
    """The height in inches that a figure needs beside a legend of ``n`` entries."""
    return 1.6 + 0.2 * n


def series_styles(labels: Sequence[str]) -> dict[str, dict]:
    """``{label: {"color", "marker", "linestyle"}}``, a distinct triple per label.

    Colours from tab10 (tab20, dark shades first, beyond 10 series), markers from
    ``MARKERS`` and line styles from ``LINESTYLES``, each cycled with the series index.
    """
    if len(labels) <= 10:
        colors = list(mpl.colormaps["tab10"].colors)
    else:
        tab20 = mpl.colormaps["tab20"].colors
        colors = [*tab20[0::2], *tab20[1::2]]
    return {
        label: {
            "color": colors[i % len(colors)],
            "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)],
        }
        for i, label in enumerate(labels)
    }


def summary_styles(
    summary: pd.DataFrame, series: Sequence[str]
) -> tuple[list[str], dict[str, dict]]:
    """The series columns of ``summary`` and the style of each of its series: by
    :func:`regularizer_styles` when the series have a regularizer, else
    :func:`series_styles`."""
    columns = series_columns(summary, series)
    found = split_series(summary, columns)
    if "regularizer" in columns:
        at = columns.index("regularizer")
        names = [str(g[columns].iloc[0, at]) for _, g in found]
        return columns, regularizer_styles([label for label, _ in found], names)
    return columns, series_styles([label for label, _ in found])


def regularizer_styles(labels: Sequence[str], regularizers: Sequence[str]) -> dict[str, dict]:
    """``{label: style}`` where each label's regularizer fixes its colour, marker and line
    style (:data:`REGULARIZER_STYLES`; others take further tab20 colours and markers); the
    k-th variant of a regularizer (k = 0, 1, ...) takes the k-th line style after its own
    and, from the fifth on, the next marker, so that every (colour, marker, line style)
    differs."""
    fixed = dict(REGULARIZER_STYLES)
    spare = iter(range(len(fixed), 10_000))
    seen: dict[str, int] = {}
    out = {}
    for label, name in zip(labels, regularizers, strict=True):
        if name not in fixed:
            i = next(spare)
            color = mpl.colormaps["tab20"].colors[i % 20]
            fixed[name] = (color, MARKERS[i % len(MARKERS)], LINESTYLES[i % len(LINESTYLES)])
        color, marker, line = fixed[name]
        k = seen[name] = seen.get(name, -1) + 1
        if k >= len(LINESTYLES):
            marker = MARKERS[(MARKERS.index(marker) + k // len(LINESTYLES)) % len(MARKERS)]
        line = LINESTYLES[(LINESTYLES.index(line) + k) % len(LINESTYLES)]
        out[label] = {"color": color, "marker": marker, "linestyle": line}
    return out


def lambda_axis(ax: Axes, lambdas: pd.Series) -> None:
    """Log λ axis (symlog, linear near 0, when λ = 0 is among the values).

    Up to 8 λ values that lie at least 1/8 of the axis apart are ticked and labelled in
    short form (``1e-3``); otherwise decades are, at most 6 of them.
    """
    values = np.unique(lambdas.dropna().to_numpy(dtype=float))
    positive = values[values > 0]
    if not len(positive):
        ax.set_xlabel("λ")
        return
    has_zero = bool((values == 0).any())
    if has_zero:
        ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.set_xlabel(f"λ (log scale; linear below {short_number(positive.min())})")
    else:
        ax.set_xscale("log")
        ax.set_xlabel("λ (log scale)")
    where = np.log10(positive)
    if has_zero:  # symlog draws 0 one decade below the smallest λ
        where = np.concatenate([[where[0] - 1], where])
    span = where[-1] - where[0]
    if len(where) == 1 or (len(where) <= 8 and np.diff(where).min() >= span / 8):
        ax.set_xticks(values, [short_number(v) for v in values])
        ax.xaxis.set_minor_locator(NullLocator())
    elif not has_zero:
        ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
        ax.xaxis.set_minor_formatter(NullFormatter())


def spread_text(summary: pd.DataFrame) -> str:
    """``"mean ± std over 3 seeds"``, or for a single seed per point ``"one seed per
    point (no spread to show)"``."""
    ok = summary["n_ok"] if "n_ok" in summary.columns else pd.Series(dtype=float)
    if (ok > 0).any() and ok[ok > 0].max() == 1:
        return "one seed per point (no spread to show)"
    return f"mean ± std over {seeds_text(summary)}"


def seeds_text(summary: pd.DataFrame) -> str:
    """``"2 seeds"`` (or ``"1–3 seeds"``): the ok jobs averaged per point (``n_ok``)."""
    if "n_ok" not in summary.columns or not (summary["n_ok"] > 0).any():
        return "no successful runs"
    n = summary.loc[summary["n_ok"] > 0, "n_ok"].astype(int)
    count = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    return f"{count} seed{'s' if n.max() > 1 else ''}"


def per_text(columns: Sequence[str], what: str) -> str:
    """``"a line per regularizer and hidden"``, or ``"one line"``."""
    return f"a {what} per {' and '.join(columns)}" if columns else f"one {what}"


def outside_legend(
    axes: Sequence[Axes], handles: Sequence | None = None, title: str | None = None
) -> None:
    """One legend for all ``axes`` (labels deduplicated), outside the first row's last
    panel on the right: constrained layout makes room for it, below the figure title.

    ``handles``: the legend's handles (default: the labelled artists of ``axes``).
    """
    if handles is None:
        found: dict[str, object] = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                found.setdefault(label, handle)
        labels, handles = list(found), list(found.values())
    else:
        labels = [h.get_label() for h in handles]
    if not handles:
        return
    top = [ax for ax in axes if ax.get_subplotspec().rowspan.start == 0]
    anchor = max(top, key=lambda ax: ax.get_subplotspec().colspan.stop)
    anchor.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        borderaxespad=0,
        title=title,
        fontsize=8,
    )


def sideways(ax: Axes, index: int, n: int) -> ScaledTranslation:
    """A display shift of series ``index`` of ``n``: centred, 4 points apart, ≤ ±12 points."""
    step = min(4.0, 24.0 / max(n, 1))
    return ScaledTranslation((index - (n - 1) / 2) * step / 72, 0, ax.figure.dpi_scale_trans)


def errorbars(
    ax: Axes, rows: pd.DataFrame, columns: Sequence[str], column: str, styles: dict
) -> None:
    """``<column>_mean`` ± ``<column>_std`` (clipped to :func:`bounds`) against λ, a line per
    series of ``styles``, each shifted by :func:`sideways`."""
    low, high = bounds(column)
    labels = list(styles)
    for label, line in split_series(rows, columns):
        mean = line[f"{column}_mean"].to_numpy(dtype=float)
        yerr = clipped_yerr(mean, line[f"{column}_std"].to_numpy(dtype=float), low, high)
        bars = ax.errorbar(
            line["lambda"], mean, yerr=yerr, capsize=3, alpha=0.85, label=label, **styles[label]
        )
        shift = sideways(ax, labels.index(label), len(labels))
        for artist in bars.get_children():
            artist.set_transform(artist.get_transform() + shift)
