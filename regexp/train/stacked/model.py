"""N MLPs of one architecture as one stacked model: weights ``[N, out, in]``, biases ``[N, out]``.

Model ``n`` of the stack computes exactly what ``regexp.model.mlp.mlp`` computes, with its own
weights, its own dropout masks and its own regularizer coefficients; nothing couples two
models (every reduction is per model), so the gradient of the summed per-model losses with
respect to model ``n``'s weights is model ``n``'s own gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from regexp.core import penalties
from regexp.core.metric_prox import prox_metric_
from regexp.core.penalties import add_penalty_grad_, prox_undefined
from regexp.core.regularizers import Coefficients
from regexp.model.mlp import ACTIVATIONS

TERMS = ("l1", "l2", "group", "norm")


def _leaky_relu_grad(g: Tensor, a: Tensor) -> Tensor:
    return torch.where(a > 0, g, g * nn.LeakyReLU().negative_slope)


def _elu_grad(g: Tensor, a: Tensor) -> Tensor:
    alpha = nn.ELU().alpha
    return torch.where(a > 0, g, g * (a + alpha))


# act(z) in place (z is a fresh output of baddbmm), per activation of
# regexp.model.mlp.ACTIVATIONS with their default slope and alpha.
ACT_FORWARD: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu_,
    "leaky_relu": lambda z: F.leaky_relu_(z, nn.LeakyReLU().negative_slope),
    "tanh": torch.tanh_,
    "sigmoid": torch.sigmoid_,
    "elu": lambda z: F.elu_(z, nn.ELU().alpha),
}
# ∂L/∂z from G = ∂L/∂a and the activation's output a = act(z), per activation of
# regexp.model.mlp.ACTIVATIONS (with their default slope and alpha): relu 1[a > 0];
# leaky_relu 1 or slope (a > 0 ⇔ z > 0); tanh 1 − a²; sigmoid a(1 − a); elu 1, or
# α·eᶻ = a + α where z ≤ 0.
ACT_GRADS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "relu": lambda g, a: g.mul_(a > 0),
    "leaky_relu": _leaky_relu_grad,
    "tanh": lambda g, a: g.mul_(1 - a * a),
    "sigmoid": lambda g, a: g.mul_(a * (1 - a)),
    "elu": _elu_grad,
}


class StackedMLP:
    """The parameters of N ``nn.Sequential`` MLPs stacked along a new leading dim.

    Parameters
    ----------
    models : sequence of nn.Sequential
        Built by ``regexp.model.mlp.mlp`` with the same sizes and activation; their current
        weights become the stack's initial weights (copied, the models are not touched).
    activation : str
        The hidden activation's name (a key of ``regexp.model.mlp.ACTIVATIONS``).
    layout_n : int, optional
        The stack size that chooses the memory layout (:func:`block_layout`); default the
        number of models.

    The parameters live in :attr:`blocks`; :attr:`weights` and :attr:`biases` (and their
    gradients) are per-layer views ``[N, out, in]`` and ``[N, out]`` into them.
    """

    def __init__(
        self, models: Sequence[nn.Sequential], activation: str, layout_n: int | None = None
    ) -> None:
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        self.n = n = len(models)
        self.act = ACTIVATIONS[activation]()
        self.act_ = ACT_FORWARD[activation]  # in place, without a module call
        self.activation = activation
        shapes = [(lin.out_features, lin.in_features) for lin in linears[0]]
        first = linears[0][0].weight
        self.blocks = [
            Block.empty(n, [shapes[i] for i in layers], layers, first.dtype, first.device)
            for layers in block_layout(shapes, layout_n or n)
        ]
        # Per layer: views of the blocks' parameters and gradients, [N, out, in] and [N, out].
        self.weights, self.biases = [None] * len(shapes), [None] * len(shapes)
        self.weight_grads, self.bias_grads = [None] * len(shapes), [None] * len(shapes)
        for blk in self.blocks:
            for k, i in enumerate(blk.layers):
                o, j = shapes[i]
                self.weights[i], self.biases[i] = blk.w[:, k, :o, :j], blk.b[:, k, :o]
                self.weight_grads[i], self.bias_grads[i] = blk.gw[:, k, :o, :j], blk.gb[:, k, :o]
        with torch.no_grad():
            for i in range(len(shapes)):
                self.weights[i].copy_(torch.stack([ls[i].weight for ls in linears]))
                self.biases[i].copy_(torch.stack([ls[i].bias for ls in linears]))

    @property
    def parameters(self) -> list[Tensor]:
        """The blocks' weights, then their biases (the padding stays 0 throughout)."""
        return [*(b.w for b in self.blocks), *(b.b for b in self.blocks)]

    @property
    def decays(self) -> list[bool]:
        """Whether each of :attr:`parameters` takes weight decay (weights yes, biases no)."""
        return [True] * len(self.blocks) + [False] * len(self.blocks)

    def _minus_ones(self, shape: torch.Size, like: Tensor) -> Tensor:
        """A tensor of −1 of ``shape`` (kept: every full minibatch has the same shape)."""
        if getattr(self, "_ones", None) is None or self._ones.shape != shape:
            self._ones = torch.full(shape, -1.0, dtype=like.dtype, device=like.device)
        return self._ones

    @property
    def grads(self) -> list[Tensor]:
        """The gradients of :attr:`parameters`, in the same order."""
        return [*(b.gw for b in self.blocks), *(b.gb for b in self.blocks)]

    def bind(
        self, terms: Sequence[Term], dtype: torch.dtype | None = None, layers: Tensor | None = None
    ) -> list[Bound]:
        """``terms`` with their coefficients shaped for every block (once per stack), a
        group coefficient that :attr:`Block.scale` makes a tensor in ``dtype`` (default
        the weights'). ``layers`` ``[N, n_layers]``: 1 where model ``n`` regularizes layer
        ``l``'s weight, 0 where not (``regularizer.params``); ``None``: every layer."""
        dtype = dtype or self.blocks[0].w.dtype
        return [
            Bound(
                t.start,
                t.end,
                [
                    blk.kwargs(t.kwargs, dtype, None if layers is None else layers[t.start : t.end])
                    for blk in self.blocks
                ],
            )
            for t in terms
        ]

    def loss_and_grad_(
        self, x: Tensor, y: Tensor, task: str, masks: Sequence[Tensor | None] = ()
    ) -> Tensor:
        """Each model's mean data loss on its minibatch ``[N]``; writes its gradient into
        :attr:`grads` (overwriting them). No autograd.

        ``x`` is ``[N, B, in]``, ``y`` ``[N, B]`` and ``masks`` as in :meth:`forward`.
        Forward as :meth:`forward`, keeping each layer's input ``hᵀ`` ``[N, in, B]``; the
        loss's gradient with respect to the outputs ``z`` ``[N, C, B]`` in closed form,
        ``(softmax(z) − onehot(y))/B`` for the mean cross-entropy and ``2(z − y)/B`` for
        the mean squared error; then per layer, last first, with ``G = ∂L/∂z``:
        ``∂L/∂W = G·h`` (``[N, out, B]·[N, B, in]``), ``∂L/∂b = Σ_B G``, and for the layer
        below ``G ← act'(Wᵀ·G ⊙ mask)`` with ``act'`` from the activation's output
        (:data:`ACT_GRADS`).
        """
        b = y.shape[1]
        ins = [x.transpose(1, 2)]  # [N, in, B]
        outs = []
        last = len(self.weights) - 1
        h = ins[0]
        for i, (w, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias.unsqueeze(2), w, h)
            if i < last:
                h = self.act_(h)
                outs.append(h)
                if i < len(masks) and masks[i] is not None:
                    h = h * masks[i]
                ins.append(h)
        if task == "classification":
            ls = torch.log_softmax(h, 1)
            yy = y.unsqueeze(1)
            loss = ls.gather(1, yy).mean((1, 2)).neg_()
            g = ls.exp_()
            g.scatter_add_(1, yy, self._minus_ones(yy.shape, g))
            g.mul_(1.0 / b)
        else:
            diff = h.squeeze(1) - y
            loss = diff.square().mean(1)
            g = diff.mul_(2.0 / b).unsqueeze(1)
        act_grad = ACT_GRADS[self.activation]
        for i in range(last, -1, -1):
            torch.bmm(g, ins[i].transpose(1, 2), out=self.weight_grads[i])
            torch.sum(g, 2, out=self.bias_grads[i])
            if i > 0:
                g = torch.bmm(self.weights[i].transpose(1, 2), g)
                if i - 1 < len(masks) and masks[i - 1] is not None:
                    g.mul_(masks[i - 1])
                g = act_grad(g, outs[i - 1])
        return loss

    def forward(self, x: Tensor, masks: Sequence[Tensor | None] = ()) -> Tensor:
        """Outputs ``[N, n_out, B]`` (class dim second) of inputs ``x`` ``[N, B, in]``.

        ``x`` may also be ``[B, in]``, shared by all models. Activations are kept
        transposed, ``[N, units, B]``: layer ``l`` computes ``hᵀ ← act(W[n] @ hᵀ + b[n])``
        per model (``torch.baddbmm``; this layout is the fastest for small batches) and, in
        training, ``hᵀ ← hᵀ · masks[l]`` with ``masks[l]`` ``[N, units, B]``, the dropout
        noise already divided by ``1 − p`` (``None``: no dropout in that layer). The last
        layer has no activation.
        """
        h = x.transpose(-1, -2)
        if h.dim() == 2:
            h = h.expand(self.n, *h.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b.unsqueeze(2), w, h)
            if i < last:
                h = self.act(h)
                if i < len(masks) and masks[i] is not None:
                    h = h * masks[i]
        return h

    @torch.no_grad()
    def penalty(self, terms: Sequence[Bound]) -> Tensor:
        """Per-model penalty ``Σ_layers Σ_terms penalties.penalty(W[a:b], **term)``, ``[N]``."""
        total = self.blocks[0].w.new_zeros(self.n)
        for k, blk in enumerate(self.blocks):
            for t in terms:
                total[t.start : t.end] += penalties.penalty(t.rows(blk.w), **t.kwargs[k]).sum(-1)
        return total

    def add_penalty_grad_(self, terms: Sequence[Bound]) -> None:
        """Add the penalty's gradient to the weights' gradients.

        In closed form (:func:`regexp.core.penalties.add_penalty_grad_`), one call per
        block and term, each term on its slice of models only, so no work is spent on
        models whose coefficient is zero.
        """
        for k, blk in enumerate(self.blocks):
            for t in terms:
                add_penalty_grad_(t.rows(blk.w), t.rows(blk.gw), **t.kwargs[k])

    def prox_(self, lr: float | Tensor, terms: Sequence[Bound]) -> None:
        """In place ``W ← prox_{lr·penalty}(W)`` per model (:func:`regexp.core.penalties.prox_`);
        ``lr`` per model ``[N]``, or a float that all share."""
        for k, blk in enumerate(self.blocks):
            for t in terms:
                penalties.prox_(t.rows(blk.w), t.step(lr), **t.kwargs[k])

    def prox_metric_(
        self, lr: float | Tensor, term: Bound, metric: Callable[[int], Tensor | None]
    ) -> None:
        """In place prox per model in the metric ``metric(k)`` (shaped as block ``k``'s
        weights; ``None``: identity), via :func:`regexp.core.metric_prox.prox_metric_` with
        every coefficient of ``term`` (a bound :func:`metric_term`) in one call per block."""
        for k, blk in enumerate(self.blocks):
            d = metric(k)
            w = term.rows(blk.w)
            prox_metric_(w, term.step(lr), None if d is None else term.rows(d), **term.kwargs[k])

    @torch.no_grad()
    def copy_to(self, n: int, model: nn.Sequential) -> None:
        """Write model ``n``'s weights and biases into ``model`` (an ``mlp`` of these sizes)."""
        linears = [m for m in model if isinstance(m, nn.Linear)]
        for lin, w, b in zip(linears, self.weights, self.biases, strict=True):
            lin.weight.copy_(w[n])
            lin.bias.copy_(b[n])

    @torch.no_grad()
    def snapshot(self) -> list[Tensor]:
        return [p.detach().clone() for p in self.parameters]


