"""Proximal steps in the optimizer's own diagonal metric (adaptive proximal Adam).

After an Adam step ``z``, the plain step ``w ← prox_{lr·R}(z)`` of
:func:`regexp.core.penalties.prox_` is the proximal step of gradient descent: Adam moved
each weight by ``lr·m̂/D`` but the prox shrinks it by ``lr·λ``, which is tiny next to
``lr·m̂/D`` when ``D`` is small. The consistent step solves the prox in Adam's metric
``D = diag(√v̂ + ε)``::

    w⁺ = argmin_x  (1/(2·lr))·(x − z)ᵀ D (x − z) + R(x)

:func:`prox_metric_` solves it exactly for the penalties of :mod:`regexp.core.penalties`
(weights ``[..., out, in]``, per-model coefficients as there); :func:`adam_metric` and
:func:`optimizer_metric` give ``D`` from Adam's state.

The operators, with ``t = lr`` and ``d`` the diagonal of ``D`` (per weight):

- l2 (``b·Σx²``) folds into the metric: ``½Σd(x−z)²/t + bΣx² = ½Σd'(x−z')²/t + const``
  with ``d' = d + 2tb`` and ``z' = d·z/d'``; every other term is then solved in ``(d', z')``.
- l1 (``a·Σ|x|``): separable, ``x = sign(z')·max(0, |z'| − t·a/d')``. With only l1 and l2
  this is ``soft(z, t·a/d)/(1 + 2tb/d)`` (the elastic net, exactly).
- group (``c = group·√out`` per column ``g``): ``x_g = 0`` iff ``‖D_g z_g‖₂ ≤ t·c``; else
  ``xᵢ = zᵢ·dᵢρ/(dᵢρ + t·c)`` with ``ρ = ‖x_g‖ > 0`` the root of
  ``Σᵢ zᵢ²/(ρ + t·c/dᵢ)² = 1``. (KKT: ``D(x−z)/t + c·x/‖x‖ = 0`` gives
  ``x = Dz/(D + t·c/ρ)``, and ``‖x‖ = ρ`` is the equation.) The root is found by
  safeguarded Newton in float64, vectorized over all columns and models (see
  :func:`_group_shrink`).
- norm, p = 2 (``n·‖W‖_F``): the group step with one group, the whole matrix, and ``c = n``;
  p = 1 is ``n·Σ|w|`` and joins l1. Other p raise.

Why l1 then group (SGL) is exact in a diagonal metric: let ``u`` be the l1 step,
``D(u−z)/t + a·s = 0`` with ``s ∈ ∂‖u‖₁``, and ``x`` the group step from ``u``,
``D(x−u)/t + c·g = 0`` with ``g ∈ ∂‖x‖₂``. The group step multiplies each coordinate by a
factor ``dᵢρ/(dᵢρ + t·c) ∈ [0, 1)`` (0 for a dropped column), so ``xᵢ`` has the sign of
``uᵢ`` or is 0, hence ``s ∈ ∂‖x‖₁`` too. Adding the two conditions,
``0 = D(x−z)/t + a·s + c·g ∈ D(x−z)/t + ∂(a‖·‖₁ + c‖·‖₂)(x)``: ``x`` is the prox of the sum.
The same argument covers l1 then the p = 2 norm. It does *not* cover group then the p = 2
norm: the norm step scales coordinates by unequal factors, which changes the direction
``x_g/‖x_g‖`` of a column, so one model carrying both raises a ``ValueError``.

With ``d ≡ 1`` every operator is :func:`regexp.core.penalties.prox_` up to float rounding;
``d=None`` calls it (identity metric, exactly today's step).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from regexp.core.no_grad import no_grad
from regexp.core.penalties import Coef, is_zero, prox_, prox_undefined

__all__ = ["adam_metric", "optimizer_metric", "prox_metric_"]

ROOT_RTOL = 1e-12  # relative accuracy of the Newton root ρ (float64)
ROOT_MAX_ITER = 100
# Plain Newton steps taken before the one convergence check (a host sync) of the fast
# path of _group_shrink: from the bracket's left end the root is reached in 3 to 4.
ROOT_NEWTON_STEPS = 3
# Safeguarded iterations between two convergence checks, when the fast path did not converge.
ROOT_CHECK_EVERY = 4


def _coef64(c: Coef, extra: int, like: Tensor) -> Coef:
    """A coefficient in float64 with ``extra`` trailing singleton dims (floats stay floats)."""
    if isinstance(c, Tensor):
        c = c.to(dtype=torch.float64, device=like.device)
        return c.reshape(*c.shape, *(1,) * extra)
    return float(c)


@no_grad
def prox_metric_(
    w: Tensor,
    lr: Coef,
    d: Tensor | None,
    *,
    l1: Coef = 0.0,
    l2: Coef = 0.0,
    group: Coef = 0.0,
    norm: Coef = 0.0,
    p: float = 2.0,
) -> Tensor:
    """In place ``w ← argmin_x (1/(2·lr))·(x − w)ᵀ D (x − w) + penalty(x)``; returns ``w``.

    Parameters
    ----------
    w : Tensor
        Weights ``[..., out, in]`` (the leading dims are a stack of models).
    lr : float or Tensor
        Step size, a float or per model (broadcastable to ``w.shape[:-2]``).
    d : Tensor or None
        The metric's diagonal, positive, broadcastable to ``w``; ``None`` is the identity
        metric and calls :func:`regexp.core.penalties.prox_`.
    l1, l2, group, norm, p
        The coefficients of :func:`regexp.core.penalties.penalty` (python zeros are skipped).

    The solution is computed in float64 and written back in ``w``'s dtype. See the module
    docstring for the formulas and why the composition is exact.

    Raises
    ------
    ValueError
        If ``norm`` is nonzero and ``p`` is not 1 or 2; if one model has both a group and a
        p = 2 norm coefficient; if ``d`` is not positive and finite.
    """
    why = prox_undefined(norm, p)
    if why:
        raise ValueError(why)
    if d is None:
        return prox_(w, lr, l1=l1, l2=l2, group=group, norm=norm, p=p)
    if w.dim() < 2:
        raise ValueError(
            f"prox_metric_ needs weights of shape [..., out, in], got {tuple(w.shape)}"
        )
    if not is_zero(norm) and p == 1:
        l1, norm = l1 + norm, 0.0
    if not is_zero(group) and not is_zero(norm):
        both = torch.as_tensor(group != 0) & torch.as_tensor(norm != 0)
        if bool(both.any()):
            raise ValueError(
                "prox_metric_ does not support the group and the p=2 norm terms on one model: "
                "their composition is not exact in a non-uniform metric"
            )
    if all(is_zero(c) for c in (l1, l2, group, norm)):
        return w
    z = w.to(torch.float64)
    dd = torch.as_tensor(d).to(dtype=torch.float64, device=w.device).expand_as(z)
    if not bool(((dd > 0) & dd.isfinite()).all()):
        raise ValueError("prox_metric_ needs a positive, finite metric d")
    t = _coef64(lr, 2, z)
    if not is_zero(l2):
        d2 = dd + 2 * t * _coef64(l2, 2, z)
        z = dd * z / d2
        dd = d2
    if not is_zero(l1):
        tau = t * _coef64(l1, 2, z) / dd
        z = z.sign() * (z.abs() - tau).clamp_min(0)
    if not is_zero(group):
        c = t * _coef64(group, 2, z) * math.sqrt(w.shape[-2])
        z = _group_shrink(z, dd, c)
    if not is_zero(norm):
        c = t * _coef64(norm, 2, z)
        flat = (*z.shape[:-2], -1, 1)
        z = _group_shrink(z.reshape(flat), dd.reshape(flat), c).view_as(z)
    w.copy_(z)
    return w


def _group_shrink(z: Tensor, d: Tensor, c: Coef) -> Tensor:
    """The weighted group prox of every column ``z[..., :, j]`` (float64, out of place).

    ``argmin_x ½·Σᵢ dᵢ(xᵢ − zᵢ)² + c·‖x‖₂`` per column, with ``c`` (here ``lr·coefficient``)
    a float or broadcastable to ``[..., 1, 1]``. The column is 0 iff ``‖d·z‖ ≤ c``; else
    ``x = z·ρ/(ρ + aᵢ)``, ``aᵢ = c/dᵢ``, ``ρ > 0`` the root of ``g(ρ) = 1`` with
    ``g(ρ) = (Σᵢ zᵢ²/(ρ + aᵢ)²)^(-1/2)``.

    ``g`` is ``1/‖z‖`` times the weighted power mean ``M₋₂`` (weights ``wᵢ = zᵢ²/‖z‖²``) of
    ``ρ + aᵢ``, so it is increasing and concave in ``ρ``, and by the power mean inequality
    ``M₋∞ ≤ M₋₂ ≤ M₁`` it lies between ``(ρ + min a)/‖z‖`` (over ``zᵢ ≠ 0``) and
    ``(ρ + ā)/‖z‖`` with ``ā = Σᵢ wᵢaᵢ``: the root is in ``[‖z‖ − ā, ‖z‖ − min a]``.
    Newton from the left end never overshoots a concave increasing function (each tangent
    lies above it), so it climbs monotonically to the root; with equal ``aᵢ`` (``d``
    uniform on the column) the left end is the root.

    Fast path, tried first: :data:`ROOT_NEWTON_STEPS` plain Newton steps from the left end
    (:func:`_newton_step`), then one more whose size is checked once for every column
    (``|Δρ| ≤ 1e-12·ρ``): a single host sync. Only if a column fails the check does the
    safeguarded loop go on from where the fast path stopped: each iterate also updates a
    bracket (from ``[‖z‖ − ā, ‖z‖ − min a]``), a Newton
    step that leaves it (rounding) is replaced by bisection, a column stops at
    ``|Δρ| ≤ 1e-12·ρ`` (or a bracket that narrow), and whether all have stopped is checked
    every :data:`ROOT_CHECK_EVERY` iterations, not after each (no host sync per iteration).
    """
    z2 = z.square()
    a = c / d
    keep = (d * z).square().sum(-2, keepdim=True) > c * c  # ‖d·z‖ > c: [..., 1, in]
    n2 = z2.sum(-2, keepdim=True)
    lo = (n2.sqrt() - (z2 * a).sum(-2, keepdim=True) / n2).clamp_min(0)  # ‖z‖ − ā
    rho = lo
    for _ in range(ROOT_NEWTON_STEPS):
        rho = rho + _newton_step(z2, a, rho)
    step = _newton_step(z2, a, rho)
    rho = rho + step
    if bool(((step.abs() <= ROOT_RTOL * rho) | ~keep).all()):
        return torch.where(keep, z * (rho / (rho + a)), 0.0)
    support = z2 > 0
    hi = (n2.sqrt() - torch.where(support, a, math.inf).amin(-2, keepdim=True)).clamp_min(0)
    active = keep.clone()
    for it in range(1, ROOT_MAX_ITER + 1):
        r = rho + a
        q = z2 / r.square()
        h = q.sum(-2, keepdim=True)
        g = h.rsqrt()
        dg = (q / r).sum(-2, keepdim=True) * g.pow(3)  # g' = h^(-3/2)·Σ zᵢ²/(ρ + aᵢ)³
        below = g < 1  # g(ρ) < 1: the root is right of ρ
        lo = torch.where(below, rho, lo)
        hi = torch.where(below, hi, rho)
        new = rho + (1 - g) / dg
        inside = (new >= lo) & (new <= hi)
        new = torch.where(inside, new, 0.5 * (lo + hi))
        done = ((new - rho).abs() <= ROOT_RTOL * new) | (hi - lo <= ROOT_RTOL * hi)
        rho = torch.where(active, new, rho)
        active &= ~done
        if it % ROOT_CHECK_EVERY == 0 and not bool(active.any()):
            break
    return torch.where(keep, z * (rho / (rho + a)), 0.0)


def _newton_step(z2: Tensor, a: Tensor, rho: Tensor) -> Tensor:
    """The Newton step ``Δρ = (1 − g)/g'`` for ``g(ρ) = 1`` per column (see
    :func:`_group_shrink`): with ``h = Σᵢ zᵢ²/(ρ + aᵢ)²`` and ``s = Σᵢ zᵢ²/(ρ + aᵢ)³``,
    ``g = h^(-1/2)``, ``g' = s·h^(-3/2)``, so ``Δρ = (1 − g)·h^(3/2)/s = h·(√h − 1)/s``.
    Columns without support give NaN (their result is never used)."""
    inv = (rho + a).reciprocal_()
    q = z2 * inv.square()
    h = q.sum(-2, keepdim=True)
    s = (q * inv).sum(-2, keepdim=True)
    return h * (h.sqrt() - 1) / s


def adam_metric(exp_avg_sq: Tensor, step: int | float | Tensor, beta2: float, eps: float) -> Tensor:
    """Adam's denominator ``D = √v / √(1 − β₂ᵗ) + ε``, as ``torch.optim.Adam`` divides by.

    ``step`` is ``t``: a number, or a tensor broadcastable to ``exp_avg_sq`` (e.g. the
    0-dim ``state["step"]`` of a torch optimizer, or ``[N, 1, 1]`` steps per model). The
    bias correction is computed in float64; ``D`` has ``exp_avg_sq``'s dtype.

    Raises
    ------
    ValueError
        If a step is < 1 (no optimizer step taken: the bias correction is 0).
    """
    if isinstance(step, Tensor):
        t = step.to(dtype=torch.float64, device=exp_avg_sq.device)
        if bool((t < 1).any()):
            raise ValueError("adam_metric needs step >= 1 (take an optimizer step first)")
        bc2 = (1 - torch.pow(float(beta2), t)).sqrt().to(exp_avg_sq.dtype)
        return exp_avg_sq.sqrt() / bc2 + eps
    if not isinstance(step, numbers.Real) or step < 1:
        raise ValueError(
            f"adam_metric needs step >= 1 (take an optimizer step first), got {step!r}"
        )
    return exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step) + eps


def optimizer_metric(optimizer: torch.optim.Optimizer, param: Tensor) -> Tensor | None:
    """The diagonal metric ``D`` of ``param`` under ``optimizer``'s last step.

    Adam and AdamW: :func:`adam_metric` of the parameter's state (``max_exp_avg_sq`` with
    ``amsgrad``), with its group's ``betas`` and ``eps``. SGD: ``None``, the identity metric.

    Raises
    ------
    ValueError
        For other optimizers, a parameter the optimizer does not hold, or one it has not
        stepped yet.
    """
    if isinstance(optimizer, torch.optim.SGD):
        return None
    if not isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        raise ValueError(
            f"the adaptive proximal metric needs Adam, AdamW or SGD, got {type(optimizer).__name__}"
        )
    group = next((g for g in optimizer.param_groups if any(q is param for q in g["params"])), None)
    if group is None:
        raise ValueError("the optimizer does not hold this parameter")
    state = optimizer.state.get(param)
    if not state:
        raise ValueError("the parameter has no optimizer state yet: take an optimizer step first")
    v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
    return adam_metric(v, state["step"], group["betas"][1], group["eps"])
