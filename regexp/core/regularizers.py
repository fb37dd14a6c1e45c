"""Regularizers for any ``torch.nn.Module``: small value objects that hold λ and options.

Each class holds its maths over grouped views (:class:`Regularizer`): value, gradient,
proximal step and metric proximal step, which ``reg(model)``, ``reg.prox_(model, lr)`` and
every engine use; the built-ins through the pure formulas of :mod:`regexp.core.penalties`
(re-exported here). A parameter's groups come from :mod:`regexp.core.groupings`: the
columns of a ``nn.Linear`` weight, the input channels of a conv weight. By default a
regularizer covers the weight of every ``nn.Linear`` and ``nn.ConvNd`` (no biases, no norm
layers); ``params=`` names other parameters.

Example
-------
>>> loss = data_loss + L1(1e-3)(model)  # subgradient training
>>> L1(1e-3).prox_(model, lr)  # or a proximal step after optimizer.step()
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from regexp.core.checks import check_real
from regexp.core.groupings import Grouping, apply_grouped_, model_groupings
from regexp.core.metric_prox import prox_metric_
from regexp.core.penalties import (
    Coef,
    add_penalty_grad_,
    group_lasso_penalty,
    group_norms,
    is_zero,
    l1_penalty,
    l2_penalty,
    norm_penalty,
    penalty,
    per_weight,
    prox_,
    prox_undefined,
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
    "option_names",
    "penalty",
    "per_weight",
    "prox_",
    "selected_groupings",
    "selected_parameters",
]

# Layers whose weight the default selection regularizes.
DEFAULT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def selected_parameters(
    model: nn.Module, params: Sequence[str] | None = None
) -> list[tuple[str, nn.Parameter]]:
    """Parameters to regularize, in ``model.named_parameters()`` order.

    Default: the ``.weight`` of every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (no biases, no
    norm layers). Otherwise every parameter whose name matches one of the names or fnmatch
    patterns in ``params``.

    Raises
    ------
    ValueError
        If a pattern matches no parameter.
    """
    named = list(model.named_parameters())
    if params is None:
        layers = {id(m.weight) for m in model.modules() if isinstance(m, DEFAULT_LAYERS)}
        return [(n, q) for n, q in named if id(q) in layers]
    if isinstance(params, str):
        params = [params]
    names = [n for n, _ in named]
    for pattern in params:
        if not fnmatch.filter(names, pattern):
            raise ValueError(
                f"params pattern {pattern!r} matches no parameter; available: {', '.join(names)}"
            )
    return [(n, q) for n, q in named if any(fnmatch.fnmatchcase(n, pt) for pt in params)]


def selected_groupings(
    model: nn.Module, params: Sequence[str] | None = None
) -> list[tuple[str, nn.Parameter, Grouping]]:
    """:func:`selected_parameters` with the grouping of each (:func:`model_groupings`)."""
    groupings = model_groupings(model)
    return [(name, q, groupings[id(q)]) for name, q in selected_parameters(model, params)]


@dataclass(frozen=True)
class Coefficients:
    """Keyword arguments of :func:`penalty` and :func:`prox_`: ``penalty(w, **asdict(c))``.

    The built-in regularizers' coefficients at their λ, for engines that take the penalty
    as these four terms. A new regularizer needs none of this (see :class:`Regularizer`).
    """

    l1: float = 0.0
    l2: float = 0.0
    group: float = 0.0
    norm: float = 0.0
    p: float = 2.0

    @property
    def is_zero(self) -> bool:
        return self.l1 == self.l2 == self.group == self.norm == 0


class Regularizer:
    """Base: ``R(model) = Σ_{selected W} λ·r(G(W))`` with ``G(W)`` the grouped view of ``W``.

    A regularizer is one class. Its maths is four methods over a grouped view
    ``g [..., size, n_groups]`` (:mod:`regexp.core.groupings`; the leading dims are a
    stack of models) with λ a float or per model (a tensor broadcastable to
    ``g.shape[:-2]``):

    - :meth:`value` ``λ·r(g)``, shape ``g.shape[:-2]``, differentiable;
    - :meth:`add_grad_` ``grad += λ·∂r(g)`` in place, in closed form;
    - :meth:`prox_step_` ``g ← prox_{lr·λ·r}(g)`` in place;
    - :meth:`metric_prox_step_` ``g ← argmin_x (1/(2·lr))·(x − g)ᵀD(x − g) + λ·r(x)`` in
      place, ``D = diag(d)``, ``d=None`` the identity (:meth:`prox_step_`).

    The built-in classes define them through :meth:`terms`, the keyword arguments of
    :func:`penalty`, :func:`add_penalty_grad_`, :func:`prox_` and
    :func:`regexp.core.metric_prox.prox_metric_`; a new one overrides the four methods
    (docs/regularizers.md shows one). Every engine calls these methods, or for the
    built-ins the same functions through :meth:`coefficients`. ``grouped = True`` marks a
    penalty that needs groups: it refuses parameters without a grouping (e.g. biases).

    Its names are class attributes, read from here by the config, the files and the
    figures: :attr:`name` (the registry key, ``regularizer=<name>`` and the
    ``regularizer`` column) and :attr:`options` (the constructor arguments besides λ and
    ``params`` that change what the regularizer is; each is an attribute of that name, a
    config key ``regularizer.<option>``, a short column of ``metrics.csv`` and part of a
    run's figure title).

    Parameters
    ----------
    strength : float
        λ >= 0.
    params : sequence of str, optional
        Names or fnmatch patterns of ``model.named_parameters()`` to regularize instead of
        the default (the weight of every ``nn.Linear`` and ``nn.ConvNd``). A parameter
        without a grouping (neither 2-D nor a conv weight) is one row of entries, for
        entrywise penalties only.
    """

    name: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()
    grouped: ClassVar[bool] = False

    def __init__(self, strength: float, *, params: Sequence[str] | None = None) -> None:
        self.strength = check_real("strength", strength, 0.0)
        self.params = (
            None if params is None else tuple([params] if isinstance(params, str) else params)
        )

    # -- the maths over grouped views ------------------------------------------------------

    def terms(self, lam: Coef) -> dict[str, Coef]:
        """Built-ins: the nonzero keyword arguments of :func:`penalty` at strength ``lam``
        (e.g. ``{"l1": lam}``); a python-0 ``lam`` gives ``{}``. A class that overrides
        the four maths methods need not define it."""
        raise NotImplementedError(
            f"{type(self).__name__} defines its own maths and has no built-in terms"
        )

    def value(self, g: Tensor, lam: Coef) -> Tensor:
        """``λ·r(g)`` per model, shape ``g.shape[:-2]`` (differentiable)."""
        return penalty(g, **self._terms(lam))

    def add_grad_(self, g: Tensor, grad: Tensor, lam: Coef) -> None:
        """``grad += λ·∂r(g)/∂g`` in place, the subgradient autograd gives for :meth:`value`."""
        add_penalty_grad_(g, grad, **self._terms(lam))

    def prox_step_(self, g: Tensor, lr: Coef, lam: Coef) -> None:
        """In place ``g ← prox_{lr·λ·r}(g)``."""
        prox_(g, lr, **self._terms(lam))

    def metric_prox_step_(self, g: Tensor, lr: Coef, d: Tensor | None, lam: Coef) -> None:
        """In place ``g ← argmin_x (1/(2·lr))·(x − g)ᵀ diag(d) (x − g) + λ·r(x)``."""
        prox_metric_(g, lr, d, **self._terms(lam))

    @classmethod
    def has_terms(cls) -> bool:
        """Whether the class defines :meth:`terms` (the built-ins do): engines that take
        the penalty as the :class:`Coefficients` terms can train it."""
        return cls.terms is not Regularizer.terms

    def proximal_error(self) -> str | None:
        """Why proximal mode is undefined for this regularizer (``None``: it is defined)."""
        return None

    def _terms(self, lam: Coef) -> dict[str, Coef]:
        return {} if is_zero(lam) else self.terms(lam)

    def coefficients(self) -> Coefficients:
        """The built-in terms at λ = :attr:`strength`, as :class:`Coefficients`.

        Raises
        ------
        NotImplementedError
            For a regularizer that defines its own maths (not the built-in terms).
        """
        return Coefficients(**self.terms(self.strength))

    def same_maths(self, other: Regularizer) -> bool:
        """Whether ``other`` has the same maths up to λ (same class and options), so that
        a stack of models can apply both with one call and per-model λ."""
        return type(self) is type(other) and self.option_values() == other.option_values()

    # -- on a model ------------------------------------------------------------------------

    def groupings(self, model: nn.Module) -> list[tuple[nn.Parameter, Grouping]]:
        """The selected parameters of ``model`` and their groupings.

        Raises
        ------
        ValueError
            If a pattern of ``params`` matches nothing, or a grouped penalty meets a
            parameter that has no grouping.
        """
        out = []
        for name, q, grouping in selected_groupings(model, self.params):
            if self.grouped and not grouping.grouped:
                raise ValueError(
                    f"{type(self).__name__} needs 2-D weights or conv weights (groups: "
                    f"columns or input channels), parameter {name!r} has shape "
                    f"{tuple(q.shape)}"
                )
            out.append((q, grouping))
        return out

    def __call__(self, model: nn.Module) -> Tensor:
        """The penalty as a differentiable scalar tensor (0. when λ = 0)."""
        selected = self.groupings(model)  # validates params even when λ = 0
        total = next(iter(model.parameters()), torch.zeros(())).new_zeros(())
        if self.strength == 0:
            return total
        for q, grouping in selected:
            # out of place: never alias a loss
            total = total + self.value(grouping.groups(q), self.strength)
        return total

    @torch.no_grad()
    def prox_(self, model: nn.Module, lr: Coef) -> None:
        """In place proximal step ``W ← prox_{lr·penalty}(W)`` on every selected parameter."""
        selected = self.groupings(model)
        if self.strength == 0:
            return
        for q, grouping in selected:
            apply_grouped_(q, grouping, lambda g: self.prox_step_(g, lr, self.strength))

    @torch.no_grad()
    def prox_metric_(
        self, model: nn.Module, lr: Coef, metric: Callable[[nn.Parameter], Tensor | None]
    ) -> None:
        """Like :meth:`prox_`, in the diagonal metric ``D = metric(q)`` of each selected ``q``.

        ``metric`` is e.g. ``functools.partial(regexp.core.metric_prox.optimizer_metric, opt)``
        (Adam's ``√v̂ + ε``); ``None`` from it is the identity metric (:meth:`prox_`'s step).
        See :func:`regexp.core.metric_prox.prox_metric_`.
        """
        selected = self.groupings(model)
        if self.strength == 0:
            return
        for q, grouping in selected:
            d = metric(q)
            gd = None if d is None else grouping.groups(d.expand_as(q))

            def step(g: Tensor, gd: Tensor | None = gd) -> None:
                self.metric_prox_step_(g, lr, gd, self.strength)

            apply_grouped_(q, grouping, step)

    def option_values(self) -> dict[str, Any]:
        """``{option: value}`` for each of :attr:`options`, e.g. ``{"l1_ratio": 0.5}``."""
        return {k: getattr(self, k) for k in self.options}

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments: ``type(self)(**self.get_config())`` rebuilds ``self``."""
        params = None if self.params is None else list(self.params)
        return {"strength": self.strength, **self.option_values(), "params": params}

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

    def terms(self, lam: Coef) -> dict[str, Coef]:
        return {}


class WeightDecay(Regularizer):
    """The optimizer's own decay: ``R = 0``, prox no-op, :attr:`weight_decay` ``= λ``.

    The trainer passes ``weight_decay`` to the torch optimizer. For SGD and Adam it is
    coupled (``grad += λ·w``), gradient-wise the same as ``L2(λ/2)``; for AdamW it is
    decoupled (``w ← w − lr·λ·w`` outside the adaptive scaling).
    """

    name = "weight_decay"

    def terms(self, lam: Coef) -> dict[str, Coef]:
        return {}

    @property
    def weight_decay(self) -> float:
        return self.strength

    def proximal_error(self) -> str | None:
        return "the optimizer's weight decay has no proximal step; use mode penalty"


class L1(Regularizer):
    """``R = λ·Σ_W Σ|w|``."""

    name = "l1"

    def terms(self, lam: Coef) -> dict[str, Coef]:
        return {"l1": lam}


class L2(Regularizer):
    """``R = λ·Σ_W Σw²`` (no ½): ``SGD(weight_decay=wd)`` ≡ ``L2(wd / 2)``."""

    name = "l2"

    def terms(self, lam: Coef) -> dict[str, Coef]:
        return {"l2": lam}


class ElasticNet(Regularizer):
    """``R = λ·Σ_W [ρ·Σ|w| + (1 − ρ)/2·Σw²]`` with ``ρ = l1_ratio`` (scikit-learn's form)."""

    name = "elastic_net"
    options = ("l1_ratio",)

    def __init__(
        self, strength: float, l1_ratio: float = 0.5, *, params: Sequence[str] | None = None
    ) -> None:
        super().__init__(strength, params=params)
        self.l1_ratio = check_real("l1_ratio", l1_ratio, 0.0, 1.0)

    def terms(self, lam: Coef) -> dict[str, Coef]:
        rho = self.l1_ratio
        return {"l1": lam * rho, "l2": lam * (1 - rho) / 2}


class GroupLasso(Regularizer):
    """``R = λ·Σ_W √size·Σ_j ‖G[:, j]‖₂`` over the groups ``j`` of each weight: the columns
    of a Linear weight (``size = out``, one group per input unit: its outgoing weights), the
    input channels of a conv weight (``size = out·Π kernel``)."""

    name = "group_lasso"
    grouped = True

    def terms(self, lam: Coef) -> dict[str, Coef]:
        return {"group": lam}


class SparseGroupLasso(Regularizer):
    """``R = λ·Σ_W [√size·Σ_j ‖G[:, j]‖₂ + Σ|w|]`` = ``GroupLasso(λ) + L1(λ)``."""

    name = "sgl"
    grouped = True

    def terms(self, lam: Coef) -> dict[str, Coef]:
        return {"l1": lam, "group": lam}


class Norm(Regularizer):
    """``R = λ·Σ_W ‖W‖_p``, the entrywise p-norm, unsquared; ``prox_`` needs p = 1 or 2."""

    name = "norm"
    options = ("p",)

    def __init__(
        self, strength: float, p: float = 2.0, *, params: Sequence[str] | None = None
    ) -> None:
        super().__init__(strength, params=params)
        self.p = check_real("p", p, 1.0)

    def terms(self, lam: Coef) -> dict[str, Coef]:
        return {"norm": lam, "p": self.p}

    def proximal_error(self) -> str | None:
        if prox_undefined(1.0, self.p) is None:  # the rule, in regexp.core.penalties
            return None
        return f"its proximal step has a closed form for p = 1 or 2 only, got p={self.p:g}"


REGULARIZERS: dict[str, type[Regularizer]] = {
    cls.name: cls
    for cls in (NoRegularizer, L1, L2, ElasticNet, GroupLasso, SparseGroupLasso, Norm, WeightDecay)
}


def option_names(name: str) -> tuple[str, ...]:
    """The :attr:`Regularizer.options` of registered regularizer ``name`` (``()`` for a
    name that is not registered): ``option_names("elastic_net") == ("l1_ratio",)``."""
    cls = REGULARIZERS.get(name)
    return cls.options if cls is not None else ()


def make_regularizer(name: str, strength: float = 0.0, **kwargs: Any) -> Regularizer:
    """Build a regularizer by registry name, e.g. ``make_regularizer("l1", 1e-3)``."""
    if name not in REGULARIZERS:
        raise ValueError(
            f"unknown regularizer {name!r}; choose one of: {', '.join(sorted(REGULARIZERS))}"
        )
    return REGULARIZERS[name](strength, **kwargs)
