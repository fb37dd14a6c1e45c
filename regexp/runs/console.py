"""Console output: the progress bar over epochs and the tables of a run and a comparison."""

from __future__ import annotations

import logging
import math
import multiprocessing
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from regexp.results import schema

# The width of tables printed to a pipe or file (rich's default there is 80 columns, which
# cuts cells short): wide enough for any table, which takes only the width it needs.
PIPE_WIDTH = 1000


class _Console(Console):
    """A rich console whose closed pipe (``regexp compare ... | head``) raises
    ``BrokenPipeError`` for the command to end quietly, not rich's ``SystemExit(1)``; on a
    pipe or in a file its tables take their full width (:data:`PIPE_WIDTH`), never cut."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if "width" not in kwargs and not self.is_terminal:
            self.width = PIPE_WIDTH

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


# Loggers whose INFO lines a sweep's console keeps: the job lines and the report
# (lifecycle, report), the launchers' few lines per sweep or stack and Hydra's own; every
# other INFO line of a job (its data, training and metrics lines) goes to its train.log.
SWEEP_CONSOLE = (
    "regexp.hydra_app.lifecycle",
    "regexp.hydra_app.report",
    "regexp.hydra_app.launcher",
    "hydra",
)
# The command's own logger, exactly (not its children): "resume: ... is complete, skipping".
COMMAND_LOGGER = "regexp"
_LAUNCH_LINE = re.compile(r"^\t#\d+ : ")


class SweepConsoleFilter(logging.Filter):
    """Lets through, to a sweep's console, warnings and errors and the INFO lines of
    :data:`SWEEP_CONSOLE` (and their children) and :data:`COMMAND_LOGGER`, except the
    launchers' ``#k : overrides`` listing: one line per finished job (:func:`job_line`)
    says what each job was."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if _LAUNCH_LINE.match(str(record.msg)):
            return False
        name = record.name
        kept = any(name == n or name.startswith(f"{n}.") for n in SWEEP_CONSOLE)
        return kept or name == COMMAND_LOGGER


# The loggers of the launchers that list every job (``#k : overrides``) before running it.
LAUNCHER_LOGGERS = (
    "hydra._internal.core_plugins.basic_launcher",
    "regexp.hydra_app.launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
    "hydra_plugins.hydra_ray_launcher._core",
)


class _NoLaunchListing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _LAUNCH_LINE.match(str(record.msg))


def quiet_sweep_console() -> None:
    """Add :class:`SweepConsoleFilter` to the root logger's console handlers (stream
    handlers that are not files), once, and drop the launchers' ``#k : overrides``
    listing (:data:`LAUNCHER_LOGGERS`; Hydra sets up new handlers between jobs, so
    these filter on the loggers); file handlers (a job's train.log) get everything."""
    for name in LAUNCHER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoLaunchListing) for f in logger.filters):
            logger.addFilter(_NoLaunchListing())
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) or not isinstance(
            handler, logging.StreamHandler
        ):
            continue
        if not any(isinstance(f, SweepConsoleFilter) for f in handler.filters):
            handler.addFilter(SweepConsoleFilter())


# Named in every job line (when in the row), before the keys that vary in the sweep.
JOB_KEYS = ("regularizer", "mode", "lambda", "seed")


def column_of(key: str) -> str:
    """The results column of a config key: its short name when it has one
    (``model.dropout`` → ``dropout``, ``regularizer`` → ``regularizer``), else the key."""
    from regexp.core.regularizers import REGULARIZERS

    group, _, option = key.partition(".")
    options = {o for cls in REGULARIZERS.values() for o in cls.options}
    if group == schema.OPTION_GROUP and option in options:  # regularizer.l1_ratio → l1_ratio
        return option
    short = {dotted: name for name, dotted in schema.SHORT.items() if dotted}
    return short.get(key, short.get(f"{key}.name", key))


