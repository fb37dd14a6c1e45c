"""The sweep's lifecycle as a Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``):
:class:`SweepLifecycle` validates, takes the sweep's lock, resumes, keeps the job list,
prints one progress line per finished job and writes the report when the sweep ends
(:func:`regexp.hydra_app.report.write_sweep_report`), under any launcher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from regexp import errors
from regexp.hydra_app.report import write_sweep_report
from regexp.io.atomic import OUTPUT_ROOTS, writable_dir, write_text
from regexp.runs import console, sweep_dir
from regexp.runs.run_files import read_metrics

log = logging.getLogger(__name__)
# Launchers whose jobs run in processes that do not write to the sweep's console
# (submitit's local and Slurm executors log into .submitit/): each job also appends its
# line to LINES_FILE, which the launching process prints as the lines come (JobLineRelay).
RELAYED_LAUNCHERS = ("hydra_plugins.hydra_submitit_launcher.",)
LINES_FILE = "job_lines.txt"  # in the sweep's state folder (sweep_dir.state)


class SweepLifecycle(Callback):
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
        self._keys: list[str] = []  # the config keys that vary in the sweep
        self._relay: JobLineRelay | None = None  # submitit: the jobs' lines, printed here

    def __getstate__(self) -> dict:
        """Worker processes get the callback without the sweep's lock and the relay of job
        lines (both held here)."""
        return {**self.__dict__, "_lock": None, "_relay": None}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Bad input ends here, before an earlier run in hydra.run.dir is set aside and
        # before Hydra creates the directory.
        self._refuse_errors(lambda: _validate_task(config))
        run_dir = Path(str(config.hydra.run.dir))
        # A folder holding files of no regexp run is refused before anything is written.
        self._refuse_errors(lambda: sweep_dir.check_run_folder(run_dir))
        self._refuse_errors(lambda: writable_dir(run_dir, "hydra.run.dir"))
        OUTPUT_ROOTS.append(run_dir)
        self._lock = self._refuse_errors(lambda: sweep_dir.open_run(run_dir, _resume(config)))

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            sweep_dir.finish_sweep(Path(str(config.hydra.run.dir)))
        finally:
            if self._lock is not None:
                sweep_dir.unlock(self._lock)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(str(config.hydra.sweep.dir))
        self._refuse_errors(lambda: check_subdir(config))
        self._refuse_errors(lambda: check_n_jobs(config))
        self._refuse_errors(lambda: check_selection(config))
        self._refuse_errors(lambda: sweep_dir.check_sweep_folder(root))
        self._refuse_errors(lambda: writable_dir(root, "hydra.sweep.dir"))
        OUTPUT_ROOTS.append(root)
        self._lock = self._refuse_errors(lambda: sweep_dir.lock(root))
        self._total = sweep_size(config)
        self._keys = sweep_keys(config)
        console.quiet_sweep_console()  # one line per job: no launchers' listing
        self._refuse_errors(lambda: sweep_dir.start(root, _resume(config)))
        if relayed(config):
            self._relay = JobLineRelay(sweep_dir.state(root) / LINES_FILE)
            self._relay.start()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            console.quiet_sweep_console()  # the job's log goes to its train.log only
            root, run_dir = Path(str(config.hydra.sweep.dir)), config.hydra.runtime.output_dir
            errors.fault_point("job_start")
            self._refuse_errors(lambda: sweep_dir.add_job(root, Path(run_dir)))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        root = Path(str(config.hydra.sweep.dir))
        run_dir = Path(str(config.hydra.runtime.output_dir))
        done, seconds = sweep_dir.job_done(root)
        trained = sweep_dir.job_trained(root, [run_dir])  # a stacked job: when its stack ended
        row = read_metrics(run_dir)
        keys, total = self._keys, self._total
        line = console.job_line(run_dir, row, done, total, seconds, keys, trained)
        log.info(line)
        if relayed(config):  # this process's console is not the sweep's: the relay prints it
            relay_line(sweep_dir.state(root) / LINES_FILE, line)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(str(config.hydra.sweep.dir))
        try:
            if self._relay is not None:
                self._relay.stop()  # every job's line, before the report
            sweep_dir.finish_sweep(root)
            write_sweep_report(root, *_selection(config))
            label_objectives(root, list(OmegaConf.select(config, "objectives", default=[])))
        finally:
            if self._lock is not None:
                sweep_dir.unlock(self._lock)

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


def relayed(config: DictConfig) -> bool:
    """Whether the sweep's launcher (``hydra.launcher._target_``) runs its jobs where their
    lines do not reach this console (:data:`RELAYED_LAUNCHERS`: submitit)."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    return target.startswith(RELAYED_LAUNCHERS)