@torch.no_grad()
def copy_where_(dst: Sequence[Tensor], src: Sequence[Tensor], which: Tensor) -> None:
    """``dst[k][n] ← src[k][n]`` for every model ``n`` where ``which`` ``[N]`` is true."""
    for d, s in zip(dst, src, strict=True):
        d.copy_(torch.where(which.to(d.device).view(-1, *([1] * (d.dim() - 1))), s, d))


# Prox order of penalties.prox_ (l1 → group → norm → l2): applying one term per call in
# this order composes to the same operator as one call with all terms.
TERM_ORDER = ("l1", "group", "norm", "l2")
# Stack order that makes the models carrying each term contiguous (see `stack_order`).
SIGNATURES = (("l2",), ("l1", "l2"), ("l1",), ("group", "l1"), ("group",))


# A stack pads all its layers into one block when the block holds at most this many
# weights: below it the step is dominated by per-operation overhead, and one call per block
# instead of one per layer is faster; above it the padding's extra elementwise work is not.
PAD_LIMIT = 1 << 16


def block_layout(shapes: Sequence[tuple[int, int]], n: int) -> list[list[int]]:
    """Which layers of ``n`` stacked models share a :class:`Block`: all in one (padded to
    the largest out and in) when that block has at most :data:`PAD_LIMIT` weights, else
    one block per layer.

    The layout changes a model's numbers in the last bits (a reduction over padded rows
    groups its terms differently), so it depends on ``n`` and the layers only."""
    out, inp = max(o for o, _ in shapes), max(i for _, i in shapes)
    if len(shapes) > 1 and n * len(shapes) * out * inp <= PAD_LIMIT:
        return [list(range(len(shapes)))]
    return [[i] for i in range(len(shapes))]


