"""One run's training: config → data, seeded model, regularizer, optimizer → :func:`fit`.

:func:`prepare` builds what a configuration trains with and :func:`fit_setup` trains it:
with :func:`regexp.train.backprop.fit_mlp` (hand-written backpropagation, several times
faster) where it applies, else with :func:`fit`, the autograd loop that trains any model
with any ``torch.optim`` optimizer. The pieces are public so that the stacked engine
(:mod:`regexp.train.stacked`), the launcher and notebooks reuse them;
:func:`regexp.hydra_app.task.run_task` adds validation and the run directory.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from regexp.core.metric_prox import optimizer_metric
from regexp.core.metrics import data_loss
from regexp.core.regularizers import Regularizer
from regexp.data.prepare import Dataset, load_dataset
from regexp.model.build import build_model
from regexp.train.build import (
    build_regularizer,
    make_optimizer,
    resolve_device,
    resolve_prox_metric,
    validate_optimizer,
)
from regexp.train.evaluate import evaluate

log = logging.getLogger(__name__)

# Called after each epoch with a short status text (the progress bar's advance).
EpochCallback = Callable[[str], None]


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch history, ``ok`` or ``diverged``, seconds."""

    history: pd.DataFrame
    status: str = "ok"
    seconds: float = 0.0
    notes: dict = field(default_factory=dict)


