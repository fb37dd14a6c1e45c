"""Sweeps on disk: gather the jobs' ``metrics.csv``, write results, summary and plots.

:class:`AggregateResults` is a Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``):
when a multirun ends, under any launcher, it reads every job directory of the sweep and
writes ``results.csv``, ``summary.csv`` and the plots at the sweep directory's root.
``regexp compare`` reads sweeps, run directories and results CSVs with :func:`load_results`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from regexp.outputs import aggregate, sweep_plots
from regexp.outputs.files import write_csv
from regexp.outputs.run import config_row

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"
RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.csv"
COMPARISON_FILE = "comparison.csv"
# Text columns that pandas would otherwise read as numbers ("40" for one hidden layer).
TEXT_COLUMNS = {"job": str, "source": str, "hidden": str, "architecture": str, "error": str}
MISSING_ERROR = "no metrics.csv: the job was killed or has not finished"


class NoResultsError(ValueError):
    """A path holds no job results."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            f"no results in '{path}' (expected a sweep directory, a run directory or a results.csv)"
        )


def _natural(path: Path) -> list:
    """Sort key that puts job 2 before job 10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


def job_dirs(root: Path) -> list[Path]:
    """Run directories under ``root`` (``root`` included), in natural order.

    A run directory holds a ``metrics.csv`` or Hydra's ``.hydra/config.yaml`` (a job that
    started but wrote no metrics: it was killed, or is still running).
    """
    found = {p.parent for p in root.rglob(METRICS_FILE)}
    found |= {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    return sorted(found, key=lambda p: _natural(p.relative_to(root)))


def _missing_row(run_dir: Path) -> dict:
    """The row of a job that left ``.hydra/config.yaml`` but no ``metrics.csv``."""
    cfg = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), resolve=False)
    try:
        row = config_row(cfg, 0, 0)
        row.pop("architecture")
    except (KeyError, TypeError):
        row = {}
    return row | {"status": "missing", "error": MISSING_ERROR}


def order_columns(results: pd.DataFrame) -> pd.DataFrame:
    """``job`` (and ``source``) first, then config columns, ``status``, ``error``, outcomes."""
    labels = [c for c in ("source", "job") if c in results.columns]
    rest = [c for c in results.columns if c not in (*labels, "error")]
    if "error" in results.columns:
        at = rest.index("status") + 1 if "status" in rest else len(rest)
        rest.insert(at, "error")
    return results[labels + rest]


def collect(root: Path) -> pd.DataFrame:
    """One row per run directory under ``root``: its ``metrics.csv`` row plus ``job``.

    ``job`` is the run directory relative to ``root`` (``"3"`` for job 3 of a sweep, or the
    directory's own name when ``root`` is a run directory). Config columns come first, as in
    ``metrics.csv``, so that :func:`regexp.outputs.aggregate.config_columns` finds them.
    """
    frames = []
    for run_dir in job_dirs(root):
        metrics = run_dir / METRICS_FILE
        if metrics.is_file():
            frame = pd.read_csv(metrics, dtype=TEXT_COLUMNS)
        else:
            frame = pd.DataFrame([_missing_row(run_dir)])
        job = run_dir.relative_to(root).as_posix()
        frames.append(frame.assign(job=run_dir.name if job == "." else job))
    if not frames:
        return pd.DataFrame()
    return order_columns(pd.concat(frames, ignore_index=True))


def load_results(path: Path) -> pd.DataFrame:
    """Results from a sweep directory, a run directory, or a ``results.csv``/``metrics.csv``.

    A directory is searched for run directories (:func:`collect`), and else for a
    ``results.csv`` at its root. Raises :class:`NoResultsError` when ``path`` holds neither.
    """
    path = Path(path)
    if path.is_dir():
        results = collect(path)
        if results.empty and (path / RESULTS_FILE).is_file():
            path = path / RESULTS_FILE
    if path.is_file():
        try:
            results = pd.read_csv(path, dtype=TEXT_COLUMNS)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            raise NoResultsError(path) from None
        if "job" not in results.columns:
            results.insert(0, "job", path.parent.name)
    if not path.exists() or results.empty or "status" not in results.columns:
        raise NoResultsError(path)
    return order_columns(results)


def task_metrics(results: pd.DataFrame) -> dict[str, str]:
    """Each dataset's main test metric (``test_accuracy`` or ``test_r2``), from its task."""
    tasks = results.dropna(subset=["dataset", "task"]).groupby("dataset")["task"].first()
    return {d: aggregate.main_metric(t) for d, t in tasks.items()}


def write_plots(results: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``accuracy_vs_lambda.png`` (``r2_vs_lambda.png`` for regression),
    ``sparsity_vs_lambda.png`` and ``pareto.png`` of ``results`` into ``out_dir``.

    Plots use the default grouping (:func:`regexp.outputs.aggregate.group_columns`): a point per
    group (mean ± std over seeds), a panel per dataset, a line per regularizer (and per
    other varying config column). Returns the paths written.
    """
    summary = aggregate.summarize(results)
    series = [c for c in aggregate.group_columns(results) if c not in ("dataset", "lambda")]
    metrics = {d: m for d, m in task_metrics(results).items() if f"{m}_mean" in summary.columns}
    written = []
    for metric in sorted(set(metrics.values())):
        path = out_dir / f"{metric.removeprefix('test_')}_vs_lambda.png"
        sweep_plots.plot_metric_vs_lambda(summary, metric, series, path)
        written.append(path)
    if any(c.startswith("neuron_sparsity_") for c in summary.columns):
        written.append(out_dir / "sparsity_vs_lambda.png")
        sweep_plots.plot_sparsity_vs_lambda(summary, series, written[-1])
    if metrics and f"{aggregate.PARAMS_FRACTION}_mean" in summary.columns:
        written.append(out_dir / "pareto.png")
        sweep_plots.plot_pareto(summary, metrics, series, written[-1])
    return written


def write_sweep_report(sweep_dir: Path) -> pd.DataFrame | None:
    """Write ``results.csv``, ``summary.csv`` and the plots at ``sweep_dir``'s root."""
    results = collect(sweep_dir)
    if results.empty:
        log.warning("no job results under %s: nothing to aggregate", sweep_dir)
        return None
    write_csv(sweep_dir / RESULTS_FILE, results)
    write_csv(sweep_dir / SUMMARY_FILE, aggregate.summarize(results))
    if "dataset" in results.columns and "lambda" in results.columns:
        write_plots(results, sweep_dir)
    counts = results["status"].value_counts().to_dict()
    log.info("sweep results in %s: %s", sweep_dir / RESULTS_FILE, counts)
    return results


def compare(
    paths: Sequence[Path], by: Sequence[str] | None, metric: str | None, out_dir: Path
) -> tuple[pd.DataFrame, list[str], str]:
    """Results of all ``paths`` together: the summary per ``by`` group, sorted on ``metric``.

    Writes ``comparison.csv`` (that summary) and the plots into ``out_dir``. Each path's
    rows carry ``source`` (the path as given), so ``by`` may name it. Without ``metric``,
    sorts on the test accuracy, the test R², or both as ``test_metric`` when the paths mix
    classification and regression.
    Returns the summary, the group columns and the metric.
    """
    frames = [load_results(Path(p)).assign(source=str(p)) for p in paths]
    results = order_columns(pd.concat(frames, ignore_index=True))
    by = list(by or aggregate.group_columns(results))
    metric = metric or aggregate.default_metric(results)
    if metric == aggregate.MIXED_METRIC:
        results = aggregate.with_mixed_metric(results)
    summary = aggregate.sort_by_metric(aggregate.summarize(results, by), metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / COMPARISON_FILE, summary)
    write_plots(results, out_dir)
    return summary, by, metric


class AggregateResults(Callback):
    """Hydra callback: at the end of a multirun, write the sweep's results and plots."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        write_sweep_report(Path(config.hydra.sweep.dir))
