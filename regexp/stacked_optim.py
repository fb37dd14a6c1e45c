"""Adam, AdamW and SGD over stacked parameters with a learning rate and decay per model.

Each step is, element for element, the step of ``torch.optim`` (single-tensor CPU path) on
one model with that model's ``lr`` and ``weight_decay``; the per-model scalars become
``[N, 1, ...]`` tensors that broadcast over a parameter's trailing dims.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

NAMES = ("adam", "adamw", "sgd")


class StackedOptimizer:
    """One optimizer for the parameters of a :class:`regexp.stacked.StackedMLP`.

    Parameters
    ----------
    params : sequence of Tensor
        Leaf tensors whose first dim indexes the N models.
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
      ``w ← w − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)``.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
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
            self.m = [torch.zeros_like(p) for p in self.params]
            self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @staticmethod
    def _per_model(values: Tensor, p: Tensor) -> Tensor:
        """float64 ``[N]`` → ``[N, 1, ...]`` in ``p``'s dtype and device."""
        return values.to(dtype=p.dtype, device=p.device).view(-1, *([1] * (p.dim() - 1)))

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        if self.name == "sgd":
            self._sgd()
        else:
            self._adam()

    def _sgd(self) -> None:
        for i, (p, decays) in enumerate(zip(self.params, self.decay, strict=True)):
            g = p.grad
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
        b1, b2, t = self.beta1, self.beta2, self.t
        step_size = self.lr / (1 - b1**t)
        bc2_sqrt = (1 - b2**t) ** 0.5
        for p, m, v, decays in zip(self.params, self.m, self.v, self.decay, strict=True):
            g = p.grad
            if decays and self.use_wd:
                if self.name == "adamw":
                    p.mul_(self._per_model(1 - self.lr * self.wd, p))
                else:
                    g = torch.addcmul(g, p, self._per_model(self.wd, p))
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.addcdiv_(m * self._per_model(-step_size, p), denom)
