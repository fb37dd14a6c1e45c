"""Which jobs of a sweep train together as one stacked model, and training them.

Hydra-free: :func:`plan` takes the jobs' resolved configs and run directories, and
:func:`train` trains one planned stack with :func:`regexp.train.stacked.fit.fit_stacked`.
The batched launcher (:mod:`regexp.hydra_app.launcher`) calls both and writes every job's run
directory; tests call them directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from regexp import errors
from regexp.config import validate_once
from regexp.hydra_app.objectives import validate_objectives
from regexp.runs import sweep_dir
from regexp.train.loop import EpochCallback, FitResult, Setup, prepare
from regexp.train.stacked.fit import Member, fit_stacked, group_key, unsupported

log = logging.getLogger(__name__)


@dataclass
class StackJob:
    """One job of a sweep: its number, resolved config and run directory; then its training."""

    idx: int
    cfg: dict | None  # None: the config could not be resolved (the job runs alone and fails)
    run_dir: Path
    setup: Setup | None = None
    rng_state: Any = None  # the global RNG state right after the model's init
    result: FitResult | None = None  # once trained
    group: list[int] = field(default_factory=list)  # job numbers of its stack
    sweep_dir: Path | None = None  # where resume finds finished runs set aside


def ids(idx: Sequence[int]) -> str:
    """Job numbers as runs: ``[0, 1, 2, 5, 7, 8]`` → ``"#0-2, #5, #7-8"``."""
    runs: list[list[int]] = []
    for i in sorted(idx):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"#{a}" if a == b else f"#{a}-{b}" for a, b in runs)


def plan(jobs: Sequence[StackJob]) -> tuple[list[list[StackJob]], list[StackJob]]:
    """Split ``jobs`` into stacks (lists of 2 or more) and jobs that run alone.

    A job runs alone, with a log line saying why, when its config is invalid, when
    ``resume=true`` finds it finished (the task then skips it), when it cannot join a
    stack (:func:`regexp.train.stacked.fit.unsupported`) or when no other job shares its
    :func:`regexp.train.stacked.fit.group_key`. Every other job is prepared here
    (:func:`regexp.train.loop.prepare`: data loaded once per data config, the seeded
    model built), ready for :func:`train`.
    """
    datasets: dict[str, Any] = {}
    by_key: dict[str, list[StackJob]] = {}
    alone: list[StackJob] = []
    for job in jobs:
        why = None
        try:
            if job.cfg is None:
                raise ValueError("it does not resolve")
            validate_objectives(job.cfg["objectives"])
            root = job.sweep_dir or job.run_dir.parent
            if job.cfg.get("resume") and sweep_dir.has_reusable(root, job.cfg):
                alone.append(job)  # the task skips it
                continue
            validate_once(job.cfg)
            data_key = json.dumps([job.cfg["dataset"], job.cfg["trainer"]["device"]], default=str)
            job.setup = prepare(job.cfg, datasets.get(data_key))
            job.rng_state = torch.get_rng_state()
            datasets[data_key] = job.setup.data
            why = unsupported(job.setup)
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


def train(group: Sequence[StackJob], on_epoch: EpochCallback | None = None) -> bool:
    """Train ``group`` as one stack: each job gets its ``result`` and ``group``.

    Returns ``False`` (and logs why) if stacked training raised; the caller then runs the
    jobs one by one. With ``REGEXP_DEBUG=1`` the exception propagates instead.
    """
    cfg = group[0].cfg
    tr = cfg["trainer"]
    members = [Member.from_setup(j.cfg, j.setup, j.rng_state) for j in group]
    log.info(
        "training %d jobs (%s) as one stacked model, %d torch thread(s)",
        len(group),
        ids([j.idx for j in group]),
        torch.get_num_threads(),
    )
    try:
        results = fit_stacked(
            members,
            group[0].setup.data,
            cfg["model"]["activation"],
            cfg["optimizer"],
            tr["epochs"],
            tr["batch_size"],
            group[0].setup.patience,
            on_epoch,
            tr.get("drop_last", False),
        )
    except Exception as err:
        if errors.debug():
            raise
        log.warning(
            "stacked training failed (%s: %s); running these jobs one by one",
            type(err).__name__,
            err,
        )
        return False
    for job, result in zip(group, results, strict=True):
        job.result = result
        job.group = [j.idx for j in group]
    return True
