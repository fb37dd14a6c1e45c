"""``hydra/launcher=batched``: run a sweep's compatible jobs as one stacked model.

    regexp train -m hydra/launcher=batched regularizer=l1,l2,group_lasso,sgl lambda=1e-4,1e-3

Jobs that share everything but ``regularizer``, ``lambda``, ``seed``, ``threshold``,
``model.dropout`` and ``optimizer.lr`` train together (:func:`regexp.batched.fit_stacked`);
each then gets, through Hydra's own ``run_job``, the run directory, ``.hydra`` files, log and
outputs that ``hydra/launcher=basic`` gives it. The others run one by one, as with ``basic``,
with a log line saying why.

Sweeps of at least ``hydra.launcher.parallel_from`` jobs load the jobs' configs and write
their run directories in ``hydra.launcher.n_jobs`` worker processes (joblib's loky backend,
as Hydra's joblib launcher uses); the stacked training itself runs in this process.
"""

import json
import logging
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from joblib import Parallel, cpu_count, delayed
from joblib.externals.loky.process_executor import BrokenProcessPool, TerminatedWorkerError
from omegaconf import DictConfig, OmegaConf, open_dict

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


ConfigStore.instance().store(
    group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="regexp"
)


@dataclass
class _Job:
    idx: int
    config: DictConfig  # the sweep config, hydra node included
    cfg: dict | None = None  # the resolved task config
    setup: Any = None  # regexp.train.Setup
    rng_state: Any = None
    result: Any = None  # regexp.results.FitResult, once trained
    group: list[int] = field(default_factory=list)


def _output_dir(config: DictConfig) -> Path:
    """The job's run directory, as ``hydra.core.utils.run_job`` computes it."""
    sweep = OmegaConf.select(config, "hydra.sweep.dir")
    return Path(os.path.abspath(os.path.join(str(sweep), str(config.hydra.sweep.subdir))))


class _WriteTask:
    """A Hydra task that writes the run directory of a job trained in a stack.

    Built in the launcher's process, which evaluates the trained model
    (:func:`regexp.results.outputs`); called, through ``run_job``, in that process or in a
    worker, where it writes the files (:func:`regexp.results.write`). It returns what
    ``train_app`` returns, and a job whose evaluation or writing raised gets the
    ``status=failed`` row that ``train_app`` would write.
    """

    def __init__(self, job: _Job) -> None:
        from regexp.cli import _debug
        from regexp.results import outputs

        self.idx, self.cfg, self.group = job.idx, job.cfg, job.group
        self.outputs, self.error = None, None
        try:
            self.outputs = outputs(job.cfg, job.setup.model, job.setup.data, job.result)
        except Exception as err:
            if _debug():  # raises here, before the group's jobs get their directories
                raise
            self.error = f"{type(err).__name__}: {err}"  # text: any exception pickles so

    def __call__(self, _: DictConfig) -> float | list[float] | None:
        from regexp.cli import _debug
        from regexp.results import failed_row, write
        from regexp.sweep import objective_values

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        log.info("trained in a stack of %d models (jobs %s)", len(self.group), _ids(self.group))
        error = self.error
        if error is None:
            try:
                return objective_values(write(run_dir, self.outputs), self.cfg["objectives"])
            except Exception as err:
                if _debug():
                    raise
                error = f"{type(err).__name__}: {err}"
        log.error("job %s failed: %s", self.idx, error)
        failed_row(self.cfg, run_dir, error)
        return None


def _load_config(
    hydra_context: HydraContext, master: DictConfig, overrides: list[str], idx: int
) -> DictConfig:
    """Job ``idx``'s sweep config, as Hydra's basic launcher loads it."""
    config = hydra_context.config_loader.load_sweep_config(master, overrides)
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


def _ids(idx: list[int]) -> str:
    """Job numbers as runs: ``[0, 1, 2, 5, 7, 8]`` → ``"#0-2, #5, #7-8"``."""
    runs: list[list[int]] = []
    for i in sorted(idx):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"#{a}" if a == b else f"#{a}-{b}" for a, b in runs)


