"""The fast engine: N ≥ 1 MLPs trained as one stacked model by hand-written backpropagation.

:class:`FastStep` is the :class:`regexp.train.step.Step` of N MLPs of one architecture
(:class:`regexp.train.stacked.model.StackedMLP`): model ``n`` gets the initial weights,
dropout masks, regularizer, mode, learning rate and weight decay of its own run, and
sees only its own data and gradient, so its result is that run's autograd result
(:mod:`regexp.train.autograd`) up to float reordering. A single run is a stack of one.
Per step: the closed-form forward and backward pass
(:meth:`~regexp.train.stacked.model.StackedMLP.loss_and_grad_`), the penalty's gradient
in closed form (penalty mode), torch's fused Adam/AdamW (``torch.optim.adam.adam``,
functional) or SGD, then the proximal step (proximal mode, identity or Adam's metric).
:func:`fit_stacked` trains a list of :class:`Member` with :func:`regexp.train.step.train`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from regexp.core.penalties import prox_undefined
from regexp.core.regularizers import Regularizer, selected_parameters
from regexp.data.prepare import Dataset
from regexp.model.mlp import ACTIVATIONS
from regexp.train.setup import Setup
from regexp.train.stacked.model import (
    StackedMLP,
    copy_where_,
    evaluate,
    metric_term,
    stack_order,
    terms,
)
from regexp.train.stacked.optim import NAMES, StackedOptimizer
from regexp.train.step import EpochCallback, FitResult, train

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


def mlp_activation(model: nn.Module) -> str | None:
    """The hidden activation's name if ``model`` is built as :func:`regexp.model.mlp.mlp`
    builds one (``Linear → act → [Dropout]`` per hidden layer, one activation and one
    dropout ``p`` for all, a last ``Linear``, every ``Linear`` with a bias, activations
    with their default parameters), else ``None``."""
    if type(model) is not nn.Sequential or len(model) == 0:
        return None
    mods, kinds, drops, k = list(model), set(), set(), 0
    while True:
        if type(mods[k]) is not nn.Linear or mods[k].bias is None:
            return None
        if k + 1 == len(mods):
            break
        if k + 2 >= len(mods):
            return None  # ends with an activation or a dropout
        kinds.add(repr(mods[k + 1]))
        k += 2
        drop = type(mods[k]) is nn.Dropout
        drops.add(mods[k].p if drop else 0.0)
        k += drop
    if len(kinds) > 1 or len(drops) > 1:
        return None
    names = {repr(cls()): name for name, cls in ACTIVATIONS.items()}
    return names.get(kinds.pop()) if kinds else next(iter(ACTIVATIONS))


def unsupported(setup: Setup) -> str | None:
    """Why the fast engine cannot train this setup, alone or in a stack (``None`` if it can).

    It trains the MLPs of :func:`regexp.model.mlp.mlp` with optimizer adam, adamw or sgd
    and a regularizer on ``nn.Linear`` weights (every one, or those ``regularizer.params``
    selects), in both modes (proximal mode with
    the norm penalty needs ``p`` 1 or 2), both metrics, dropout (masks drawn on the CPU)
    and ``drop_last``.
    """
    if setup.engine not in ("auto", "fast"):
        return f"trainer.engine={setup.engine}"
    if mlp_activation(setup.model) is None:
        return "the model is not an MLP of regexp.model.mlp.mlp"
    try:
        regularized_layers(setup.model, setup.reg)
    except ValueError as err:
        return str(err)
    if not setup.reg.has_terms():
        return f"{type(setup.reg).__name__} defines its own maths (no built-in terms)"
    if setup.opt_cfg.get("name") not in NAMES:
        return f"optimizer {setup.opt_cfg.get('name')!r}"
    c = setup.reg.coefficients()
    if setup.mode == "proximal":
        return prox_undefined(c.norm, c.p)
    return None


def regularized_layers(model: nn.Module, reg: Regularizer) -> list[bool]:
    """Whether ``reg`` regularizes the weight of each ``nn.Linear`` of ``model``, in order:
    all of them by default, else those that ``reg.params`` selects.

    Raises
    ------
    ValueError
        If ``reg.params`` selects a parameter that is not an ``nn.Linear`` weight (a bias,
        say): the fast engine regularizes weights only.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if reg.params is None:
        return [True] * len(linears)
    chosen = {id(q): name for name, q in selected_parameters(model, reg.params)}
    weights = {id(lin.weight) for lin in linears}
    other = [name for i, name in chosen.items() if i not in weights]
    if other:
        raise ValueError(
            f"regularizer.params selects {', '.join(other)}, not only nn.Linear weights"
        )
    return [id(lin.weight) in chosen for lin in linears]


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


