"""Adam, AdamW and SGD over stacked parameters with a learning rate and decay per model.

Each step is, element for element, the step of ``torch.optim`` (single-tensor CPU path) on
one model with that model's ``lr`` and ``weight_decay``; the per-model scalars become
``[N, 1, ...]`` tensors that broadcast over a parameter's trailing dims.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from regexp.core.metric_prox import adam_metric
from regexp.core.no_grad import no_grad

NAMES = ("adam", "adamw", "sgd")


class StackedOptimizer:
    """One optimizer for the parameters of a :class:`regexp.train.stacked.model.StackedMLP`.

    Parameters
    ----------
    params, grads : sequence of Tensor
        Parameters whose first dim indexes the N models, and their gradients (same
        shapes), which the caller writes before each :meth:`step`.
    decay : sequence of bool
        Whether each parameter takes weight decay (``nn.Linear`` weights yes, biases no).
    cfg : mapping
        Config group ``optimizer``: ``name`` (adam | adamw | sgd), ``betas``, ``eps``
        (Adam, AdamW) or ``momentum`` (SGD). Its ``lr`` is ignored: see ``lr``.
    lr, weight_decay : Tensor
        Per-model learning rates and weight decays, float64 ``[N]``.

    Notes
    -----
    With ``g`` the gradient, ``t`` the step, ``lr``/``wd`` the model's own values:

    - SGD: ``g ← g + wd·w`` (decayed params); momentum ``μ``: ``b ← g`` at the first step,
      then ``b ← μ·b + g``, ``g ← b``; then ``w ← w − lr·g``.
    - Adam: ``g ← g + wd·w``; AdamW instead ``w ← w·(1 − lr·wd)`` first. Then
      ``m ← m + (1−β₁)(g − m)``, ``v ← β₂·v + (1−β₂)·g²``,
      ``w ← w − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)``: torch's own fused kernel, the one
      ``torch.optim.Adam(fused=True)`` runs (:func:`fused_adam_`), called once per run of
      consecutive models that share ``(lr, wd)``, on views of the stacked tensors.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        grads: Sequence[Tensor],
        decay: Sequence[bool],
        cfg: Mapping,
        lr: Tensor,
        weight_decay: Tensor,
    ) -> None:
        if cfg["name"] not in NAMES:
            raise ValueError(
                f"optimizer.name must be one of {', '.join(NAMES)}, got {cfg['name']!r}"
            )
        self.name = cfg["name"]
        self.params = list(params)
        self.grads = list(grads)
        self.decay = list(decay)
        self.lr = lr.to(torch.float64)
        self.wd = weight_decay.to(torch.float64)
        self.use_wd = bool((self.wd != 0).any())
        self.t = 0
        if self.name == "sgd":
            self.momentum = float(cfg.get("momentum", 0.0))
            self.buf: list[Tensor | None] = [None] * len(self.params)
        else:
            self.beta1, self.beta2 = (float(b) for b in cfg["betas"])
            self.eps = float(cfg["eps"])
            self._adam_runs()

    def _adam_runs(self) -> None:
        """Runs ``(lr, wd, start, end)`` of consecutive models sharing ``(lr, wd)``, per param.

        Each run is one call of torch's fused Adam on ``[start:end]`` views (usually one run
        covers the whole stack).
        """
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        lr, wd = self.lr.tolist(), self.wd.tolist()
        self.runs: dict[tuple[float, float], list[tuple[int, int, int]]] = {}
        for i in range(len(self.params)):
            start = 0
            for end in range(1, len(lr) + 1):
                if end < len(lr) and (lr[end], wd[end]) == (lr[start], wd[start]):
                    continue
                key = (lr[start], wd[start] if self.decay[i] else 0.0)
                self.runs.setdefault(key, []).append((i, start, end))
                start = end
        # Per (lr, wd): the argument lists of one fused call, views made once (the
        # parameters, gradients and moments are only ever written in place), and the step
        # count t that all its tensors share.
        self.calls = {}
        for key, runs in self.runs.items():
            lists: tuple[list[Tensor], ...] = ([], [], [], [])
            for i, start, end in runs:
                for lst, t in zip(
                    lists, (self.params[i], self.grads[i], self.m[i], self.v[i]), strict=True
                ):
                    lst.append(t if end - start == len(t) else t[start:end])
            step = torch.zeros((), dtype=torch.float32, device=self.params[0].device)
            self.calls[key] = (*lists, step)

    @staticmethod
    def _per_model(values: Tensor, p: Tensor) -> Tensor:
        """float64 ``[N]`` → ``[N, 1, ...]`` in ``p``'s dtype and device."""
        return values.to(dtype=p.dtype, device=p.device).view(-1, *([1] * (p.dim() - 1)))

    @torch.no_grad()
    def metric(self, i: int) -> Tensor | None:
        """Adam's denominator ``√v/√(1−β₂ᵗ) + ε`` of parameter ``i`` after the last step
        (:func:`regexp.core.metric_prox.adam_metric`; every model has taken the same
        ``t`` steps); ``None`` for SGD.
        """
        if self.name == "sgd":
            return None
        return adam_metric(self.v[i], self.t, self.beta2, self.eps)

    @no_grad
    def step(self) -> None:
        self.t += 1
        if self.name == "sgd":
            self._sgd()
        else:
            self._adam()

    def _sgd(self) -> None:
        for i, (p, g, decays) in enumerate(zip(self.params, self.grads, self.decay, strict=True)):
            if decays and self.use_wd:
                g = torch.addcmul(g, p, self._per_model(self.wd, p))
            if self.momentum != 0:
                if self.buf[i] is None:
                    self.buf[i] = g.detach().clone()
                else:
                    self.buf[i].mul_(self.momentum).add_(g)
                g = self.buf[i]
            p.addcmul_(g, self._per_model(-self.lr, p))

    def _adam(self) -> None:
        for (lr, wd), (ps, gs, ms, vs, step) in self.calls.items():
            fused_adam_(
                ps,
                gs,
                ms,
                vs,
                step,
                adamw=self.name == "adamw",
                lr=lr,
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=wd,
                eps=self.eps,
            )


def fused_adam_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    step: Tensor,
    *,
    adamw: bool,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    eps: float,
) -> None:
    """One step of Adam (``adamw``: AdamW) in place, with torch's fused kernel: the step
    ``torch.optim.Adam(fused=True)`` takes, without its checks and regrouping. ``step`` is
    the step count ``t`` (a float32 scalar tensor) that every tensor shares; it is
    incremented first.

    The one private torch call of regexp: ``torch._fused_adam_`` and ``_fused_adamw_``, as
    ``torch.optim.adam._fused_adam`` calls them. The public functional
    ``torch.optim.adam.adam(fused=True)`` regroups the tensors by device and dtype on every
    call, about 25 µs, which is a tenth of a single run's step. pyproject.toml pins torch to
    the range the tests run against (``tests/test_engines.py`` compares this step with
    ``torch.optim.Adam``'s).
    """
    step.add_(1)
    kernel = torch._fused_adamw_ if adamw else torch._fused_adam_
    kernel(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        [step] * len(params),
        amsgrad=False,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        weight_decay=weight_decay,
        eps=eps,
        maximize=False,
        grad_scale=None,
        found_inf=None,
    )
