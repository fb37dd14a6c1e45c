"""``hydra/launcher=batched``: run a sweep's compatible jobs as one stacked model.

    regexp train -m hydra/launcher=batched regularizer=l1,l2,group_lasso,sgl lambda=1e-4,1e-3

Jobs that share everything but ``regularizer``, ``lambda``, ``seed``, ``threshold``,
``model.dropout`` and ``optimizer.lr`` train together (:mod:`regexp.hydra_app.stack_plan`):
MLPs with the fast engine, other modules (conv nets) with the vmap engine
(:func:`regexp.train.loop.choose_engine`);
each then gets, through Hydra's own ``run_job``, the run directory, ``.hydra`` files, log
and outputs that ``hydra/launcher=basic`` gives it. The others run alone, through Hydra's
task function as with ``basic``, with a log line saying why. Hydra discovers the launcher
through the thin plugin module ``hydra_plugins/regexp_launcher/batched_launcher.py``.

The launcher may use ``hydra.launcher.n_jobs`` CPU cores (-1: all). Sweeps of at least
``hydra.launcher.parallel_from`` jobs run in that many worker processes (joblib's loky
backend, as Hydra's joblib launcher uses): the jobs' configs are loaded there; then each
stack is cut into parts (:func:`regexp.hydra_app.stack_plan.split`), and every part trains
in a worker, at one torch thread unless its models are large (:func:`stack_threads`), and
writes its jobs' run directories there, side by side with the jobs that run alone. Small
models use processes, not intra-op threads: their threads would wait on each other at
every operation, and stall whenever another process takes one of their cores. A part
trains each of its jobs bit for bit as the whole stack would. Smaller sweeps train in this
process, one stack after another.

Workers die with their sweep: each watches the launcher's process and exits once it is
gone (:func:`exit_with_parent`), even after a ``SIGKILL``; ``SIGTERM`` is handled as
Ctrl-C by ``regexp.cli``, which stops the workers on the way out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from joblib import Parallel, cpu_count, delayed
from joblib.externals.loky.process_executor import BrokenProcessPool, TerminatedWorkerError
from omegaconf import DictConfig, OmegaConf, open_dict

from regexp import errors

if TYPE_CHECKING:
    from regexp.hydra_app.stack_plan import StackJob

log = logging.getLogger(__name__)


# loky's resource tracker (a process of its own) warns on its stderr about every resource of
# a worker that died before releasing it. Workers that a SIGTERM or Ctrl-C stops die so by
# design, the tracker then cleans up after them, and its warnings would land after the one
# line that the stop prints. Only these warnings are silenced, in the processes this one
# starts (the tracker reads PYTHONWARNINGS from its environment).
TRACKER_WARNINGS = "ignore:resource_tracker:UserWarning"


def quiet_resource_tracker() -> None:
    """Add :data:`TRACKER_WARNINGS` to ``PYTHONWARNINGS`` for the processes started next."""
    current = os.environ.get("PYTHONWARNINGS", "")
    if TRACKER_WARNINGS not in current.split(","):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [current, TRACKER_WARNINGS]))


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.regexp_launcher.batched_launcher.BatchedLauncher"
    # CPU cores the sweep may use: worker processes (configs, trainings side by side, run
    # directories), and the torch threads of the stacks (-1: every core; 1: everything in
    # this process, stacks at one thread). On a shared machine, the cores that are yours.
    n_jobs: int = -1
    # Sweeps with fewer jobs do everything in this process: starting the workers (each
    # imports torch and matplotlib) takes a few seconds.
    parallel_from: int = 16


def store_config() -> None:
    """Register ``hydra/launcher=batched`` (:class:`BatchedLauncherConf`) in the ConfigStore."""
    ConfigStore.instance().store(
        group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="regexp"
    )


def _output_dir(config: DictConfig) -> Path:
    """The job's run directory, as ``hydra.core.utils.run_job`` computes it."""
    sweep = OmegaConf.select(config, "hydra.sweep.dir")
    return Path(os.path.abspath(os.path.join(str(sweep), str(config.hydra.sweep.subdir))))