class FastStep:
    """One training step of N MLPs ``members`` (same architecture, ``activation`` and
    ``data``), by hand: the :class:`regexp.train.step.Step` contract.

    Per model, as :class:`regexp.train.autograd.AutogradStep` on that model alone:
    penalty mode adds the penalty's gradient (closed form) before the optimizer step;
    proximal mode takes ``prox_{lr·R}`` after it, in the identity metric or (``adaptive``)
    in Adam's ``√v̂ + ε``; ``lr`` and the weight decay are the model's own.
    """

    def __init__(
        self,
        members: Sequence[Member],
        data: Dataset,
        activation: str,
        opt_cfg: Mapping,
        layout_n: int | None = None,
    ) -> None:
        self.members, self.data = list(members), data
        self.n_models = len(members)
        dev = data.x_train.device
        hidden = [lin.out_features for lin in members[0].model if isinstance(lin, nn.Linear)]
        self.stack = stack = StackedMLP([m.model for m in members], activation, layout_n)
        coefs = [m.reg.coefficients() for m in members]
        prox = [m.mode == "proximal" for m in members]
        adaptive = [p and m.prox_metric == "adaptive" for p, m in zip(prox, members, strict=True)]
        chosen = [regularized_layers(m.model, m.reg) for m in members]
        # [N, layers]: which weights each model regularizes (None: every one, the default)
        layers = None if all(all(c) for c in chosen) else torch.tensor(chosen, dtype=torch.bool)
        self.pen_terms = stack.bind(terms(coefs, [not p for p in prox]), layers=layers)
        self.prox_terms = stack.bind(
            terms(coefs, [p and not a for p, a in zip(prox, adaptive, strict=True)]),
            layers=layers,
        )
        term = metric_term(coefs, adaptive)  # all terms at once, in Adam's metric
        self.adaptive_term = None if term is None else stack.bind([term], torch.float64, layers)[0]
        self.all_terms = stack.bind(terms(coefs, [True] * self.n_models), layers=layers)
        self.lr = torch.tensor([m.lr for m in members], dtype=torch.float64)
        # The proximal step size: a float when every model has the same lr (fewer ops).
        self.prox_lr = members[0].lr if len({m.lr for m in members}) == 1 else self.lr
        wd = torch.tensor(
            [getattr(m.reg, "weight_decay", 0.0) for m in members], dtype=torch.float64
        )
        self.opt = StackedOptimizer(
            stack.parameters, stack.grads, stack.decays, opt_cfg, self.lr, wd
        )
        self.masks = _Masks(members, hidden[:-1], dev)
        self.slots: dict[str, list[Tensor]] = {}

    @torch.no_grad()
    def step(self, idx: Tensor) -> Tensor:
        stack, data = self.stack, self.data
        x, y = _gather(data.x_train, idx), _gather(data.y_train, idx)
        loss = stack.loss_and_grad_(x, y, data.task, self.masks.draw(idx.shape[1]))
        if self.pen_terms:
            stack.add_penalty_grad_(self.pen_terms)
        self.opt.step()
        if self.prox_terms:
            stack.prox_(self.prox_lr, self.prox_terms)
        if self.adaptive_term is not None:
            stack.prox_metric_(self.prox_lr, self.adaptive_term, self.opt.metric)
        return loss

    def penalty(self) -> Tensor:
        return self.stack.penalty(self.all_terms)

    def scores(self, split: str) -> dict[str, Tensor]:
        x, y = getattr(self.data, f"x_{split}"), getattr(self.data, f"y_{split}")
        return evaluate(self.stack, x, y, self.data.task)

    def keep(self, slot: str, which: Tensor) -> None:
        if slot not in self.slots:
            self.slots[slot] = self.stack.snapshot()
        else:
            copy_where_(self.slots[slot], self.stack.parameters, which)

    def restore(self, slot: str, which: Tensor) -> None:
        copy_where_(self.stack.parameters, self.slots[slot], which)

    def finish(self) -> None:
        for k, m in enumerate(self.members):
            self.stack.copy_to(k, m.model)


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
    layout_n: int | None = None,
) -> list[FitResult]:
    """Train ``members`` (same architecture, ``activation`` and data) with the fast engine.

    Returns one :class:`~regexp.train.step.FitResult` per member, in order, with the
    training rules of :func:`regexp.train.step.train` (minibatch order from each member's
    ``seed``, ``drop_last``, history, divergence and early stopping per model); each
    member's ``model`` receives its final weights. Internally the models are stacked in
    :func:`regexp.train.stacked.model.stack_order`, so that each penalty term covers one
    run of models. ``layout_n`` (default: the number of members) is the stack size that
    chooses the memory layout (:func:`regexp.train.stacked.model.block_layout`): a part of
    a larger stack passes the whole stack's size, so that it trains each job bit for bit as
    the whole stack does.
    """
    order = stack_order([m.reg.coefficients() for m in members])
    stacked = [members[i] for i in order]
    step = FastStep(stacked, data, activation, opt_cfg, layout_n)
    results = train(
        step,
        [m.seed for m in stacked],
        len(data.y_train),
        data.x_train.device,
        data.task,
        epochs,
        batch_size,
        patience,
        on_epoch,
        drop_last,
        engine="fast",
    )
    out: list[FitResult] = [None] * len(members)  # type: ignore[list-item]
    for k, i in enumerate(order):
        out[i] = results[k]
    return out
