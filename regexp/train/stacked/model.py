"""N MLPs of one architecture as one stacked model: weights ``[N, out, in]``, biases ``[N, out]``.

Model ``n`` of the stack computes exactly what ``regexp.model.mlp.mlp`` computes, with its own
weights, its own dropout masks and its own regularizer coefficients; nothing couples two
models (every reduction is per model), so the gradient of the summed per-model losses with
respect to model ``n``'s weights is model ``n``'s own gradient.
"""

from __future__ import annotations

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
    """

    def __init__(self, models: Sequence[nn.Sequential], activation: str) -> None:
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        self.n = len(models)
        self.act = ACTIVATIONS[activation]()
        self.act_ = ACT_FORWARD[activation]  # in place, without a module call
        with torch.no_grad():
            self.weights = [
                torch.stack([ls[i].weight for ls in linears]).clone()
                for i in range(len(linears[0]))
            ]
            self.biases = [
                torch.stack([ls[i].bias for ls in linears]).clone() for i in range(len(linears[0]))
            ]

        self.activation = activation
        # Gradients, same layout as the parameters, written in place by the backward pass.
        self.weight_grads = [torch.zeros_like(w) for w in self.weights]
        self.bias_grads = [torch.zeros_like(b) for b in self.biases]

    @property
    def parameters(self) -> list[Tensor]:
        return [*self.weights, *self.biases]

    def _minus_ones(self, shape: torch.Size, like: Tensor) -> Tensor:
        """A tensor of −1 of ``shape`` (kept: every full minibatch has the same shape)."""
        if getattr(self, "_ones", None) is None or self._ones.shape != shape:
            self._ones = torch.full(shape, -1.0, dtype=like.dtype, device=like.device)
        return self._ones

    @property
    def grads(self) -> list[Tensor]:
        """The gradients of :attr:`parameters`, in the same order."""
        return [*self.weight_grads, *self.bias_grads]

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
    def penalty(self, terms: Sequence[Term]) -> Tensor:
        """Per-model penalty ``Σ_layers Σ_terms penalties.penalty(W[a:b], **term)``, ``[N]``."""
        total = self.weights[0].new_zeros(self.n)
        for w in self.weights:
            for t in terms:
                total[t.start : t.end] += penalties.penalty(w[t.start : t.end], **t.kwargs)
        return total

    def add_penalty_grad_(self, terms: Sequence[Term]) -> None:
        """Add the penalty's gradient to :attr:`weight_grads`.

        In closed form (:func:`regexp.core.penalties.add_penalty_grad_`), each term on its
        slice of models only, so no work is spent on models whose coefficient is zero.
        """
        for w, grad in zip(self.weights, self.weight_grads, strict=True):
            for t in terms:
                add_penalty_grad_(_rows(w, t), _rows(grad, t), **t.kwargs)

    def prox_(self, lr: float | Tensor, terms: Sequence[Term]) -> None:
        """In place ``W ← prox_{lr·penalty}(W)`` per model (:func:`regexp.core.penalties.prox_`);
        ``lr`` per model ``[N]``, or a float that all share."""
        for w in self.weights:
            for t in terms:
                step = lr if isinstance(lr, float) else lr[t.start : t.end]
                penalties.prox_(_rows(w, t), step, **t.kwargs)

    def prox_metric_(
        self, lr: float | Tensor, term: Term, metric: Callable[[int], Tensor | None]
    ) -> None:
        """In place prox per model in the metric ``metric(i)`` ``[N, out, in]`` of
        ``weights[i]`` (``None``: identity), via :func:`regexp.core.metric_prox.prox_metric_`
        with every coefficient of ``term`` (a :func:`metric_term`) in one call."""
        s = slice(term.start, term.end)
        for i, w in enumerate(self.weights):
            d = metric(i)
            step = lr if isinstance(lr, float) else lr[s]
            prox_metric_(_rows(w, term), step, None if d is None else _rows(d, term), **term.kwargs)

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


def _rows(t: Tensor, term: Term) -> Tensor:
    """The models ``term.start:term.end`` of ``t`` (``t`` itself when that is all of them)."""
    return t if term.start == 0 and term.end == len(t) else t[term.start : term.end]


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