@contextmanager
def item_progress(total: int, what: str) -> Iterator[object]:
    """A rich progress bar over ``total`` items (``what``: ``"runs drawn"``) on stderr,
    left on screen when done; yields the callback to call after each item. Where stderr
    is not a terminal, rich draws nothing until the end."""
    progress = Progress(
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(what),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
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
    keys: Sequence[str] = (),
    trained: int | None = None,
) -> str:
    """One plain-text line per finished job of a sweep: a bar of jobs, k/N, elapsed and
    ETA, then the job, its config (:data:`JOB_KEYS` and every key of ``keys``, the keys
    that vary in the sweep, by their results column: :func:`column_of`), status and
    validation metric.

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
    columns = dict.fromkeys([*JOB_KEYS, *(column_of(k) for k in keys)])
    shown = " ".join(f"{k}={fmt(row[k])}" for k in columns if k in row)
    val = next((k for k in ("val_accuracy", "val_r2") if not pd.isna(row.get(k))), None)
    result = f"{row.get('status')}" + (f", {val} {fmt(float(row[val]))}" if val else "")
    if str(row.get("collapsed")).lower() in ("true", "1", "1.0"):
        result += " (collapsed: at or below chance)"
    return f"{head} | job {run_dir.name}: {shown}: {result}"


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
    shown += ("params_kept", "params_total", "collapsed", "train_seconds")
    values = ", ".join(f"{k}={fmt(row[k])}" for k in shown if k in row)
    return f"metrics: {values}; run directory: {run_dir}"


def fmt(value: object) -> str:
    """A table cell: floats to 4 significant digits (``nan`` for NaN), the rest as text."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def print_summary(row: Mapping, layers: pd.DataFrame | None, run_dir: Path | None = None) -> None:
    """Print a run's metrics and per-layer sparsity as a table, captioned with its folder."""
    table = Table(title="regexp run", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    keys = ["dataset", "regularizer", "mode", "lambda", "seed", "architecture", "status"]
    keys += [k for k in row if k.startswith(("test_", "val_"))]
    keys += ["weight_sparsity", "params_kept", "params_total", "collapsed", "train_seconds"]
    for key in keys:
        if key in row:
            table.add_row(key, fmt(row[key]))
    for layer in layers.itertuples() if layers is not None else ():
        table.add_row(f"units removed: {layer.layer}", f"{layer.removed}/{layer.units}")
    console = _Console()
    console.print(table)
    if run_dir is not None:  # a path is never wrapped: one line, as long as it is
        console.print(f"run directory: {run_dir}", soft_wrap=True, highlight=False)


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
    """Print the selection table (:func:`regexp.results.selection.best`): a row per group,
    titled with the rule, the split and metric that chose, and the metric reported."""
    if best.empty:
        return
    metric, test = best["selected_on"].iloc[0], best["reported_on"].iloc[0]
    keys = list(best.columns[: list(best.columns).index("lambda")])
    keys = [c for c in keys if c == "regularizer" or best[c].nunique(dropna=False) > 1]
    removed = [c for c in best.columns if c.startswith("removed_") and c.endswith("_mean")]
    layers = "/".join(c.removeprefix("removed_").removesuffix("_mean") for c in removed)
    rule, sparsity = best["rule"].iloc[0], best["sparsity"].iloc[0]
    title = (
        f"best λ per group, chosen on {metric} ({best['chosen_on_split'].iloc[0]} split) "
        f"by rule {rule} (ties and near ties: fewest {sparsity} kept); "
        f"{test} reported ({test.split('_')[0]} split)"
    )
    table = Table(title=title)
    for column in [*keys, "λ", "ok", f"chosen on: {metric}", f"reported: {test}"]:
        table.add_column(column, justify="left" if column in keys else "right")
    for column in (f"removed {layers}", "inputs kept", "params kept"):
        table.add_column(column, justify="right")
    for row in best.to_dict("records"):
        units = "/".join(f"{row[c]:.1f}" for c in removed)
        table.add_row(
            *[fmt(row[c]) for c in keys],
            fmt(row["lambda"]),
            str(row["n_ok"]),
            _mean_std(row, metric),
            _mean_std(row, test),
            units,
            _mean_std(row, "kept_input"),
            _mean_std(row, "params_kept"),
        )
    _Console().print(table)


def answer_line(row: Mapping, groups: Sequence[str] = ()) -> str:
    """The study's answer in one line, from a row of
    :func:`regexp.results.selection.sparsest_overall`: the data set, the network (its
    ``groups`` columns and λ), parameters and inputs kept, and the chosen-on (validation)
    and reported (test) metrics, mean ± std over the ok seeds."""
    metric, test, rule = row["selected_on"], row["reported_on"], str(row["rule"])
    tol = rule.partition(":")[2]
    names = [fmt(row[c]) if c == "regularizer" else f"{c}={fmt(row[c])}" for c in groups]
    kept, total = row.get("params_kept_mean", math.nan), row.get("params_total_mean", math.nan)
    parts = [f"{fmt(float(kept))}/{fmt(float(total))} parameters kept"]
    if total and not pd.isna(total):
        parts[0] += f" ({100 * float(kept) / float(total):.0f}%)"
    inputs, units = row.get("kept_input_mean", math.nan), row.get("units_input_mean", math.nan)
    if not pd.isna(inputs):
        of = "" if pd.isna(units) else f"/{fmt(float(units))}"
        parts.append(f"{fmt(float(inputs))}{of} inputs kept")
    where = f"{row['dataset']}: " if "dataset" in row else ""
    n = int(row["n_ok"])
    return (
        f"{where}sparsest within {tol} of the best {metric} ({fmt(float(row['group_best']))}): "
        f"{' '.join(names)} λ={fmt(float(row['lambda']))}, {', '.join(parts)}; "
        f"{metric} {_mean_std(row, metric)} (chose), {test} {_mean_std(row, test)} "
        f"(reported), over {n} seed{'s' if n != 1 else ''}"
    )


def print_answers(best: pd.DataFrame, answer: pd.DataFrame) -> None:
    """Print :func:`answer_line` for each data set of ``answer``
    (:func:`regexp.results.selection.sparsest_overall`), naming the network by the group
    columns of ``best`` that vary (and always its regularizer)."""
    keys = best.columns[: list(best.columns).index("lambda")]
    groups = [c for c in keys if c == "regularizer" or best[c].nunique(dropna=False) > 1]
    for row in answer.to_dict("records"):
        print(answer_line(row, [c for c in groups if c in row]))


def _mean_std(row: Mapping, column: str) -> str:
    mean, std = row.get(f"{column}_mean", math.nan), row.get(f"{column}_std", math.nan)
    return fmt(float(mean)) if pd.isna(std) else f"{fmt(float(mean))} ± {float(std):.2g}"
