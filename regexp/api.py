"""The notebook API: train one configuration of ``regexp train`` from Python.

    import regexp

    result = regexp.run(["regularizer=l1", "lambda=1e-3"], run_dir="outputs/notebook/l1")
    result["test_accuracy"], result.history, result.model

:func:`run` composes the shipped config (``regexp.conf``) with Hydra's compose API and runs
it through the code of ``regexp train`` (:func:`regexp.hydra_app.task.run_task`), so its numbers
and files
are those of the command line. ``regexp.load_results`` and ``regexp.summarize`` read runs
and sweeps back (:mod:`regexp.hydra_app.lifecycle`, :mod:`regexp.results.aggregate`).
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from torch import nn

from regexp import config
from regexp.config import check_overrides, composition_error
from regexp.hydra_app.task import run_task
from regexp.model.mlp import load_checkpoint
from regexp.runs import sweep_dir
from regexp.runs.run_files import read_metrics

if TYPE_CHECKING:
    from omegaconf import DictConfig

# What regexp train's Hydra names the log file of a run (hydra.job.name), and its format
# when the composed config says none (hydra/job_logging's formatter "simple").
LOG_FILE = "train.log"
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class RunResult(dict):
    """A run's metrics row: a plain ``dict`` of the ``metrics.csv`` columns, plus

    Attributes
    ----------
    history : pandas.DataFrame
        ``history.csv``: one row per epoch.
    model : torch.nn.Sequential
        The trained model as saved in ``model.pt`` (thresholded unless the run diverged),
        in eval mode.
    config : dict
        The resolved config the run was trained with.
    run_dir : pathlib.Path or None
        The run directory, or ``None`` when it was a temporary one (now removed).
    """

    def __init__(
        self,
        row: dict,
        *,
        history: pd.DataFrame,
        model: nn.Module,
        config: dict,
        run_dir: Path | None,
    ) -> None:
        super().__init__(row)
        self.history, self.model, self.config, self.run_dir = history, model, config, run_dir


def compose_config(overrides: Sequence[str] = ()) -> dict:
    """The shipped config with ``overrides`` (command-line syntax), resolved to a dict.

    A Hydra that the caller initialized (``hydra.initialize``) is left as it was.
    """
    from omegaconf import OmegaConf

    return OmegaConf.to_container(_compose(overrides), resolve=True)  # type: ignore[return-value]


def _compose(overrides: Sequence[str], with_hydra: bool = False) -> DictConfig:
    """Hydra's compose of the shipped config with ``overrides`` (checked as ``regexp train``
    checks them), unresolved; with ``with_hydra`` its ``hydra`` node too. The caller's
    Hydra is put back."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    overrides = as_override_list(overrides)
    check_overrides(overrides)  # one line for a bad override, as regexp train
    gh = GlobalHydra.instance()
    theirs = gh.hydra if gh.is_initialized() else None  # the caller's Hydra, put back below
    gh.clear()
    try:
        with initialize_config_module("regexp.conf", version_base="1.3"):
            return compose("config", overrides=list(overrides), return_hydra_config=with_hydra)
    except Exception as err:  # a value of the wrong type: the message of regexp train
        schema = composition_error(err)
        if schema is None:
            raise
        raise schema from None
    finally:
        if theirs is not None:
            GlobalHydra.instance().clear()
            GlobalHydra.instance().initialize(theirs)


def write_hydra_files(run_dir: Path, composed: DictConfig, overrides: Sequence[str]) -> None:
    """``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` in ``run_dir``, as
    Hydra writes them for ``regexp train``: the task config as composed (interpolations
    kept), the ``hydra`` node (run directory ``run_dir``, mode ``RUN``) and the overrides."""
    from omegaconf import OmegaConf, open_dict

    from regexp.io.atomic import write_text

    composed = composed.copy()
    with open_dict(composed):
        hydra = composed.pop("hydra")
        hydra.run.dir = str(run_dir)
        hydra.runtime.output_dir = str(Path(run_dir).resolve())
        hydra.mode = "RUN"
        hydra.overrides.hydra = [f"hydra.run.dir={run_dir}", "hydra.mode=RUN"]
    folder = Path(run_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "config.yaml", OmegaConf.to_yaml(composed))
    write_text(folder / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra})))
    write_text(folder / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))


@contextmanager
def log_to_file(path: Path, fmt: str) -> Iterator[None]:
    """Copy the INFO (and louder) records of the ``regexp`` loggers to ``path`` (appended,
    as Hydra's ``train.log``), leaving what the caller's handlers receive as it was: for
    the time of the block, ``regexp`` records stop propagating and a handler passes on to
    the root logger those at or above the level the caller had set for them."""
    logger, root = logging.getLogger("regexp"), logging.getLogger()
    level, propagate = logger.level, logger.propagate
    theirs = logger.getEffectiveLevel()
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(fmt))
    to_file.setLevel(logging.INFO)
    onward = _Onward(root, theirs if propagate else logging.CRITICAL + 1)
    logger.addHandler(to_file)
    logger.addHandler(onward)
    logger.setLevel(min(theirs, logging.INFO))
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(to_file)
        logger.removeHandler(onward)
        to_file.close()
        logger.setLevel(level)
        logger.propagate = propagate


class _Onward(logging.Handler):
    """Hands records at or above ``level`` to ``parent`` (what propagation would have done)."""

    def __init__(self, parent: logging.Logger, level: int) -> None:
        super().__init__()
        self.parent, self.threshold = parent, level

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.threshold:
            self.parent.handle(record)


