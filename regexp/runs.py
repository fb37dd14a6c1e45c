"""Finished runs read back from their directories, and their mean ± std over seeds.

Only the files every run writes are read (``metrics.csv``, ``sparsity.csv``), found by a
recursive glob, so any tree of sweep directories works and no sweep-level file is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

# Config columns of metrics.csv that identify a run (its hyperparameters and seed).
KEYS = [
    "dataset",
    "regularizer",
    "mode",
    "lambda",
    "l1_ratio",
    "p",
    "seed",
    "architecture",
    "activation",
    "dropout",
    "optimizer",
    "lr",
    "epochs",
    "batch_size",
    "threshold",
]


def read_runs(root: Path) -> pd.DataFrame:
    """One row per ``metrics.csv`` under ``root``, plus ``run_dir``, ``sweep`` and counts.

    ``sweep`` is the first directory below ``root``. From ``sparsity.csv``, per layer:
    ``units_<layer>`` and ``kept_<layer> = units − removed``; ``kept_hidden`` sums the
    hidden layers.

    Raises
    ------
    ValueError
        If there is no ``metrics.csv`` under ``root``.
    """
    rows = []
    for path in sorted(Path(root).rglob("metrics.csv")):
        frame = pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])
        row = frame.iloc[0].to_dict()
        row |= {"run_dir": path.parent, "sweep": path.relative_to(root).parts[0]}
        if (path.parent / "sparsity.csv").is_file():
            for layer in pd.read_csv(path.parent / "sparsity.csv").itertuples():
                row[f"kept_{layer.layer}"] = layer.units - layer.removed
                row[f"units_{layer.layer}"] = layer.units
        rows.append(row)
    if not rows:
        raise ValueError(f"no metrics.csv under '{root}'; run the sweeps first")
    runs = pd.DataFrame(rows)
    hidden = [c for c in runs if c.startswith("kept_hidden")]
    runs["kept_hidden"] = runs[hidden].sum(axis=1, min_count=1)
    return runs


def dedupe(runs: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Keep the first of runs with equal :data:`KEYS` (the same job in two sweeps).

    Returns the runs, how many configurations ran more than once, and how many of those
    disagree on status, test accuracy or kept counts (non-determinism, logged).
    """
    keys = [k for k in KEYS if k in runs]
    metrics = ["status", *[c for c in runs if c.startswith(("test_", "kept_", "params_"))]]
    twins = runs[runs.duplicated(keys, keep=False)].groupby(keys, dropna=False)
    differ = sum(len(g[metrics].drop_duplicates()) > 1 for _, g in twins)
    if differ:
        log.warning("%d configurations give different metrics in different sweeps", differ)
    return runs.drop_duplicates(keys).reset_index(drop=True), twins.ngroups, differ


def summarize(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and sample std (n − 1) over the ``status == "ok"`` runs of each ``by`` group.

    Columns: ``by``, ``runs`` (the count) and ``<m>_mean``, ``<m>_std`` for ``m`` in
    test accuracy, every ``kept_*`` count and ``params_kept``. Groups keep first-seen order.
    """
    ok = runs[runs["status"] == "ok"]
    cols = ["test_accuracy", *[c for c in ok if c.startswith("kept_")], "params_kept"]
    stats = ok.groupby(by, sort=False)[cols].agg(["mean", "std"])
    stats.columns = [f"{c}_{s}" for c, s in stats.columns]
    stats.insert(0, "runs", ok.groupby(by, sort=False).size())
    return stats.reset_index()


def mean_std(mean: float, std: float, scale: float = 1.0, digits: int = 1) -> str:
    """``"{scale·mean} ± {scale·std}"`` to ``digits`` decimals; the mean alone if std is NaN."""
    m = f"{scale * mean:.{digits}f}"
    return f"{m} ± {scale * std:.{digits}f}" if np.isfinite(std) else m


def markdown_table(
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    labels: Mapping[str, Callable[[object], str]],
) -> str:
    """A :func:`summarize` frame as a Markdown table.

    ``labels`` maps each ``by`` column to its cell formatter. Then: runs, test accuracy
    in % (2 decimals), and kept units per layer and kept parameters (1 decimal), each
    header naming the total from ``runs`` (``units_<layer>``, ``params_total``).
    """
    layers = [c.removeprefix("units_") for c in runs if c.startswith("units_")]
    head = [*labels, "runs", "test accuracy (%)"]
    head += [f"{layer} kept (of {int(runs[f'units_{layer}'].max())})" for layer in layers]
    head.append(f"parameters kept (of {int(runs['params_total'].max())})")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.to_dict("records"):
        cells = [fmt(r[c]) for c, fmt in labels.items()]
        cells += [str(r["runs"]), mean_std(r["test_accuracy_mean"], r["test_accuracy_std"], 100, 2)]
        cells += [
            mean_std(r[f"{m}_mean"], r[f"{m}_std"])
            for m in [*(f"kept_{layer}" for layer in layers), "params_kept"]
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def launcher(run_dir: Path) -> str:
    """The Hydra launcher class that ran ``run_dir`` (from ``.hydra/hydra.yaml``), or ``-``."""
    path = Path(run_dir) / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return "-"
    return str(OmegaConf.load(path).hydra.launcher.get("_target_", "-")).rsplit(".", 1)[-1]


def times_table(runs: pd.DataFrame) -> str:
    """Runs, statuses, launcher and seconds in the training loop per sweep.

    ``per run`` is the mean of the runs' ``train_seconds``.
    """
    lines = [
        "| sweep | runs | ok | diverged or failed | launcher | training time (s) | per run (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for sweep, g in runs.groupby("sweep"):
        ok, sec = int((g["status"] == "ok").sum()), g["train_seconds"]
        lines.append(
            f"| {sweep} | {len(g)} | {ok} | {len(g) - ok} | {launcher(g['run_dir'].iloc[0])} | "
            f"{sec.sum():.0f} | {sec.mean():.1f} |"
        )
    return "\n".join(lines)