def relay_line(path: Path, line: str) -> None:
    """Append one job line to ``path`` (whole lines, under a lock: jobs finish together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"), path.open("a", encoding="utf-8") as file:
        file.write(line.replace("\n", " ") + "\n")


class JobLineRelay:
    """Prints, in the process that launched a sweep, the job lines that its jobs append
    to ``path`` (:func:`relay_line`), each once and as it comes: a thread reads the new
    whole lines every ``interval`` seconds; :meth:`stop` prints the last ones."""

    def __init__(self, path: Path, interval: float = 0.25) -> None:
        self.path, self.interval = Path(path), interval
        self._offset = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="regexp-job-lines", daemon=True)
        self._poll_lock = threading.Lock()

    def start(self) -> None:
        if self.path.is_file():  # a resumed sweep: the lines of its earlier jobs are old
            self._offset = self.path.stat().st_size
        self._thread.start()

    def poll(self) -> int:
        """Print the whole lines appended since the last poll; how many."""
        with self._poll_lock:
            try:
                with self.path.open("rb") as file:
                    file.seek(self._offset)
                    data = file.read()
            except FileNotFoundError:
                return 0
            complete = data[: data.rfind(b"\n") + 1]
            self._offset += len(complete)
            lines = complete.decode("utf-8", errors="replace").splitlines()
            for line in lines:
                log.info(line)
            return len(lines)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        self.poll()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.poll()


def check_subdir(config: DictConfig) -> None:
    """Refuse a ``hydra.sweep.subdir`` that leads out of the sweep directory (an absolute
    path, or a ``..`` part), before any job writes there."""
    raw = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")  # type: ignore[union-attr]
    text = str(raw)
    parts = text.replace("\\", "/").split("/")
    if text.startswith(("/", "~")) or ".." in parts:
        raise ValueError(
            f"hydra.sweep.subdir '{text}' leads out of hydra.sweep.dir; a job's folder "
            "must lie inside the sweep's, e.g. hydra.sweep.subdir=${hydra.job.num} (the default)"
        )


def check_selection(config: DictConfig) -> None:
    """Refuse bad ``selection.rule`` or ``selection.sparsity`` (how best.csv chooses, when
    the sweep ends) before any job runs (:func:`regexp.config.validate_group`)."""
    from regexp.config import validate_group

    if "selection" in config:
        node = OmegaConf.select(config, "selection")
        value = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        validate_group({"selection": value}, "selection")


def check_n_jobs(config: DictConfig) -> None:
    """Refuse ``hydra.launcher.n_jobs=0`` (or a non-integer), which runs no job."""
    n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
    if n_jobs is None:
        return
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(
            f"hydra.launcher.n_jobs must be -1 (every core) or a number of workers >= 1, "
            f"got {n_jobs!r}"
        )


def report_finished_jobs(root: Path) -> bool:
    """For a sweep cut off by an error: its report (``results.csv``, ...) from the jobs
    that finished, ``best.csv`` by the sweep's ``selection`` keys. ``False`` for a folder
    that is not a sweep, or holds no finished job."""
    if not (sweep_dir.state(root) / sweep_dir.JOBS_FILE).is_file():
        return False
    saved = root / "multirun.yaml"  # Hydra's copy of the sweep's config: its selection keys
    choice = _selection(OmegaConf.load(saved)) if saved.is_file() else ("best", "params")
    return write_sweep_report(root, *choice) is not None


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


def sweep_keys(config: DictConfig) -> list[str]:
    """The config keys that the sweep varies: the keys of its sweep overrides (command line
    and ``hydra.sweeper.params``, e.g. ``regularizer``, ``lambda``, ``model.dropout``),
    less ``hydra`` keys and ``+``/``~`` prefixes; ``[]`` when they cannot be parsed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    overrides = [*(f"{k}={v}" for k, v in params.items()), *config.hydra.overrides.task]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # a sweep this parser does not understand: the default keys
        return []
    keys = [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]
    return [k for k in dict.fromkeys(keys) if not k.startswith("hydra")]


def _validate_task(config: DictConfig) -> None:
    """:func:`regexp.config.validate` of the task config (``config`` less ``hydra``);
    a config that does not resolve without Hydra's runtime is left to the task."""
    from omegaconf.errors import OmegaConfBaseException

    from regexp.config import validate_once

    try:
        HydraConfig.instance().set_config(config)
        task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        resolved = OmegaConf.to_container(task, resolve=True)
    except (OmegaConfBaseException, ValueError):
        return
    try:
        validate_once(resolved)
    except ValueError as err:
        raise ValueError(errors.one_line(err)) from None


def _selection(config: DictConfig) -> tuple[str, str]:
    """Config keys ``selection.rule`` and ``selection.sparsity``: how ``best.csv`` chooses."""
    rule = OmegaConf.select(config, "selection.rule", default="best")
    return str(rule), str(OmegaConf.select(config, "selection.sparsity", default="params"))


def _resume(config: DictConfig) -> bool:
    return bool(OmegaConf.select(config, "resume", default=False))
