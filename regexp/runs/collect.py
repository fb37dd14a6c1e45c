"""A sweep's results read back from disk: each job's ``metrics.csv`` (or what a killed job
left), one row per run, and :func:`load_results` for sweeps, run directories and CSVs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from regexp.results import aggregate, schema
from regexp.runs import sweep_dir
from regexp.runs.run_files import config_row, read_metrics

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


# An interpolation that calls a resolver (``${oc.env:HOME}``, ``${now:...}``): resolving it
# would read the environment of the reader, not the run's.
RESOLVER_CALL = re.compile(r"\$\{[^}]*:")


def _without_resolvers(node: object) -> object:
    """``node`` (a container of a loaded config) with each string that calls a resolver
    escaped (``\\${...}``), so that resolving keeps it as text; ``${seed}`` still resolves."""
    if isinstance(node, dict):
        return {k: _without_resolvers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_resolvers(v) for v in node]
    if isinstance(node, str) and RESOLVER_CALL.search(node):
        return node.replace("${", "\\${")
    return node


def _missing_row(run_dir: Path) -> dict:
    """The row of a job that left ``.hydra/config.yaml`` but no ``metrics.csv``.

    The config's own interpolations (``${seed}``) are resolved; resolver calls such as
    ``${oc.env:...}`` are kept as written, never evaluated in the reader's environment.
    """
    try:
        loaded = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        raw = OmegaConf.to_container(loaded, resolve=False)
        cfg = OmegaConf.to_container(OmegaConf.create(_without_resolvers(raw)), resolve=True)
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
    ``metrics.csv``, so that :func:`regexp.results.aggregate.config_columns` finds them.
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
    """Results from a sweep directory, a run directory, or a ``results.csv``/``metrics.csv``
    (a file, or a pipe such as ``<(cat results.csv)``).

    A directory is searched for run directories (:func:`collect`), and else for a
    ``results.csv`` at its root. Raises :class:`NoResultsError` when ``path`` holds neither.
    """
    path = Path(path)
    results = pd.DataFrame()
    if path.is_dir():
        results = collect(path)
        if results.empty and (path / RESULTS_FILE).is_file():
            path = path / RESULTS_FILE
    if path.exists() and not path.is_dir():  # a file, or a pipe: <(cat results.csv)
        results = _read_results_file(path)
        if "job" not in results.columns:
            results.insert(0, "job", path.parent.name)
    if not path.exists() or results.empty or "status" not in results.columns:
        raise NoResultsError(path)
    return order_columns(results)


def _read_results_file(path: Path) -> pd.DataFrame:
    """A ``results.csv`` or ``metrics.csv``, refused (one line naming it) when it is not one
    of regexp's, or was cut off while being written."""
    truncated = ValueError(f"'{path}' is truncated (its last row is incomplete); regenerate it")
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        raise NoResultsError(path) from None
    try:
        results = pd.read_csv(io.StringIO(text), dtype=TEXT_COLUMNS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        # A quoted field cut in the middle does not parse: ours (a status column) when cut.
        if not text.endswith("\n") and "status" in text.partition("\n")[0].split(","):
            raise truncated from None
        raise NoResultsError(path) from None
    if "status" not in results.columns or not aggregate.config_columns(results):
        raise NoResultsError(path)  # a CSV, but not one that regexp wrote
    if not text.endswith("\n") or results["status"].isna().any():
        raise truncated
    return results


def task_metrics(results: pd.DataFrame) -> dict[str, str]:
    """Each dataset's main test metric (``test_accuracy`` or ``test_r2``), from its task."""
    tasks = results.dropna(subset=["dataset", "task"]).groupby("dataset")["task"].first()
    return {d: aggregate.main_metric(t) for d, t in tasks.items()}
