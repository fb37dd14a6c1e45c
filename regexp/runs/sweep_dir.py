"""One sweep per directory: a lock, the list of this sweep's jobs, and resume by identity.

A sweep directory holds the run directories of one sweep, and ``.regexp/``:

- ``sweep.lock``: held by the sweep's main process while it runs (:mod:`filelock`), so a
  second sweep into the same directory stops with one line instead of mixing its files in;
- ``jobs.txt``: the job subdirectories of this sweep, one per line, appended as each job
  starts; ``results.csv`` pools exactly these (:func:`sweep_jobs`);
- ``reusable/<config_id>-<data_id>/``: with ``resume=true``, the finished runs found in the
  directory when the sweep starts, moved aside by identity (:func:`start`). A job whose
  config and data match one takes it over (:func:`reuse`), whatever its job number was;
- ``superseded/``: runs that this sweep did not ask for (another config, failed or
  incomplete), kept rather than overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from regexp.io.atomic import write_text
from regexp.results.identity import config_id, data_id
from regexp.runs.run_files import read_metrics

log = logging.getLogger(__name__)

STATE_DIR = ".regexp"
LOCK_FILE = "sweep.lock"
JOBS_FILE = "jobs.txt"
DONE_FILE = "done.txt"  # one line per finished job: for the progress lines
TRAINED_FILE = "trained.txt"  # the run directories of jobs whose training ended: the ETA
STARTED_FILE = "started.txt"  # the time the sweep started (seconds since the epoch)
REUSABLE = "reusable"
SUPERSEDED = "superseded"
ORIGIN_FILE = "origin.json"  # in a reusable run: the subdirectory it came from
FINISHED = ("ok", "diverged")


class SweepDirError(ValueError):
    """A sweep directory that this sweep may not use (the message says why and what to do)."""


def state(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / STATE_DIR


def run_dirs(sweep_dir: Path) -> list[Path]:
    """Run directories directly or deeper under ``sweep_dir``: those with a ``metrics.csv``
    or Hydra's ``.hydra/config.yaml``, outside ``.regexp/`` and outside any other sweep
    nested in it (a folder below the root with its own ``.regexp/`` or ``multirun.yaml``),
    which belongs to that sweep."""
    root = Path(sweep_dir)
    found = {p.parent for p in root.rglob("metrics.csv")}
    found |= {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    return sorted(d for d in found if not _in_other_sweep(root, d))


def _in_other_sweep(root: Path, run_dir: Path) -> bool:
    """Whether ``run_dir`` lies in ``root``'s state folder, or in a folder strictly between
    ``root`` and it that is a sweep of its own."""
    parts = run_dir.relative_to(root).parts
    if STATE_DIR in parts:
        return True
    for depth in range(1, len(parts)):
        folder = root.joinpath(*parts[:depth])
        if (folder / STATE_DIR).is_dir() or (folder / "multirun.yaml").is_file():
            return True
    return False


def lock(sweep_dir: Path) -> FileLock:
    """Take the sweep directory's lock, or raise :class:`SweepDirError` if a sweep holds it."""
    path = state(sweep_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(path, timeout=0)
    try:
        held.acquire()
    except Timeout:
        raise SweepDirError(
            f"another sweep is running in hydra.sweep.dir '{sweep_dir}' (it holds {path}); "
            "wait for it to end, or choose another hydra.sweep.dir"
        ) from None
    return held


def start_run(run_dir: Path, resume: bool) -> None:
    """Prepare the directory of a single run (``regexp train`` without ``-m``).

    A run already there is moved aside, never overwritten: with ``resume`` a finished one
    into ``.regexp/reusable/`` (the run then takes it back if its config and data are the
    same: :func:`reuse`), else into ``.regexp/superseded/``, with a warning.
    """
    root = Path(run_dir)
    if not (root / "metrics.csv").is_file() and not (root / ".hydra").is_dir():
        return
    _set_aside(root, [root], resume)
    if not resume:
        log.warning("%s held an earlier run: kept in %s", root, state(root) / SUPERSEDED)


def start(sweep_dir: Path, resume: bool) -> None:
    """Prepare ``sweep_dir`` for a new sweep (the caller holds its :func:`lock`).

    Without ``resume``, a directory that already holds runs is refused. With it, every run
    there is moved aside: finished ones (ok or diverged, a complete ``metrics.csv`` with
    their ``config_id`` and ``data_id``) into ``reusable/`` by identity, the others into
    ``superseded/``. The job list starts empty.
    """
    root = Path(sweep_dir)
    runs = run_dirs(root) if root.is_dir() else []
    if runs and not resume:
        raise SweepDirError(
            f"hydra.sweep.dir '{root}' already holds {len(runs)} run(s) of another sweep; "
            "choose a new hydra.sweep.dir, or pass resume=true to reuse its finished runs"
        )
    state(root).mkdir(parents=True, exist_ok=True)
    (state(root) / JOBS_FILE).unlink(missing_ok=True)
    (state(root) / DONE_FILE).unlink(missing_ok=True)
    (state(root) / TRAINED_FILE).unlink(missing_ok=True)
    write_text(state(root) / STARTED_FILE, f"{time.time()}\n")
    _set_aside(root, runs, resume)
    if runs:
        log.info("resume: %d earlier run(s) in %s set aside, reused by identity", len(runs), root)


def _set_aside(root: Path, runs: Sequence[Path], resume: bool) -> None:
    """Move ``runs`` (under ``root``) into ``root/.regexp/``: finished ones into
    ``reusable/`` by identity when ``resume``, the others into ``superseded/``."""
    home = state(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for run_dir in runs:
        row = read_metrics(run_dir)
        ids = (row or {}).get("config_id"), (row or {}).get("data_id")
        sub = run_dir.relative_to(root).as_posix()
        finished = row is not None and row.get("status") in FINISHED
        if resume and finished and all(isinstance(i, str) for i in ids):
            target = home / REUSABLE / f"{ids[0]}-{_safe(ids[1])}"
            if not target.exists():
                _move_run(run_dir, target)
                write_text(target / ORIGIN_FILE, json.dumps({"job": sub}))
                continue
        _move_run(run_dir, home / SUPERSEDED / stamp / sub)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _move_run(run_dir: Path, target: Path) -> None:
    """Move a run directory's files (nested job directories stay) to ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for item in list(run_dir.iterdir()):
        if item.name == STATE_DIR or (item.is_dir() and item.name != ".hydra" and run_dirs(item)):
            continue  # a nested run directory is moved on its own
        os.replace(item, target / item.name)
    if not any(run_dir.iterdir()):
        run_dir.rmdir()


def add_job(sweep_dir: Path, run_dir: Path) -> None:
    """Append ``run_dir`` to the sweep's job list; a second job with the same directory is a
    :class:`SweepDirError` (two jobs would overwrite each other's files)."""
    home = state(sweep_dir)
    home.mkdir(parents=True, exist_ok=True)
    sub = Path(run_dir).resolve().relative_to(Path(sweep_dir).resolve()).as_posix()
    with FileLock(home / f"{JOBS_FILE}.lock"):
        path = home / JOBS_FILE
        jobs = path.read_text().splitlines() if path.is_file() else []
        if sub in jobs:
            raise SweepDirError(
                f"two jobs of this sweep write to the same directory '{sub}'; make "
                "hydra.sweep.subdir unique per job, e.g. ${hydra.job.num} (the default)"
            )
        with path.open("a") as file:
            file.write(sub + "\n")


def job_done(sweep_dir: Path) -> tuple[int, float]:
    """Count a finished job: how many jobs of this sweep have finished, and the seconds
    since the sweep started (:func:`start` wrote the time)."""
    home = state(sweep_dir)
    with FileLock(home / f"{DONE_FILE}.lock"):
        with (home / DONE_FILE).open("a") as file:
            file.write("1\n")
        done = len((home / DONE_FILE).read_text().splitlines())
    try:
        started = float((home / STARTED_FILE).read_text())
    except (OSError, ValueError):
        started = time.time()
    return done, time.time() - started


def job_trained(sweep_dir: Path, run_dirs_of_jobs: Sequence[Path]) -> int:
    """Count jobs whose training ended (a stack's jobs all at once, when the stack ends;
    a job that trains alone when it finishes); returns how many of this sweep's jobs have,
    each counted once."""
    home = state(sweep_dir)
    home.mkdir(parents=True, exist_ok=True)  # a sweep run without regexp's callback too
    with FileLock(home / f"{TRAINED_FILE}.lock"):
        with (home / TRAINED_FILE).open("a") as file:
            file.writelines(f"{Path(d).resolve()}\n" for d in run_dirs_of_jobs)
        return len(set((home / TRAINED_FILE).read_text().splitlines()))


def check_distinct(run_dirs_of_jobs: Sequence[Path]) -> None:
    """Raise :class:`SweepDirError` if two jobs map to one directory (before anything runs)."""
    seen: dict[str, int] = {}
    for idx, run_dir in enumerate(run_dirs_of_jobs):
        key = str(Path(run_dir).resolve())
        if key in seen:
            raise SweepDirError(
                f"jobs #{seen[key]} and #{idx} of this sweep write to the same directory "
                f"'{run_dir}'; make hydra.sweep.subdir unique per job, e.g. ${{hydra.job.num}}"
            )
        seen[key] = idx


def sweep_jobs(sweep_dir: Path) -> list[Path] | None:
    """The run directories of the sweep in ``sweep_dir``, in job order, from its job list
    (``None`` for a directory written without one)."""
    path = state(sweep_dir) / JOBS_FILE
    if not path.is_file():
        return None
    return [Path(sweep_dir) / line for line in path.read_text().splitlines() if line]


def _reusable_path(sweep_dir: Path, cfg: Mapping) -> Path | None:
    """Where a finished run of ``cfg`` would be set aside in ``sweep_dir`` (a sweep's
    directory, or a single run's)."""
    if not state(sweep_dir).is_dir():
        return None
    try:
        key = f"{config_id(cfg)}-{_safe(data_id(cfg['dataset']))}"
    except (KeyError, OSError, TypeError):
        return None
    return state(sweep_dir) / REUSABLE / key


def has_reusable(sweep_dir: Path, cfg: Mapping) -> bool:
    """Whether :func:`reuse` would find a finished run of ``cfg`` in ``sweep_dir``."""
    path = _reusable_path(sweep_dir, cfg)
    return path is not None and path.is_dir()


def reuse(run_dir: Path, cfg: Mapping, sweep_dir: Path) -> dict | None:
    """Take over a finished run of ``cfg`` (same ``config_id`` and ``data_id``) set aside by
    :func:`start` into ``run_dir``; its metrics row, or ``None`` if there is none.

    The run's files replace what ``run_dir`` holds, except ``train.log`` (the old one is
    kept as ``train.previous.log``). If the run came from this very subdirectory, its own
    ``.hydra/`` files are restored too, so resuming never rewrites them.
    """
    source = _reusable_path(sweep_dir, cfg)
    if source is None:
        return None
    claimed = source.with_name(f"{source.name}.claimed-{os.getpid()}")
    try:
        os.replace(source, claimed)  # atomic: one job takes it
    except OSError:
        return None
    origin = json.loads((claimed / ORIGIN_FILE).read_text()).get("job")
    here = Path(run_dir).resolve().relative_to(sweep_dir.resolve()).as_posix()
    (claimed / ORIGIN_FILE).unlink()
    for item in list(claimed.iterdir()):
        if item.name == ".hydra" and origin != here:
            continue  # the job's own .hydra files describe its new place
        if item.name == "train.log":
            os.replace(item, Path(run_dir) / "train.previous.log")
            continue
        target = Path(run_dir) / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    shutil.rmtree(claimed, ignore_errors=True)
    log.info("resume: reused the finished run of this config (earlier job %s)", origin)
    return read_metrics(Path(run_dir))


def restore_unclaimed(sweep_dir: Path) -> None:
    """After an interrupted resume: put each run still set aside in ``reusable/`` back in
    the folder it came from, when that folder holds no run now."""
    home = state(sweep_dir)
    if not (home / REUSABLE).is_dir():
        return
    for run in sorted((home / REUSABLE).iterdir()):
        try:
            origin = json.loads((run / ORIGIN_FILE).read_text())["job"]
        except (OSError, ValueError, KeyError):
            continue
        target = Path(sweep_dir) / origin
        if (target / "metrics.csv").exists():
            continue
        (run / ORIGIN_FILE).unlink()
        _move_run(run, target)


def finish_sweep(sweep_dir: Path) -> None:
    """At the end of a sweep (or run): runs set aside and not reused move to ``superseded/``."""
    home = state(sweep_dir)
    left = sorted((home / REUSABLE).iterdir()) if (home / REUSABLE).is_dir() else []
    if left:
        target = home / SUPERSEDED / time.strftime("%Y%m%d-%H%M%S")
        target.mkdir(parents=True, exist_ok=True)
        for run in left:
            os.replace(run, target / run.name)
        log.warning(
            "resume: %d earlier run(s) of other configs are not part of this sweep; kept in %s",
            len(left),
            target,
        )