class _WriteTask:
    """A Hydra task that writes the run directory of a job trained in a stack.

    Built in the launcher's process, which evaluates the trained model
    (:func:`regexp.runs.run_files.measure`); called, through ``run_job``, in that process or in a
    worker, where it writes the files (:func:`regexp.runs.run_files.write`). It returns what
    ``train_app`` returns, and a job whose evaluation or writing raised gets the
    ``status=failed`` row that ``train_app`` would write.
    """

    def __init__(self, job: StackJob) -> None:
        from regexp.runs.run_files import measure

        self.idx, self.cfg, self.group = job.idx, job.cfg, job.group
        self.outputs, self.error = None, None
        self.lines = _job_lines(job)
        try:
            self.outputs = measure(job.cfg, job.setup.model, job.setup.data, job.result)
        except Exception as err:
            if errors.debug():  # raises here, before the group's jobs get their directories
                raise
            self.error = f"{type(err).__name__}: {err}"  # text: any exception pickles so

    def __call__(self, _: DictConfig) -> float | list[float] | None:
        from regexp.hydra_app.objectives import objective_values
        from regexp.hydra_app.stack_plan import ids
        from regexp.runs.console import metrics_line
        from regexp.runs.run_files import failed_row, wants_figures, write

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        _to_log_file([*self.lines[:-1], f"{self.lines[-1]}, in a stack of jobs {ids(self.group)}"])
        error = self.error
        if error is None:
            try:
                row = write(run_dir, self.outputs, figures=wants_figures(self.cfg, sweep=True))
                _to_log_file([metrics_line(row, run_dir)])  # as a sequential run ends its log
                return objective_values(row, self.cfg["objectives"])
            except Exception as err:
                if errors.debug():
                    raise
                error = f"{type(err).__name__}: {err}"
        log.error("job %s failed: %s", self.idx, error)
        failed_row(self.cfg, run_dir, error)
        return None


def _job_lines(job: StackJob) -> list[str]:
    """What a sequential run of ``job`` logs, in order; the last line is the training one."""
    from regexp.data.prepare import describe

    data, cfg, reg = job.setup.data, job.cfg, job.setup.reg
    sizes = [data.n_features, *cfg["model"]["hidden"], data.n_outputs]
    return [
        describe(data),
        f"engine {job.result.engine}: {job.engine_why}",
        *job.result.notes.get("events", []),
        f"trained {'-'.join(map(str, sizes))} with {reg!r} ({job.setup.mode} mode)",
    ]


