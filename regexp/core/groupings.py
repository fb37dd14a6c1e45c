"""Groupings: what a *group* of a parameter is, as a grouped view ``[..., size, n_groups]``.

Every penalty of :mod:`regexp.core.penalties` is written once, over 2-D grouped views
``G[..., k, j]``: element ``k`` of group ``j`` (the leading dims are a stack of models).
A grouping maps a parameter to that view and back:

- :class:`Columns` (``nn.Linear`` weights ``[out, in]``): group ``j`` is the column
  ``W[:, j]``, the outgoing weights of input unit ``j``; the view is the weight itself,
  ``size = out``.
- :class:`InputChannels` (``nn.Conv1d/2d/3d`` weights ``[out, in, *kernel]``): group ``c``
  is the input channel ``W[:, c, ...]``, all weights that read channel ``c``; the view is
  ``W.movedim(1, -1).reshape(out·Π kernel, in)``, ``size = out·Π kernel`` (a copy).
- :class:`ChannelBlocks` (the ``nn.Linear`` right after a conv layer, reading its
  ``C`` channels × ``m`` positions flattened channel-major, as ``nn.Flatten`` of
  ``[N, C, H, W]`` gives): group ``c`` is the block of columns ``W[:, c·m:(c+1)·m]``, all
  weights that read channel ``c``; ``size = out·m``. With ``m = 1`` it is :class:`Columns`.
- :class:`Entries` (any other parameter, e.g. a bias): one group ``[1, numel]`` holding
  every entry, for the entrywise penalties only (``grouped = False``).

:func:`model_groupings` gives the grouping of every parameter of a model (it reads the
layer order to find a Linear after a conv layer); :func:`grouping_of` the grouping of one
module's parameter; :func:`apply_grouped_` runs an in-place operation on the grouped view
and writes the result back when the view is a copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

__all__ = [
    "ChannelBlocks",
    "Columns",
    "Entries",
    "Grouping",
    "InputChannels",
    "apply_grouped_",
    "grouping_of",
    "model_groupings",
]


@dataclass(frozen=True)
class Grouping:
    """Base class: ``param_dim`` is the number of dims of one model's parameter; a tensor
    with more dims carries ``w.dim() − param_dim`` leading stack dims."""

    param_dim: int
    # False for :class:`Entries`: its one "group" is not a unit, so group penalties refuse it.
    grouped: ClassVar[bool] = True
    # What a group is called in sparsity reports.
    unit: ClassVar[str] = "unit"

    def groups(self, w: Tensor) -> Tensor:
        """The grouped view ``[..., size, n_groups]`` of ``w`` (a view or a copy)."""
        raise NotImplementedError

    def ungroup(self, g: Tensor, like: Tensor) -> Tensor:
        """The inverse of :meth:`groups`: ``g`` back in ``like``'s shape."""
        raise NotImplementedError

    def lead(self, w: Tensor) -> tuple[int, ...]:
        """The stack dims of ``w``."""
        if w.dim() < self.param_dim:
            raise ValueError(
                f"{type(self).__name__} needs a parameter with at least {self.param_dim} "
                f"dims, got shape {tuple(w.shape)}"
            )
        return tuple(w.shape[: w.dim() - self.param_dim])

    def n_groups(self, shape: tuple[int, ...]) -> int:
        """Number of groups (units, channels) of a parameter of this ``shape``."""
        raise NotImplementedError

    def group_size(self, shape: tuple[int, ...]) -> int:
        """Entries per group of a parameter of this ``shape``."""
        return math.prod(shape[len(shape) - self.param_dim :]) // self.n_groups(shape)


@dataclass(frozen=True)
class Columns(Grouping):
    """``nn.Linear``: group ``j`` = ``W[..., :, j]``; the view is ``W`` itself."""

    param_dim: int = 2

    def groups(self, w: Tensor) -> Tensor:
        self.lead(w)
        return w

    def ungroup(self, g: Tensor, like: Tensor) -> Tensor:
        return g.view_as(like)

    def n_groups(self, shape: tuple[int, ...]) -> int:
        return shape[-1]


@dataclass(frozen=True)
class InputChannels(Grouping):
    """Convolutions: group ``c`` = ``W[..., :, c, *kernel]`` of weights ``[..., out, in, *k]``.

    ``param_dim = 2 + len(kernel)``; the view is
    ``W.movedim(-param_dim + 1, -1).reshape(..., out·Π k, in)``.
    """

    param_dim: int = 4
    unit: ClassVar[str] = "channel"

    def groups(self, w: Tensor) -> Tensor:
        lead = self.lead(w)
        channels = w.shape[len(lead) + 1]
        return w.movedim(len(lead) + 1, -1).reshape(*lead, -1, channels)

    def ungroup(self, g: Tensor, like: Tensor) -> Tensor:
        lead = self.lead(like)
        out, channels, *kernel = like.shape[len(lead) :]
        return g.reshape(*lead, out, *kernel, channels).movedim(-1, len(lead) + 1)

    def n_groups(self, shape: tuple[int, ...]) -> int:
        return shape[len(shape) - self.param_dim + 1]


