"""Weight penalties and their proximal operators.

Pure tensor functions take weights of layout ``[..., out, in]`` (leading dims = a stack of
models) and per-model coefficients that are python floats or tensors broadcastable to
``w.shape[:-2]``; every reduction is over the last two dims, so results have shape
``w.shape[:-2]``. A column ``W[..., :, j]`` holds all outgoing weights of input unit ``j``
and is one group (Scardapane et al. 2017). Classes only hold λ and options.

Example
-------
>>> loss = data_loss + L1(1e-3)(model)  # subgradient training
>>> L1(1e-3).prox_(model, lr)  # or a proximal step after optimizer.step()
"""

from __future__ import annotations

import fnmatch
import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

Coef = float | Tensor


def _is_zero(c: Coef) -> bool:
    return isinstance(c, numbers.Real) and c == 0


def _lift(c: Coef, w: Tensor, extra: int) -> Coef:
    """Give a tensor coefficient ``extra`` trailing singleton dims so it broadcasts."""
    if isinstance(c, Tensor):
        c = c.to(dtype=w.dtype, device=w.device)
        return c.reshape(c.shape + (1,) * extra)
    return c


def _safe_sqrt(sq: Tensor) -> Tensor:
    # exact value; gradient 0 (a valid subgradient) where sq == 0 instead of NaN
    pos = sq > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), 0.0)


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not math.isfinite(p) or p < 1:
        raise ValueError(f"p must be a finite number >= 1, got {p!r}")
    return float(p)


def l1_penalty(w: Tensor) -> Tensor:
    """``Σ_{o,i} |w[..., o, i]|``, shape ``w.shape[:-2]``."""
    return w.abs().sum(dim=(-2, -1))


def l2_penalty(w: Tensor) -> Tensor:
    """``Σ_{o,i} w[..., o, i]²`` (squared, no ½), shape ``w.shape[:-2]``."""
    return w.square().sum(dim=(-2, -1))


def group_norms(w: Tensor) -> Tensor:
    """Column norms ``‖W[..., :, j]‖₂ = sqrt(Σ_o w[..., o, j]²)``, shape ``[..., in]``.

    Exact value; the gradient at an all-zero column is 0 rather than NaN.
    """
    if w.dim() < 2:
        raise ValueError(f"group norms need weights of shape [..., out, in], got {tuple(w.shape)}")
    return _safe_sqrt(w.square().sum(dim=-2))


def group_lasso_penalty(w: Tensor) -> Tensor:
    """``√out · Σ_j ‖W[..., :, j]‖₂`` with ``out = w.shape[-2]``, shape ``w.shape[:-2]``."""
    return math.sqrt(w.shape[-2]) * group_norms(w).sum(dim=-1)


def norm_penalty(w: Tensor, p: float = 2.0) -> Tensor:
    """Entrywise, unsquared ``‖W‖_p = (Σ_{o,i} |w[..., o, i]|^p)^(1/p)``, shape ``w.shape[:-2]``.

    Equals ``torch.norm(W, p)``; the gradient at ``W = 0`` is 0 rather than NaN.
    """
    p = _check_p(p)
    if p == 1:
        return l1_penalty(w)
    s = w.abs().pow(p).sum(dim=(-2, -1))
    if p == 2:
        return _safe_sqrt(s)
    pos = s > 0
    return torch.where(pos, torch.where(pos, s, torch.ones_like(s)).pow(1 / p), 0.0)


def penalty(
    w: Tensor,
    *,
    l1: Coef = 0.0,
    l2: Coef = 0.0,
    group: Coef = 0.0,
    norm: Coef = 0.0,
    p: float = 2.0,
) -> Tensor:
    """``l1·Σ|w| + l2·Σw² + group·√out·Σ_j‖W[:, j]‖₂ + norm·‖W‖_p`` per model.

    Terms whose coefficient is a python 0 are skipped. Returns shape ``w.shape[:-2]``
    (broadcast with the coefficients' shapes).
    """
    terms = [
        (l1, l1_penalty),
        (l2, l2_penalty),
        (group, group_lasso_penalty),
        (norm, lambda x: norm_penalty(x, p)),
    ]
    total: Tensor = w.new_zeros(w.shape[:-2])
    for coef, fn in terms:
        if not _is_zero(coef):
            total = total + _lift(coef, w, 0) * fn(w)
    return total