def _to_log_file(lines: Sequence[str]) -> None:
    """Write ``lines`` to the job's own log file only (Hydra's file handler of the root
    logger): the console has the stack's summary line instead."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for text in lines:
        record = log.makeRecord(log.name, logging.INFO, __file__, 0, text, None, None)
        for handler in handlers:
            handler.handle(record)


def _load_config(
    hydra_context: HydraContext, master: DictConfig, overrides: list[str], idx: int
) -> DictConfig:
    """Job ``idx``'s sweep config, as Hydra's basic launcher loads it, composed once per
    shape of job (:func:`regexp.hydra_app.sweeper.job_config`)."""
    from regexp.hydra_app.sweeper import job_config

    config = job_config(hydra_context.config_loader, master, overrides)
    with open_dict(config):
        config.hydra.job.id = idx
        config.hydra.job.num = idx
    return config


def _run_job(hydra_context: HydraContext, config: DictConfig, task: TaskFunction) -> JobReturn:
    """Hydra's ``run_job`` for one job of the sweep."""
    return run_job(
        hydra_context=hydra_context,
        task_function=task,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def stack_threads(cores: int, trainings: int, workers: int, macs: int) -> int:
    """Torch threads of a stack whose models do ``macs`` multiply-adds per minibatch
    (:func:`regexp.hydra_app.stack_plan.step_macs`).

    One below :data:`regexp.hydra_app.stack_plan.THREADS_FROM_MACS`: small models use
    processes, not threads. Larger ones get their share of the cores,
    ``max(1, cores // min(workers, trainings))``: ``trainings`` (stacks, or parts of
    stacks, and jobs that train alone) run ``min(workers, trainings)`` at a time in
    ``workers`` processes (``workers = 1``: one after another in this process). A
    deterministic function of the sweep's plan and the launcher's cores, never of the
    machine's load; stacked numbers do not depend on it (``tests/test_batched.py`` checks
    bit-identical results at 1 and 2 threads). A job that trains alone uses its own
    ``trainer.num_threads``.
    """
    from regexp.hydra_app.stack_plan import THREADS_FROM_MACS

    if macs < THREADS_FROM_MACS:
        return 1
    return max(1, cores // max(1, min(workers, trainings)))


def _train_stack(group: list[StackJob], threads: int, progress: bool) -> list[_WriteTask] | None:
    """Train ``group`` as one stack at ``threads`` torch threads, here or in a worker.

    Returns the tasks that write its jobs' run directories (each job evaluated here, at
    its own ``trainer.num_threads``, as its sequential run evaluates), or ``None`` if
    stacked training failed (its jobs then run alone). ``progress``: an epoch bar on a
    terminal.
    """
    import torch

    from regexp.hydra_app import stack_plan as stacks
    from regexp.runs import console

    keep_freed_memory()
    tr = group[0].cfg["trainer"]
    torch.set_num_threads(threads)
    with console.epoch_progress(tr["epochs"], enabled=progress and sys.stderr.isatty()) as bar:
        trained = stacks.train(group, bar)
    if not trained:
        return None
    _log_stack(group)
    torch.set_num_threads(tr["num_threads"])
    return [_WriteTask(job) for job in group]


def _train_and_write(
    hydra_context: HydraContext,
    group: list[StackJob],
    configs: list[DictConfig],
    task_function: TaskFunction,
    threads: int,
    progress: bool,
    logs: tuple,
) -> list[JobReturn]:
    """Train ``group`` (a stack, or a part of one) and write its jobs' run directories
    through ``run_job``, here or in a worker; its jobs run alone if stacked training
    failed. ``configs``: the jobs' sweep configs, in order. Returns their ``JobReturn``s.

    Once trained, the jobs count as trained for the sweep's progress lines
    (:func:`regexp.runs.sweep_dir.job_trained`): their ETA is that of the stacks done so
    far, not of the first job written. ``logs``: Hydra's logging, set again after each
    job so that a job's log file never receives the next job's lines.
    """
    from regexp.runs import sweep_dir

    tasks = _train_stack(group, threads, progress)
    if tasks is not None:
        root = group[0].sweep_dir or group[0].run_dir.parent
        sweep_dir.job_trained(root, [job.run_dir for job in group])
    out = []
    for k, config in enumerate(configs):
        out.append(_run_job(hydra_context, config, task_function if tasks is None else tasks[k]))
        configure_log(*logs)
    return out


_WATCHING: list[int] = []  # the launcher's PID, once this worker watches it


def exit_with_parent(parent: int, every: float = 0.2) -> None:
    """In a worker process: end it (``os._exit(1)``) once the launcher's process
    ``parent`` is gone, checked every ``every`` seconds by a daemon thread.

    A dead parent shows as a new parent PID (the orphan is adopted by init or a
    subreaper): this works after a ``SIGKILL`` of the launcher, when nothing of it runs to
    stop the workers, and needs no cooperation from the job the worker is running. (The
    parent-death signal, ``prctl(PR_SET_PDEATHSIG)``, fires when the *thread* that started
    the process ends, and loky may start workers from its manager thread.) Idempotent: a
    worker starts one watchdog.
    """
    if _WATCHING:
        return
    _WATCHING.append(parent)
    ppid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != ppid or (ppid != parent and not _alive(parent)):
                os._exit(1)

    threading.Thread(target=watch, name="regexp-exit-with-parent", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_worker(
    calls: list[tuple[Callable, tuple]],
    hydra_context: HydraContext,
    state: dict,
    logs: tuple,
    parent: int,
) -> list:
    """``[fn(hydra_context, *args) for fn, args in calls]`` in a worker process, which
    exits once the launcher's process ``parent`` is gone (:func:`exit_with_parent`).

    One task per chunk of calls: the Hydra context and global state (config repository,
    plugins) are large, and pickling them for every job would cost more than the job.
    ``logs``: Hydra's own logging (``hydra.hydra_logging``, ``hydra.verbose``), set before
    each call so that a job's log file never receives the next call's lines.
    """
    # Import torch, pandas and matplotlib in the first call (which loads configs): loky
    # takes a worker's reference memory after its first call and restarts a worker that
    # grows by 300 MB, which the first write would otherwise do.
    import regexp.runs.run_files  # noqa: F401

    exit_with_parent(parent)
    setup_globals()
    Singleton.set_state(state)
    out = []
    for fn, args in calls:
        configure_log(*logs)
        out.append(fn(hydra_context, *args))
    configure_log(*logs)
    return out


class BatchedLauncher(Launcher):
    def __init__(self, n_jobs: int = -1, parallel_from: int = 16) -> None:
        super().__init__()
        if not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
            raise ValueError(f"hydra.launcher.n_jobs must be -1 or >= 1, got {n_jobs!r}")
        self.n_jobs, self.parallel_from = n_jobs, parallel_from
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self.parallel: Any = None  # joblib.Parallel, for sweeps run with workers

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _in_workers(self, fn: Callable, items: list[tuple]) -> list:
        """``[fn(self.hydra_context, *item) for item in items]``, in the workers if any."""
        return self._calls([(fn, item) for item in items])

    def _calls(self, calls: list[tuple[Callable, tuple]], own: int = 0) -> list:
        """``[fn(self.hydra_context, *args) for fn, args in calls]``, in the workers if any.

        The first ``own`` calls (long ones: trainings) go one per worker task, first; the
        rest in contiguous chunks, 4 per worker. If the workers fail (one dies, or a task
        does not pickle), says so and runs the calls in this process; an exception that a
        call raises propagates as it would in this process.
        """
        if self.parallel is not None and calls:
            state = Singleton.get_state()
            logs = (self.config.hydra.hydra_logging, self.config.hydra.verbose)
            rest = calls[own:]
            n = min(len(rest), 4 * self.parallel.n_jobs)
            chunks = [[c] for c in calls[:own]]
            chunks += [rest[len(rest) * k // n : len(rest) * (k + 1) // n] for k in range(n)]
            try:
                done = self.parallel(
                    delayed(_in_worker)(c, self.hydra_context, state, logs, os.getpid())
                    for c in chunks
                )
                return [x for chunk in done for x in chunk]
            except (BrokenProcessPool, TerminatedWorkerError, pickle.PicklingError) as err:
                log.warning(
                    "the worker processes failed (%s: %s); going on in this process",
                    type(err).__name__,
                    err,
                )
                self.parallel = None
        out = []
        for fn, args in calls:
            out.append(fn(self.hydra_context, *args))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return out

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        # joblib's count honours CPU affinity and container quotas; never more than jobs.
        cores = cpu_count() if self.n_jobs == -1 else self.n_jobs
        workers = min(cores, len(job_overrides))
        self.parallel = None  # a sweeper may call launch again, with a smaller batch
        if workers > 1 and len(job_overrides) >= self.parallel_from:
            # batch_size=1: each part of a stack is a task of its own, never batched
            quiet_resource_tracker()
            self.parallel = Parallel(n_jobs=workers, backend="loky", batch_size=1)
        log.info(
            "Launching %d jobs locally, compatible ones stacked%s",
            len(job_overrides),
            f"; configs and outputs in {workers} processes" if self.parallel else "",
        )
        args = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            args.append((self.config, list(overrides), idx))
        from regexp.hydra_app import stack_plan as stacks
        from regexp.runs import sweep_dir

        configs = self._in_workers(_load_config, args)
        sweep_configs = {a[2]: config for a, config in zip(args, configs, strict=True)}
        try:  # before anything runs: two jobs must not share a directory
            sweep_dir.check_distinct([_output_dir(c) for c in sweep_configs.values()])
        except sweep_dir.SweepDirError as err:
            errors.fail(str(err))
        root = Path(os.path.abspath(str(self.config.hydra.sweep.dir)))
        jobs = [
            stacks.StackJob(idx, _task_config(config), _output_dir(config), sweep_dir=root)
            for idx, config in sweep_configs.items()
        ]
        groups, alone = stacks.plan(jobs)
        # Jobs that train alone first; invalid and finished ones (no setup) are quick.
        alone.sort(key=lambda j: (j.setup is None, j.idx))
        lone = sum(j.setup is not None for j in alone)
        at_once = self.parallel.n_jobs if self.parallel is not None else 1
        parts = stacks.split(groups, at_once, lone) if self.parallel is not None else groups
        trainings = len(parts) + lone
        logs = (self.config.hydra.hydra_logging, self.config.hydra.verbose)
        part_calls = []
        for part in parts:
            threads = stack_threads(cores, trainings, at_once, stacks.step_macs(part[0]))
            configs = [sweep_configs[j.idx] for j in part]
            args = (part, configs, self.task_function, threads, self.parallel is None, logs)
            part_calls.append((_train_and_write, args))
        alone_calls = [(_run_job, (sweep_configs[j.idx], self.task_function)) for j in alone]
        if self.parallel is not None and trainings > 0:
            log.info(
                "%d stacks (%d parts) and %d jobs alone train side by side in %d processes",
                len(groups),
                len(parts),
                trainings - len(parts),
                self.parallel.n_jobs,
            )
        done = self._calls([*part_calls, *alone_calls], own=len(part_calls))
        runs: dict[int, JobReturn] = {}
        for part, rets in zip(parts, done[: len(parts)], strict=True):
            runs |= {job.idx: ret for job, ret in zip(part, rets, strict=True)}
        runs |= {job.idx: ret for job, ret in zip(alone, done[len(parts) :], strict=True)}
        return [runs[idx] for idx in sorted(runs)]


def _log_stack(group: Sequence[StackJob]) -> None:
    """One console line per trained stack: its jobs and how they ended."""
    from regexp.hydra_app.stack_plan import ids

    ended: dict[str, list[int]] = {}
    for job in group:
        ended.setdefault(job.result.status, []).append(job.idx)
    how = ", ".join(
        f"{len(v)} {k}" + ("" if k == "ok" else f" ({ids(v)})") for k, v in ended.items()
    )
    log.info("trained %d jobs (%s) in one stack: %s", len(group), ids([j.idx for j in group]), how)


def _task_config(config: DictConfig) -> dict | None:
    """A job's resolved task config (the sweep config less ``hydra``), or ``None`` if it
    does not resolve (the job then runs alone, and its task reports the error)."""
    try:
        HydraConfig.instance().set_config(config)  # for ${hydra:...} interpolations
        task_cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        return OmegaConf.to_container(task_cfg, resolve=True)  # type: ignore[return-value]
    except Exception:
        return None


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed memory instead of returning it to the OS.

    A stack's activations and gradients are fresh tensors of a few hundred KiB each step.
    By default glibc serves such blocks with ``mmap`` or trims them off the heap when they
    are freed, so every step page-faults them in again: about 5% of a stacked run's time
    (see BENCHMARKS.md). This raises ``M_MMAP_THRESHOLD`` to 256 MiB and
    ``M_TRIM_THRESHOLD`` to 1 GiB for the whole process (the peak RSS does not grow: the
    same blocks are reused), so only the launcher calls it, never the library. A no-op
    where libc is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # musl and others have no mallopt
        log.debug("mallopt is not available: freed memory goes back to the OS")
