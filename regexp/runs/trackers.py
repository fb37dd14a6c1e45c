"""Experiment trackers: a run's config, history and metrics in TensorBoard or MLflow.

``logger=csv`` (the default) adds nothing: the run directory is the record. With
``logger=tensorboard`` or ``logger=mlflow`` (``conf/logger/``), :func:`log_run` logs:

- params: the resolved task config flattened to dotted keys (``optimizer.lr``); lists and
  empty mappings as JSON text (``model.hidden`` = ``"[40, 20]"``), ``None`` as ``"null"``;
- ``history/<column>`` for every numeric column of ``history.csv`` but ``epoch``, at
  step = epoch;
- ``<column>`` for every numeric value of the metrics row (``metrics.csv``:
  ``test_accuracy``, ``params_kept``, ..., and numeric config columns such as ``lambda``),
  at step = the last epoch (``epochs_run``).

The prefix keeps the history's ``val_accuracy`` (per epoch, before thresholding) apart from
``metrics.csv``'s (after). :func:`regexp.runs.run_files.write` calls :func:`log_run` for every
run it writes, in whichever process writes it, so each job of a sweep is its own tracked
run under every launcher. The tracker's package is imported only when it is selected;
:func:`regexp.config.tracker_installed` refuses a run whose tracker is not installed before
it trains.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from regexp.errors import one_line
from regexp.results import schema
from regexp.results.identity import flatten

try:
    import fcntl
except ImportError:  # not on Windows: concurrent writers to one SQLite store go unlocked
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

Scalar = str | int | float | bool

# MLflow's log_batch takes at most 100 params and 1000 metrics per call.
PARAMS_PER_BATCH, METRICS_PER_BATCH = 100, 1000


def flat_params(cfg: Mapping) -> dict[str, Scalar]:
    """The tracker's params: :func:`regexp.results.identity.flatten` of ``cfg`` (the same
    dotted keys as ``metrics.csv``), with ``None`` as ``"null"`` and other non-scalars as
    text, which every tracker stores."""
    return {
        k: "null" if v is None else v if isinstance(v, Scalar) else str(v)
        for k, v in flatten(cfg).items()
    }


def history_metrics(history: pd.DataFrame) -> dict[str, list[tuple[int, float]]]:
    """``{"history/<column>": [(epoch, value), ...]}`` for each numeric column but epoch."""
    epochs = [int(e) for e in history["epoch"]]
    return {
        f"history/{col}": [(e, float(v)) for e, v in zip(epochs, history[col], strict=True)]
        for col in history.select_dtypes("number").columns
        if col != "epoch"
    }


def final_metrics(row: Mapping) -> dict[str, float]:
    """The metric columns of a metrics row (:func:`regexp.results.schema.is_metric`) with a
    numeric value (``bool`` is not a number here); the config goes to the params."""
    return {
        str(k): float(v)
        for k, v in row.items()
        if schema.is_metric(str(k)) and isinstance(v, numbers.Real) and not isinstance(v, bool)
    }


def run_name(run_dir: Path) -> str:
    """``<parent>/<run dir>``: ``13-52-00/0`` for job 0 of a sweep started at 13:52:00."""
    run_dir = Path(run_dir).resolve()
    return f"{run_dir.parent.name}/{run_dir.name}"


def track(run_dir: Path, cfg: Mapping, history: pd.DataFrame, row: Mapping) -> str | None:
    """:func:`log_run`, never raising: a tracker's error is logged as one line and
    returned as ``"logger=<name>: <Type>: <message>"`` (``None`` when all went well), for
    the ``tracker_error`` column of ``metrics.csv``. A finished run stays finished."""
    try:
        log_run(run_dir, cfg, history, row)
    except Exception as err:
        name = (cfg.get("logger") or {}).get("name")
        text = f"logger={name}: {type(err).__name__}: {one_line(err)}"
        log.error("%s: the run's files are written; the tracker failed: %s", run_dir, text)
        return text
    return None


def log_run(run_dir: Path, cfg: Mapping, history: pd.DataFrame, row: Mapping) -> None:
    """Log a written run to the tracker of ``cfg["logger"]`` (none for ``csv``).

    ``history`` and ``row`` are what ``history.csv`` and ``metrics.csv`` hold.
    """
    logger = cfg.get("logger") or {"name": "csv"}
    if logger["name"] == "csv":
        return
    params = flat_params(cfg)
    curves = history_metrics(history)
    final = final_metrics(row)
    step = int(row.get("epochs_run", len(history)))
    if logger["name"] == "tensorboard":
        save_dir = logger.get("save_dir")
        log_dir = Path(run_dir) / "tensorboard" if save_dir is None else Path(save_dir)
        if save_dir is not None:
            log_dir = log_dir / run_name(run_dir)
        _tensorboard(log_dir, params, curves, final, step)
    elif logger["name"] == "mlflow":
        tags = {"run_dir": str(Path(run_dir).resolve()), "status": str(row.get("status"))}
        _mlflow(logger, run_name(run_dir), tags, params, curves, final, step)
    else:
        raise ValueError(f"logger.name must be csv, tensorboard or mlflow, got {logger['name']!r}")


def _tensorboard(
    log_dir: Path,
    params: dict[str, Scalar],
    curves: dict[str, list[tuple[int, float]]],
    final: dict[str, float],
    step: int,
) -> None:
    """One event file in ``log_dir`` (older ones, of an earlier run there, go first)."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("events.out.tfevents.*"):
        old.unlink()
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for tag, points in curves.items():
            for epoch, value in points:
                writer.add_scalar(tag, value, epoch)
        # The HPARAMS tab: the config against the final metrics (scalars of this run).
        for summary in hparams(params, final):
            writer.file_writer.add_summary(summary, step)
        for tag, value in final.items():
            writer.add_scalar(tag, value, step)


