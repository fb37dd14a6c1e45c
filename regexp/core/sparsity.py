"""Sparsity measures of MLP weights.

Pure functions take a list of weights ``[..., out, in]`` ordered input → output (leading
dims = a stack of models, reductions over the last two dims); the ``nn.Module`` wrappers
read the ``nn.Linear`` weights in registration order, assumed to be the forward order.
Layer ``i``'s input units are ``"input"`` (the features) for ``i = 0``, else ``"hidden{i}"``.
A unit is *dead* (removable) when all of its outgoing weights ``W[..., :, j]`` are exactly 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def linear_weights(model: nn.Module) -> list[Tensor]:
    """Weights of the ``nn.Linear`` modules of ``model`` in registration order."""
    return [m.weight for m in _linears(model)]


@torch.no_grad()
def threshold_(model: nn.Module, eps: float = 1e-3) -> int:
    """Set every Linear weight with ``|w| < eps`` to 0, in place (biases untouched).

    Returns
    -------
    int
        How many entries this call changed, i.e. were nonzero with ``|w| < eps``.
        Entries that were already 0 are not counted.
    """
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    changed = 0
    for w in linear_weights(model):
        small = w.abs() < eps
        changed += int((small & (w != 0)).sum())
        w.masked_fill_(small, 0.0)
    return changed


def dead_units(weights: Sequence[Tensor]) -> list[Tensor]:
    """Per layer, ``dead[..., j] = all_o (W[..., o, j] == 0)``: input unit ``j`` feeds nothing.

    Returns one bool tensor of shape ``[..., in]`` per layer: the input features, then
    hidden1, hidden2, ... (the last layer's outputs are never removable).
    """
    return [(w == 0).all(dim=-2) for w in weights]


def layer_names(n_layers: int) -> list[str]:
    """``["input", "hidden1", ..., "hidden{n_layers-1}"]``: the input units of each layer."""
    return ["input"] + [f"hidden{i}" for i in range(1, n_layers)]


@dataclass(frozen=True)
class LayerSparsity:
    """Removed (dead) input units of one layer: ``fraction = removed / units``."""

    layer: str
    units: int
    removed: int
    fraction: float


def layer_sparsity(weights: Sequence[Tensor]) -> list[LayerSparsity]:
    """:class:`LayerSparsity` of each layer's input units for one model (2-D weights).

    For a stack of models use ``[d.sum(-1) for d in dead_units(weights)]``.
    """
    if any(w.dim() != 2 for w in weights):
        raise ValueError("layer_sparsity needs 2-D weights; use dead_units for a stack")
    out = []
    for name, dead in zip(layer_names(len(weights)), dead_units(weights), strict=True):
        removed = int(dead.sum())
        out.append(LayerSparsity(name, dead.numel(), removed, removed / max(dead.numel(), 1)))
    return out


def neuron_sparsity(model: nn.Module) -> list[LayerSparsity]:
    """:func:`layer_sparsity` of the Linear weights of ``model``."""
    return layer_sparsity([w.detach() for w in linear_weights(model)])


def zero_fraction(weights: Sequence[Tensor]) -> Tensor:
    """``Σ_layers #(w == 0) / Σ_layers #w`` per model, shape ``[...]``."""
    zeros = sum((w == 0).sum(dim=(-2, -1)) for w in weights)
    total = sum(w.shape[-2] * w.shape[-1] for w in weights)
    return torch.as_tensor(zeros, dtype=torch.float64) / max(total, 1)


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries over all Linear weights (biases excluded)."""
    return float(zero_fraction([w.detach() for w in linear_weights(model)]))


def _bias_flags(has_bias: bool | Sequence[bool], n: int) -> list[bool]:
    flags = [has_bias] * n if isinstance(has_bias, bool) else list(has_bias)
    if len(flags) != n:
        raise ValueError(f"has_bias must have one flag per layer ({n}), got {len(flags)}")
    return flags


def total_params(weights: Sequence[Tensor], has_bias: bool | Sequence[bool] = True) -> int:
    """``Σ_i out_i·in_i + out_i·has_bias_i`` (the same for every model of a stack)."""
    flags = _bias_flags(has_bias, len(weights))
    return sum(w.shape[-2] * (w.shape[-1] + b) for w, b in zip(weights, flags, strict=True))


def kept_params(weights: Sequence[Tensor], has_bias: bool | Sequence[bool] = True) -> Tensor:
    """Parameters left after removing dead units, per model, shape ``[...]`` (int64).

    With ``a_i`` the alive input units of layer ``i`` (not :func:`dead_units`) and
    ``a_{L}`` all outputs of the last layer: ``kept = Σ_i |a_{i+1}|·|a_i| + |a_{i+1}|·b_i``
    where ``b_i = has_bias_i`` (a dead hidden unit also loses its incoming row and bias).
    """
    flags = _bias_flags(has_bias, len(weights))
    for i in range(len(weights) - 1):
        if weights[i].shape[-2] != weights[i + 1].shape[-1]:
            raise ValueError(
                f"layer {i} has {weights[i].shape[-2]} outputs but layer {i + 1} has "
                f"{weights[i + 1].shape[-1]} inputs"
            )
    alive = [(~d).sum(dim=-1) for d in dead_units(weights)]
    if weights:
        alive.append(torch.full_like(alive[-1], weights[-1].shape[-2]))
    kept = torch.zeros((), dtype=torch.int64)
    for i, b in enumerate(flags):
        kept = kept + alive[i + 1] * alive[i] + alive[i + 1] * int(b)
    return kept


def params_total(model: nn.Module) -> int:
    """Weights plus biases of the Linear layers of ``model``."""
    layers = _linears(model)
    return total_params([m.weight for m in layers], [m.bias is not None for m in layers])


def params_kept(model: nn.Module) -> int:
    """:func:`kept_params` for the Linear layers of ``model``."""
    layers = _linears(model)
    weights = [m.weight.detach() for m in layers]
    return int(kept_params(weights, [m.bias is not None for m in layers]))
