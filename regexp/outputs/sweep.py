"""Sweeps on disk: gather the jobs' ``metrics.csv``, write results, summary and plots.

:class:`AggregateResults` is a Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``):
when a multirun ends, under any launcher, it reads every job directory of the sweep and
writes ``results.csv``, ``summary.csv`` and the plots at the sweep directory's root.
``regexp compare`` reads sweeps, run directories and results CSVs with :func:`load_results`.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from regexp import errors
from regexp.outputs import aggregate, console, schema, selection, sweep_dir, sweep_plots
from regexp.outputs.files import OUTPUT_ROOTS, writable_dir, write_csv, write_text
from regexp.outputs.run import config_row, read_metrics

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"
RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.csv"
COMPARISON_FILE = "comparison.csv"
BEST_FILE = "best.csv"
TEXT_COLUMNS = schema.TEXT_COLUMNS
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

    The jobs of the sweep in ``root`` when it has a job list (:func:`sweep_dir.sweep_jobs`),
    else every directory that holds a ``metrics.csv`` or Hydra's ``.hydra/config.yaml`` (a
    job that started but wrote no metrics: it was killed, or is still running).
    """
    root = Path(root)
    listed = sweep_dir.sweep_jobs(root)
    found = set(listed) if listed is not None else set(sweep_dir.run_dirs(root))
    if listed is None and (root / METRICS_FILE).is_file():
        found.add(root)
    return sorted(found, key=lambda p: _natural(p.relative_to(root)))


def _missing_row(run_dir: Path) -> dict:
    """The row of a job that left ``.hydra/config.yaml`` but no ``metrics.csv``."""
    loaded = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    try:
        cfg = OmegaConf.to_container(loaded, resolve=True)
        row = config_row(cfg)
    except Exception:  # an interpolation that needs Hydra, or a config from elsewhere
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
        row = read_metrics(run_dir)
        if row is None and (run_dir / ".hydra" / "config.yaml").is_file():
            row = _missing_row(run_dir)
        elif row is None:
            row = {"status": "missing", "error": f"unreadable {METRICS_FILE}"}
        job = run_dir.relative_to(root).as_posix()
        frames.append(pd.DataFrame([row]).assign(job=run_dir.name if job == "." else job))
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
        results = _read_results_file(path)
        if "job" not in results.columns:
            results.insert(0, "job", path.parent.name)
    if not path.exists() or results.empty or "status" not in results.columns:
        raise NoResultsError(path)
    return order_columns(results)


