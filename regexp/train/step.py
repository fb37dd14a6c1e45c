"""The training rules, written once: :func:`train` runs the epochs of any :class:`Step`.

An *engine* trains N ≥ 1 models at once (a single run is a stack of one) and supplies
only a :class:`Step`: forward, backward, optimizer update and proximal step over its own
parameters, plus the per-model numbers the rules need. :func:`train` owns everything
else, for every engine alike:

- minibatch order: per model ``n`` a ``torch.Generator().manual_seed(seeds[n])`` and, per
  epoch, ``torch.randperm(n_rows, generator=gen)``; step ``s`` trains on the slice
  ``[s·B, (s+1)·B)`` of it (``B = batch_size``); ``drop_last`` skips a last partial
  minibatch (:func:`epoch_rows`);
- the history row of each epoch: ``data_loss`` (the mean over the epoch's steps of each
  step's mean data loss), ``penalty`` (of the weights at the end of the epoch),
  ``train_loss = data_loss + penalty``, ``val_loss`` and ``val_accuracy`` (or ``val_r2``);
- divergence: a non-finite ``train_loss`` or ``val_loss`` stops that model with status
  ``diverged`` (its weights stay as they were at that epoch);
- early stopping (``patience``): a model whose ``val_loss`` has not improved on its best
  for ``patience`` epochs stops, and its best weights are restored at the end;
- the callback ``on_epoch(text)`` after every epoch, and the result type
  :class:`FitResult`, one per model.

Models that stop keep being stepped with the others (a stack has one shape) but their
weights at the stop are kept (:meth:`Step.keep`) and put back at the end.

Adding an engine: a class implementing :class:`Step`, and a branch of
:func:`regexp.train.loop.choose_engine` and :func:`regexp.train.loop.fit_setup` that
says when it applies and trains one run with it (its step with N = 1, trained by
:func:`train` with ``engine=`` its name).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd
import torch
from torch import Tensor

log = logging.getLogger(__name__)

# Called after each epoch with a short status text (the progress bar's advance).
EpochCallback = Callable[[str], None]


@dataclass
class FitResult:
    """One model's training: per-epoch history, ``ok`` or ``diverged``, seconds, engine.

    ``seconds`` is the training time of the whole stack divided by its N models;
    ``notes`` holds ``best_epoch`` (0 without early stopping) and ``events`` (the log
    lines about divergence and early stopping); ``engine`` names the engine that trained.
    """

    history: pd.DataFrame
    status: str = "ok"
    seconds: float = 0.0
    notes: dict = field(default_factory=dict)
    engine: str = ""


class Step(Protocol):
    """What an engine supplies to :func:`train`: one training step of N models, and the
    per-model numbers that the training rules read.

    Contract (every tensor of per-model values is ``[N]``, on any device, not synced to
    the host by the step itself; model ``n`` must never see another model's data, noise
    or gradient):

    ``n_models``
        N, fixed for the step's lifetime.
    ``step(idx) -> Tensor``
        One training step of every model. ``idx`` is a ``LongTensor [N, B]`` on the data's
        device: row ``n`` holds the training rows of model ``n``'s minibatch. The step
        does the forward pass (dropout in training mode, masks drawn as ``nn.Dropout``
        draws them in a single run of that model), the backward pass of the mean data
        loss (plus the penalty in penalty mode), the optimizer update, then in proximal
        mode the proximal step ``W ← prox_{lr·R}(W)`` (in the optimizer's metric when the
        model's ``prox_metric`` is adaptive). Returns each model's mean data loss on its
        minibatch (before the update), detached.
    ``penalty() -> Tensor``
        Each model's penalty ``R(W)`` at its current weights (what ``reg(model)`` gives).
    ``scores(split) -> dict[str, Tensor]``
        Each model's ``loss`` and ``accuracy`` (classification) or ``r2`` (regression) on
        ``split`` (``"val"``) in evaluation mode (no dropout), as
        :func:`regexp.train.evaluate.evaluate` defines them.
    ``keep(slot, which)``
        Copy the current weights of the models where ``which`` (bool ``[N]``, CPU) is true
        into the named slot (``"best"``, ``"final"``); other models' slot entries are
        untouched.
    ``restore(slot, which)``
        Set the weights of the models where ``which`` is true from the slot (only models
        kept into that slot before).
    ``finish()``
        Write each model's current weights back to its ``nn.Module`` (called once, last,
        also when training raised).
    """

    n_models: int

    def step(self, idx: Tensor) -> Tensor: ...

    def penalty(self) -> Tensor: ...

    def scores(self, split: str) -> dict[str, Tensor]: ...

    def keep(self, slot: str, which: Tensor) -> None: ...

    def restore(self, slot: str, which: Tensor) -> None: ...

    def finish(self) -> None: ...


def epoch_rows(n: int, batch_size: int, drop_last: bool) -> int:
    """Rows of each epoch's permutation that are trained on: ``n``, or with ``drop_last``
    the ``batch_size · (n // batch_size)`` rows of the full minibatches.

    Raises
    ------
    ValueError
        If ``drop_last`` leaves no minibatch (``batch_size > n``).
    """
    if not drop_last:
        return n
    if batch_size > n:
        raise ValueError(
            f"trainer.drop_last=true leaves no minibatch: batch_size {batch_size} > "
            f"{n} training rows; lower trainer.batch_size or set trainer.drop_last=false"
        )
    return n - n % batch_size


def train(
    step: Step,
    seeds: Sequence[int],
    n_rows: int,
    device: torch.device,
    task: str,
    epochs: int,
    batch_size: int,
    patience: int | None = None,
    on_epoch: EpochCallback | None = None,
    drop_last: bool = False,
    engine: str = "",
) -> list[FitResult]:
    """Train the N models of ``step`` for ``epochs`` epochs; one :class:`FitResult` each.

    ``seeds[n]`` seeds model ``n``'s minibatch order over ``n_rows`` training rows (on
    ``device``); ``task`` is ``classification`` (history column ``val_accuracy``) or
    ``regression`` (``val_r2``). The rules are the module docstring's. ``on_epoch`` gets
    ``"loss L val V"`` for a single model and ``"k/N models training"`` for a stack. For
    a single model, divergence is logged as a WARNING and early stopping as INFO (a
    stack's launcher writes each job's ``events`` into that job's own log instead).
    :meth:`Step.finish` is called last, also when training raises.
    """
    try:
        return _train(
            step,
            seeds,
            n_rows,
            device,
            task,
            epochs,
            batch_size,
            patience,
            on_epoch,
            drop_last,
            engine,
        )
    finally:
        step.finish()


def _train(
    step: Step,
    seeds: Sequence[int],
    n_rows: int,
    device: torch.device,
    task: str,
    epochs: int,
    batch_size: int,
    patience: int | None,
    on_epoch: EpochCallback | None,
    drop_last: bool,
    engine: str,
) -> list[FitResult]:
    n_models = step.n_models
    if len(seeds) != n_models:
        raise ValueError(f"train needs one seed per model: {len(seeds)} for {n_models} models")
    stop = epoch_rows(n_rows, batch_size, drop_last)
    metric = "accuracy" if task == "classification" else "r2"
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    rows: list[list[dict]] = [[] for _ in range(n_models)]
    events: list[list[str]] = [[] for _ in range(n_models)]
    status = ["ok"] * n_models
    active = torch.ones(n_models, dtype=torch.bool)
    best_loss = [math.inf] * n_models
    best_epoch = [0] * n_models
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        if n_models == 1:
            order = torch.randperm(n_rows, generator=gens[0]).to(device).unsqueeze(0)
        else:
            order = torch.stack([torch.randperm(n_rows, generator=g) for g in gens]).to(device)
        total = None
        steps = 0
        for i in range(0, stop, batch_size):
            loss = step.step(order[:, i : i + batch_size])
            total = loss if total is None else total + loss
            steps += 1
        with torch.no_grad():  # python floats of every model: one copy per column
            d_loss = (total / steps).double().tolist()
            pen = step.penalty().double().tolist()
            val = {k: v.double().tolist() for k, v in step.scores("val").items()}
        stopped = torch.zeros(n_models, dtype=torch.bool)
        improved = torch.zeros(n_models, dtype=torch.bool)
        for k in torch.nonzero(active).flatten().tolist():
            d, p, v = d_loss[k], pen[k], val["loss"][k]
            rows[k].append(
                {
                    "epoch": epoch,
                    "train_loss": d + p,
                    "data_loss": d,
                    "penalty": p,
                    "val_loss": v,
                    f"val_{metric}": val[metric][k],
                }
            )
            if not (math.isfinite(d + p) and math.isfinite(v)):
                status[k] = "diverged"
                stopped[k] = True
                events[k].append(
                    f"loss is not finite at epoch {epoch}: run diverged, training stopped"
                )
                if n_models == 1:
                    log.warning(events[k][-1])
            elif patience is not None:
                if v < best_loss[k]:
                    best_loss[k], best_epoch[k] = v, epoch
                    improved[k] = True
                elif epoch - best_epoch[k] >= patience:
                    events[k].append(
                        f"early stopping at epoch {epoch} (best epoch {best_epoch[k]})"
                    )
                    stopped[k] = True
                    if n_models == 1:
                        log.info(events[k][-1])
        if improved.any():
            step.keep("best", improved)
        if stopped.any():
            step.keep("final", stopped)
            active &= ~stopped
        if on_epoch is not None:
            if n_models == 1:
                on_epoch(f"loss {d_loss[0] + pen[0]:.4f} val {val['loss'][0]:.4f}")
            else:
                on_epoch(f"{int(active.sum())}/{n_models} models training")
        if not active.any():
            break
    seconds = (time.perf_counter() - start) / n_models
    if not bool(active.all()):
        step.restore("final", ~active)
    if patience is not None:
        ok = torch.tensor([s == "ok" and b > 0 for s, b in zip(status, best_epoch, strict=True)])
        if ok.any():
            step.restore("best", ok)
    return [
        FitResult(
            pd.DataFrame(rows[k]),
            status[k],
            seconds,
            {"best_epoch": best_epoch[k], "events": events[k]},
            engine,
        )
        for k in range(n_models)
    ]