@torch.no_grad()
def prox_(
    w: Tensor,
    lr: Coef,
    *,
    l1: Coef = 0.0,
    l2: Coef = 0.0,
    group: Coef = 0.0,
    norm: Coef = 0.0,
    p: float = 2.0,
) -> Tensor:
    """In place ``w ← prox_{lr·penalty}(w)``, the exact proximal operator; returns ``w``.

    With ``t = lr`` (per model):

    1. soft-threshold: ``w ← sign(w)·max(0, |w| − t·l1)`` (with ``p == 1`` the norm term
       is ``norm·Σ|w|`` and joins: threshold ``t·(l1 + norm)``);
    2. group shrink: ``W[:, j] ← W[:, j]·max(0, 1 − t·group·√out/‖W[:, j]‖₂)`` (0 if 0);
    3. if ``p == 2``: ``W ← W·max(0, 1 − t·norm/‖W‖_F)``;
    4. ridge: ``w ← w / (1 + 2·t·l2)``.

    Why this is exact: singletons ⊂ columns ⊂ whole matrix form a tree of groups, and the
    prox of a sum of norms over a tree of groups is the composition of the per-group proxes
    from leaves to root (Jenatton et al. 2011), so 1→2→3 is the prox of
    ``g = l1·Σ|w| + group·GL + norm·‖W‖_F``. For the ridge term,
    ``prox_{t(g + b‖·‖²)}(v) = prox_{t g/(1+2tb)}(v/(1+2tb))``, and ``g`` is positively
    homogeneous so ``prox_{s g}(v/c) = prox_{s c g}(v)/c``; with ``c = 1 + 2tb`` this is
    ``prox_{t g}(v)/(1 + 2tb)``, i.e. step 4 after the thresholds at the full ``t``.

    Raises
    ------
    ValueError
        If ``norm`` is nonzero and ``p`` is not 1 or 2.
    """
    if not _is_zero(norm) and p not in (1, 2):
        raise ValueError(f"prox_ of the norm penalty supports p=1 or p=2 only, got p={p!r}")
    if not _is_zero(norm) and p == 1:
        l1, norm = l1 + norm, 0.0
    if not _is_zero(l1):
        tau = _lift(lr * l1, w, 2)
        w.copy_(w.sign() * (w.abs() - tau).clamp_min(0))
    if not _is_zero(group):
        norms = group_norms(w)
        thr = _lift(lr * group, w, 1) * math.sqrt(w.shape[-2])
        w.mul_(_shrink(norms, thr).unsqueeze(-2))
    if not _is_zero(norm):
        fro = _safe_sqrt(w.square().sum(dim=(-2, -1)))
        w.mul_(_shrink(fro, _lift(lr * norm, w, 0)).unsqueeze(-1).unsqueeze(-1))
    if not _is_zero(l2):
        w.div_(1 + 2 * _lift(lr * l2, w, 2))
    return w


def _shrink(norms: Tensor, thr: Coef) -> Tensor:
    """Block soft-threshold factor ``max(0, 1 − thr/norms)``, 0 where ``norms == 0``."""
    pos = norms > 0
    safe = torch.where(pos, norms, torch.ones_like(norms))
    return torch.where(pos, (1 - thr / safe).clamp_min(0), 0.0)


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


def _check_real(name: str, value: Any, low: float, high: float | None = None) -> float:
    """Shared validation: a finite real in ``[low, high]`` (``high=None``: unbounded)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value >= low and (high is None or value <= high)
    if not ok:
        what = f"in [{low:g}, {high:g}]" if high is not None else f"a finite number >= {low:g}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return float(value)


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
        self.strength = _check_real("strength", strength, 0.0)
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
        self.l1_ratio = _check_real("l1_ratio", l1_ratio, 0.0, 1.0)

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
        self.p = _check_p(p)

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