def as_override_list(overrides: Sequence[str]) -> list[str]:
    """``overrides`` as a list, or ``TypeError`` (one line) unless it is a list of strings."""
    if isinstance(overrides, str) or not isinstance(overrides, Sequence):
        raise TypeError(
            f"overrides must be a list of strings such as ['lambda=1e-3'], got {overrides!r}"
        )
    for item in overrides:
        if not isinstance(item, str):
            raise TypeError(
                "overrides must be a list of strings such as ['lambda=1e-3'], got "
                f"{item!r} ({type(item).__name__}) in {list(overrides)!r}"
            )
    return list(overrides)


def _run_dir_override(overrides: list[str], run_dir: str | Path | None) -> tuple[list, Path | None]:
    """Take ``hydra.run.dir=...`` out of ``overrides``: it names the run folder, as for
    ``regexp train``. Any other ``hydra.*`` override is refused (``regexp.run`` runs no
    Hydra app, so it would be ignored)."""
    rest, chosen = [], Path(run_dir) if run_dir is not None else None
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if key == "hydra.run.dir":
            if chosen is not None and Path(value) != chosen:
                raise ValueError(
                    f"hydra.run.dir={value} and run_dir='{chosen}' name two run folders; give one"
                )
            chosen = Path(value)
        elif key == "hydra" or key.startswith(("hydra.", "hydra/")):
            raise ValueError(
                f"regexp.run takes no Hydra setting but hydra.run.dir (its run folder), got "
                f"'{item}'; sweeps (-m) and launchers are for `regexp train`"
            )
        else:
            rest.append(item)
    return rest, chosen


def run(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> RunResult:
    """Train one configuration, as ``regexp train *overrides`` does; its metrics row.

    Parameters
    ----------
    overrides : list of str
        Hydra overrides as on the command line, e.g. ``["regularizer=l1", "lambda=1e-3"]``;
        one run (no comma-separated sweeps).
    run_dir : str or Path, optional
        The folder the run's files go into, as ``hydra.run.dir`` for ``regexp train``
        (the override ``hydra.run.dir=...`` does the same): it must be new, empty or a run
        folder of regexp; an earlier run there is set aside into ``.regexp/superseded/``
        (only its own files), or with ``resume=true`` taken back when its config and data
        are the same. Another process running in it is refused. ``None``: a temporary
        folder, removed before this returns; the history and model come back in the
        result all the same.

    Returns
    -------
    RunResult
        The ``metrics.csv`` row as a dict (``result["test_accuracy"]``), with ``history``,
        ``model``, ``config`` and ``run_dir`` attributes. A run that diverged comes back
        with ``result["status"] == "diverged"``; a bad value raises ``ValueError`` with the
        message of ``regexp train``.

    The caller's state is left as it was: torch's random number generators (the run seeds
    them from ``seed``), Python's ``random`` (which importing scikit-learn draws from), the
    thread count (the run uses ``trainer.num_threads``), Hydra's
    global state; no matplotlib backend is set.
    """
    from omegaconf import OmegaConf

    overrides, run_dir = _run_dir_override(as_override_list(overrides), run_dir)
    composed = _compose(overrides, with_hydra=True)
    task = OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"])
    cfg: dict = OmegaConf.to_container(task, resolve=True)  # type: ignore[assignment]
    config.validate_once(cfg)
    logger = cfg.get("logger") or {}
    if run_dir is None and logger.get("name") == "tensorboard" and not logger.get("save_dir"):
        raise ValueError(
            "logger=tensorboard writes into the run directory, which run_dir=None removes; "
            "pass run_dir=..., or set logger.save_dir=..."
        )
    if run_dir is None and cfg.get("resume"):
        raise ValueError(
            "resume=true takes back a finished run of a run folder: pass run_dir=... "
            "(without it the run goes to a temporary folder)"
        )
    if run_dir is not None:
        sweep_dir.check_run_folder(run_dir, "run_dir")
    tr = cfg["trainer"]
    devices = [] if tr["device"] == "cpu" else list(range(torch.cuda.device_count()))
    threads = torch.get_num_threads()
    python_random = random.getstate()  # importing scikit-learn draws from it
    temporary = None
    try:
        if run_dir is None:
            temporary = Path(tempfile.mkdtemp(prefix="regexp-"))
        where = Path(run_dir) if run_dir is not None else temporary
        lock = sweep_dir.open_run(where, bool(cfg.get("resume")), "run_dir")
        try:
            logged = nullcontext()
            if run_dir is not None:  # the files of regexp train's Hydra: .hydra/ and train.log
                write_hydra_files(where, composed, overrides)
                fmt = OmegaConf.select(
                    composed, "hydra.job_logging.formatters.simple.format", default=LOG_FORMAT
                )
                logged = log_to_file(where / LOG_FILE, str(fmt))
            with torch.random.fork_rng(devices=devices), logged:
                torch.set_num_threads(tr["num_threads"])
                if not (cfg.get("resume") and sweep_dir.reuse(where, cfg, where)):
                    run_task(cfg, where, summary=False)
                model, _ = load_checkpoint(where / "model.pt")  # builds, so draws, then loads
            sweep_dir.finish_sweep(where)
        finally:
            sweep_dir.unlock(lock)
        row = read_metrics(where)  # as on disk: a missing value is NaN, as in load_results
        history = pd.read_csv(where / "history.csv")
    finally:
        torch.set_num_threads(threads)
        random.setstate(python_random)
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return RunResult(
        row,
        history=history,
        model=model,
        config=cfg,
        run_dir=None if run_dir is None else Path(run_dir),
    )
