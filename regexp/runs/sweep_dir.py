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

from regexp.errors import fault_point
from regexp.io.atomic import WRITE_CHECK, write_text
from regexp.results.identity import config_id, data_id
from regexp.runs.run_files import MARKER, is_owned, mark_run, read_metrics

log = logging.getLogger(__name__)

STATE_DIR = ".regexp"
LOCK_FILE = "sweep.lock"
JOBS_FILE = "jobs.txt"
DONE_FILE = "done.txt"  # one line per finished job: for the progress lines
TRAINED_FILE = "trained.txt"  # the run directories of jobs whose training ended: the ETA
STARTED_FILE = "started.txt"  # the time the sweep started (seconds since the epoch)
REUSABLE = "reusable"
SUPERSEDED = "superseded"
# In a run set aside: the subdirectory it came from ("job") and the names it held there
# ("files"); while a job takes it over, also that job's subdirectory ("into").
ORIGIN_FILE = ".regexp-origin.json"
FINISHED = ("ok", "diverged")
# The locks this process holds (sweeps and single runs): released by release_locks().
_HELD: list[FileLock] = []


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


def lock(sweep_dir: Path, key: str = "hydra.sweep.dir") -> FileLock:
    """Take the lock of a sweep's (or a single run's) directory, or raise
    :class:`SweepDirError` if another process holds it. ``key`` names the setting that
    chose the directory, for the message."""
    path = state(sweep_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(path, timeout=0)
    try:
        held.acquire()
    except Timeout:
        what = "sweep" if key == "hydra.sweep.dir" else "run"
        raise SweepDirError(
            f"another {what} is running in {key} '{sweep_dir}' (it holds {path}); "
            f"wait for it to end, or choose another {key}"
        ) from None
    _HELD.append(held)
    return held


def unlock(held: FileLock) -> None:
    """Release one lock taken with :func:`lock`."""
    held.release(force=True)
    if held in _HELD:
        _HELD.remove(held)


def release_locks() -> None:
    """Release every lock this process took with :func:`lock` (at the end of a command,
    however it ends)."""
    while _HELD:
        _HELD.pop().release(force=True)


def foreign_files(folder: Path) -> list[str]:
    """The names in ``folder`` that no regexp run wrote: all but a run's own
    (:func:`regexp.runs.run_files.is_owned`), the state folder and :data:`ORIGIN_FILE`."""
    if not Path(folder).is_dir():
        return []
    return sorted(
        p.name
        for p in Path(folder).iterdir()
        if not is_owned(p.name)
        and p.name not in (STATE_DIR, ORIGIN_FILE)
        and WRITE_CHECK not in p.name  # another regexp checking that it may write here
    )


def _holds_regexp(path: Path) -> bool:
    """Whether ``path`` is a folder holding runs or sweeps of regexp (at any depth)."""
    marks = (MARKER, STATE_DIR, "multirun.yaml")
    return path.is_dir() and any(next(path.rglob(m), None) is not None for m in marks)


def check_sweep_folder(sweep_dir: Path) -> None:
    """Raise :class:`SweepDirError` unless ``sweep_dir`` is new, empty, or a sweep's (its
    ``.regexp/`` folder or Hydra's ``multirun.yaml``), or holds only folders of regexp's
    runs and sweeps: a sweep writes its job folders and ``results.csv`` into no folder of
    other files."""
    root = Path(sweep_dir)
    if not root.is_dir() or state(root).is_dir() or (root / "multirun.yaml").is_file():
        return
    others = sorted(
        p.name for p in root.iterdir() if WRITE_CHECK not in p.name and not _holds_regexp(p)
    )
    if others:
        listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise SweepDirError(
            f"hydra.sweep.dir '{root}' holds files that are not a regexp sweep's ({listed}); "
            "a sweep writes only into a new or empty folder or one of its own: choose "
            "another hydra.sweep.dir"
        )


def check_run_folder(run_dir: Path, key: str = "hydra.run.dir") -> None:
    """Raise :class:`SweepDirError` unless ``run_dir`` is new, empty, or a run folder of
    regexp (its :data:`MARKER`, or nothing but the names of a run's files)."""
    root = Path(run_dir)
    foreign = foreign_files(root)
    if foreign and not (root / MARKER).is_file():
        listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise SweepDirError(
            f"{key} '{root}' holds files that are not a regexp run's ({listed}); a run "
            f"writes only into a new or empty folder or one of its own: choose another {key}"
        )


def open_run(run_dir: Path, resume: bool, key: str = "hydra.run.dir") -> FileLock:
    """Make ``run_dir`` this process's run folder (``regexp train`` without ``-m``, and
    ``regexp.run``); returns its lock, which the caller releases when the run ends.

    The folder must be new, empty, or hold a run of regexp (its :data:`MARKER`, or only the
    names of a run's files): a folder holding anything else is refused, and nothing in it
    is touched. A second process opening the same folder while this one holds its lock is
    refused (:func:`lock`). An earlier run there is set aside, never overwritten: its own
    files only, with ``resume`` a finished one into ``.regexp/reusable/`` (the run then
    takes it back if its config and data are the same: :func:`reuse`), else into
    ``.regexp/superseded/``, with a warning. Then the folder gets this run's marker.
    """
    root = Path(run_dir)
    check_run_folder(root, key)
    held = lock(root, key)
    try:
        start_run(root, resume)
        mark_run(root)
    except BaseException:
        unlock(held)
        raise
    return held


def start_run(run_dir: Path, resume: bool) -> None:
    """Set an earlier run in ``run_dir`` aside (see :func:`open_run`, which checks the
    folder and takes its lock first)."""
    root = Path(run_dir)
    if not root.is_dir() or all(p.name == MARKER for p in _own_items(root)):
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
        target = home / SUPERSEDED / stamp / sub
        if resume and finished and all(isinstance(i, str) for i in ids):
            reusable = home / REUSABLE / f"{ids[0]}-{_safe(ids[1])}"
            if not reusable.exists():
                target = reusable
        _move_run(run_dir, target, sub)
        fault_point("set_aside")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _own_items(run_dir: Path) -> list[Path]:
    """What a run wrote in ``run_dir``: its own names (:func:`is_owned`), less nested run
    directories (moved on their own) and the state folder."""
    return sorted(
        p
        for p in Path(run_dir).iterdir()
        if is_owned(p.name) and not (p.is_dir() and p.name != ".hydra" and run_dirs(p))
    )


def _move_run(run_dir: Path, target: Path, origin: str) -> None:
    """Move a run's own files (:func:`_own_items`) from ``run_dir`` to the new folder
    ``target``, with :data:`ORIGIN_FILE` recording ``origin`` and their names; files that
    no run wrote and nested run directories stay. A folder holding nothing else moves
    with one rename (all or nothing); else the origin file is written first, so that an
    interrupted move can be put back together (:func:`restore_unclaimed`)."""
    items = _own_items(run_dir)
    record = json.dumps({"job": origin, "files": [p.name for p in items]})
    target.parent.mkdir(parents=True, exist_ok=True)
    inside = target.resolve().is_relative_to(Path(run_dir).resolve())
    if not inside and len(items) == len(list(run_dir.iterdir())):
        write_text(run_dir / ORIGIN_FILE, record)
        os.replace(run_dir, target)
        return
    target.mkdir(parents=True, exist_ok=True)
    write_text(target / ORIGIN_FILE, record)
    for item in items:
        os.replace(item, target / item.name)
        fault_point("move_file")
    if run_dir.is_dir() and not any(run_dir.iterdir()):
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

    The run's files join what ``run_dir`` holds (the job's own ``.hydra/`` and
    ``train.log``), ``metrics.csv`` last, so that an interrupted take-over leaves no
    complete-looking mix (:func:`restore_unclaimed` puts it back); its ``train.log`` becomes
    ``train.previous.log``. If the run came from this very subdirectory, its own
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
    info = _origin(claimed)
    origin = info.get("job")
    here = Path(run_dir).resolve().relative_to(Path(sweep_dir).resolve()).as_posix()
    write_text(claimed / ORIGIN_FILE, json.dumps(info | {"into": here}))
    fault_point("reuse")
    items = sorted(claimed.iterdir(), key=lambda p: (p.name == "metrics.csv", p.name))
    for item in items:
        if item.name == ORIGIN_FILE or (item.name == ".hydra" and origin != here):
            continue  # the job's own .hydra files describe its new place
        target = Path(run_dir) / _taken_name(item.name)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
        fault_point("reuse_file")
    shutil.rmtree(claimed, ignore_errors=True)
    log.info("resume: reused the finished run of this config (earlier job %s)", origin)
    return read_metrics(Path(run_dir))


