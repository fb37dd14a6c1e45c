"""The numbers behind the reproduction's matched comparisons, from runs and baselines.

:func:`points` gathers one row per (method, seed, λ or pruning level): test accuracy and
kept inputs, hidden neurons and parameters, for the runs and the baselines alike.
:class:`Matched` reads every method's per-seed front at common targets (see
:mod:`regexp.reproduction.matched`): the accuracy at a number of parameters or inputs kept, and
the units kept at an accuracy level.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from regexp.reproduction import matched
from regexp.reproduction.baselines import FINETUNED_FILE, LASSONET_FILE, PRUNING_FILE
from regexp.reproduction.matched import Interval

log = logging.getLogger(__name__)

COLUMNS = [
    "method",
    "seed",
    "lambda",
    "val_accuracy",
    "test_accuracy",
    "kept_input",
    "kept_hidden",
    "params_kept",
]
AXES = {
    "kept_input": "inputs kept",
    "kept_hidden": "hidden neurons kept",
    "params_kept": "parameters kept",
}
# Baseline methods, as named in read_baselines() and labelled in documents.
BASELINES = {
    "prune-all": "pruning by ‖W_j‖, all layers",
    "prune-all+ft": "pruning by ‖W_j‖, all layers, fine-tuned",
    "prune-inputs": "pruning by ‖W_j‖, inputs only",
    "prune-inputs+ft": "pruning by ‖W_j‖, inputs only, fine-tuned",
    "prune-all-std": "pruning by ‖W_j‖·std(x_j), all layers",
    "prune-all-std+ft": "pruning by ‖W_j‖·std(x_j), all layers, fine-tuned",
    "prune-inputs-std": "pruning by ‖W_j‖·std(x_j), inputs only",
    "prune-inputs-std+ft": "pruning by ‖W_j‖·std(x_j), inputs only, fine-tuned",
    "sgl+ft": "SGL, fine-tuned as pruning is",
    "lassonet": "LassoNet, its path's networks",
    "lassonet-refit": "LassoNet, selection refitted",
}
# Which axes a baseline's (or an input-only method's) front says something about: pruning
# the inputs alone leaves the hidden layers dense, LassoNet's path networks are its own
# (inputs only), and GL or SGL on the input layer alone keep every hidden neuron at every λ
# (one x on that axis: no front; the first axis is the one they are made sparse along in
# regexp.reproduction.operating).
BASELINE_AXES = {
    "group_lasso/input": ("params_kept", "kept_input"),
    "sgl/input": ("params_kept", "kept_input"),
    "prune-inputs": ("kept_input",),
    "prune-inputs+ft": ("kept_input",),
    "prune-inputs-std": ("kept_input",),
    "prune-inputs-std+ft": ("kept_input",),
    "lassonet": ("kept_input",),
    "lassonet-refit": ("kept_input",),
}


def run_points(runs: pd.DataFrame) -> pd.DataFrame:
    """The ok runs of :func:`regexp.reproduction.protocol.add_details` as :data:`COLUMNS` rows."""
    ok = runs[runs["status"] == "ok"]
    return ok[COLUMNS].astype({c: float for c in COLUMNS[2:]}).reset_index(drop=True)


def read_baselines(
    folder: Path, dataset: str = "digits"
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Baseline rows of ``dataset`` as :data:`COLUMNS` plus ``inputs`` (``lambda`` holds the
    pruning fraction or LassoNet's λ) and the raw pruning and LassoNet tables (``None``
    where a file is missing)."""
    frames, raw = [], {}
    for name in (PRUNING_FILE, LASSONET_FILE, FINETUNED_FILE):
        path = Path(folder) / name
        table = pd.read_csv(path, keep_default_na=False, na_values=[""]) if path.is_file() else None
        if table is not None and "dataset" not in table:
            log.warning("%s has no dataset column (an older regexp wrote it): left out", path)
            table = None
        if table is not None:
            table = table[table["dataset"] == dataset].reset_index(drop=True)
        raw[name] = table if table is not None and len(table) else None
    prune = raw[PRUNING_FILE]
    if prune is not None:
        ft = np.where(prune["finetune_epochs"] > 0, "+ft", "")
        std = np.where(prune["criterion"] == "norm·std", "-std", "")
        method = "prune-" + prune["schedule"] + std + ft
        frames.append(prune.assign(method=method, **{"lambda": prune["fraction"]}))
    tuned = raw[FINETUNED_FILE]
    if tuned is not None:
        frames.append(tuned[tuned["regularizer"] == "sgl"].assign(method="sgl+ft"))
    lasso = raw[LASSONET_FILE]
    if lasso is not None:
        method = np.where(lasso["reading"] == "refit", "lassonet-refit", "lassonet")
        frames.append(lasso.assign(method=method, kept_hidden=math.nan, params_kept=math.nan))
    cols = [*COLUMNS, "inputs"]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return rows.reindex(columns=cols), prune, lasso


def restrict(points: pd.DataFrame) -> pd.DataFrame:
    """Blank (NaN) the axes a baseline or an input-only method says nothing about
    (:data:`BASELINE_AXES`)."""
    out = points.copy()
    for method, axes in BASELINE_AXES.items():
        rows = out["method"] == method
        for axis in AXES:
            if axis not in axes:
                out.loc[rows, axis] = math.nan
    return out


