"""``hydra/launcher=batched``: run a sweep's compatible jobs as one stacked model.

    regexp train -m hydra/launcher=batched regularizer=l1,l2,group_lasso,sgl lambda=1e-4,1e-3

Jobs that share everything but ``regularizer``, ``lambda``, ``seed``, ``threshold``,
``model.dropout`` and ``optimizer.lr`` train together (:func:`regexp.batched.fit_stacked`);
each then gets, through Hydra's own ``run_job``, the run directory, ``.hydra`` files, log and
outputs that ``hydra/launcher=basic`` gives it. The others run one by one, as with ``basic``,
with a log line saying why.
"""

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.regexp_launcher.batched_launcher.BatchedLauncher"


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
    result: Any = None  # regexp.train.FitResult, once trained
    group: list[int] = field(default_factory=list)


def _output_dir(config: DictConfig) -> Path:
    """The job's run directory, as ``hydra.core.utils.run_job`` computes it."""
    sweep = OmegaConf.select(config, "hydra.sweep.dir")
    return Path(os.path.abspath(os.path.join(str(sweep), str(config.hydra.sweep.subdir))))


def _finish_task(job: _Job) -> Callable[[DictConfig], float | list[float] | None]:
    """A Hydra task that writes the outputs of an already trained job (as ``train_app``)."""

    def task(_: DictConfig) -> float | list[float] | None:
        from regexp.cli import _debug
        from regexp.sweep import objective_values
        from regexp.train import failed_row, finish

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        log.info("trained in a stack of %d models (jobs %s)", len(job.group), _ids(job.group))
        try:
            row = finish(job.cfg, run_dir, job.setup.model, job.setup.data, job.result)
        except Exception as err:
            if _debug():
                raise
            log.error("job %s failed: %s: %s", job.idx, type(err).__name__, err)
            failed_row(job.cfg, run_dir, err)
            return None
        return objective_values(row, job.cfg["objectives"])

    return task


def _ids(idx: list[int]) -> str:
    """Job numbers as runs: ``[0, 1, 2, 5, 7, 8]`` → ``"#0-2, #5, #7-8"``."""
    runs: list[list[int]] = []
    for i in sorted(idx):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"#{a}" if a == b else f"#{a}-{b}" for a, b in runs)


class BatchedLauncher(Launcher):
    def __init__(self) -> None:
        super().__init__()
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _run(self, job: _Job, task: TaskFunction) -> JobReturn:
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=task,
            config=job.config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally, compatible ones stacked")
        jobs = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(config):
                config.hydra.job.id = idx
                config.hydra.job.num = idx
            jobs.append(_Job(idx, config))
        groups, alone = _plan(jobs)
        runs: dict[int, JobReturn] = {}
        for group in groups:
            if _train(group):
                for job in group:
                    runs[job.idx] = self._run(job, _finish_task(job))
            else:
                alone += group
        for job in sorted(alone, key=lambda j: j.idx):
            runs[job.idx] = self._run(job, self.task_function)
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