@dataclass
class Block:
    """Layers ``layers`` of N models in one zero-padded tensor: weights ``w``
    ``[N, L, out, in]`` (layer ``k``'s ``[o_k, i_k]`` in its top-left corner), biases ``b``
    ``[N, L, out]``, and their gradients ``gw``, ``gb``.

    The padding is 0 and stays 0: no data reaches it, so its gradient is 0, and every
    optimizer step and penalty term maps 0 with a zero gradient to 0. Every penalty of
    :mod:`regexp.core.penalties` then sees the layers as a stack ``[N, L]`` of
    ``[out, in]`` weights; only the group term's ``√out`` must be each layer's own
    ``√o_k``, so the group coefficient is multiplied by ``scale[k] = √(o_k/out)``.
    """

    layers: list[int]
    w: Tensor
    b: Tensor
    gw: Tensor
    gb: Tensor
    scale: Tensor | None  # [L], None when every layer has the block's out

    @classmethod
    def empty(
        cls,
        n: int,
        shapes: Sequence[tuple[int, int]],
        layers: list[int],
        dtype: torch.dtype,
        device: torch.device,
    ) -> Block:
        out, inp = max(o for o, _ in shapes), max(i for _, i in shapes)
        w = torch.zeros(n, len(shapes), out, inp, dtype=dtype, device=device)
        b = torch.zeros(n, len(shapes), out, dtype=dtype, device=device)
        scale = None
        if any(o != out for o, _ in shapes):
            scale = torch.tensor([math.sqrt(o / out) for o, _ in shapes], dtype=torch.float64)
        return cls(layers, w, b, torch.zeros_like(w), torch.zeros_like(b), scale)

    def kwargs(self, kwargs: dict, dtype: torch.dtype, layers: Tensor | None = None) -> dict:
        """A term's coefficients for this block: a per-model tensor ``[n]`` becomes
        ``[n, 1]`` (it then broadcasts over the block's layers), and the group
        coefficient is multiplied by :attr:`scale`, in ``dtype``: ``[n, L]`` or ``[1, L]``.

        ``layers`` ``[n, n_layers]`` (0 or 1 per model and layer of the stack, ``None``: all
        1) multiplies every coefficient, layer by layer: a layer whose weight a model does
        not regularize gets coefficient 0 there, which leaves its weights and gradients
        exactly as they are. Where no model of the term regularizes any of the block's
        layers the coefficients become python zeros, which every penalty function skips.
        """
        out = {k: v.view(-1, 1) if isinstance(v, Tensor) else v for k, v in kwargs.items()}
        mask = None if layers is None else layers[:, self.layers].to(torch.float64)
        if mask is not None and not bool(mask.all()):
            for name in TERMS:
                v = out.get(name, 0.0)
                if penalties.is_zero(v):
                    continue
                if not bool(mask.any()):
                    out[name] = 0.0
                elif isinstance(v, Tensor):
                    out[name] = v * mask.to(v.dtype)
                else:  # float64: rounded once to the weights' dtype, as a python float is
                    out[name] = mask * v
        group = out.get("group", 0.0)
        if self.scale is not None and not penalties.is_zero(group):
            scale = self.scale.to(dtype=dtype, device=self.w.device)
            if isinstance(group, Tensor):
                group = group.to(dtype=dtype, device=self.w.device)
            out["group"] = (group * scale).view(-1, len(scale))
        return out