def _taken_name(name: str) -> str:
    """A reused run's file's name in the job that takes it over (its log is kept apart)."""
    return "train.previous.log" if name == "train.log" else name


def _origin(run: Path) -> dict:
    """A set-aside run's :data:`ORIGIN_FILE` (``{}`` when it has none or it is unreadable);
    ``files`` defaults to what the run holds."""
    try:
        info = json.loads((run / ORIGIN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict) or not isinstance(info.get("job"), str):
        return {}
    held = [p.name for p in run.iterdir() if p.name != ORIGIN_FILE]
    return info | {"files": info.get("files", held)}


def restore_unclaimed(sweep_dir: Path) -> None:
    """After an interrupted resume: put each run still set aside in ``reusable/`` back in
    the folder it came from. Never a mix of two runs: a run that a job was taking over
    goes back first; a folder where another run has finished keeps it (the set-aside run
    stays reusable by identity for the next resume); what an unfinished job left in the
    folder moves to ``superseded/`` first."""
    home = state(sweep_dir)
    if not (home / REUSABLE).is_dir():
        return
    for claimed in sorted((home / REUSABLE).glob("*.claimed-*")):
        _unclaim(Path(sweep_dir), claimed)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for run in sorted((home / REUSABLE).iterdir()):
        info = _origin(run)
        if not info or ".claimed-" in run.name:
            continue
        target = Path(sweep_dir) / info["job"]
        held = {p.name for p in run.iterdir() if p.name != ORIGIN_FILE}
        clash = [
            p
            for p in (_own_items(target) if target.is_dir() else [])
            if p.name in held or p.name not in info["files"]
        ]
        if any(p.name == "metrics.csv" for p in clash):
            continue
        if clash:  # an unfinished job's files (its own .hydra, log, marker)
            aside = home / SUPERSEDED / stamp / info["job"]
            aside.mkdir(parents=True, exist_ok=True)
            for item in clash:
                os.replace(item, aside / item.name)
        target.mkdir(parents=True, exist_ok=True)
        for name in sorted(held):
            os.replace(run / name, target / name)
        (run / ORIGIN_FILE).unlink(missing_ok=True)
        run.rmdir()


def _unclaim(sweep_dir: Path, claimed: Path) -> None:
    """Undo a take-over (:func:`reuse`) cut off midway: the run's files go back from the
    job's folder into ``claimed``, which becomes a reusable run again; a take-over that
    got as far as ``metrics.csv`` is complete, and ``claimed`` (what it left) goes."""
    info = _origin(claimed)
    back = claimed.with_name(claimed.name.split(".claimed-")[0])
    if not isinstance(info.get("into"), str):  # cut off before it took anything
        if info and not back.exists():
            os.replace(claimed, back)
        return
    into = Path(sweep_dir) / info["into"]
    held = {p.name for p in claimed.iterdir()}
    if "metrics.csv" not in held:
        shutil.rmtree(claimed, ignore_errors=True)
        return
    for name in info["files"]:
        moved = into / _taken_name(name)
        if name in held or (name == ".hydra" and info["job"] != info["into"]):
            continue
        if moved.exists():
            os.replace(moved, claimed / name)
    info.pop("into")
    write_text(claimed / ORIGIN_FILE, json.dumps(info))
    if not back.exists():
        os.replace(claimed, back)


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
