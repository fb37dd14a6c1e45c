"""Regularizers for any ``torch.nn.Module``: small value objects that hold λ and options.

Each class maps λ to the :class:`Coefficients` of the pure formulas in
:mod:`regexp.core.penalties` (re-exported here), which both ``reg(model)`` and
``reg.prox_(model, lr)`` use. By default a regularizer covers the weight of every
``nn.Linear`` (no biases, no norm layers); ``params=`` names other parameters.

Example
-------
>>> loss = data_loss + L1(1e-3)(model)  # subgradient training
>>> L1(1e-3).prox_(model, lr)  # or a proximal step after optimizer.step()
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from regexp.core.checks import check_real
from regexp.core.metric_prox import prox_metric_
from regexp.core.penalties import (
    Coef,
    group_lasso_penalty,
    group_norms,
    l1_penalty,
    l2_penalty,
    norm_penalty,
    penalty,
    prox_,
)

__all__ = [
    "L1",
    "L2",
    "REGULARIZERS",
    "Coefficients",
    "ElasticNet",
    "GroupLasso",
    "NoRegularizer",
    "Norm",
    "Regularizer",
    "SparseGroupLasso",
    "WeightDecay",
    "group_lasso_penalty",
    "group_norms",
    "l1_penalty",
    "l2_penalty",
    "make_regularizer",
    "norm_penalty",
    "penalty",
    "prox_",
    "selected_parameters",
]


def selected_parameters(
    model: nn.Module, params: Sequence[str] | None = None
) -> list[tuple[str, nn.Parameter]]:
    """Parameters to regularize, in ``model.named_parameters()`` order.

    Default: the ``.weight`` of every ``nn.Linear`` (no biases, no norm layers). Otherwise
    every parameter whose name matches one of the names or fnmatch patterns in ``params``.

    Raises
    ------
    ValueError
        If a pattern matches no parameter.
    """
    named = list(model.named_parameters())
    if params is None:
        linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
        return [(n, q) for n, q in named if id(q) in linear]
    if isinstance(params, str):
        params = [params]
    names = [n for n, _ in named]
    for pattern in params:
        if not fnmatch.filter(names, pattern):
            raise ValueError(
                f"params pattern {pattern!r} matches no parameter; available: {', '.join(names)}"
            )
    return [(n, q) for n, q in named if any(fnmatch.fnmatchcase(n, pt) for pt in params)]


@dataclass(frozen=True)
class Coefficients:
    """Keyword arguments of :func:`penalty` and :func:`prox_`: ``penalty(w, **asdict(c))``."""

    l1: float = 0.0
    l2: float = 0.0
    group: float = 0.0
    norm: float = 0.0
    p: float = 2.0

    @property
    def is_zero(self) -> bool:
        return self.l1 == self.l2 == self.group == self.norm == 0


class Regularizer:
    """Base: ``R(model) = Σ_{selected W} penalty(W, **coefficients())``.

    Parameters
    ----------
    strength : float
        λ >= 0.
    params : sequence of str, optional
        Names or fnmatch patterns of ``model.named_parameters()`` to regularize instead of
        the default (the weight of every ``nn.Linear``). Non-2-D parameters are flattened
        for the entrywise terms; the group term needs 2-D weights.
    """

    name: ClassVar[str] = ""

    def __init__(self, strength: float, *, params: Sequence[str] | None = None) -> None:
        self.strength = check_real("strength", strength, 0.0)
        self.params = (
            None if params is None else tuple([params] if isinstance(params, str) else params)
        )

    def coefficients(self) -> Coefficients:
        raise NotImplementedError

    def _matrices(self, model: nn.Module, c: Coefficients) -> list[tuple[nn.Parameter, Tensor]]:
        out = []
        for name, q in selected_parameters(model, self.params):
            if q.dim() != 2 and c.group != 0:
                raise ValueError(
                    f"{type(self).__name__} needs 2-D weights, parameter {name!r} has shape "
                    f"{tuple(q.shape)}"
                )
            out.append((q, q if q.dim() == 2 else q.reshape(1, -1)))
        return out

    def __call__(self, model: nn.Module) -> Tensor:
        """The penalty as a differentiable scalar tensor (0. when all coefficients are 0)."""
        c = self.coefficients()
        matrices = self._matrices(model, c)  # validates params even when λ = 0
        total = next(iter(model.parameters()), torch.zeros(())).new_zeros(())
        if c.is_zero:
            return total
        for _, w in matrices:
            total = total + penalty(w, **asdict(c))  # out of place: never alias a loss
        return total

    @torch.no_grad()
    def prox_(self, model: nn.Module, lr: Coef) -> None:
        """In place proximal step ``W ← prox_{lr·penalty}(W)`` on every selected parameter."""
        c = self.coefficients()
        matrices = self._matrices(model, c)
        if c.is_zero:
            return
        for q, w in matrices:
            if q.dim() == 2 or q.is_contiguous():  # w is q or a view of it
                prox_(w, lr, **asdict(c))
            else:
                q.copy_(prox_(w.clone(), lr, **asdict(c)).view_as(q))

    @torch.no_grad()
    def prox_metric_(
        self, model: nn.Module, lr: Coef, metric: Callable[[nn.Parameter], Tensor | None]
    ) -> None:
        """Like :meth:`prox_`, in the diagonal metric ``D = metric(q)`` of each selected ``q``.

        ``metric`` is e.g. ``functools.partial(regexp.core.metric_prox.optimizer_metric, opt)``
        (Adam's ``√v̂ + ε``); ``None`` from it is the identity metric (:meth:`prox_`'s step).
        See :func:`regexp.core.metric_prox.prox_metric_`.
        """
        c = self.coefficients()
        matrices = self._matrices(model, c)
        if c.is_zero:
            return
        for q, w in matrices:
            d = metric(q)
            d = None if d is None else d.reshape(w.shape)
            if q.dim() == 2 or q.is_contiguous():
                prox_metric_(w, lr, d, **asdict(c))
            else:
                q.copy_(prox_metric_(w.clone(), lr, d, **asdict(c)).view_as(q))

    def _options(self) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments: ``type(self)(**self.get_config())`` rebuilds ``self``."""
        params = None if self.params is None else list(self.params)
        return {"strength": self.strength, **self._options(), "params": params}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({args})"


