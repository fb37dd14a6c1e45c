"""Finished runs read back with their per-layer kept units, as Markdown tables.

Only the files every run writes are read (``metrics.csv``, ``sparsity.csv``), found under
any tree of sweep directories, so no sweep-level file is needed. Means and stds over seeds
come from :func:`regexp.results.aggregate.summarize`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from regexp.results import aggregate
from regexp.runs import collect as sweep
from regexp.runs.sweep_dir import STATE_DIR

log = logging.getLogger(__name__)


def read_runs(root: Path) -> pd.DataFrame:
    """:func:`regexp.runs.collect.collect` of ``root`` and of each sweep directly below it
    (a folder with ``multirun.yaml`` or a state folder), plus, per run, ``run_dir``,
    ``sweep`` (the first directory below ``root``) and, from its ``sparsity.csv``,
    ``units_<layer>`` and ``kept_<layer> = units − removed`` per layer and ``kept_hidden``,
    their sum over the hidden layers.

    Raises
    ------
    ValueError
        If there is no run under ``root``.
    """
    root = Path(root)
    frames = [sweep.collect(root)]  # runs outside the sweeps below
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if (child / "multirun.yaml").is_file() or (child / STATE_DIR).is_dir():
            # a sweep of its own: collect(root) leaves its jobs to it
            jobs = sweep.collect(child)
            if not jobs.empty:
                frames.append(jobs.assign(job=child.name + "/" + jobs["job"].astype(str)))
    frames = [f for f in frames if not f.empty]
    runs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if runs.empty:
        raise ValueError(f"no runs under '{root}'; run the sweeps first")
    runs["run_dir"] = [root / job for job in runs["job"]]
    runs["sweep"] = [job.split("/")[0] for job in runs["job"]]
    counts = []
    for run_dir in runs["run_dir"]:
        row = {}
        if (run_dir / "sparsity.csv").is_file():
            for layer in pd.read_csv(run_dir / "sparsity.csv").itertuples():
                row[f"kept_{layer.layer}"] = layer.units - layer.removed
                row[f"units_{layer.layer}"] = layer.units
        counts.append(row)
    runs = pd.concat([runs, pd.DataFrame(counts, index=runs.index)], axis=1)
    hidden = [c for c in runs if c.startswith("kept_hidden")]
    runs["kept_hidden"] = runs[hidden].sum(axis=1, min_count=1)
    return runs


def dedupe(runs: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Keep the first of runs with equal config columns (the same job in two sweeps; the
    unregularized network at any λ).

    Returns the runs, how many configurations ran more than once, and how many of those
    disagree on status, a test metric or a kept count (non-determinism, logged).
    """
    keys = aggregate.config_columns(runs)
    metrics = ["status", *[c for c in runs if c.startswith(("test_", "kept_", "params_"))]]
    # the unregularized network ignores λ: its jobs at several λ are one configuration
    frame = runs.copy()
    none = frame["regularizer"] == "none"
    for col, same in (("lambda", 0.0), ("config_id", "none")):
        if col in frame:
            frame[col] = frame[col].astype(object).where(~none, same)
    dup = frame.duplicated(keys, keep=False)
    twins = frame[dup].groupby(keys, dropna=False)
    differ = sum(len(g[metrics].drop_duplicates()) > 1 for _, g in twins)
    if differ:
        log.warning("%d configurations give different metrics in different sweeps", differ)
    keep = ~frame.duplicated(keys)
    return runs[keep].reset_index(drop=True), twins.ngroups, differ


def mean_std(mean: float, std: float, scale: float = 1.0, digits: int = 1) -> str:
    """``"{scale·mean} ± {scale·std}"`` to ``digits`` decimals; the mean alone if std is NaN."""
    m = f"{scale * mean:.{digits}f}"
    return f"{m} ± {scale * std:.{digits}f}" if np.isfinite(std) else m


def markdown_table(
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    labels: Mapping[str, Callable[[object], str]],
    extra: Mapping[str, str] | None = None,
) -> str:
    """A :func:`regexp.results.aggregate.summarize` frame as a Markdown table.

    ``labels`` maps each ``by`` column to its cell formatter. Then: runs (``n_ok``), test accuracy
    in % (2 decimals), and kept units per layer and kept parameters (1 decimal), each
    header naming the total from ``runs`` (``units_<layer>``, ``params_total``), and last
    the metrics of ``extra`` (``{metric: header}``, mean ± std, 1 decimal).
    """
    extra = dict(extra or {})
    layers = [c.removeprefix("units_") for c in runs if c.startswith("units_")]
    head = [*labels, "runs", "test accuracy (%)"]
    head += [
        f"{'inputs' if layer == 'input' else layer + ' units'} kept "
        f"(of {int(runs[f'units_{layer}'].max())})"
        for layer in layers
    ]
    head.append(f"parameters kept (of {int(runs['params_total'].max())})")
    head += list(extra.values())
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.to_dict("records"):
        cells = [fmt(r[c]) for c, fmt in labels.items()]
        cells += [str(r["n_ok"]), mean_std(r["test_accuracy_mean"], r["test_accuracy_std"], 100, 2)]
        cells += [
            mean_std(r[f"{m}_mean"], r[f"{m}_std"])
            for m in [*(f"kept_{layer}" for layer in layers), "params_kept", *extra]
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
    for name, g in runs.groupby("sweep"):
        ok, sec = int((g["status"] == "ok").sum()), g["train_seconds"]
        lines.append(
            f"| {name} | {len(g)} | {ok} | {len(g) - ok} | {launcher(g['run_dir'].iloc[0])} | "
            f"{sec.sum():.0f} | {sec.mean():.1f} |"
        )
    return "\n".join(lines)
