"""The autograd engine: one model of any kind, ``torch.optim``, autograd. The reference.

:class:`AutogradStep` is the :class:`regexp.train.step.Step` of a single ``nn.Module``
(N = 1): the loss through the module's own ``forward``, ``loss.backward()``, the
``torch.optim`` optimizer's ``step()`` and the regularizer's own proximal step. It trains
any model and any optimizer, and every other engine is tested against it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from regexp.core.metric_prox import optimizer_metric
from regexp.core.metrics import data_loss
from regexp.core.regularizers import Regularizer
from regexp.data.prepare import Dataset
from regexp.train.evaluate import evaluate


class AutogradStep:
    """One step of ``model`` on ``data`` by autograd (the :class:`~regexp.train.step.Step`
    contract with N = 1).

    ``mode="penalty"``: minimize ``data_loss + reg(model)``; ``"proximal"``: the optimizer
    step on ``data_loss``, then ``reg.prox_(model, lr)`` (``prox_metric="identity"``) or
    ``reg.prox_metric_(model, lr, D)`` in the optimizer's metric (``"adaptive"``, with
    :func:`regexp.core.metric_prox.optimizer_metric`), ``lr`` the first parameter group's.
    ``project`` (optional) is called after every update: the projection of a constraint
    (the proximal step of its indicator), e.g. keeping pruned weights at zero.
    """

    n_models = 1

    def __init__(
        self,
        model: nn.Module,
        data: Dataset,
        reg: Regularizer,
        mode: str,
        optimizer: torch.optim.Optimizer,
        prox_metric: str = "identity",
        project: Callable[[], None] | None = None,
    ) -> None:
        self.model, self.data, self.reg, self.mode = model, data, reg, mode
        self.optimizer, self.prox_metric, self.project = optimizer, prox_metric, project
        self.lr = optimizer.param_groups[0]["lr"]
        self.metric = "accuracy" if data.task == "classification" else "r2"
        self.slots: dict[str, dict] = {}
        model.train()

    def step(self, idx: Tensor) -> Tensor:
        rows = idx[0]
        loss = data_loss(
            self.model(self.data.x_train[rows]), self.data.y_train[rows], self.data.task
        )
        value = loss.detach()
        if self.mode == "penalty":
            loss = loss + self.reg(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.mode == "proximal" and self.prox_metric == "adaptive":
            self.reg.prox_metric_(
                self.model, self.lr, lambda q: optimizer_metric(self.optimizer, q)
            )
        elif self.mode == "proximal":
            self.reg.prox_(self.model, self.lr)
        if self.project is not None:
            with torch.no_grad():
                self.project()
        return value.reshape(1)

    @torch.no_grad()
    def penalty(self) -> Tensor:
        return self.reg(self.model).reshape(1)

    def scores(self, split: str) -> dict[str, Tensor]:
        s = evaluate(self.model, self.data, split)
        return {k: torch.tensor([s[k]], dtype=torch.float64) for k in ("loss", self.metric)}

    def keep(self, slot: str, which: Tensor) -> None:
        if bool(which[0]):
            self.slots[slot] = copy.deepcopy(self.model.state_dict())

    def restore(self, slot: str, which: Tensor) -> None:
        if bool(which[0]):
            self.model.load_state_dict(self.slots[slot])

    def finish(self) -> None:
        pass