@dataclass(frozen=True)
class Bound:
    """A :class:`Term` bound to a stack's blocks: ``kwargs[k]`` for block ``k``."""

    start: int
    end: int
    kwargs: list[dict]

    def rows(self, t: Tensor) -> Tensor:
        """The models ``start:end`` of ``t`` (``t`` itself when that is all of them)."""
        return t if self.start == 0 and self.end == len(t) else t[self.start : self.end]

    def step(self, lr: float | Tensor) -> float | Tensor:
        """The step size of these models: a float, or ``[end − start, 1]``."""
        return lr if isinstance(lr, float) else self.rows(lr).view(-1, 1)


@dataclass(frozen=True)
class Term:
    """One penalty term over the models ``start:end`` of a stack, with their coefficients."""

    start: int
    end: int
    kwargs: dict  # for penalties.penalty / prox_: {term: float or Tensor [end − start], "p": p}


def stack_order(coefs: Sequence[Coefficients]) -> list[int]:
    """A permutation of the models under which the models of each term are contiguous.

    l2 | elastic net | l1 | sgl | group lasso | norm (by p) | none: each term then covers
    one run of models, so :func:`terms` slices instead of computing zeros for the rest.
    """

    def rank(c: Coefficients) -> tuple:
        sig = tuple(sorted(t for t in TERMS if getattr(c, t) != 0))
        known = SIGNATURES.index(sig) if sig in SIGNATURES else len(SIGNATURES)
        return (known, c.p if c.norm else 0.0, sig)

    return sorted(range(len(coefs)), key=lambda n: rank(coefs[n]))


