"""Train many configurations of one sweep together, as one stacked model.

:func:`fit_stacked` is :func:`regexp.train.loop.fit` for N models at once: model ``n`` gets the
initial weights, minibatch order, dropout masks, regularizer, learning rate and weight
decay of its own sequential run, so its result is that run's result up to float
reordering. The summed loss ``Σ_n (data_loss_n + penalty_n)`` has block-diagonal
gradients: each model sees exactly its own gradient, as in its own run.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor, nn

from regexp.core.penalties import prox_undefined
from regexp.core.regularizers import Regularizer
from regexp.data.prepare import Dataset
from regexp.train.loop import EpochCallback, FitResult, Setup, epoch_rows
from regexp.train.stacked.model import (
    StackedMLP,
    copy_where_,
    evaluate,
    metric_term,
    per_model_loss,
    stack_order,
    terms,
)
from regexp.train.stacked.optim import StackedOptimizer

log = logging.getLogger(__name__)

# Config keys that may differ between the models of one stack; every other key must match.
PER_MODEL_KEYS = (
    ("lambda",),
    ("seed",),
    ("threshold",),
    ("resume",),
    ("regularizer",),
    ("model", "dropout"),
    ("optimizer", "lr"),
)


@dataclass
class Member:
    """One job of a stack: its model (initial weights in, final weights out) and settings."""

    model: nn.Sequential
    reg: Regularizer
    mode: str
    lr: float
    seed: int
    dropout: float
    rng_state: Tensor  # the global RNG state after the model's init: its dropout stream
    prox_metric: str = "identity"  # of the proximal step: identity | adaptive

    @classmethod
    def from_setup(cls, cfg: Mapping, setup: Setup, rng_state: Tensor) -> Member:
        return cls(
            setup.model,
            setup.reg,
            setup.mode,
            float(cfg["optimizer"]["lr"]),
            cfg["seed"],
            float(cfg["model"]["dropout"]),
            rng_state,
            setup.prox_metric,
        )


def group_key(cfg: Mapping) -> str:
    """The part of a resolved config that all models of one stack share, as a JSON string."""
    shared = json.loads(json.dumps(cfg))
    for path in PER_MODEL_KEYS:
        node = shared
        for k in path[:-1]:
            node = node.get(k, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return json.dumps(shared, sort_keys=True)


def unbatchable(setup: Setup) -> str | None:
    """Why a job cannot join a stack (``None`` if it can)."""
    if setup.reg.params is not None:
        return "regularizer.params selects custom parameters"
    c = setup.reg.coefficients()
    if setup.mode == "proximal":
        return prox_undefined(c.norm, c.p)
    return None


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    """``t[idx]`` for an ``[N, B]`` index: one ``index_select`` (faster than indexing)."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


class _Masks:
    """Dropout noise per model, drawn exactly as ``nn.Dropout`` draws it in a sequential run.

    Model ``n``'s run draws ``empty(B, H).bernoulli_(1 − p)`` per hidden layer and step
    from the global RNG right after its init; a generator per model, started from that
    state, replays the same stream. Noise is ``bernoulli / (1 − p)``; models without
    dropout get ones.
    """

    def __init__(self, members: Sequence[Member], hidden: Sequence[int], device: torch.device):
        self.members = [(i, m.dropout) for i, m in enumerate(members) if m.dropout > 0]
        self.gens = []
        for _, _ in self.members:
            self.gens.append(torch.Generator())
        for g, (i, _) in zip(self.gens, self.members, strict=True):
            g.set_state(members[i].rng_state)
        self.n, self.hidden, self.device = len(members), list(hidden), device

    def draw(self, batch: int) -> list[Tensor | None]:
        if not self.members:
            return []
        masks = [torch.ones(self.n, h, batch) for h in self.hidden]  # [N, units, B]
        for g, (i, p) in zip(self.gens, self.members, strict=True):
            for mask, h in zip(masks, self.hidden, strict=True):
                noise = torch.empty(batch, h).bernoulli_(1 - p, generator=g)
                mask[i] = noise.div_(1 - p).T
        return [m.to(self.device) for m in masks]


def fit_stacked(
    members: Sequence[Member],
    data: Dataset,
    activation: str,
    opt_cfg: Mapping,
    epochs: int,
    batch_size: int,
    patience: int | None = None,
    on_epoch: EpochCallback | None = None,
    drop_last: bool = False,
) -> list[FitResult]:
    """Train ``members`` (same architecture, ``activation`` and data) together.

    Returns one :class:`FitResult` per member, in order. Per model, exactly as
    :func:`regexp.train.loop.fit`: each step minimizes ``data_loss + penalty`` (penalty mode) or
    takes the optimizer step on ``data_loss`` and then the proximal step with the model's
    ``lr`` (proximal mode); minibatches are slices of
    ``torch.randperm(n, generator=Generator().manual_seed(seed))`` per epoch (with
    ``drop_last``, the partial last minibatch is skipped, as in ``fit``). History rows,
    divergence (non-finite loss: that model stops, status ``diverged``) and early stopping
    (best weights restored) are per model. Each member's ``model`` receives its final
    weights; ``seconds`` is the stack's training time divided by N. Internally the models
    are stacked in :func:`regexp.train.stacked.model.stack_order`. ``on_epoch`` is called
    after each epoch with a status text.
    """
    order = stack_order([m.reg.coefficients() for m in members])
    results = _fit(
        [members[i] for i in order],
        data,
        activation,
        opt_cfg,
        epochs,
        batch_size,
        patience,
        on_epoch,
        drop_last,
    )
    out: list[FitResult] = [None] * len(members)  # type: ignore[list-item]
    for k, i in enumerate(order):
        out[i] = results[k]
    return out


