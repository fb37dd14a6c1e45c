"""One MLP's training with hand-written backpropagation: :func:`fit_mlp`.

The same training as :func:`regexp.train.loop.fit` (the same minibatches, dropout masks,
losses, penalty, optimizer step and proximal step, the same history, divergence and early
stopping), for the MLPs of :func:`regexp.model.mlp.mlp`, without autograd or
``torch.optim``. A model this small spends its time on per-operation overhead, not
arithmetic, so every step here is a short fixed list of tensor operations:

- the parameters live in one flat tensor (each weight stored transposed, ``Wᵀ`` of shape
  ``[in, out]``, then the biases) whose views the model's ``nn.Linear`` layers share
  during training, and their gradients in another, written in place by ``torch.mm(out=)``;
- forward ``h ← act(h @ Wᵀ + b)`` (``torch.addmm``), backward by the chain rule with the
  activations' own backward kernels (those autograd calls);
- the data loss's gradient in closed form: ``(softmax(z) − onehot(y))/B`` for the mean
  cross-entropy, ``2(z − y)/B`` for the mean squared error;
- the penalty's gradient in closed form (:func:`regexp.core.penalties.add_penalty_grad_`'s
  formulas, every layer at once);
- torch's fused Adam, AdamW or SGD kernel, the one ``torch.optim``'s ``fused=True`` calls,
  once per step on the flat tensor. Constructing a ``torch.optim`` optimizer imports
  ``torch._dynamo`` (about a second), which a run then never pays.

Results equal those of :func:`regexp.train.loop.fit` up to float reordering.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from regexp.core.penalties import add_penalty_grad_, prox_, prox_undefined
from regexp.core.regularizers import Coefficients, Regularizer
from regexp.data.prepare import Dataset
from regexp.train.evaluate import evaluate

log = logging.getLogger(__name__)

# Called after each epoch with a short status text (as regexp.train.loop.EpochCallback).
EpochCallback = Callable[[str], None]

_aten = torch.ops.aten


@dataclass
class Fit:
    """What :func:`fit_mlp` returns: history rows, ``ok`` or ``diverged``, seconds, best epoch."""

    rows: list[dict]
    status: str
    seconds: float
    best_epoch: int
    events: list[str]  # what the log said about divergence and early stopping


def _activation(module: nn.Module) -> tuple[Callable, Callable] | None:
    """``(forward, backward)`` of a hidden activation, or ``None`` if unsupported.

    ``forward(z) -> a`` may overwrite ``z``; ``backward(g, z, a) -> ∂L/∂z`` is the kernel
    that autograd calls for that activation.
    """
    if type(module) is nn.ReLU:
        return (lambda z: z.relu_()), (lambda g, z, a: _aten.threshold_backward.default(g, a, 0))
    if type(module) is nn.Tanh:
        return torch.tanh, (lambda g, z, a: _aten.tanh_backward.default(g, a))
    if type(module) is nn.Sigmoid:
        return torch.sigmoid, (lambda g, z, a: _aten.sigmoid_backward.default(g, a))
    if type(module) is nn.LeakyReLU:
        s = module.negative_slope
        return (
            lambda z: F.leaky_relu(z, s),
            lambda g, z, a: _aten.leaky_relu_backward.default(g, z, s, False),
        )
    if type(module) is nn.ELU:
        al = module.alpha
        return (
            lambda z: F.elu(z, al),
            lambda g, z, a: _aten.elu_backward.default(g, al, 1, 1, False, z),
        )
    return None


def _layers(model: nn.Module) -> tuple[list[nn.Linear], nn.Module | None, float] | None:
    """The linears, hidden activation and dropout probability of an ``mlp``.

    ``None`` for any other model: an ``nn.Sequential`` of ``Linear → act → [Dropout]`` per
    hidden layer and a last ``Linear``, one activation type and one dropout ``p`` for all.
    """
    if type(model) is not nn.Sequential:
        return None
    mods, linears, acts, drops = list(model), [], [], []
    k = 0
    while k < len(mods):
        if type(mods[k]) is not nn.Linear or mods[k].bias is None:
            return None
        linears.append(mods[k])
        if k + 1 == len(mods):
            break
        if k + 2 > len(mods) - 1:
            return None  # ends with an activation or dropout
        acts.append(mods[k + 1])
        k += 2
        drops.append(mods[k].p if type(mods[k]) is nn.Dropout else 0.0)
        k += type(mods[k]) is nn.Dropout
    kinds = {(type(a), getattr(a, "negative_slope", 0), getattr(a, "alpha", 0)) for a in acts}
    if len(kinds) > 1 or len(set(drops)) > 1:
        return None
    return linears, acts[0] if acts else None, drops[0] if drops else 0.0


def unsupported(model: nn.Module, reg: Regularizer, mode: str, opt_cfg: Mapping) -> str | None:
    """Why :func:`fit_mlp` cannot train this configuration (``None`` if it can)."""
    parts = _layers(model)
    if parts is None:
        return "the model is not an MLP of regexp.model.mlp.mlp"
    linears, act, p = parts
    if act is not None and _activation(act) is None:
        return f"no closed-form backward for {type(act).__name__}"
    if reg.params is not None:
        return "regularizer.params selects custom parameters"
    if opt_cfg.get("name") not in ("adam", "adamw", "sgd"):
        return f"optimizer {opt_cfg.get('name')!r}"
    dev = linears[0].weight.device
    if p > 0 and dev.type != "cpu":
        return "dropout off the CPU (torch's fused dropout draws its masks differently)"
    c = reg.coefficients()
    if mode == "proximal":
        return prox_undefined(c.norm, c.p)
    return None


class _Params:
    """The MLP's parameters in one flat tensor, shared with its ``nn.Linear`` layers.

    ``flat = [W₁ᵀ, …, W_Lᵀ, b₁, …, b_L]`` with each ``Wᵀ`` ``[in, out]`` row-major, and
    ``grad`` the same layout. While training, ``lin.weight`` is the ``[out, in]`` view
    ``Wᵀ.t()`` of ``flat`` and ``lin.bias`` a view too; :meth:`release` gives the layers
    their own contiguous tensors back.
    """

    def __init__(self, linears: list[nn.Linear]) -> None:
        self.linears = linears
        shapes = [(lin.in_features, lin.out_features) for lin in linears]
        n_w = sum(i * o for i, o in shapes)
        w0 = linears[0].weight
        self.flat = torch.empty(n_w + sum(o for _, o in shapes), dtype=w0.dtype, device=w0.device)
        self.grad = torch.zeros_like(self.flat)
        self.n_weights = n_w
        self.wt, self.gwt, self.b, self.gb = [], [], [], []
        a, c = 0, n_w
        for i, o in shapes:
            self.wt.append(self.flat[a : a + i * o].view(i, o))
            self.gwt.append(self.grad[a : a + i * o].view(i, o))
            self.b.append(self.flat[c : c + o])
            self.gb.append(self.grad[c : c + o])
            a, c = a + i * o, c + o
        with torch.no_grad():
            for lin, wt, b in zip(linears, self.wt, self.b, strict=True):
                wt.copy_(lin.weight.t())
                b.copy_(lin.bias)
                lin.weight.data = wt.t()
                lin.bias.data = b
        # Row r of the weights region is the group of one input unit of one layer: its
        # outgoing weights W[:, j] (penalties' convention: a column of W).
        self.group_sizes = [o for i, o in shapes for _ in range(i)]

    def release(self) -> None:
        """Give every layer its own contiguous weight and bias (copies of the flat views)."""
        with torch.no_grad():
            for lin in self.linears:
                lin.weight.data = lin.weight.data.contiguous()
                lin.bias.data = lin.bias.data.clone()


class _PenaltyGrad:
    """``grad += ∂penalty/∂W`` for every layer at once, in closed form.

    Term by term as :func:`regexp.core.penalties.add_penalty_grad_`: ``l1·sign(w)`` and
    ``2·l2·w`` on the whole weights region; ``group·√out·W[:, j]/‖W[:, j]‖₂`` (0 for a
    zero column) with one row of the flat ``Wᵀ`` per group; the entrywise ``p``-norm per
    layer with :func:`~regexp.core.penalties.add_penalty_grad_` itself.
    """

    def __init__(self, params: _Params, c: Coefficients) -> None:
        self.params, self.c = params, c
        w = params.flat[: params.n_weights]
        self.w, self.g = w, params.grad[: params.n_weights]
        if c.group != 0:
            sizes = params.group_sizes
            self.norms = torch.empty(len(sizes), dtype=w.dtype, device=w.device)
            self.views, k = [], 0
            for wt in params.wt:  # each layer's rows of the norms
                self.views.append(self.norms[k : k + wt.shape[0]])
                k += wt.shape[0]
            self.coef = torch.tensor(
                [c.group * math.sqrt(o) for o in sizes], dtype=w.dtype, device=w.device
            )
            self.expand = torch.repeat_interleave(
                torch.arange(len(sizes), device=w.device), torch.tensor(sizes, device=w.device)
            )

    def add_(self) -> None:
        c = self.c
        if c.l1 != 0:
            self.g.add_(self.w.sign(), alpha=c.l1)
        if c.l2 != 0:
            self.g.add_(self.w, alpha=2.0 * c.l2)
        if c.group != 0:
            sq = self.w.square()
            k = 0
            for wt, norms in zip(self.params.wt, self.views, strict=True):
                n = wt.numel()
                torch.sum(sq[k : k + n].view(wt.shape), 1, out=norms)
                k += n
            norms = self.norms.sqrt_()
            scale = torch.where(norms > 0, self.coef / norms, 0.0)
            self.g.addcmul_(self.w, scale.index_select(0, self.expand))
        if c.norm != 0:
            for wt, gwt in zip(self.params.wt, self.params.gwt, strict=True):
                add_penalty_grad_(wt.t(), gwt.t(), norm=c.norm, p=c.p)


class _Step:
    """The optimizer step on the flat parameters: torch's fused Adam, AdamW or SGD kernel.

    As ``torch.optim.Adam/AdamW/SGD(fused=True)`` with two parameter groups: the weights,
    with ``weight_decay``, and the biases, without.
    """

    def __init__(self, params: _Params, cfg: Mapping, weight_decay: float) -> None:
        self.name, self.lr, self.wd = cfg["name"], float(cfg["lr"]), float(weight_decay)
        flat, grad, n = params.flat, params.grad, params.n_weights
        # One kernel call for all parameters unless the weights decay and the biases do not.
        if self.wd == 0:
            self.groups = [([flat], [grad], 0.0)]
        else:
            self.groups = [([flat[:n]], [grad[:n]], self.wd), ([flat[n:]], [grad[n:]], 0.0)]
        if self.name == "sgd":
            self.momentum = float(cfg.get("momentum", 0.0))
            self.bufs = [[torch.empty_like(p) for p in g[0]] for g in self.groups]
            self.first = self.momentum != 0  # the kernel then copies the gradient in
        else:
            self.beta1, self.beta2 = (float(b) for b in cfg["betas"])
            self.eps = float(cfg["eps"])
            self.m = [[torch.zeros_like(p) for p in g[0]] for g in self.groups]
            self.v = [[torch.zeros_like(p) for p in g[0]] for g in self.groups]
            self.steps = [torch.zeros((), dtype=torch.float32, device=flat.device)]
            self.kernel = torch._fused_adamw_ if self.name == "adamw" else torch._fused_adam_

    def __call__(self) -> None:
        if self.name == "sgd":
            for (ps, gs, wd), bufs in zip(self.groups, self.bufs, strict=True):
                torch._fused_sgd_(
                    ps,
                    gs,
                    bufs if self.momentum != 0 else [],
                    weight_decay=wd,
                    momentum=self.momentum,
                    lr=self.lr,
                    dampening=0.0,
                    nesterov=False,
                    maximize=False,
                    is_first_step=self.first,
                )
            self.first = False
            return
        torch._foreach_add_(self.steps, 1)
        for (ps, gs, wd), m, v in zip(self.groups, self.m, self.v, strict=True):
            self.kernel(
                ps,
                gs,
                m,
                v,
                [],
                self.steps,
                amsgrad=False,
                lr=self.lr,
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=wd,
                eps=self.eps,
                maximize=False,
            )


def fit_mlp(
    model: nn.Sequential,
    data: Dataset,
    reg: Regularizer,
    mode: str,
    opt_cfg: Mapping,
    weight_decay: float,
    epochs: int,
    batch_size: int,
    seed: int,
    patience: int | None = None,
    on_epoch: EpochCallback | None = None,
) -> Fit:
    """Train ``model`` as :func:`regexp.train.loop.fit` would with ``opt_cfg``'s optimizer.

    ``opt_cfg`` is the config group ``optimizer`` (``name`` adam | adamw | sgd, ``lr``,
    ``betas`` and ``eps``, or ``momentum``); ``weight_decay`` applies to the weights
    only. The model must pass :func:`unsupported`. Each step: minibatch ``idx`` (a slice of
    ``torch.randperm(n, generator=Generator().manual_seed(seed))`` per epoch), forward
    with dropout masks drawn from the global RNG as ``nn.Dropout`` draws them, gradient of
    ``data_loss`` (+ the penalty's, ``mode="penalty"``), the optimizer step, then
    (``mode="proximal"``) ``W ← prox_{lr·penalty}(W)``. After each epoch, the history row
    of :func:`regexp.train.loop.fit`, divergence and early stopping as there.
    """
    linears, act_module, p_drop = _layers(model)  # type: ignore[misc]
    act_fwd, act_bwd = _activation(act_module) if act_module is not None else (None, None)
    task, dev = data.task, data.x_train.device
    x, y, n = data.x_train, data.y_train, len(data.y_train)
    c = reg.coefficients()
    params = _Params(linears)
    pen = _PenaltyGrad(params, c) if mode == "penalty" and not c.is_zero else None
    prox = asdict(c) if mode == "proximal" and not c.is_zero else None
    step = _Step(params, opt_cfg, weight_decay)
    lr = float(opt_cfg["lr"])
    wt, gwt, bs, gbs = params.wt, params.gwt, params.b, params.gb
    last = len(linears) - 1
    hidden = [lin.out_features for lin in linears[:-1]]
    keep = 1.0 - p_drop
    # Minibatches, and per row position the 1/B of its step (for the epoch's mean loss).
    batches = [(i, min(batch_size, n - i)) for i in range(0, n, batch_size)]
    steps = len(batches)
    inv_b = torch.cat([torch.full((b,), 1.0 / b) for _, b in batches]).to(dev)
    picked = torch.empty(n, 1, device=dev)  # per row: log p(y) or the squared error
    if task == "classification":
        eye = torch.eye(linears[-1].out_features, device=dev)
    gen = torch.Generator().manual_seed(seed)
    rows, status, best = [], "ok", (math.inf, None, 0)
    events: list[str] = []
    metric = "accuracy" if task == "classification" else "r2"
    model.train()
    start = time.perf_counter()
    try:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n, generator=gen).to(dev)
            xs = x.index_select(0, order)
            if task == "classification":
                ys = y.index_select(0, order).unsqueeze(1)
                target = eye.index_select(0, ys.view(-1)).mul_(inv_b.unsqueeze(1)).neg_()
            else:
                ys = y.index_select(0, order)
            for i, b in batches:
                h = xs[i : i + b]
                ins, zs, acts, masks = [h], [], [], []
                for k in range(last):
                    z = torch.addmm(bs[k], h, wt[k])
                    a = act_fwd(z)
                    zs.append(z)
                    acts.append(a)
                    if p_drop > 0:  # as nn.Dropout: bernoulli(1 − p) from the global RNG
                        m = torch.empty(b, hidden[k], device=dev).bernoulli_(keep).div_(keep)
                        masks.append(m)
                        a = a * m
                    h = a
                    ins.append(h)
                out = torch.addmm(bs[last], h, wt[last])
                if task == "classification":
                    ls = torch.log_softmax(out, 1)
                    torch.gather(ls, 1, ys[i : i + b], out=picked[i : i + b])
                    g = torch.add(target[i : i + b], ls.exp_(), alpha=1.0 / b)
                else:
                    diff = out.view(-1) - ys[i : i + b]
                    torch.mul(diff, diff, out=picked[i : i + b].view(-1))
                    g = diff.mul_(2.0 / b).unsqueeze(1)
                for k in range(last, -1, -1):
                    torch.mm(ins[k].t(), g, out=gwt[k])
                    torch.sum(g, 0, out=gbs[k])
                    if k > 0:
                        g = torch.mm(g, wt[k].t())
                        if p_drop > 0:
                            g.mul_(masks[k - 1])
                        g = act_bwd(g, zs[k - 1], acts[k - 1])
                if pen is not None:
                    pen.add_()
                step()
                if prox is not None:
                    for w in wt:
                        prox_(w.t(), lr, **prox)
            # Mean over steps of each step's mean loss: Σ_rows loss_row / B_step / steps.
            total = torch.dot(picked.view(-1), inv_b).item() / steps
            d_loss = -total if task == "classification" else total
            with torch.no_grad():
                pen_end = float(reg(model))  # of the weights at the end of the epoch
            val = evaluate(model, data, "val")
            rows.append(
                {
                    "epoch": epoch,
                    "train_loss": d_loss + pen_end,
                    "data_loss": d_loss,
                    "penalty": pen_end,
                    "val_loss": val["loss"],
                    f"val_{metric}": val[metric],
                }
            )
            if on_epoch is not None:
                on_epoch(f"loss {d_loss + pen_end:.4f} val {val['loss']:.4f}")
            if not (math.isfinite(d_loss + pen_end) and math.isfinite(val["loss"])):
                status = "diverged"
                events.append(
                    f"loss is not finite at epoch {epoch}: run diverged, training stopped"
                )
                log.warning(events[-1])
                break
            if patience is not None:
                if val["loss"] < best[0]:
                    best = (val["loss"], copy.deepcopy(model.state_dict()), epoch)
                elif epoch - best[2] >= patience:
                    events.append(f"early stopping at epoch {epoch} (best epoch {best[2]})")
                    log.info(events[-1])
                    break
    finally:
        params.release()
    if patience is not None and best[1] is not None and status == "ok":
        model.load_state_dict(best[1])
    return Fit(rows, status, time.perf_counter() - start, best[2], events)
