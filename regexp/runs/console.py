"""Console output: the progress bar over epochs and the tables of a run and a comparison."""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class _Console(Console):
    """A rich console whose closed pipe (``regexp compare ... | head``) raises
    ``BrokenPipeError`` for the command to end quietly, not rich's ``SystemExit(1)``."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


@contextmanager
def epoch_progress(total: int, enabled: bool = True) -> Iterator[object]:
    """A rich progress bar over ``total`` epochs, on stderr, removed when done.

    Yields the callback that training calls after each epoch with a status text
    (``on_epoch`` of :func:`regexp.train.loop.fit`), or ``None`` when ``enabled`` is
    false (e.g. stderr is not a terminal) or in a worker process (the batched launcher's:
    workers share the terminal, and their bars would overwrite each other).
    """
    if not enabled or multiprocessing.parent_process() is not None:
        yield None
        return
    progress = Progress(
        TextColumn("epoch"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        transient=True,
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task("", total=total)
        yield lambda text="": progress.update(task, advance=1, description=text)


def job_line(
    run_dir: Path,
    row: Mapping | None,
    done: int,
    total: int | None,
    seconds: float,
    trained: int | None = None,
) -> str:
    """One plain-text line per finished job of a sweep: a bar of jobs, ``done/total``,
    elapsed and ETA, then the job, its key config, status and validation metric.

    ``trained`` (default ``done``): the jobs whose training has ended, at least ``done``.
    The jobs of a stack all end training together and are written one by one after it, so
    the ETA is ``seconds · (total − trained) / trained`` (:func:`eta`): that of the
    stacks (and jobs alone) done so far, not of the first job written.
    """
    if total:
        filled = round(20 * min(done, total) / total)
        head = f"[{'#' * filled}{'.' * (20 - filled)}] {done}/{total} {_clock(seconds)}"
        head += f" ETA {_clock(eta(seconds, max(done, trained or 0), total))}"
    else:
        head = f"{done} jobs done {_clock(seconds)}"
    if row is None:
        return f"{head} | job {run_dir.name}: no metrics.csv"
    keys = " ".join(
        f"{k}={fmt(row[k])}" for k in ("regularizer", "mode", "lambda", "seed") if k in row
    )
    val = next((k for k in ("val_accuracy", "val_r2") if not pd.isna(row.get(k))), None)
    result = f"{row.get('status')}" + (f", {val} {fmt(float(row[val]))}" if val else "")
    return f"{head} | job {run_dir.name}: {keys}: {result}"


def eta(seconds: float, trained: int, total: int) -> float:
    """Seconds left, at the pace so far: ``seconds · (total − trained) / trained``
    (0 when every job has trained; ``seconds`` spent on ``trained`` of ``total`` jobs)."""
    return seconds / max(trained, 1) * max(total - trained, 0)


def _clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    minutes, secs = divmod(round(seconds), 60)
    if minutes >= 60:
        return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def metrics_line(row: Mapping, run_dir: Path) -> str:
    """The last line of a run's log: its main metrics and its directory."""
    shown = ("status", "test_accuracy", "val_accuracy", "test_r2", "val_r2", "weight_sparsity")
    shown += ("params_kept", "params_total", "train_seconds")
    values = ", ".join(f"{k}={fmt(row[k])}" for k in shown if k in row)
    return f"metrics: {values}; run directory: {run_dir}"


def fmt(value: object) -> str:
    """A table cell: floats to 4 significant digits (``nan`` for NaN), the rest as text."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def print_summary(row: Mapping, layers: pd.DataFrame | None, run_dir: Path | None = None) -> None:
    """Print a run's metrics and per-layer sparsity as a table, captioned with its folder."""
    caption = f"run directory: {run_dir}" if run_dir is not None else None
    table = Table(title="regexp run", show_header=True, caption=caption)
    table.add_column("metric")
    table.add_column("value", justify="right")
    keys = ["dataset", "regularizer", "mode", "lambda", "seed", "architecture", "status"]
    keys += [k for k in row if k.startswith(("test_", "val_"))]
    keys += ["weight_sparsity", "params_kept", "params_total", "train_seconds"]
    for key in keys:
        if key in row:
            table.add_row(key, fmt(row[key]))
    for layer in layers.itertuples() if layers is not None else ():
        table.add_row(f"units removed: {layer.layer}", f"{layer.removed}/{layer.units}")
    _Console().print(table)


def print_comparison(summary: pd.DataFrame, by: Sequence[str], metric: str) -> None:
    """Print one row per group: its keys, ok/n jobs, the metric and the parameters kept."""
    table = Table(title=f"regexp compare (sorted on {metric})", show_header=True)
    for column in by:
        table.add_column(column)
    table.add_column("ok/n", justify="right")
    table.add_column(f"{metric} mean ± std", justify="right")
    extra = [c for c in ("params_fraction", "weight_sparsity") if f"{c}_mean" in summary.columns]
    for column in extra:
        table.add_column(column, justify="right")
    for row in summary.to_dict("records"):
        cells = [fmt(row[c]) for c in by]
        cells.append(f"{row['n_ok']}/{row['n']}")
        cells.append(f"{fmt(row[f'{metric}_mean'])} ± {fmt(row[f'{metric}_std'])}")
        cells += [fmt(row[f"{c}_mean"]) for c in extra]
        table.add_row(*cells)
    _Console().print(table)


def print_best(best: pd.DataFrame) -> None:
    """Print the best-λ table (:func:`regexp.results.selection.best`): a row per group."""
    if best.empty:
        return
    metric = best["selected_on"].iloc[0]
    test = "test_" + metric.removeprefix("val_")
    keys = list(best.columns[: list(best.columns).index("lambda")])
    keys = [c for c in keys if c == "regularizer" or best[c].nunique(dropna=False) > 1]
    removed = [c for c in best.columns if c.startswith("removed_") and c.endswith("_mean")]
    layers = "/".join(c.removeprefix("removed_").removesuffix("_mean") for c in removed)
    title = f"best λ per group, chosen on {metric} (rule: {best['rule'].iloc[0]})"
    table = Table(title=title)
    for column in [*keys, "λ", "ok", metric, test, f"removed {layers}", "params kept"]:
        table.add_column(column, justify="left" if column in keys else "right")
    for row in best.to_dict("records"):
        units = "/".join(f"{row[c]:.1f}" for c in removed)
        table.add_row(
            *[fmt(row[c]) for c in keys],
            fmt(row["lambda"]),
            str(row["n_ok"]),
            _mean_std(row, metric),
            _mean_std(row, test),
            units,
            _mean_std(row, "params_kept"),
        )
    _Console().print(table)


def _mean_std(row: Mapping, column: str) -> str:
    mean, std = row.get(f"{column}_mean", math.nan), row.get(f"{column}_std", math.nan)
    return fmt(float(mean)) if pd.isna(std) else f"{fmt(float(mean))} ± {float(std):.2g}"
