"""N MLPs of one architecture as one stacked model: weights ``[N, out, in]``, biases ``[N, out]``.

Model ``n`` of the stack computes exactly what ``regexp.models.mlp`` computes, with its own
weights, its own dropout masks and its own regularizer coefficients; nothing couples two
models (every reduction is per model), so the gradient of the summed per-model losses with
respect to model ``n``'s weights is model ``n``'s own gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from regexp import regularizers
from regexp.models import ACTIVATIONS
from regexp.regularizers import Coefficients

TERMS = ("l1", "l2", "group", "norm")


class StackedMLP:
    """The parameters of N ``nn.Sequential`` MLPs stacked along a new leading dim.

    Parameters
    ----------
    models : sequence of nn.Sequential
        Built by ``regexp.models.mlp`` with the same sizes and activation; their current
        weights become the stack's initial weights (copied, the models are not touched).
    activation : str
        The hidden activation's name (a key of ``regexp.models.ACTIVATIONS``).
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

        ``x`` may also be ``[B, in]``, shared by all models. Hidden layer ``l`` computes
        ``h ← act(b[n] + h @ W[n]ᵀ)`` per model (``torch.baddbmm``) and, in training,
        ``h ← h · masks[l]`` (dropout noise already divided by ``1 − p``; ``None``: no
        dropout). The output layer computes ``b[n] + W[n] @ hᵀ`` so that the class dim comes
        second, the layout in which ``cross_entropy`` over the classes is fast.
        """
        h = x if x.dim() == 3 else x.expand(self.n, *x.shape)
        for i, (w, b) in enumerate(zip(self.weights[:-1], self.biases[:-1], strict=True)):
            h = self.act(torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)))
            if i < len(masks) and masks[i] is not None:
                h = h * masks[i]
        return torch.baddbmm(self.biases[-1].unsqueeze(2), self.weights[-1], h.transpose(1, 2))

    def penalty(self, coefs: Sequence[dict]) -> Tensor:
        """Per-model penalty ``Σ_layers Σ_sets regularizers.penalty(W, **set)``, shape ``[N]``.

        ``coefs`` is a list of keyword sets for :func:`regexp.regularizers.penalty` with
        per-model coefficient tensors (one set per distinct ``p`` of the norm penalty).
        """
        total = self.weights[0].new_zeros(self.n)
        for w in self.weights:
            for kw in coefs:
                total = total + regularizers.penalty(w, **kw)
        return total

    @torch.no_grad()
    def prox_(self, lr: Tensor, coefs: Sequence[dict]) -> None:
        """In place ``W ← prox_{lr·penalty}(W)`` per model, via :func:`regularizers.prox_`."""
        for w in self.weights:
            for kw in coefs:
                regularizers.prox_(w, lr, **kw)

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


def coefficient_sets(coefs: Sequence[Coefficients], active: Sequence[bool]) -> list[dict]:
    """Keyword sets for :func:`regularizers.penalty` / ``prox_`` with per-model tensors.

    Model ``n`` gets its own coefficients where ``active[n]``, else zeros. Models are split
    by the norm's ``p`` (a scalar of those functions); a term that is zero for every model
    is passed as python ``0.0`` so that it is skipped. An all-zero stack gives ``[]``.
    """
    sets = []
    for p in sorted({c.p for c in coefs}):
        kw: dict = {"p": p}
        for term in TERMS:
            vals = [
                getattr(c, term) if a and c.p == p else 0.0
                for c, a in zip(coefs, active, strict=True)
            ]
            kw[term] = torch.tensor(vals, dtype=torch.float64) if any(vals) else 0.0
        if any(isinstance(kw[t], Tensor) for t in TERMS):
            sets.append(kw)
    return sets


def per_model_loss(out: Tensor, y: Tensor, task: str) -> Tensor:
    """Mean cross-entropy or mean squared error of each model, shape ``[N]``.

    ``out`` is ``[N, C, B]`` (as :meth:`StackedMLP.forward` returns it) and ``y`` ``[N, B]``
    (or ``[B]``, shared). Row ``n`` equals ``regexp.train.data_loss(out[n].T, y[n], task)``.
    """
    n, _, b = out.shape
    y = y if y.dim() == 2 else y.expand(n, b)
    if task == "classification":
        return F.cross_entropy(out, y, reduction="none").mean(1)
    return F.mse_loss(out.squeeze(1), y, reduction="none").mean(1)


@torch.no_grad()
def evaluate(stack: StackedMLP, x: Tensor, y: Tensor, task: str) -> dict[str, Tensor]:
    """Per-model ``loss`` and ``accuracy`` (or ``r2``) on ``(x, y)``, each ``[N]``.

    Same definitions as ``regexp.train.evaluate``: accuracy is the fraction of
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
