"""A sweep's report: ``results.csv``, ``summary.csv``, ``best.csv`` and the sweep figures,
written when a sweep ends (:class:`regexp.hydra_app.lifecycle.SweepLifecycle`), and
``regexp compare`` over several sweeps (:func:`compare`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from regexp.io.atomic import write_csv
from regexp.plots import style as plot_style
from regexp.plots import sweep as sweep_plots
from regexp.results import aggregate, selection
from regexp.runs import console
from regexp.runs.collect import (
    BEST_FILE,
    COMPARISON_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    collect,
    job_dirs,
    load_results,
    order_columns,
    task_metrics,
)

log = logging.getLogger(__name__)
# regexp compare --rule within:TOL: the sparsest network of all within TOL of the best.
SPARSEST_FILE = "sparsest.csv"


def write_plots(
    results: pd.DataFrame,
    out_dir: Path,
    by: Sequence[str] | None = None,
    metric: str | None = None,
    selected: pd.DataFrame | None = None,
    answer: pd.DataFrame | None = None,
) -> list[Path]:
    """``<metric>_vs_lambda.png`` (``accuracy`` or ``r2`` by default), ``sparsity_vs_lambda.png``
    and ``pareto.png`` of ``results`` into ``out_dir``.

    A point per group (mean ± std over seeds), a panel per dataset, a line per value of the
    ``by`` columns other than dataset and λ (default: :func:`aggregate.group_columns`).
    ``metric`` (default: each dataset's test accuracy or R²) is the y of the first plot and
    of the first plot; the Pareto plot shows its validation twin beside it, with the λ
    chosen per group (``selected``, :func:`selection.best`) and the sparsest network within
    the tolerance (``answer``, :func:`selection.sparsest_overall`) marked. Returns the
    paths written.
    """
    if not {"dataset", "lambda"} <= set(results.columns):
        return []
    selected, answer = _named_like(selected, results), _named_like(answer, results)
    results = plot_style.named_datasets(results)  # a CSV data set by its file's stem
    named = ("dataset", "lambda", *plot_style.DATASET_SOURCES)
    series = [c for c in aggregate.grouping(results, by) if c not in named]
    summary = aggregate.summarize(selection.with_collapsed(results), ["dataset", *series, "lambda"])
    metrics = task_metrics(results)
    if metric and not metric.endswith("_metric"):
        metrics = {d: metric for d in metrics}
    metrics = {d: m for d, m in metrics.items() if f"{m}_mean" in summary.columns}
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
        pareto_metrics = task_metrics(results)  # reported: the test metric, beside validation
        pareto_metrics = {d: m for d, m in pareto_metrics.items() if d in metrics}
        sweep_plots.plot_pareto(summary, pareto_metrics, series, written[-1], selected, answer)
    return written


def _named_like(table: pd.DataFrame | None, results: pd.DataFrame) -> pd.DataFrame | None:
    """``table`` (a selection of ``results``) with its CSV data sets named as the figures
    name them (:func:`plot_style.named_datasets`: by the file's stem), so that its rows
    find their points: by its own ``dataset.path`` when it has one (the path varies), else
    by the one path of ``results``' CSV rows."""
    if table is None or "dataset" not in table.columns or "dataset.path" in table.columns:
        return table if table is None else plot_style.named_datasets(table)
    if "dataset.path" not in results.columns:
        return table
    paths = results.loc[results["dataset"].eq("csv"), "dataset.path"].dropna().unique()
    if len(paths) != 1:
        return table
    return plot_style.named_datasets(table.assign(**{"dataset.path": paths[0]})).drop(
        columns="dataset.path"
    )


def write_sweep_report(
    sweep_dir: Path, rule: str = "best", sparsity: str = "params"
) -> pd.DataFrame | None:
    """Write ``results.csv``, ``summary.csv``, ``best.csv`` and the plots at ``sweep_dir``'s
    root.

    ``best.csv`` holds the λ chosen per group on the validation metric by ``rule`` and
    ``sparsity`` (config keys ``selection.rule`` and ``selection.sparsity``:
    :func:`selection.best`, as ``regexp compare --rule RULE --sparsity SPARSITY``); with
    a ``within:TOL`` rule also ``sparsest.csv``, the sparsest network of the sweep within
    TOL of its best (:func:`selection.sparsest_overall`), printed as one line per data set.
    """
    results = collect(sweep_dir)
    if results.empty:
        log.warning("no job results under %s: nothing to aggregate", sweep_dir)
        return None
    write_csv(sweep_dir / RESULTS_FILE, results)
    unique, dropped = aggregate.unique_runs(results)
    if dropped:
        log.warning(aggregate.duplicates_note(dropped))
    write_csv(sweep_dir / SUMMARY_FILE, aggregate.summarize(unique))
    if "dataset" in results.columns and "lambda" in results.columns:
        best, answer = _select(unique, rule, sparsity)
        if best is not None:
            write_csv(sweep_dir / BEST_FILE, best)
            console.print_best(best)
        if best is not None and answer is not None:
            write_csv(sweep_dir / SPARSEST_FILE, answer)
            console.print_answers(best, answer)
        write_plots(unique, sweep_dir, selected=best, answer=answer)
    counts = results["status"].value_counts().to_dict()
    log.info("sweep results in %s: %s", sweep_dir / RESULTS_FILE, counts)
    return results


def _select(
    results: pd.DataFrame, rule: str, sparsity: str
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The best-λ table by ``rule`` and ``sparsity`` and, for ``within:TOL``, the sparsest
    network within TOL; ``None`` (with a warning) where no group has an ok run."""
    try:
        best = selection.best(results, rule=rule, sparsity=sparsity)
    except ValueError as err:  # e.g. every job failed: nothing to choose from
        log.warning("no best λ: %s", err)
        return None, None
    if best.empty:  # every job failed or diverged: no best.csv, as compare says
        log.warning("no best λ: no group has an ok run to choose λ on")
        return None, None
    name, tol = selection.parse_rule(rule)
    if name != "within":
        return best, None
    return best, selection.sparsest_overall(results, tol, sparsity=sparsity)


def compare(
    paths: Sequence[Path],
    by: Sequence[str] | None,
    metric: str | None,
    out_dir: Path,
    select: str | None = None,
    rule: str = "best",
    sparsity: str = "params",
    allow_test_selection: bool = False,
) -> tuple[pd.DataFrame, list[str], str, pd.DataFrame, pd.DataFrame | None]:
    """Results of all ``paths`` together: the summary per ``by`` group, sorted on ``metric``,
    and the best λ per group chosen on ``select`` (:func:`selection.best`), and with a
    ``within:TOL`` rule the sparsest network of all within TOL of the best
    (:func:`selection.sparsest_overall`, also written as ``sparsest.csv``; else ``None``).

    Writes ``comparison.csv`` (that summary), ``best.csv`` and the plots into ``out_dir``.
    Each path's rows carry ``source`` (the path as given), so ``by`` may name it. Without
    ``metric``, sorts on the validation accuracy, the validation R², or each job's own as
    ``val_metric`` when the paths mix classification and regression: the test split is for
    reporting, not for choosing (``select`` on a ``test_*`` column is refused unless
    ``allow_test_selection``). A run read twice (the same ``config_id``, ``data_id`` and
    seed, from any path: a copied sweep, a sweep and one of its jobs) counts once, with a
    warning. Returns the summary, the group columns, the metric and the best-λ table.
    """
    if select is not None:
        selection.check_not_test(select, allow_test_selection)
    frames = [_with_run_dirs(load_results(Path(p)), Path(p)).assign(source=str(p)) for p in paths]
    results = pd.concat(frames, ignore_index=True)
    twice = results.duplicated("_run", keep="first") | aggregate.duplicate_runs(results)
    if twice.any():
        log.warning(aggregate.duplicates_note(int(twice.sum())))
    results = order_columns(results[~twice].drop(columns="_run").reset_index(drop=True))
    by = aggregate.grouping(results, by)
    results = selection.with_val_metric(results)  # val_metric, test_metric: each job's own
    plotted = metric
    metric = metric or selection.selection_metric(results)
    summary = aggregate.sort_by_metric(aggregate.summarize(results, by), metric)
    chosen = "lambda" in results.columns and results["status"].eq("ok").any()
    allow = allow_test_selection
    best = (
        selection.best(results, select, rule, sparsity=sparsity, allow_test=allow)
        if chosen
        else None
    )
    answer = None
    if chosen and rule.startswith("within:"):
        tol = selection.parse_rule(rule)[1]
        answer = selection.sparsest_overall(
            results, tol, select, sparsity=sparsity, allow_test=allow
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out '{out_dir}' is a file; name a directory to write into")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / COMPARISON_FILE, summary)
    if best is not None:
        write_csv(out_dir / BEST_FILE, best)
    if answer is not None:
        write_csv(out_dir / SPARSEST_FILE, answer)
    write_plots(results, out_dir, by, plotted, selected=best, answer=answer)
    return summary, by, metric, best, answer


def _with_run_dirs(results: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``results`` plus ``_run``: the absolute run directory of each row, so that a run
    named twice (a sweep and one of its jobs, or one path given twice) counts once."""
    if path.is_file() and path.name == METRICS_FILE:
        return results.assign(_run=str(path.parent.resolve()))  # one run, named by its file
    base = path if path.is_dir() else path.parent
    if path.is_dir() and job_dirs(path) == [path]:
        base = path.parent  # a run directory: its job is its own name
    runs = [str((base / str(job)).resolve()) for job in results["job"]]
    return results.assign(_run=runs)