def _fit(
    members: Sequence[Member],
    data: Dataset,
    activation: str,
    opt_cfg: Mapping,
    epochs: int,
    batch_size: int,
    patience: int | None = None,
    on_epoch: EpochCallback | None = None,
    drop_last: bool = False,
) -> list[FitResult]:
    n_models, n = len(members), len(data.y_train)
    stop = epoch_rows(n, batch_size, drop_last)
    dev = data.x_train.device
    hidden = [lin.out_features for lin in members[0].model if isinstance(lin, nn.Linear)][:-1]
    stack = StackedMLP([m.model for m in members], activation)
    coefs = [m.reg.coefficients() for m in members]
    prox = [m.mode == "proximal" for m in members]
    pen_terms = terms(coefs, [not p for p in prox])
    adaptive = [p and m.prox_metric == "adaptive" for p, m in zip(prox, members, strict=True)]
    prox_terms = terms(coefs, [p and not a for p, a in zip(prox, adaptive, strict=True)])
    adaptive_term = metric_term(coefs, adaptive)  # all terms at once, in Adam's metric
    all_terms = terms(coefs, [True] * n_models)
    lr = torch.tensor([m.lr for m in members], dtype=torch.float64)
    wd = torch.tensor([getattr(m.reg, "weight_decay", 0.0) for m in members], dtype=torch.float64)
    decay = [True] * len(stack.weights) + [False] * len(stack.biases)
    opt = StackedOptimizer(stack.parameters, decay, opt_cfg, lr, wd)
    gens = [torch.Generator().manual_seed(m.seed) for m in members]
    masks = _Masks(members, hidden, dev)
    metric = "accuracy" if data.task == "classification" else "r2"

    rows: list[list[dict]] = [[] for _ in members]
    # Per model, what the sequential run would log (divergence, early stopping): the
    # launcher writes them into that job's own log, named by its job number.
    events: list[list[str]] = [[] for _ in members]
    status = ["ok"] * n_models
    active = torch.ones(n_models, dtype=torch.bool)
    final = stack.snapshot()  # parameters of models that stopped, as they stopped
    best_loss = torch.full((n_models,), math.inf, dtype=torch.float64)
    best_epoch = torch.zeros(n_models, dtype=torch.long)
    best = stack.snapshot() if patience is not None else None
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(dev)
        total_data = torch.zeros(n_models, device=dev)
        steps = 0
        for i in range(0, stop, batch_size):
            idx = order[:, i : i + batch_size]
            out = stack.forward(_gather(data.x_train, idx), masks.draw(idx.shape[1]))
            loss = per_model_loss(out, _gather(data.y_train, idx), data.task)
            total_data += loss.detach()
            opt.zero_grad()
            loss.sum().backward()
            if pen_terms:  # adds the penalty's gradient to .grad, per term on its models
                stack.add_penalty_grad_(pen_terms)
            opt.step()
            if prox_terms:
                stack.prox_(lr, prox_terms)
            if adaptive_term is not None:
                stack.prox_metric_(lr, adaptive_term, opt.metric)
            steps += 1
        with torch.no_grad():  # python floats of every model at once: one copy per column
            d_loss = (total_data / steps).double().tolist()
            pen_end = stack.penalty(all_terms).double().tolist()
            val = {
                k: v.double().tolist()
                for k, v in evaluate(stack, data.x_val, data.y_val, data.task).items()
            }
        stopped = torch.zeros(n_models, dtype=torch.bool)
        for k in torch.nonzero(active).flatten().tolist():
            d, pen, v = d_loss[k], pen_end[k], val["loss"][k]
            rows[k].append(
                {
                    "epoch": epoch,
                    "train_loss": d + pen,
                    "data_loss": d,
                    "penalty": pen,
                    "val_loss": v,
                    f"val_{metric}": val[metric][k],
                }
            )
            if not (math.isfinite(d + pen) and math.isfinite(v)):
                status[k] = "diverged"
                stopped[k] = True
                events[k].append(
                    f"loss is not finite at epoch {epoch}: run diverged, training stopped"
                )
            elif patience is not None:
                if v < best_loss[k]:
                    best_loss[k], best_epoch[k] = v, epoch
                elif epoch - int(best_epoch[k]) >= patience:
                    best_k = int(best_epoch[k])
                    events[k].append(f"early stopping at epoch {epoch} (best epoch {best_k})")
                    stopped[k] = True
        if best is not None:  # keep the weights of models whose val loss just improved
            copy_where_(best, stack.parameters, (best_epoch == epoch) & active)
        if stopped.any():
            copy_where_(final, stack.parameters, stopped)
            active &= ~stopped
        if on_epoch is not None:
            on_epoch(f"{int(active.sum())}/{n_models} models training")
        if not active.any():
            break
    seconds = (time.perf_counter() - start) / n_models
    copy_where_(stack.parameters, final, ~active)
    if best is not None:
        ok = torch.tensor([s == "ok" for s in status]) & (best_epoch > 0)
        copy_where_(stack.parameters, best, ok)
    results = []
    for k, m in enumerate(members):
        stack.copy_to(k, m.model)
        history = pd.DataFrame(rows[k])
        notes = {"best_epoch": int(best_epoch[k]), "events": events[k]}
        results.append(FitResult(history, status[k], seconds, notes))
    return results