def _in_worker(fn: Callable, hydra_context: HydraContext, items: list[tuple], state: dict) -> list:
    """``[fn(hydra_context, *item) for item in items]`` in a worker process.

    One call per chunk of jobs: the Hydra context and global state (config repository,
    plugins) are large, and pickling them for every job would cost more than the job.
    """
    # Import torch, pandas and matplotlib in the first call (which loads configs): loky
    # takes a worker's reference memory after its first call and restarts a worker that
    # grows by 300 MB, which the first write would otherwise do.
    import regexp.results  # noqa: F401

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
        configs = self._in_workers(_load_config, args)
        jobs = [_Job(a[2], config) for a, config in zip(args, configs, strict=True)]
        groups, alone = _plan(jobs)
        runs: dict[int, JobReturn] = {}
        for group in groups:
            if _train(group):
                tasks = [(job.config, _WriteTask(job)) for job in group]
                for job, ret in zip(group, self._in_workers(_run_job, tasks), strict=True):
                    runs[job.idx] = ret
            else:
                alone += group
        for job in sorted(alone, key=lambda j: j.idx):
            runs[job.idx] = _run_job(self.hydra_context, job.config, self.task_function)
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [runs[idx] for idx in sorted(runs)]


def _plan(jobs: list[_Job]) -> tuple[list[list[_Job]], list[_Job]]:
    """Split ``jobs`` into stacks (lists of 2 or more) and jobs that run alone."""
    import torch

    from regexp.batched import group_key, unbatchable
    from regexp.cli import _finished
    from regexp.sweep import validate_objectives
    from regexp.train import prepare

    datasets: dict[str, Any] = {}
    by_key: dict[str, list[_Job]] = {}
    alone: list[_Job] = []
    for job in jobs:
        why = None
        try:
            HydraConfig.instance().set_config(job.config)
            task_cfg = OmegaConf.masked_copy(job.config, [k for k in job.config if k != "hydra"])
            job.cfg = OmegaConf.to_container(task_cfg, resolve=True)
            validate_objectives(job.cfg["objectives"])
            if job.cfg.get("resume") and _finished(_output_dir(job.config), job.cfg):
                alone.append(job)  # train_app skips it
                continue
            data_key = json.dumps([job.cfg["dataset"], job.cfg["trainer"]["device"]], default=str)
            job.setup = prepare(job.cfg, datasets.get(data_key))
            job.rng_state = torch.get_rng_state()
            datasets[data_key] = job.setup.data
            why = unbatchable(job.setup)
        except Exception as err:
            why = f"its config is invalid ({type(err).__name__}: {err})"
        if why is None:
            by_key.setdefault(group_key(job.cfg), []).append(job)
        else:
            log.info("job #%d runs alone: %s", job.idx, why)
            alone.append(job)
    groups = []
    for group in by_key.values():
        if len(group) == 1:
            log.info(
                "job #%d runs alone: no other job shares its data, model, optimizer "
                "and trainer settings",
                group[0].idx,
            )
            alone += group
        else:
            groups.append(group)
    return groups, alone


def _train(group: list[_Job]) -> bool:
    """Train ``group`` as one stack; ``False`` (and a log line) if that failed."""
    from regexp.batched import Member, fit_stacked
    from regexp.cli import _debug

    cfg = group[0].cfg
    tr = cfg["trainer"]
    members = [Member.from_setup(j.cfg, j.setup, j.rng_state) for j in group]
    log.info("training %d jobs (%s) as one stacked model", len(group), _ids([j.idx for j in group]))
    try:
        results = fit_stacked(
            members,
            group[0].setup.data,
            cfg["model"]["activation"],
            cfg["optimizer"],
            tr["epochs"],
            tr["batch_size"],
            group[0].setup.patience,
            sys.stderr.isatty(),
        )
    except Exception as err:
        if _debug():
            raise
        log.warning(
            "stacked training failed (%s: %s); running these jobs one by one",
            type(err).__name__,
            err,
        )
        return False
    for job in group:
        job.group = [j.idx for j in group]
    for job, result in zip(group, results, strict=True):
        job.result = result
    return True