@dataclass
class Matched:
    """Every method's fronts read at common targets, per seed.

    ``at_x[axis]``: :func:`regexp.reproduction.matched.per_seed` tables of the accuracy at the
    ``x_targets[axis]`` values of ``axis`` kept; ``at_level[axis]``: of ``axis`` kept at each
    accuracy in ``levels``.
    """

    points: pd.DataFrame
    x_targets: Mapping[str, Sequence[float]]
    levels: Sequence[float]
    gap: float | None = matched.GAP
    at_x: dict[str, pd.DataFrame] = field(default_factory=dict)
    at_level: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pts = restrict(self.points)
        for axis, targets in self.x_targets.items():
            sel = pts.dropna(subset=[axis, "test_accuracy"])
            self.at_x[axis] = matched.per_seed(
                sel, axis, "test_accuracy", targets, "value", self.gap
            )
        for axis in AXES:
            sel = pts.dropna(subset=[axis, "test_accuracy"])
            self.at_level[axis] = matched.per_seed(
                sel, axis, "test_accuracy", list(self.levels), "level", self.gap
            )

    def accuracy(self, axis: str, a: str, b: str, target: float) -> tuple[Interval, float, float]:
        """Paired interval of ``a − b`` accuracy at ``target`` units of ``axis`` kept, and the
        two means over the paired seeds."""
        t = self.at_x[axis]
        return matched.compare(t, a, b, target), *self._means(t, (a, b), target)

    def kept(self, axis: str, a: str, b: str, level: float) -> tuple[Interval, float, float]:
        """Paired interval of ``b − a`` units of ``axis`` kept at accuracy ``level`` (how many
        more ``a`` removes), and the two mean kept counts over the paired seeds."""
        t = self.at_level[axis]
        return matched.compare(t, b, a, level), *self._means(t, (a, b), level)

    @staticmethod
    def _means(table: pd.DataFrame, methods: Sequence[str], target: float) -> list[float]:
        """The methods' means over the seeds where all of them have a value (those of the
        paired difference; each method's own mean where no seed is shared)."""
        at = table[np.isclose(table["target"], target)]
        return matched.paired_means(
            *(at.loc[at["method"] == m].set_index("seed")["value"] for m in methods)
        )

    def cell(self, kind: str, axis: str, method: str, target: float, scale: float = 1.0) -> str:
        """:func:`censored_cell` of ``method``'s readings at ``target``, or ``–`` for a
        method without that front."""
        table = (self.at_x if kind == "x" else self.at_level).get(axis)
        if table is None:
            return "–"
        rows = table[(table["method"] == method) & np.isclose(table["target"], target)]
        if rows.empty:
            return "–"
        return censored_cell(rows, scale)

    def n_seeds(self) -> int:
        return int(self.points["seed"].nunique())


def censored_cell(rows: pd.DataFrame, scale: float = 1.0) -> str:
    """Per-seed readings (``value``, ``mark``, ``bound`` of
    :func:`regexp.reproduction.matched.per_seed`) as one table cell.

    The measured and interpolated values: ``mean ± std`` (std with two or more), then
    ``(n = k of N; …)`` naming how the other seeds were read when some were left out.
    With no value: ``≤ b`` (the mean of the upper bounds) when every seed gives one, else
    the marks (``grid ends``, ``gap``, ``ambiguous``, ``not reached``) with their counts.
    """
    digits = 2 if scale == 100 else 1
    v = rows["value"].dropna()
    left = rows[rows["value"].isna()]
    counts = left["mark"].value_counts()
    others = ", ".join(f"{c} {m}" for m, c in counts.items())
    if v.empty:
        if len(counts) == 1 and counts.index[0] == "≤":
            return f"≤ {scale * left['bound'].mean():.{digits}f}"
        return others if len(counts) > 1 else str(counts.index[0])
    text = f"{scale * v.mean():.{digits}f}"
    if len(v) > 1:
        text += f" ± {scale * v.std(ddof=1):.{digits}f}"
    if len(left):
        text += f" (n = {len(v)} of {len(rows)}; {others})"
    return text


def mean_front(points: pd.DataFrame, by: Sequence[str] = ("method", "lambda")) -> pd.DataFrame:
    """Mean and std over seeds of accuracy and kept counts per ``by`` group, as
    :func:`regexp.reproduction.figures.plot_front` draws them: methods in first-seen order, then
    by λ (or pruning fraction), so that a line joins the points in λ order."""
    cols = ["test_accuracy", *AXES]
    g = points.groupby(list(by), sort=False)[cols]
    out = g.mean().add_suffix("_mean").join(g.std().add_suffix("_std")).reset_index()
    out = out.assign(n=g.size().to_numpy())
    first = {m: i for i, m in enumerate(dict.fromkeys(out[by[0]]))}  # methods as first seen
    return out.sort_values(list(by), key=lambda c: c.map(first) if c.name == by[0] else c)


def interpolated_front(points: pd.DataFrame, method: str, axis: str, grid: Sequence[float]):
    """Mean ± std over seeds of ``method``'s accuracy interpolated at each ``grid`` value of
    ``axis`` (for fronts whose λ differ between seeds, such as LassoNet's path)."""
    sel = points[points["method"] == method].dropna(subset=[axis])
    table = matched.per_seed(sel, axis, "test_accuracy", list(grid), "value")
    s = matched.summary(table)
    s = s[s["n"] > 0]
    return pd.DataFrame(
        {
            "method": method,
            f"{axis}_mean": s["target"].to_numpy(),
            f"{axis}_std": 0.0,
            "test_accuracy_mean": s["mean"].to_numpy(),
            "test_accuracy_std": s["std"].to_numpy(),
        }
    )


def lambda_at(points: pd.DataFrame, method: str, axis: str, target: float) -> float:
    """λ at which ``method``'s mean front (over seeds) reaches ``target`` units of ``axis``
    kept, interpolating ``log10 λ`` linearly in ``axis`` (NaN outside the front)."""
    front = mean_front(points[points["method"] == method])
    front = front[front["lambda"] > 0]
    logs = matched.value_at(front[f"{axis}_mean"], np.log10(front["lambda"]), [target])[0]
    return float(10**logs) if math.isfinite(logs) else math.nan
