"""Console output: the progress bar over epochs and the tables of a run and a comparison."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


@contextmanager
def epoch_progress(total: int, enabled: bool = True) -> Iterator[object]:
    """A rich progress bar over ``total`` epochs, on stderr, removed when done.

    Yields the callback that training calls after each epoch with a status text
    (``on_epoch`` of :func:`regexp.engine.train.fit`), or ``None`` when ``enabled`` is
    false (e.g. stderr is not a terminal).
    """
    if not enabled:
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


def fmt(value: object) -> str:
    """A table cell: floats to 4 significant digits (``nan`` for NaN), the rest as text."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def print_summary(row: Mapping, layers: pd.DataFrame | None) -> None:
    """Print a run's metrics and per-layer sparsity as a table."""
    table = Table(title="regexp run", show_header=True)
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
    Console().print(table)


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
    Console().print(table)
