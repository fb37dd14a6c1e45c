"""The vmap engine: N copies of any ``nn.Module`` trained as one, with ``torch.func``.

:class:`VmapStep` is a :class:`regexp.train.step.Step`: the N models' parameters are
stacked (``torch.func.stack_module_state``: ``[N, ...]`` per parameter) and one step is

1. the per-model data loss and its gradient, ``vmap(grad_and_value(loss))`` of
   ``loss_n = data_loss(functional_call(module, params_n, x_n), y_n)``: model ``n`` sees
   its own minibatch ``x[idx[n]]`` and gets its own gradient;
2. penalty mode: ``grad += λ_n·∂r(W_n)`` in closed form
   (:meth:`regexp.core.regularizers.Regularizer.add_grad_` on the grouped views of
   :mod:`regexp.core.groupings`, columns of Linear weights, input channels of conv
   weights);
3. the optimizer step of :class:`regexp.train.stacked.optim.StackedOptimizer` (Adam,
   AdamW, SGD with each model's own ``lr`` and weight decay, as ``torch.optim`` steps one
   model);
4. proximal mode: ``W_n ← prox_{lr_n·λ_n·r}(W_n)`` (:meth:`Regularizer.prox_step_`) or, with
   ``prox_metric="adaptive"``, the same in Adam's metric ``√v̂ + ε``
   (:meth:`Regularizer.metric_prox_step_`).

Steps 2 and 4 are applied once per run of consecutive models whose regularizers have the
same maths (:meth:`Regularizer.same_maths`), with λ, ``lr`` per model as ``[k]`` tensors:
the regularizer's own functions, as every engine calls them, so any regularizer class
(built-in or new) trains here. Model ``n``'s result is its single autograd run's up to float
reordering (``tests/test_vmap.py``).

Dropout (``nn.Dropout`` layers of an ``nn.Sequential`` on the CPU): each model's masks are
drawn as its own run draws them, ``torch.empty(shape).bernoulli_(1 − p)`` per layer and step
in forward order from a generator started at the model's ``rng_state`` (the global RNG
state right after its init), divided by ``1 − p``; the engine's copy of the module
multiplies each layer's input by its model's mask (:class:`_Mask`) as ``nn.Dropout`` does
on the CPU, and is the identity in evaluation mode.

Not covered (raise ``ValueError``, :func:`unsupported`): other dropout layers
(``Dropout2d``, ``AlphaDropout``, ...), dropout in a module that is not an
``nn.Sequential`` (its layers' order of execution is unknown) or off the CPU, batch norm
(its running statistics are updated in place), models with different architectures in one
stack.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from regexp.core import sparsity
from regexp.core.groupings import Grouping, apply_grouped_
from regexp.core.metrics import data_loss, scores
from regexp.core.regularizers import Regularizer
from regexp.data.prepare import Dataset
from regexp.train.build import MODES
from regexp.train.setup import Setup
from regexp.train.stacked.optim import NAMES, StackedOptimizer

__all__ = ["VmapMember", "VmapStep", "unsupported", "unsupported_setup"]

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_OTHER_DROPOUTS = (
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


class VmapMember(Protocol):
    """One model of a stack and its settings (e.g. :class:`regexp.train.stacked.fit.Member`)."""

    model: nn.Module
    reg: Regularizer
    mode: str  # penalty | proximal
    lr: float
    prox_metric: str  # identity | adaptive
    # With dropout: the global RNG state right after the model's init (its masks' stream).
    # rng_state: Tensor, read with getattr (a member without dropout needs none)


def unsupported(model: nn.Module) -> str | None:
    """Why the vmap engine cannot train ``model`` (``None`` if it can)."""
    for name, m in model.named_modules():
        if isinstance(m, _OTHER_DROPOUTS) and m.p > 0:
            return f"{type(m).__name__} ({name}): only nn.Dropout's masks are replayed"
        if type(m) is nn.Dropout and m.p > 0:
            if type(model) is not nn.Sequential:
                return (
                    f"dropout ({name}: p={m.p:g}) in a {type(model).__name__}, not an "
                    "nn.Sequential: the order its masks are drawn in is unknown"
                )
            device = next(model.parameters(), torch.empty(0)).device
            if device.type != "cpu":
                return f"dropout ({name}: p={m.p:g}) off the CPU (masks are drawn on the CPU)"
        if isinstance(m, _NORMS):
            return f"batch norm ({name}) updates its running statistics in place"
    return None


def unsupported_setup(setup: Setup) -> str | None:
    """Why the vmap engine cannot train ``setup``, alone or in a stack (``None`` if it can).

    It trains any module that :func:`unsupported` accepts, with optimizer adam, adamw or
    sgd (:class:`regexp.train.stacked.optim.StackedOptimizer`), any regularizer in penalty
    mode and in proximal mode where its proximal step is defined, in both metrics.
    """
    if setup.engine not in ("auto", "vmap"):
        return f"trainer.engine={setup.engine}"
    why = unsupported(setup.model)
    if why is not None:
        return why
    if setup.opt_cfg.get("name") not in NAMES:
        return f"optimizer {setup.opt_cfg.get('name')!r}"
    if setup.mode == "proximal":
        return setup.reg.proximal_error()
    return None


@dataclass(frozen=True)
class _Run:
    """Consecutive models ``[start, end)`` whose regularizers share their maths and mode."""

    start: int
    end: int
    reg: Regularizer
    mode: str
    adaptive: bool
    lam: Tensor  # float64 [end − start]
    lr: Tensor  # float64 [end − start]
    selected: tuple[tuple[str, Grouping], ...]  # stacked parameter name and its grouping
    active: bool  # some λ > 0


class _Mask(nn.Module):
    """``nn.Dropout`` in the engine's copy of the module: in training mode the input times
    the buffer ``mask`` (each model's, given to ``functional_call``), as ``nn.Dropout``
    multiplies by ``bernoulli(1 − p)/(1 − p)`` on the CPU; the identity in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mask", torch.empty(0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.mask if self.training else x


class _Dropout:
    """The dropout masks of N models, each drawn as its own run draws them (see the module
    docstring): per step and ``nn.Dropout`` layer, in the module's order, a
    ``bernoulli_(1 − p)`` of the layer's input shape from the model's own generator."""

    def __init__(self, members: Sequence[VmapMember], x: Tensor) -> None:
        model = members[0].model
        self.layers = [n for n, m in model.named_modules() if type(m) is nn.Dropout]
        self.p = [[m.model.get_submodule(n).p for n in self.layers] for m in members]
        self.gens: list[torch.Generator | None] = []
        for m, ps in zip(members, self.p, strict=True):
            gen = None
            if any(p > 0 for p in ps):
                state = getattr(m, "rng_state", None)
                if state is None:
                    raise ValueError("a model with dropout needs its rng_state (its masks' stream)")
                gen = torch.Generator()
                gen.set_state(state)
            self.gens.append(gen)
        self.model, self.x = model, x
        self.shapes: dict[int, list[tuple[int, ...]]] = {}

    def _shapes(self, batch: int) -> list[tuple[int, ...]]:
        """The input shape of each dropout layer for a minibatch of ``batch`` rows, from a
        forward pass in eval mode (which draws no masks)."""
        if batch not in self.shapes:
            found: dict[str, tuple[int, ...]] = {}
            hooks = [
                self.model.get_submodule(n).register_forward_hook(
                    lambda _m, args, _out, n=n: found.__setitem__(n, tuple(args[0].shape))
                )
                for n in self.layers
            ]
            training = self.model.training
            self.model.eval()
            try:
                with torch.no_grad():
                    self.model(self.x[:batch])
            finally:
                self.model.train(training)
                for h in hooks:
                    h.remove()
            self.shapes[batch] = [found[n] for n in self.layers]
        return self.shapes[batch]

    def draw(self, batch: int, device: torch.device) -> dict[str, Tensor]:
        """Each layer's masks ``[N, *input shape]`` for one step, as ``{"name.mask": ...}``."""
        shapes = self._shapes(batch)
        masks = [torch.ones(len(self.p), *shape) for shape in shapes]
        for n, (gen, ps) in enumerate(zip(self.gens, self.p, strict=True)):
            if gen is None:
                continue
            for mask, shape, p in zip(masks, shapes, ps, strict=True):
                if p > 0:
                    mask[n] = torch.empty(shape).bernoulli_(1 - p, generator=gen).div_(1 - p)
        return {f"{n}.mask": m.to(device) for n, m in zip(self.layers, masks, strict=True)}


class VmapStep:
    """The :class:`regexp.train.step.Step` of N copies of one module, by ``torch.func``.

    Parameters
    ----------
    members : sequence of :class:`VmapMember`
        Same architecture; each ``model`` holds its initial weights and receives its
        final weights in :meth:`finish`.
    data : Dataset
        Shared by all models (each model draws its own minibatch rows).
    opt_cfg : mapping
        Config group ``optimizer`` (``name``, ``betas``, ``eps`` or ``momentum``); the
        learning rate is each member's ``lr``, the weight decay its regularizer's
        ``weight_decay`` (on the ``nn.Linear`` weights, as :func:`make_optimizer`).

    Raises
    ------
    ValueError
        If a model is :func:`unsupported`, the architectures differ, or a mode or metric
        is unknown.
    """

    def __init__(self, members: Sequence[VmapMember], data: Dataset, opt_cfg: dict) -> None:
        if not members:
            raise ValueError("VmapStep needs at least one model")
        self.data = data
        self.n_models = len(members)
        # Stacked in an order that puts models with the same maths side by side (one call
        # per kind and mode); self.inv maps results back to the callers' order.
        self.order = _grouped_order(members)
        self.inv = torch.argsort(torch.tensor(self.order)).tolist()
        self.members = [members[i] for i in self.order]
        for m in self.members:
            why = unsupported(m.model)
            if why is not None:
                raise ValueError(f"the vmap engine cannot train this model: {why}")
            if m.mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}, got {m.mode!r}")
            if m.prox_metric not in ("identity", "adaptive"):
                raise ValueError(f"prox_metric must be identity or adaptive, got {m.prox_metric!r}")
        models = [m.model for m in self.members]
        shapes = [[(n, tuple(p.shape)) for n, p in mod.named_parameters()] for mod in models]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError("the vmap engine needs models of one architecture")
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach() for k, v in params.items()}
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        self.base = copy.deepcopy(models[0]).to("meta")
        self.dropout = None
        if any(type(m) is nn.Dropout and m.p > 0 for mod in models for m in mod.modules()):
            self.dropout = _Dropout(self.members, data.x_train)
            for name in self.dropout.layers:
                self.base.set_submodule(name, _Mask())
        self.base.train()
        self.names = list(self.params)
        dev = next(iter(self.params.values())).device

        def loss(p: dict, b: dict, x: Tensor, y: Tensor) -> Tensor:
            return data_loss(functional_call(self.base, (p, b), (x,)), y, data.task)

        self._grad = vmap(grad_and_value(loss))
        self._forward = vmap(
            lambda p, b, x: functional_call(self.base, (p, b), (x,)), in_dims=(0, 0, None)
        )
        self.runs = self._runs(models, dev)
        lr = torch.tensor([m.lr for m in self.members], dtype=torch.float64)
        wd = [getattr(m.reg, "weight_decay", 0.0) for m in self.members]
        decay_ids = {id(w) for w in sparsity.linear_weights(models[0])}
        decay = [id(p) in decay_ids for _, p in models[0].named_parameters()]
        self.grads = [torch.zeros_like(p) for p in self.params.values()]  # the optimizer's
        self.opt = StackedOptimizer(
            list(self.params.values()),
            self.grads,
            decay,
            opt_cfg,
            lr,
            torch.tensor(wd, dtype=torch.float64),
        )
        self.slots: dict[str, dict[str, Tensor]] = {}

    def _runs(self, models: Sequence[nn.Module], dev: torch.device) -> list[_Run]:
        runs, start = [], 0
        for end in range(1, self.n_models + 1):
            if end < self.n_models and _same_kind(self.members[end], self.members[start]):
                continue
            reg = self.members[start].reg
            names = {id(p): n for n, p in models[start].named_parameters()}
            selected = tuple((names[id(q)], g) for q, g in reg.groupings(models[start]))
            part = self.members[start:end]
            lam = torch.tensor([m.reg.strength for m in part], dtype=torch.float64, device=dev)
            lr = torch.tensor([m.lr for m in part], dtype=torch.float64, device=dev)
            active = bool((lam > 0).any())
            mode, adaptive = _step_key(self.members[start])
            runs.append(_Run(start, end, reg, mode, adaptive, lam, lr, selected, active))
            start = end
        return runs

    def step(self, idx: Tensor) -> Tensor:
        """One step of every model on its rows ``idx[n]``; returns the data losses ``[N]``."""
        idx = idx[self.order]
        x = _gather(self.data.x_train, idx)
        y = _gather(self.data.y_train, idx)
        buffers = self.buffers
        if self.dropout is not None:
            buffers = {**buffers, **self.dropout.draw(idx.shape[1], x.device)}
        grads, loss = self._grad(self.params, buffers, x, y)
        with torch.no_grad():
            for run in self.runs:
                if run.mode == "penalty" and run.active:
                    for name, g in run.selected:
                        w = self.params[name][run.start : run.end]
                        gw = g.groups(w)

                        def add(gg: Tensor, gw: Tensor = gw, run: _Run = run) -> None:
                            run.reg.add_grad_(gw, gg, run.lam)

                        apply_grouped_(grads[name][run.start : run.end], g, add)
            for g, name in zip(self.grads, self.names, strict=True):
                g.copy_(grads[name])
            self.opt.step()
            for run in self.runs:
                if run.mode == "proximal" and run.active:
                    self._prox(run)
        return loss.detach()[self.inv]

    def _prox(self, run: _Run) -> None:
        for name, g in run.selected:
            w = self.params[name][run.start : run.end]
            if run.adaptive:
                d = self.opt.metric(self.names.index(name))
                gd = None if d is None else g.groups(d[run.start : run.end].expand_as(w))

                def step(gw: Tensor, gd: Tensor | None = gd) -> None:
                    run.reg.metric_prox_step_(gw, run.lr, gd, run.lam)
            else:

                def step(gw: Tensor) -> None:
                    run.reg.prox_step_(gw, run.lr, run.lam)

            apply_grouped_(w, g, step)

    @torch.no_grad()
    def penalty(self) -> Tensor:
        """``R_n(W_n)`` per model, ``[N]`` (float64)."""
        out = torch.zeros(self.n_models, dtype=torch.float64)
        for run in self.runs:
            total = torch.zeros(run.end - run.start, dtype=torch.float64)
            for name, g in run.selected:
                w = self.params[name][run.start : run.end]
                total += run.reg.value(g.groups(w), run.lam).double().cpu()
            out[run.start : run.end] = total
        return out[self.inv]

    @torch.no_grad()
    def scores(self, split: str) -> dict[str, Tensor]:
        """Each model's ``loss`` and ``accuracy`` or ``r2`` on ``split`` (eval mode), by
        :func:`regexp.core.metrics.scores`."""
        self.base.eval()
        try:
            out = self._forward(self.params, self.buffers, getattr(self.data, f"x_{split}"))
        finally:
            self.base.train()
        y = getattr(self.data, f"y_{split}")
        rows = [scores(out[n], y, self.data.task, self.data.y_std) for n in range(len(out))]
        metric = "accuracy" if self.data.task == "classification" else "r2"
        keys = ("loss", metric)
        return {k: torch.tensor([rows[n][k] for n in self.inv], dtype=torch.float64) for k in keys}

    @torch.no_grad()
    def keep(self, slot: str, which: Tensor) -> None:
        """Copy the weights of the models where ``which`` into ``slot``."""
        saved = self.slots.setdefault(slot, {k: v.clone() for k, v in self.params.items()})
        mask = which[self.order].to(next(iter(self.params.values())).device)
        for k, v in self.params.items():
            saved[k][mask] = v[mask]

    @torch.no_grad()
    def restore(self, slot: str, which: Tensor) -> None:
        """Set the weights of the models where ``which`` from ``slot``."""
        mask = which[self.order].to(next(iter(self.params.values())).device)
        for k, v in self.params.items():
            v[mask] = self.slots[slot][k][mask]

    @torch.no_grad()
    def finish(self) -> None:
        """Write each model's weights back into its ``nn.Module``."""
        for n, m in enumerate(self.members):
            for k, p in m.model.named_parameters():
                p.copy_(self.params[k][n])


def _step_key(m: VmapMember) -> tuple[str, bool]:
    """The mode, and whether the proximal step is in Adam's metric."""
    return m.mode, m.mode == "proximal" and m.prox_metric == "adaptive"


def _same_kind(a: VmapMember, b: VmapMember) -> bool:
    """Whether one call can step both: same step, regularizer maths and selection."""
    return _step_key(a) == _step_key(b) and a.reg.same_maths(b.reg) and a.reg.params == b.reg.params


def _grouped_order(members: Sequence[VmapMember]) -> list[int]:
    """Member indices, stably sorted by the first appearance of their kind (same maths,
    selection, mode and metric), so that each kind is one run of the stack."""
    firsts: list[int] = []
    kind = []
    for i, m in enumerate(members):
        for f in firsts:
            o = members[f]
            if _same_kind(m, o):
                kind.append(f)
                break
        else:
            firsts.append(i)
            kind.append(i)
    return sorted(range(len(members)), key=lambda i: kind[i])


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    """``t[idx]`` for an ``[N, B]`` index: one ``index_select``."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])