class NoRegularizer(Regularizer):
    """No penalty: ``R = 0`` (a scalar tensor), prox is the identity."""

    name = "none"

    def __init__(self, strength: float = 0.0, *, params: Sequence[str] | None = None) -> None:
        super().__init__(strength, params=params)

    def coefficients(self) -> Coefficients:
        return Coefficients()


class WeightDecay(Regularizer):
    """The optimizer's own decay: ``R = 0``, prox no-op, :attr:`weight_decay` ``= λ``.

    The trainer passes ``weight_decay`` to the torch optimizer. For SGD and Adam it is
    coupled (``grad += λ·w``), gradient-wise the same as ``L2(λ/2)``; for AdamW it is
    decoupled (``w ← w − lr·λ·w`` outside the adaptive scaling).
    """

    name = "weight_decay"

    def coefficients(self) -> Coefficients:
        return Coefficients()

    @property
    def weight_decay(self) -> float:
        return self.strength


class L1(Regularizer):
    """``R = λ·Σ_W Σ|w|``."""

    name = "l1"

    def coefficients(self) -> Coefficients:
        return Coefficients(l1=self.strength)


class L2(Regularizer):
    """``R = λ·Σ_W Σw²`` (no ½): ``SGD(weight_decay=wd)`` ≡ ``L2(wd / 2)``."""

    name = "l2"

    def coefficients(self) -> Coefficients:
        return Coefficients(l2=self.strength)


class ElasticNet(Regularizer):
    """``R = λ·Σ_W [ρ·Σ|w| + (1 − ρ)/2·Σw²]`` with ``ρ = l1_ratio`` (scikit-learn's form)."""

    name = "elastic_net"

    def __init__(
        self, strength: float, l1_ratio: float = 0.5, *, params: Sequence[str] | None = None
    ) -> None:
        super().__init__(strength, params=params)
        self.l1_ratio = check_real("l1_ratio", l1_ratio, 0.0, 1.0)

    def coefficients(self) -> Coefficients:
        rho = self.l1_ratio
        return Coefficients(l1=self.strength * rho, l2=self.strength * (1 - rho) / 2)

    def _options(self) -> dict[str, Any]:
        return {"l1_ratio": self.l1_ratio}


class GroupLasso(Regularizer):
    """``R = λ·Σ_W √out·Σ_j ‖W[:, j]‖₂``: one group per input unit (its outgoing weights)."""

    name = "group_lasso"

    def coefficients(self) -> Coefficients:
        return Coefficients(group=self.strength)


class SparseGroupLasso(Regularizer):
    """``R = λ·Σ_W [√out·Σ_j ‖W[:, j]‖₂ + Σ|w|]`` = ``GroupLasso(λ) + L1(λ)``."""

    name = "sgl"

    def coefficients(self) -> Coefficients:
        return Coefficients(l1=self.strength, group=self.strength)


class Norm(Regularizer):
    """``R = λ·Σ_W ‖W‖_p``, the entrywise p-norm, unsquared; ``prox_`` needs p = 1 or 2."""

    name = "norm"

    def __init__(
        self, strength: float, p: float = 2.0, *, params: Sequence[str] | None = None
    ) -> None:
        super().__init__(strength, params=params)
        self.p = check_real("p", p, 1.0)

    def coefficients(self) -> Coefficients:
        return Coefficients(norm=self.strength, p=self.p)

    def _options(self) -> dict[str, Any]:
        return {"p": self.p}


REGULARIZERS: dict[str, type[Regularizer]] = {
    cls.name: cls
    for cls in (NoRegularizer, L1, L2, ElasticNet, GroupLasso, SparseGroupLasso, Norm, WeightDecay)
}


def make_regularizer(name: str, strength: float = 0.0, **kwargs: Any) -> Regularizer:
    """Build a regularizer by registry name, e.g. ``make_regularizer("l1", 1e-3)``."""
    if name not in REGULARIZERS:
        raise ValueError(
            f"unknown regularizer {name!r}; choose one of: {', '.join(sorted(REGULARIZERS))}"
        )
    return REGULARIZERS[name](strength, **kwargs)