def terms(coefs: Sequence[Coefficients], active: Sequence[bool]) -> list[Term]:
    """The penalty terms of the models where ``active``, as few calls as exactness allows.

    Usually one :class:`Term` over the first to the last active model with every nonzero
    coefficient (models inside the range that do not carry a term get a zero coefficient,
    which leaves their weights and gradients exactly as they are); a coefficient equal
    over the range is a python float (a zero is then skipped), else a float32 tensor
    ``[end − start]``. One call with all terms is what
    :func:`regexp.core.penalties.prox_` composes in its order, exactly. When the norm
    penalty comes with several ``p``, one term per penalty (in the prox order
    l1 → group → norm → l2) and per ``p``.
    """
    ps = {c.p for c, a in zip(coefs, active, strict=True) if a and c.norm != 0}
    if len(ps) <= 1:
        return _term(coefs, active, TERM_ORDER, ps.pop() if ps else 2.0)
    return [
        t
        for term in TERM_ORDER
        for p in (sorted(ps) if term == "norm" else [2.0])
        for t in _term(coefs, active, (term,), p)
    ]


def _term(
    coefs: Sequence[Coefficients], active: Sequence[bool], names: Sequence[str], p: float
) -> list[Term]:
    """At most one :class:`Term`: the coefficients ``names`` (norm: of the models with this
    ``p`` only) of the active models."""
    rows = [
        {t: getattr(c, t) if a and (t != "norm" or c.p == p) else 0.0 for t in names}
        for c, a in zip(coefs, active, strict=True)
    ]
    nz = [n for n, r in enumerate(rows) if any(r.values())]
    if not nz:
        return []
    a, b = nz[0], nz[-1] + 1
    kw: dict = {"p": p}
    for t in names:
        vals = [r[t] for r in rows[a:b]]
        if len(set(vals)) == 1:
            if vals[0] != 0:
                kw[t] = float(vals[0])
        else:
            kw[t] = torch.tensor(vals, dtype=torch.float32)
    return [Term(a, b, kw)]