def fit(
    model: nn.Module,
    data: Dataset,
    reg: Regularizer,
    mode: str,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    seed: int,
    patience: int | None = None,
    on_epoch: EpochCallback | None = None,
    prox_metric: str = "identity",
    drop_last: bool = False,
) -> FitResult:
    """Minibatch training of ``model`` on ``data.x_train``.

    Each step minimizes ``data_loss + reg(model)`` (``mode="penalty"``) or takes the
    optimizer step on ``data_loss`` and then ``reg.prox_(model, lr)`` (``"proximal"``),
    which puts weights at exact zeros. Minibatches are index slices of a permutation
    drawn from a generator seeded with ``seed``. A non-finite loss stops training with
    status ``diverged``. ``on_epoch`` is called after each epoch with a status text. With
    ``patience``, training stops when the validation loss has
    not improved for that many epochs and the best weights are restored.
    ``prox_metric="adaptive"``: the proximal step is taken in the optimizer's metric
    (:meth:`Regularizer.prox_metric_` with :func:`regexp.core.metric_prox.optimizer_metric`).
    ``drop_last``: each epoch takes ``n // batch_size`` steps and skips the last
    ``n % batch_size`` rows of the permutation (a partial minibatch), as the authors' demo
    of Scardapane et al. 2017 does; otherwise ``ceil(n / batch_size)`` steps.
    """
    n = len(data.y_train)
    stop = epoch_rows(n, batch_size, drop_last)
    lr = optimizer.param_groups[0]["lr"]
    gen = torch.Generator().manual_seed(seed)
    rows, status, best = [], "ok", (math.inf, None, 0)
    events: list[str] = []  # what the log says about divergence and early stopping
    start = time.perf_counter()
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=gen).to(data.x_train.device)
        total_data = torch.zeros((), device=data.x_train.device)
        steps = 0
        for i in range(0, stop, batch_size):
            idx = order[i : i + batch_size]
            loss = data_loss(model(data.x_train[idx]), data.y_train[idx], data.task)
            total_data += loss.detach()
            if mode == "penalty":
                loss = loss + reg(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if mode == "proximal" and prox_metric == "adaptive":
                reg.prox_metric_(model, lr, lambda q: optimizer_metric(optimizer, q))
            elif mode == "proximal":
                reg.prox_(model, lr)
            steps += 1
        d_loss = total_data.item() / steps
        with torch.no_grad():
            pen = float(reg(model))  # of the weights at the end of the epoch
        val = evaluate(model, data, "val")
        metric = "accuracy" if data.task == "classification" else "r2"
        rows.append(
            {
                "epoch": epoch,
                "train_loss": d_loss + pen,
                "data_loss": d_loss,
                "penalty": pen,
                "val_loss": val["loss"],
                f"val_{metric}": val[metric],
            }
        )
        if on_epoch is not None:
            on_epoch(f"loss {d_loss + pen:.4f} val {val['loss']:.4f}")
        if not (math.isfinite(d_loss + pen) and math.isfinite(val["loss"])):
            status = "diverged"
            events.append(f"loss is not finite at epoch {epoch}: run diverged, training stopped")
            log.warning(events[-1])
            break
        if patience is not None:
            if val["loss"] < best[0]:
                best = (val["loss"], copy.deepcopy(model.state_dict()), epoch)
            elif epoch - best[2] >= patience:
                events.append(f"early stopping at epoch {epoch} (best epoch {best[2]})")
                log.info(events[-1])
                break
    if patience is not None and best[1] is not None and status == "ok":
        model.load_state_dict(best[1])
    seconds = time.perf_counter() - start
    return FitResult(pd.DataFrame(rows), status, seconds, {"best_epoch": best[2], "events": events})


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


@dataclass
class Setup:
    """Everything :func:`fit` needs for one configuration, built by :func:`prepare`.

    ``optimizer`` (the ``torch.optim`` optimizer of config group ``optimizer``, with the
    regularizer's ``weight_decay`` on the weights) is built on first use: constructing
    one imports ``torch._dynamo``, about a second that :func:`fit_setup` does not need.
    """

    data: Dataset
    model: nn.Module
    reg: Regularizer
    mode: str
    opt_cfg: Mapping
    patience: int | None
    device: torch.device
    prox_metric: str = "identity"  # identity | adaptive (resolved, see resolve_prox_metric)
    drop_last: bool = False
    _optimizer: torch.optim.Optimizer | None = field(default=None, repr=False)

    @property
    def weight_decay(self) -> float:
        return getattr(self.reg, "weight_decay", 0.0)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = make_optimizer(self.model, self.opt_cfg, self.weight_decay)
        return self._optimizer


def prepare(cfg: Mapping, data: Dataset | None = None) -> Setup:
    """Build the data, seeded model, regularizer and optimizer settings of a resolved config.

    ``cfg`` should have passed :func:`regexp.config.validate`, which checks every key with
    a one-line message; the builders called here check their own arguments too.

    ``data`` (already on the right device) skips loading when the caller has it. The model
    is built right after ``torch.manual_seed(cfg["seed"])``, so the global RNG state on
    return is the one that draws the run's dropout masks.
    """
    tr, lam = cfg["trainer"], cfg["lambda"]
    patience = tr.get("early_stopping_patience")
    device = resolve_device(tr["device"])

    reg, mode = build_regularizer(cfg["regularizer"], lam)
    validate_optimizer(cfg["optimizer"])
    if data is None:
        data = load_dataset(**cfg["dataset"]).to(device)
    torch.manual_seed(cfg["seed"])
    m = cfg["model"]
    shape = (data.channels, *data.image_shape) if data.image_shape is not None else None
    model = build_model(m, data.n_features, data.n_outputs, shape).to(device)
    metric = resolve_prox_metric(cfg["regularizer"], cfg["optimizer"]["name"])
    drop_last = bool(cfg["trainer"].get("drop_last", False))
    return Setup(data, model, reg, mode, cfg["optimizer"], patience, device, metric, drop_last)


def fit_setup(cfg: Mapping, s: Setup, on_epoch: EpochCallback | None = None) -> FitResult:
    """Train the model of ``s = prepare(cfg)`` with ``cfg``'s trainer settings.

    With :func:`regexp.train.backprop.fit_mlp` unless
    :func:`regexp.train.backprop.unsupported` says why not (then with :func:`fit`); the
    two give the same results up to float reordering.
    """
    from regexp.train import backprop

    tr = cfg["trainer"]
    why = backprop.unsupported(s.model, s.reg, s.mode, s.opt_cfg)
    if why is None and s.mode == "proximal" and s.prox_metric == "adaptive":
        why = "the proximal step in the optimizer's metric (regularizer.prox_metric)"
    if why is None and s.drop_last:
        why = "trainer.drop_last=true"
    if why is None:
        r = backprop.fit_mlp(
            s.model,
            s.data,
            s.reg,
            s.mode,
            s.opt_cfg,
            s.weight_decay,
            tr["epochs"],
            tr["batch_size"],
            cfg["seed"],
            s.patience,
            on_epoch,
        )
        history = pd.DataFrame(r.rows)
        notes = {"best_epoch": r.best_epoch, "events": r.events}
        return FitResult(history, r.status, r.seconds, notes)
    log.debug("training with autograd: %s", why)
    return fit(
        s.model,
        s.data,
        s.reg,
        s.mode,
        s.optimizer,
        tr["epochs"],
        tr["batch_size"],
        cfg["seed"],
        s.patience,
        on_epoch,
        s.prox_metric,
        s.drop_last,
    )
