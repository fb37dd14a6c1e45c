"""Which jobs of a sweep train together as one stacked model, and training them.

Hydra-free: :func:`plan` takes the jobs' resolved configs and run directories, and
:func:`train` trains one planned stack with the engine that
:func:`regexp.train.loop.choose_engine` picks for a stack: the fast engine
(:func:`regexp.train.stacked.fit.fit_stacked`) for MLPs, the vmap engine
(:class:`regexp.train.vmap.VmapStep`) for other modules, e.g. conv nets. The batched
launcher (:mod:`regexp.hydra_app.launcher`) calls both and writes every job's run
directory; tests call them directly.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from regexp import errors
from regexp.config import validate_once
from regexp.core import sparsity
from regexp.hydra_app.objectives import validate_objectives
from regexp.runs import sweep_dir
from regexp.train import step as rules
from regexp.train.loop import EpochCallback, FitResult, Setup, choose_engine, prepare
from regexp.train.stacked.fit import Member, fit_stacked, group_key
from regexp.train.stacked.model import stack_order
from regexp.train.vmap import VmapStep

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
    stack_size: int = 0  # models in its whole stack, before `split` cut it (0: not cut)
    engine: str = ""  # of its stack: fast | vmap (regexp.train.loop.choose_engine)
    engine_why: str = ""  # the reason choose_engine gives


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
    ``resume=true`` finds it finished (the task then skips it), when no engine trains it
    in a stack (:func:`regexp.train.loop.choose_engine` with ``n_models=2`` picks
    ``autograd``: e.g. ``trainer.engine=autograd``) or when no
    other job shares its engine and :func:`regexp.train.stacked.fit.group_key`. Every
    other job is prepared here
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
            job.engine, job.engine_why = choose_engine(job.cfg, job.setup, n_models=2)
            why = None if job.engine != "autograd" else f"engine autograd: {job.engine_why}"
        except Exception as err:
            why = f"its config is invalid ({type(err).__name__}: {err})"
        if why is None:
            by_key.setdefault(_stack_key(job), []).append(job)
        else:
            log.info("job #%d runs alone: %s", job.idx, why)
            alone.append(job)
    groups = []
    for group in by_key.values():
        if len(group) == 1:
            log.info(
                "job #%d runs alone: no other job shares its engine (%s), data, model, "
                "optimizer and trainer settings",
                group[0].idx,
                group[0].engine,
            )
            alone += group
        else:
            groups.append(group)
    return groups, alone


def _stack_key(job: StackJob) -> str:
    """What the jobs of one stack share: the engine and :func:`group_key`; for the vmap
    engine also the module's layers (names and types: ``model.dropout`` may differ between
    the models of a stack, but a conv net without dropout has no dropout layers)."""
    layers = []
    if job.engine == "vmap":
        layers = [[n, type(m).__name__] for n, m in job.setup.model.named_modules()]
    return json.dumps([job.engine, group_key(job.cfg), layers])


# A part of a stack starts at a multiple of this many models of the stack's order. The
# kernels of the stacked engine (MKL's batched matrix products, torch's vectorized loops:
# 16 float32 lanes, 64 bytes, under AVX-512) give a model's numbers that can depend, in the
# last bit, on where its slice of the stack sits relative to 64-byte boundaries and
# 16-element vector blocks; at a multiple of 16 models every offset is the same in the
# part as in the whole stack, whatever the layer sizes and minibatch size.
ALIGN = 16


def split(
    groups: Sequence[Sequence[StackJob]], workers: int, alone: int = 0
) -> list[list[StackJob]]:
    """Cut ``groups`` into parts for ``workers`` processes, each part trained as its own stack.

    Parts aim at ``ceil(jobs / workers)`` jobs, where ``jobs`` counts the stacked jobs and
    the ``alone`` trainings: a stack of ``n`` becomes ``p = ceil(n / size)`` parts,
    contiguous runs of its models in the stacked engine's order
    (:func:`regexp.train.stacked.model.stack_order`), cut at the multiples of
    :data:`ALIGN` nearest to ``n·k/p``, so that a part trains each job bit for bit as the
    whole stack does (``tests/test_batched.py`` checks it); a stack of at most
    :data:`ALIGN` jobs stays whole. Largest parts first (the longest trainings start
    first), each part in job order.
    """
    jobs = sum(len(g) for g in groups) + alone
    size = max(1, math.ceil(jobs / max(1, workers)))
    parts = []
    for group in groups:
        p = math.ceil(len(group) / size)
        order = stack_order([job.setup.reg.coefficients() for job in group])
        cuts = {ALIGN * round(len(group) * k / p / ALIGN) for k in range(1, p)}
        bounds = [0, *sorted(c for c in cuts if 0 < c < len(group)), len(group)]
        for job in group:
            job.stack_size = len(group)  # a part keeps the whole stack's memory layout
        for a, b in itertools.pairwise(bounds):
            parts.append(sorted((group[i] for i in order[a:b]), key=lambda j: j.idx))
    return sorted(parts, key=lambda part: (-len(part), part[0].idx))


def step_macs(job: StackJob) -> int:
    """Multiply-adds of one model's forward pass over one minibatch: ``batch_size`` times
    the sum over its ``nn.Linear`` and ``nn.ConvNd`` layers of ``outputs · fan_in`` for one
    row (``fan_in · fan_out`` for a Linear layer; output channels × positions × input
    channels per group × kernel size for a conv layer), counted on one training row. The
    size of its operations, which says whether torch's intra-op threads can profit
    (:data:`THREADS_FROM_MACS`)."""
    model, counts = job.setup.model, []

    def count(module: nn.Module, _: tuple, out: torch.Tensor) -> None:
        counts.append(out[0].numel() * module.weight[0].numel())

    layers = [m for m in model.modules() if isinstance(m, sparsity.LAYERS)]
    hooks = [m.register_forward_hook(count) for m in layers]
    training = model.training
    model.eval()  # no dropout: the count draws no random numbers
    try:
        with torch.no_grad():
            model(job.setup.data.x_train[:1])
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    return int(job.cfg["trainer"]["batch_size"]) * sum(counts)


# From this many multiply-adds per model and minibatch (:func:`step_macs`; the default
# digits MLP 64-40-20-10 at batch 32 has 114k) a stack's operations are large enough for
# torch's intra-op threads to profit. Below it, the matrices (10 to 64 rows per model) are
# so small that threads mostly wait at each operation's barrier, and one thread that loses
# its core to another process stalls them all: such stacks train at one thread, and the
# launcher uses processes for the cores instead.
THREADS_FROM_MACS = 1 << 22


def train(group: Sequence[StackJob], on_epoch: EpochCallback | None = None) -> bool:
    """Train ``group`` as one stack with its jobs' ``engine``: each job gets its ``result``
    and ``group``.

    ``fast``: :func:`regexp.train.stacked.fit.fit_stacked`; ``vmap``: a
    :class:`regexp.train.vmap.VmapStep` of the jobs' models, trained by
    :func:`regexp.train.step.train` (each job's minibatch order from its own seed).
    Returns ``False`` (and logs why) if stacked training raised; the caller then runs the
    jobs one by one. With ``REGEXP_DEBUG=1`` the exception propagates instead.
    """
    cfg = group[0].cfg
    tr = cfg["trainer"]
    engine = group[0].engine
    data = group[0].setup.data
    members = [Member.from_setup(j.cfg, j.setup, j.rng_state) for j in group]
    why = choose_engine(cfg, group[0].setup, len(group))[1]
    log.info(
        "training %d jobs (%s) as one stacked model, %d torch thread(s); engine %s: %s",
        len(group),
        ids([j.idx for j in group]),
        torch.get_num_threads(),
        engine,
        why,
    )
    try:
        if engine == "vmap":
            results = rules.train(
                VmapStep(members, data, cfg["optimizer"]),
                [m.seed for m in members],
                len(data.y_train),
                data.x_train.device,
                data.task,
                tr["epochs"],
                tr["batch_size"],
                group[0].setup.patience,
                on_epoch,
                group[0].setup.drop_last,
                engine="vmap",
            )
        else:
            results = fit_stacked(
                members,
                data,
                cfg["model"]["activation"],
                cfg["optimizer"],
                tr["epochs"],
                tr["batch_size"],
                group[0].setup.patience,
                on_epoch,
                tr.get("drop_last", False),
                layout_n=max(j.stack_size for j in group) or None,
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
        job.result, job.engine_why = result, why
        job.group = [j.idx for j in group]
    return True