def _read_results_file(path: Path) -> pd.DataFrame:
    """A ``results.csv`` or ``metrics.csv``, refused (one line naming it) when it is not one
    of regexp's, or was cut off while being written."""
    try:
        text = path.read_text(encoding="utf-8")
        results = pd.read_csv(io.StringIO(text), dtype=TEXT_COLUMNS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        raise NoResultsError(path) from None
    if "status" not in results.columns or not aggregate.config_columns(results):
        raise NoResultsError(path)  # a CSV, but not one that regexp wrote
    if not text.endswith("\n") or results["status"].isna().any():
        raise ValueError(f"'{path}' is truncated (its last row is incomplete); regenerate it")
    return results


def task_metrics(results: pd.DataFrame) -> dict[str, str]:
    """Each dataset's main test metric (``test_accuracy`` or ``test_r2``), from its task."""
    tasks = results.dropna(subset=["dataset", "task"]).groupby("dataset")["task"].first()
    return {d: aggregate.main_metric(t) for d, t in tasks.items()}


def write_plots(
    results: pd.DataFrame,
    out_dir: Path,
    by: Sequence[str] | None = None,
    metric: str | None = None,
) -> list[Path]:
    """``<metric>_vs_lambda.png`` (``accuracy`` or ``r2`` by default), ``sparsity_vs_lambda.png``
    and ``pareto.png`` of ``results`` into ``out_dir``.

    A point per group (mean ± std over seeds), a panel per dataset, a line per value of the
    ``by`` columns other than dataset and λ (default: :func:`aggregate.group_columns`).
    ``metric`` (default: each dataset's test accuracy or R²) is the y of the first plot and
    of the Pareto plot. Returns the paths written.
    """
    if not {"dataset", "lambda"} <= set(results.columns):
        return []
    series = [c for c in (by or aggregate.group_columns(results)) if c not in ("dataset", "lambda")]
    summary = aggregate.summarize(results, ["dataset", *series, "lambda"])
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
        try:
            best = selection.best(results)
        except ValueError as err:  # e.g. every job failed: nothing to choose from
            log.warning("no best λ: %s", err)
        else:
            write_csv(sweep_dir / BEST_FILE, best)
            console.print_best(best)
    counts = results["status"].value_counts().to_dict()
    log.info("sweep results in %s: %s", sweep_dir / RESULTS_FILE, counts)
    return results


def compare(
    paths: Sequence[Path],
    by: Sequence[str] | None,
    metric: str | None,
    out_dir: Path,
    select: str | None = None,
    rule: str = "best",
) -> tuple[pd.DataFrame, list[str], str, pd.DataFrame]:
    """Results of all ``paths`` together: the summary per ``by`` group, sorted on ``metric``,
    and the best λ per group chosen on ``select`` (:func:`selection.best`).

    Writes ``comparison.csv`` (that summary), ``best.csv`` and the plots into ``out_dir``.
    Each path's rows carry ``source`` (the path as given), so ``by`` may name it. Without
    ``metric``, sorts on the validation accuracy, the validation R², or each job's own as
    ``val_metric`` when the paths mix classification and regression: the test split is for
    reporting, not for choosing. Returns the summary, the group columns, the metric and
    the best-λ table.
    """
    frames = [_with_run_dirs(load_results(Path(p)), Path(p)).assign(source=str(p)) for p in paths]
    results = pd.concat(frames, ignore_index=True)
    twice = results.duplicated("_run", keep="first")
    if twice.any():
        log.info("%d run(s) named more than once are counted once", int(twice.sum()))
    results = order_columns(results[~twice].drop(columns="_run").reset_index(drop=True))
    by = list(by or aggregate.group_columns(results))
    results = selection.with_val_metric(results)  # val_metric, test_metric: each job's own
    plotted = metric
    metric = metric or selection.selection_metric(results)
    summary = aggregate.sort_by_metric(aggregate.summarize(results, by), metric)
    chosen = "lambda" in results.columns and results["status"].eq("ok").any()
    best = selection.best(results, select, rule) if chosen else None
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out '{out_dir}' is a file; name a directory to write into")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / COMPARISON_FILE, summary)
    if best is not None:
        write_csv(out_dir / BEST_FILE, best)
    write_plots(results, out_dir, by, plotted)
    return summary, by, metric, best


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


class AggregateResults(Callback):
    """Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``) that keeps run and sweep
    directories honest and aggregates a sweep, under any launcher.

    - a run (``on_run_start``): an earlier run in ``hydra.run.dir`` is set aside, never
      overwritten (:func:`sweep_dir.start_run`);
    - a sweep (``on_multirun_start``): takes the sweep directory's lock and refuses a
      directory that holds another sweep's runs unless ``resume=true``
      (:func:`sweep_dir.start`); each job adds itself to the job list (``on_job_start``);
    - when the sweep ends: ``results.csv``, ``summary.csv`` and the plots at its root
      (:func:`write_sweep_report`), from exactly this sweep's jobs.
    """

    def __init__(self) -> None:
        self._lock: Any = None
        self._total: int | None = None  # jobs in the sweep, when the sweeper says

    def __getstate__(self) -> dict:
        """Worker processes get the callback without the sweep's lock (held here)."""
        return {**self.__dict__, "_lock": None}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Bad input ends here, before an earlier run in hydra.run.dir is set aside and
        # before Hydra creates the directory.
        self._refuse_errors(lambda: _validate_task(config))
        run_dir = Path(str(config.hydra.run.dir))
        self._refuse_errors(lambda: writable_dir(run_dir, "hydra.run.dir"))
        OUTPUT_ROOTS.append(run_dir)
        self._refuse_errors(lambda: sweep_dir.start_run(run_dir, _resume(config)))

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir.finish(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(str(config.hydra.sweep.dir))
        self._refuse_errors(lambda: writable_dir(root, "hydra.sweep.dir"))
        OUTPUT_ROOTS.append(root)
        self._lock = self._refuse_errors(lambda: sweep_dir.lock(root))
        self._total = sweep_size(config)
        self._refuse_errors(lambda: sweep_dir.start(root, _resume(config)))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            root, run_dir = Path(str(config.hydra.sweep.dir)), config.hydra.runtime.output_dir
            self._refuse_errors(lambda: sweep_dir.add_job(root, Path(run_dir)))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        root = Path(str(config.hydra.sweep.dir))
        run_dir = Path(str(config.hydra.runtime.output_dir))
        done, seconds = sweep_dir.job_done(root)
        log.info(console.job_line(run_dir, read_metrics(run_dir), done, self._total, seconds))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(str(config.hydra.sweep.dir))
        try:
            sweep_dir.finish(root)
            write_sweep_report(root)
            label_objectives(root, list(OmegaConf.select(config, "objectives", default=[])))
        finally:
            if self._lock is not None:
                self._lock.release()

    @staticmethod
    def _refuse_errors(action: Any) -> Any:
        """``action()``; a ``ValueError`` (e.g. :class:`sweep_dir.SweepDirError`) ends regexp
        with its one line."""
        try:
            return action()
        except ValueError as err:
            if errors.debug():
                raise
            errors.fail(str(err))


OPTUNA_FILE = "optimization_results.yaml"


def label_objectives(sweep_dir: Path, names: Sequence[str]) -> None:
    """Name the values in Optuna's ``optimization_results.yaml``: each solution gains
    ``objectives: {val_metric: ..., params_kept: ...}`` next to its bare ``values`` list
    (or ``best_objective`` next to ``best_value``), and the file gains
    ``objective_meaning`` (what each name measures, and its direction)."""
    import yaml

    path = Path(sweep_dir) / OPTUNA_FILE
    if not path.is_file():
        return
    doc = yaml.safe_load(path.read_text()) or {}
    for solution in doc.get("solutions") or []:
        solution["objectives"] = dict(zip(names, solution.get("values", []), strict=False))
    if "best_value" in doc and names:
        doc["best_objective"] = names[0]
    doc["objective_meaning"] = {n: OBJECTIVE_MEANING[n] for n in names if n in OBJECTIVE_MEANING}
    write_text(path, yaml.safe_dump(doc, sort_keys=False))


OBJECTIVE_MEANING = {
    "val_metric": "validation accuracy (R² for regression) after thresholding; maximize",
    "params_kept": "weights and biases left once dead units are removed; minimize",
}


def sweep_size(config: DictConfig) -> int | None:
    """How many jobs the basic (or regexp's) sweeper will run: the product of the lengths
    of the sweep overrides (command line and ``hydra.sweeper.params``); ``None`` for
    sweepers that decide as they go (Optuna's ``n_trials`` is read when set)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = config.hydra.sweeper
    if "n_trials" in sweeper:
        return int(sweeper.n_trials)
    params = sweeper.get("params") or {}
    overrides = [*(f"{k}={v}" for k, v in params.items()), *config.hydra.overrides.task]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        by_key = {o.get_key_element(): o for o in parsed}  # the command line wins, as in Hydra
        total = 1
        for override in by_key.values():
            if override.is_sweep_override():
                total *= len(list(override.sweep_iterator()))
    except Exception:  # a sweep this count does not understand: progress without a total
        return None
    return total


def _validate_task(config: DictConfig) -> None:
    """:func:`regexp.config.validate` of the task config (``config`` less ``hydra``);
    a config that does not resolve without Hydra's runtime is left to the task."""
    from omegaconf.errors import OmegaConfBaseException

    from regexp.config import validate

    try:
        HydraConfig.instance().set_config(config)
        task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        resolved = OmegaConf.to_container(task, resolve=True)
    except (OmegaConfBaseException, ValueError):
        return
    try:
        validate(resolved)
    except ValueError as err:
        raise ValueError(errors.one_line(err)) from None


def _resume(config: DictConfig) -> bool:
    return bool(OmegaConf.select(config, "resume", default=False))