def _sqlite_store(uri: str) -> tuple[str, Path | None]:
    """An ``sqlite:///`` URI made absolute (its folder created), and the database's path.

    Other URIs (a server, ``sqlite://`` in memory) come back as they are, with ``None``.
    """
    prefix = "sqlite:///"
    path, sep, query = uri.removeprefix(prefix).partition("?")
    if not uri.startswith(prefix) or path in ("", ":memory:"):
        return uri, None
    db = Path(path).expanduser().resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"{prefix}{db}{sep}{query}", db


@contextmanager
def _locked(db: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock``: the batched launcher's worker processes
    write runs at once, and two of them creating one store's tables would collide."""
    if db is None or fcntl is None:
        yield
        return
    with open(db.with_name(f"{db.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Seconds an MLflow request to a tracking server may take (logger.timeout), without retries:
# MLflow's own defaults (120 s, 7 retries with backoff) wait minutes for a server that is down.
DEFAULT_TIMEOUT = 10


@contextmanager
def _http_timeout(seconds: float) -> Iterator[None]:
    """MLflow's HTTP requests time out after ``seconds`` and are not retried, while in the
    block (through MLflow's ``MLFLOW_HTTP_REQUEST_TIMEOUT`` and
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, read at each request); the environment is
    restored afterwards."""
    values = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(seconds))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _mlflow(
    logger: Mapping,
    name: str,
    tags: dict[str, str],
    params: dict[str, Scalar],
    curves: dict[str, list[tuple[int, float]]],
    final: dict[str, float],
    step: int,
) -> None:
    """One MLflow run; an earlier run of the same run directory (tag ``run_dir``) is deleted."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri, db = _sqlite_store(logger["tracking_uri"])
    with _locked(db), _http_timeout(logger.get("timeout", DEFAULT_TIMEOUT)):
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(logger["experiment_name"])
        if experiment is None:
            artifacts = None if db is None else (db.parent / "artifacts").as_uri()
            experiment_id = client.create_experiment(
                logger["experiment_name"], artifact_location=artifacts
            )
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment_id)
        if "'" not in tags["run_dir"]:  # a quote would end the filter's string
            query = f"tags.run_dir = '{tags['run_dir']}'"
            for old in client.search_runs([experiment_id], query):
                client.delete_run(old.info.run_id)
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        now = int(time.time() * 1000)
        entries = [Param(k, str(v)) for k, v in params.items()]
        points = [Metric(tag, v, now, s) for tag, pts in curves.items() for s, v in pts]
        points += [Metric(tag, v, now, step) for tag, v in final.items()]
        try:
            for i in range(0, len(entries), PARAMS_PER_BATCH):
                client.log_batch(run_id, params=entries[i : i + PARAMS_PER_BATCH])
            for i in range(0, len(points), METRICS_PER_BATCH):
                client.log_batch(run_id, metrics=points[i : i + METRICS_PER_BATCH])
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