def metric_term(coefs: Sequence[Coefficients], active: Sequence[bool]) -> Term | None:
    """Every coefficient of the models where ``active``, as one term for
    :meth:`StackedMLP.prox_metric_` (``None`` if there is none).

    Unlike :func:`terms`, not one term per call: in a non-uniform metric the prox of a sum
    is not the composition of single-term proxes once l2 is among them (l2 changes the
    metric of the others). The p = 1 norm joins l1; the p = 2 norm is ``norm``.
    Coefficients are floats when the range shares them, else float64 ``[end − start]``
    (zero for the models in between).
    """
    rows = []
    for c, a in zip(coefs, active, strict=True):
        why = prox_undefined(c.norm, c.p) if a else None
        if why:
            raise ValueError(why)
        norm1, norm2 = (c.norm, 0.0) if c.p == 1 else (0.0, c.norm)
        rows.append((c.l1 + norm1, c.l2, c.group, norm2) if a else (0.0,) * 4)
    nz = [n for n, r in enumerate(rows) if any(r)]
    if not nz:
        return None
    a, b = nz[0], nz[-1] + 1
    kw: dict = {"p": 2.0}
    for j, name in enumerate(("l1", "l2", "group", "norm")):
        vals = [r[j] for r in rows[a:b]]
        if len(set(vals)) == 1 and vals[0] != 0:
            kw[name] = float(vals[0])  # shared by every model of the range
        elif any(vals):
            kw[name] = torch.tensor(vals, dtype=torch.float64)
    return Term(a, b, kw)


def per_model_loss(out: Tensor, y: Tensor, task: str) -> Tensor:
    """Mean cross-entropy or mean squared error of each model, shape ``[N]``.

    ``out`` is ``[N, C, B]`` (as :meth:`StackedMLP.forward` returns it) and ``y`` ``[N, B]``
    (or ``[B]``, shared). Row ``n`` equals ``regexp.core.metrics.data_loss(out[n].T, y[n], task)``.
    """
    n, _, b = out.shape
    y = y if y.dim() == 2 else y.expand(n, b)
    if task == "classification":
        return F.cross_entropy(out, y, reduction="none").mean(1)
    return F.mse_loss(out.squeeze(1), y, reduction="none").mean(1)


@torch.no_grad()
def evaluate(stack: StackedMLP, x: Tensor, y: Tensor, task: str) -> dict[str, Tensor]:
    """Per-model ``loss`` and ``accuracy`` (or ``r2``) on ``(x, y)``, each ``[N]``.

    Same definitions as ``regexp.core.metrics.scores``: accuracy is the fraction of
    ``argmax == y``; ``r2 = 1 − SSE/SST`` in float64 on the standardized target.
    """
    out = stack.forward(x)
    metrics = {"loss": per_model_loss(out, y, task)}
    if task == "classification":
        pred = out.transpose(1, 2).contiguous().argmax(-1)  # argmax over a contiguous dim: fast
        metrics["accuracy"] = (pred == y).double().mean(1)
    else:
        pred, true = out.squeeze(1).double(), y.double()
        sse = ((pred - true) ** 2).sum(1)
        sst = ((true - true.mean()) ** 2).sum()
        metrics["r2"] = 1 - sse / sst if sst > 0 else torch.full_like(sse, float("nan"))
    return metrics
