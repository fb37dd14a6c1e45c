"""``hydra/launcher=batched``: run a sweep's compatible jobs as one stacked model.

    regexp train -m hydra/launcher=batched regularizer=l1,l2,group_lasso,sgl lambda=1e-4,1e-3

Jobs that share everything but ``regularizer``, ``lambda``, ``seed``, ``threshold``,
``model.dropout`` and ``optimizer.lr`` train together (:mod:`regexp.stacks`); each then
gets, through Hydra's own ``run_job``, the run directory, ``.hydra`` files, log and outputs
that ``hydra/launcher=basic`` gives it. The others run one by one, as with ``basic``, with
a log line saying why. Hydra discovers the launcher through the thin plugin module
``hydra_plugins/regexp_launcher/batched_launcher.py``.

Sweeps of at least ``hydra.launcher.parallel_from`` jobs load the jobs' configs and write
their run directories in ``hydra.launcher.n_jobs`` worker processes (joblib's loky backend,
as Hydra's joblib launcher uses); the stacked training itself runs in this process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import pickle
import sys
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
    from regexp.stacks import StackJob

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.regexp_launcher.batched_launcher.BatchedLauncher"
    # Worker processes that load the jobs' configs and write their run directories
    # (-1: one per CPU core; 1: everything in this process).
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
    (:func:`regexp.outputs.run.outputs`); called, through ``run_job``, in that process or in a
    worker, where it writes the files (:func:`regexp.outputs.run.write`). It returns what
    ``train_app`` returns, and a job whose evaluation or writing raised gets the
    ``status=failed`` row that ``train_app`` would write.
    """

    def __init__(self, job: StackJob) -> None:
        from regexp.outputs.run import outputs

        self.idx, self.cfg, self.group = job.idx, job.cfg, job.group
        self.outputs, self.error = None, None
        try:
            self.outputs = outputs(job.cfg, job.setup.model, job.setup.data, job.result)
        except Exception as err:
            if errors.debug():  # raises here, before the group's jobs get their directories
                raise
            self.error = f"{type(err).__name__}: {err}"  # text: any exception pickles so

    def __call__(self, _: DictConfig) -> float | list[float] | None:
        from regexp.outputs.objectives import objective_values
        from regexp.outputs.run import failed_row, write
        from regexp.stacks import ids

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        log.info("trained in a stack of %d models (jobs %s)", len(self.group), ids(self.group))
        error = self.error
        if error is None:
            try:
                return objective_values(write(run_dir, self.outputs), self.cfg["objectives"])
            except Exception as err:
                if errors.debug():
                    raise
                error = f"{type(err).__name__}: {err}"
        log.error("job %s failed: %s", self.idx, error)
        failed_row(self.cfg, run_dir, error)
        return None


def _load_config(
    hydra_context: HydraContext, master: DictConfig, overrides: list[str], idx: int
) -> DictConfig:
    """Job ``idx``'s sweep config, as Hydra's basic launcher loads it, composed once per
    shape of job (:func:`regexp.sweeper.job_config`)."""
    from regexp.sweeper import job_config

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


def _in_worker(fn: Callable, hydra_context: HydraContext, items: list[tuple], state: dict) -> list:
    """``[fn(hydra_context, *item) for item in items]`` in a worker process.

    One call per chunk of jobs: the Hydra context and global state (config repository,
    plugins) are large, and pickling them for every job would cost more than the job.
    """
    # Import torch, pandas and matplotlib in the first call (which loads configs): loky
    # takes a worker's reference memory after its first call and restarts a worker that
    # grows by 300 MB, which the first write would otherwise do.
    import regexp.outputs.run  # noqa: F401

    setup_globals()
    Singleton.set_state(state)
    return [fn(hydra_context, *item) for item in items]


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
        """``[fn(self.hydra_context, *item) for item in items]``, in the workers if any.

        The items go in contiguous chunks, 4 per worker. If the workers fail (one dies, or
        a task does not pickle), says so and runs the calls in this process; an exception
        that ``fn`` raises propagates as it would in this process.
        """
        if self.parallel is not None:
            state = Singleton.get_state()
            n = min(len(items), 4 * self.parallel.n_jobs)
            chunks = [items[len(items) * k // n : len(items) * (k + 1) // n] for k in range(n)]
            try:
                done = self.parallel(
                    delayed(_in_worker)(fn, self.hydra_context, c, state) for c in chunks
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
        for item in items:
            out.append(fn(self.hydra_context, *item))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return out

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        # joblib's count honours CPU affinity and container quotas; never more than jobs.
        workers = min(cpu_count() if self.n_jobs == -1 else self.n_jobs, len(job_overrides))
        self.parallel = None  # a sweeper may call launch again, with a smaller batch
        if workers > 1 and len(job_overrides) >= self.parallel_from:
            self.parallel = Parallel(n_jobs=workers, backend="loky")
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
        import torch

        from regexp import stacks
        from regexp.outputs import console

        configs = self._in_workers(_load_config, args)
        sweep_configs = {a[2]: config for a, config in zip(args, configs, strict=True)}
        jobs = [
            stacks.StackJob(idx, _task_config(config), _output_dir(config))
            for idx, config in sweep_configs.items()
        ]
        groups, alone = stacks.plan(jobs)
        runs: dict[int, JobReturn] = {}
        if groups:
            keep_freed_memory()
        for group in groups:
            tr = group[0].cfg["trainer"]
            torch.set_num_threads(tr["num_threads"])
            with console.epoch_progress(tr["epochs"], enabled=sys.stderr.isatty()) as on_epoch:
                trained = stacks.train(group, on_epoch)
            if trained:
                tasks = [(sweep_configs[job.idx], _WriteTask(job)) for job in group]
                for job, ret in zip(group, self._in_workers(_run_job, tasks), strict=True):
                    runs[job.idx] = ret
            else:
                alone += group
        for job in sorted(alone, key=lambda j: j.idx):
            config = sweep_configs[job.idx]
            runs[job.idx] = _run_job(self.hydra_context, config, self.task_function)
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [runs[idx] for idx in sorted(runs)]


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
