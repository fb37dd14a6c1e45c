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
        with torch.no_grad():
            self.weights = [
                torch.stack([ls[i].weight for ls in linears]).clone().requires_grad_()
                for i in range(len(linears[0]))
            ]
            self.biases = [
                torch.stack([ls[i].bias for ls in linears]).clone().requires_grad_()
                for i in range(len(linears[0]))
            ]

    @property
    def parameters(self) -> list[Tensor]:
        return [*self.weights, *self.biases]

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

    @torch.no_grad()
    def add_penalty_grad_(self, terms: Sequence[Term]) -> None:
        """Add the penalty's gradient to the weights' ``.grad`` (which must exist).

        In closed form (:func:`regexp.core.penalties.add_penalty_grad_`), each term on its
        slice of models only, so no work is spent on models whose coefficient is zero.
        """
        for w in self.weights:
            grad = w.grad
            for t in terms:
                add_penalty_grad_(w[t.start : t.end], grad[t.start : t.end], **t.kwargs)

    @torch.no_grad()
    def prox_(self, lr: Tensor, terms: Sequence[Term]) -> None:
        """In place ``W ← prox_{lr·penalty}(W)`` per model (:func:`regexp.core.penalties.prox_`)."""
        for w in self.weights:
            for t in terms:
                penalties.prox_(w[t.start : t.end], lr[t.start : t.end], **t.kwargs)

    @torch.no_grad()
    def prox_metric_(self, lr: Tensor, term: Term, metric: Callable[[int], Tensor | None]) -> None:
        """In place prox per model in the metric ``metric(i)`` ``[N, out, in]`` of
        ``weights[i]`` (``None``: identity), via :func:`regexp.core.metric_prox.prox_metric_`
        with every coefficient of ``term`` (a :func:`metric_term`) in one call."""
        s = slice(term.start, term.end)
        for i, w in enumerate(self.weights):
            d = metric(i)
            prox_metric_(w[s], lr[s], None if d is None else d[s], **term.kwargs)

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


@dataclass(frozen=True)
class Term:
    """One penalty term over the models ``start:end`` of a stack, with their coefficients."""

    start: int
    end: int
    kwargs: dict  # for penalties.penalty / prox_: {term: Tensor [end − start], "p": p}


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
    """Per term (in prox order) and norm ``p``: the models that carry it, as one range.

    Model ``n`` contributes its coefficient where ``active[n]``; the range spans the first
    to the last such model (models inside it without the term get a zero coefficient).
    """
    out = []
    for term in TERM_ORDER:
        for p in sorted({c.p for c in coefs}) if term == "norm" else [2.0]:
            vals = [
                getattr(c, term) if a and (term != "norm" or c.p == p) else 0.0
                for c, a in zip(coefs, active, strict=True)
            ]
            nz = [n for n, v in enumerate(vals) if v != 0]
            if nz:
                a, b = nz[0], nz[-1] + 1
                kw = {term: torch.tensor(vals[a:b], dtype=torch.float32), "p": p}
                out.append(Term(a, b, kw))
    return out


def metric_term(coefs: Sequence[Coefficients], active: Sequence[bool]) -> Term | None:
    """Every coefficient of the models where ``active``, as one term for
    :meth:`StackedMLP.prox_metric_` (``None`` if there is none).

    Unlike :func:`terms`, not one term per call: in a non-uniform metric the prox of a sum
    is not the composition of single-term proxes once l2 is among them (l2 changes the
    metric of the others). The p = 1 norm joins l1; the p = 2 norm is ``norm``.
    Coefficients are float64 ``[end − start]`` (zero for the models in between).
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
        if any(vals):
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