@dataclass(frozen=True)
class ChannelBlocks(Grouping):
    """A Linear layer after a conv layer: group ``c`` = columns ``W[..., :, c·m:(c+1)·m]``
    of weights ``[..., out, C·m]`` (``m = positions``); the view is
    ``W.reshape(..., out, C, m).movedim(-1, -2).reshape(..., out·m, C)``."""

    param_dim: int = 2
    positions: int = 1
    unit: ClassVar[str] = "channel"

    def groups(self, w: Tensor) -> Tensor:
        lead = self.lead(w)
        out, cols = w.shape[-2:]
        blocks = w.reshape(*lead, out, cols // self.positions, self.positions)
        return blocks.movedim(-1, -2).reshape(*lead, out * self.positions, -1)

    def ungroup(self, g: Tensor, like: Tensor) -> Tensor:
        lead = self.lead(like)
        out, cols = like.shape[-2:]
        blocks = g.reshape(*lead, out, self.positions, cols // self.positions)
        return blocks.movedim(-1, -2).reshape(like.shape)

    def n_groups(self, shape: tuple[int, ...]) -> int:
        return shape[-1] // self.positions


@dataclass(frozen=True)
class Entries(Grouping):
    """Any other parameter: the view ``[..., 1, numel]`` (every entry its own column), for
    entrywise penalties; ``grouped = False``, so group penalties refuse it."""

    param_dim: int = 1
    grouped: ClassVar[bool] = False
    unit: ClassVar[str] = "entry"

    def groups(self, w: Tensor) -> Tensor:
        lead = self.lead(w)
        return w.reshape(*lead, 1, -1)

    def ungroup(self, g: Tensor, like: Tensor) -> Tensor:
        return g.reshape(like.shape)

    def n_groups(self, shape: tuple[int, ...]) -> int:
        return math.prod(shape[len(shape) - self.param_dim :])


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def grouping_of(
    module: nn.Module | None, name: str, param: Tensor, channels: int | None = None
) -> Grouping:
    """The grouping of parameter ``name`` (its last dotted part, e.g. ``weight``) of
    ``module``: :class:`InputChannels` for a ``nn.Conv1d/2d/3d`` weight (``groups=1``),
    :class:`ChannelBlocks` for the weight of a ``nn.Linear`` that reads ``channels``
    channels of a conv layer (``in_features = channels·m``, ``m > 1``), :class:`Columns`
    for any other 2-D parameter, :class:`Entries` otherwise. ``param`` is one model's
    parameter (no stack dims)."""
    if name == "weight" and isinstance(module, _CONVS) and module.groups == 1:
        return InputChannels(param.dim())
    if name == "weight" and isinstance(module, nn.Linear) and channels:
        m, rest = divmod(module.in_features, channels)
        if rest == 0 and m > 1:
            return ChannelBlocks(positions=m)
    if param.dim() == 2:
        return Columns()
    return Entries(param.dim())


def model_groupings(model: nn.Module) -> dict[int, Grouping]:
    """``id(parameter) → grouping`` for every parameter of ``model``.

    Layers are read in registration order, assumed to be the forward order: the first
    ``nn.Linear`` after a conv layer gets :class:`ChannelBlocks` over that layer's
    output channels (a channel-major flatten in between)."""
    out: dict[int, Grouping] = {}
    channels = None  # output channels of the conv layer just before, if any
    for module in model.modules():
        for local, q in module.named_parameters(recurse=False):
            out[id(q)] = grouping_of(module, local, q, channels)
        if isinstance(module, _CONVS):
            channels = module.out_channels
        elif isinstance(module, nn.Linear):
            channels = None
    return out


def apply_grouped_(w: Tensor, grouping: Grouping, fn: Callable[[Tensor], object]) -> Tensor:
    """Run ``fn(view)`` (an in-place operation) on ``grouping.groups(w)`` and write the
    view back into ``w`` when it is a copy; returns ``w``."""
    g = grouping.groups(w)
    fn(g)
    if not _shares_storage(g, w):
        w.copy_(grouping.ungroup(g, w))
    return w


def _shares_storage(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
