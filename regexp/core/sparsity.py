"""Sparsity measures of a chain of layers, over the groupings of :mod:`regexp.core.groupings`.

Pure functions take a list of weights ordered input → output (leading dims = a stack of
models) and, optionally, their groupings (default :class:`~regexp.core.groupings.Columns`:
``nn.Linear`` weights ``[..., out, in]``). A group ``j`` of layer ``i`` is one of its
input units: an input unit of a Linear layer, an input channel of a conv layer. It is
*dead* (removable) when all of its weights ``G[..., :, j]`` are exactly 0 (for a Linear
layer: all outgoing weights ``W[..., :, j]`` of the unit). The ``nn.Module`` wrappers read
the weights of the ``nn.Linear`` and ``nn.ConvNd`` layers in registration order, assumed
to be the forward order (a flatten between a conv and a Linear layer is channel-major, as
``nn.Flatten`` of ``[N, C, H, W]``: the Linear layer's groups are then the channels'
blocks of columns, :class:`~regexp.core.groupings.ChannelBlocks`). Layer ``i``'s input
units are ``"input"`` (the features or image channels) for ``i = 0``, else ``"hidden{i}"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from regexp.core.groupings import Columns, Grouping, InputChannels, model_groupings

# The layers whose input units (columns, channels) sparsity counts.
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, LAYERS)]


def linear_weights(model: nn.Module) -> list[Tensor]:
    """Weights of the ``nn.Linear`` modules of ``model`` in registration order."""
    return [m.weight for m in _linears(model)]


def layer_weights(model: nn.Module) -> list[Tensor]:
    """Weights of the ``nn.Linear`` and ``nn.ConvNd`` modules in registration order."""
    return [m.weight for m in _layers(model)]


def layer_groupings(model: nn.Module) -> list[Grouping]:
    """The grouping of each of :func:`layer_weights` (columns, input channels, or the
    channel blocks of a Linear layer after a conv layer)."""
    groupings = model_groupings(model)
    return [groupings[id(m.weight)] for m in _layers(model)]


def _groupings(weights: Sequence[Tensor], groupings: Sequence[Grouping] | None) -> list[Grouping]:
    if groupings is None:
        return [Columns()] * len(weights)
    if len(groupings) != len(weights):
        raise ValueError(
            f"groupings must have one grouping per layer ({len(weights)}), got {len(groupings)}"
        )
    return list(groupings)


@torch.no_grad()
def threshold_(model: nn.Module, eps: float = 1e-3) -> int:
    """Set every Linear and conv weight with ``|w| < eps`` to 0, in place (biases untouched).

    Returns
    -------
    int
        How many entries this call changed, i.e. were nonzero with ``|w| < eps``.
        Entries that were already 0 are not counted.
    """
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    changed = 0
    for w in layer_weights(model):
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


def dead_groups(
    weights: Sequence[Tensor], groupings: Sequence[Grouping] | None = None
) -> list[Tensor]:
    """Per layer, ``dead[..., j] = all_k (G[..., k, j] == 0)`` with ``G`` the grouped view:
    input unit or channel ``j`` feeds nothing. :func:`dead_units` for Linear weights."""
    return [
        (g.groups(w) == 0).all(dim=-2)
        for w, g in zip(weights, _groupings(weights, groupings), strict=True)
    ]


def layer_names(n_layers: int) -> list[str]:
    """``["input", "hidden1", ..., "hidden{n_layers-1}"]``: the input units of each layer."""
    return ["input"] + [f"hidden{i}" for i in range(1, n_layers)]


@dataclass(frozen=True)
class LayerSparsity:
    """Removed (dead) input units of one layer: ``fraction = removed / units``; ``unit``
    says what a unit is (``"unit"`` of a Linear layer, ``"channel"`` of a conv layer)."""

    layer: str
    units: int
    removed: int
    fraction: float
    unit: str = "unit"


def unit_names(model: nn.Module) -> list[str]:
    """The name of each layer's input units: ``"input"``, then the layer that produces them:
    ``"conv{k}"`` (the k-th conv layer's output channels) or ``"hidden{j}"`` (the j-th
    hidden Linear layer's outputs). An MLP gets :func:`layer_names`."""
    names, convs, linears = ["input"], 0, 0
    for layer in _layers(model)[:-1]:
        if isinstance(layer, nn.Linear):
            linears += 1
            names.append(f"hidden{linears}")
        else:
            convs += 1
            names.append(f"conv{convs}")
    return names


def layer_sparsity(
    weights: Sequence[Tensor],
    groupings: Sequence[Grouping] | None = None,
    names: Sequence[str] | None = None,
) -> list[LayerSparsity]:
    """:class:`LayerSparsity` of each layer's input units or channels for one model
    (``names``: of each layer's inputs, default :func:`layer_names`).

    For a stack of models use ``[d.sum(-1) for d in dead_groups(weights, groupings)]``.
    """
    groupings = _groupings(weights, groupings)
    if any(w.dim() != g.param_dim for w, g in zip(weights, groupings, strict=True)):
        raise ValueError(
            "layer_sparsity needs one model's weights (2-D for Linear layers); "
            "use dead_groups for a stack"
        )
    out = []
    dead = dead_groups(weights, groupings)
    names = list(names) if names is not None else layer_names(len(weights))
    for name, d, g in zip(names, dead, groupings, strict=True):
        removed = int(d.sum())
        out.append(LayerSparsity(name, d.numel(), removed, removed / max(d.numel(), 1), g.unit))
    return out


def neuron_sparsity(model: nn.Module) -> list[LayerSparsity]:
    """:func:`layer_sparsity` of the Linear and conv weights of ``model``, named by
    :func:`unit_names` (``conv1`` for the first conv layer's channels)."""
    weights = [w.detach() for w in layer_weights(model)]
    return layer_sparsity(weights, layer_groupings(model), unit_names(model))


def zero_fraction(weights: Sequence[Tensor], groupings: Sequence[Grouping] | None = None) -> Tensor:
    """``Σ_layers #(w == 0) / Σ_layers #w`` per model, shape ``[...]``."""
    groupings = _groupings(weights, groupings)
    views = [g.groups(w) for w, g in zip(weights, groupings, strict=True)]
    zeros = sum((v == 0).sum(dim=(-2, -1)) for v in views)
    total = sum(v.shape[-2] * v.shape[-1] for v in views)
    return torch.as_tensor(zeros, dtype=torch.float64) / max(total, 1)


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries over all Linear and conv weights (no biases)."""
    weights = [w.detach() for w in layer_weights(model)]
    return float(zero_fraction(weights, layer_groupings(model)))


def _bias_flags(has_bias: bool | Sequence[bool], n: int) -> list[bool]:
    flags = [has_bias] * n if isinstance(has_bias, bool) else list(has_bias)
    if len(flags) != n:
        raise ValueError(f"has_bias must have one flag per layer ({n}), got {len(flags)}")
    return flags


def count_params_total(
    weights: Sequence[Tensor],
    has_bias: bool | Sequence[bool] = True,
    groupings: Sequence[Grouping] | None = None,
) -> int:
    """``Σ_i numel(W_i) + out_i·has_bias_i`` (the same for every model of a stack)."""
    flags = _bias_flags(has_bias, len(weights))
    groupings = _groupings(weights, groupings)
    total = 0
    for w, b, g in zip(weights, flags, groupings, strict=True):
        shape = w.shape[w.dim() - g.param_dim :]
        total += math.prod(shape) + shape[0] * int(b)
    return total


def count_params_kept(
    weights: Sequence[Tensor],
    has_bias: bool | Sequence[bool] = True,
    groupings: Sequence[Grouping] | None = None,
) -> Tensor:
    """Parameters left after removing dead units, per model, shape ``[...]`` (int64).

    With ``a_i`` the alive input units (groups) of layer ``i`` (not :func:`dead_groups`),
    ``o_i`` its alive outputs, ``k_i = size_i / out_i`` the weights per (output, input)
    pair (1 for Linear, ``Π kernel`` for a conv) and ``b_i = has_bias_i``:
    ``kept = Σ_i k_i·|o_i|·|a_i| + |o_i|·b_i`` (a dead hidden unit also loses its incoming
    weights and bias). The last layer's outputs are all alive; output ``u`` of layer ``i``
    is alive iff one of its ``m = in_{i+1}/out_i`` input groups of layer ``i+1`` is
    (``m > 1``: a channel-major flatten of ``m`` positions per channel). For Linear
    layers: ``Σ_i |a_{i+1}|·|a_i| + |a_{i+1}|·b_i``.

    Raises
    ------
    ValueError
        If layer ``i+1``'s input groups are not layer ``i``'s outputs (or, after a conv
        layer, a multiple of them).
    """
    flags = _bias_flags(has_bias, len(weights))
    groupings = _groupings(weights, groupings)
    outs = [w.shape[w.dim() - g.param_dim] for w, g in zip(weights, groupings, strict=True)]
    ins = [g.n_groups(tuple(w.shape)) for w, g in zip(weights, groupings, strict=True)]
    for i in range(len(weights) - 1):
        flatten = isinstance(groupings[i], InputChannels)  # conv → Linear: positions
        if ins[i + 1] != outs[i] and not (flatten and ins[i + 1] % outs[i] == 0):
            raise ValueError(
                f"layer {i} has {outs[i]} outputs but layer {i + 1} has {ins[i + 1]} inputs"
            )
    dead = dead_groups(weights, groupings)
    alive_in = [(~d).sum(dim=-1) for d in dead]
    kept = torch.zeros((), dtype=torch.int64)
    for i, b in enumerate(flags):
        if i + 1 < len(weights):
            m = ins[i + 1] // outs[i]
            alive_out = (~dead[i + 1]).unflatten(-1, (outs[i], m)).any(-1).sum(-1)
        else:
            alive_out = torch.full_like(alive_in[i], outs[i])
        k = groupings[i].group_size(tuple(weights[i].shape)) // outs[i]
        kept = kept + k * alive_out * alive_in[i] + alive_out * int(b)
    return kept


def params_total(model: nn.Module) -> int:
    """Weights plus biases of the Linear and conv layers of ``model``."""
    layers = _layers(model)
    return count_params_total(
        [m.weight for m in layers], [m.bias is not None for m in layers], layer_groupings(model)
    )


def params_kept(model: nn.Module) -> int:
    """:func:`count_params_kept` for the Linear and conv layers of ``model``."""
    layers = _layers(model)
    weights = [m.weight.detach() for m in layers]
    has_bias = [m.bias is not None for m in layers]
    return int(count_params_kept(weights, has_bias, layer_groupings(model)))
