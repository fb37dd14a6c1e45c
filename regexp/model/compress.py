"""A sparse network compressed into a smaller dense one: dead units and channels removed.

A unit is *dead* when all of its outgoing weights are exactly 0
(:func:`regexp.core.sparsity.dead_units`): input feature ``j`` is dead when
``W_0[:, j] == 0``, hidden unit ``j`` of layer ``i`` when ``W_i[:, j] == 0``. Removing it
changes no output, since it feeds nothing. The compressed network keeps, for each
``nn.Linear`` ``i`` with kept inputs ``a_i`` and kept outputs ``a_{i+1}`` (every output of the
last layer is kept)::

    W_i' = W_i[a_{i+1}][:, a_i],    b_i' = b_i[a_{i+1}]

so it has exactly :func:`regexp.core.sparsity.params_kept` parameters. Its input is the kept
features only, ``x[:, kept_inputs]``; :attr:`CompressedNet.kept_inputs` records their indices
in the original feature order. Dropout is dropped (the compressed model is for inference).
A unit whose *incoming* weights are all 0 still outputs the constant ``f(b_j)`` and is kept,
as ``params_kept`` counts it.

A conv net (:func:`regexp.model.cnn.cnn`) loses its dead channels the same way: input channel
``c`` of conv layer ``i`` is dead when ``W_i[:, c, :, :] == 0``, and then conv layer ``i-1``
loses output channel ``c`` (its filter and bias). The last conv layer's channel ``c`` is dead
when every column of the linear head that reads it is 0 (the head's inputs are grouped per
channel, as its group penalty groups them: a live channel keeps all of its columns). An
image channel (the first conv layer's input) that is dead drops all of its pixels from
:attr:`CompressedNet.kept_inputs`.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class CompressedNet(nn.Module):
    """A dense network over the kept input features, with the removed units gone.

    ``forward(x)`` takes ``x[:, kept_inputs]`` (shape ``[batch, len(kept_inputs)]``);
    :meth:`forward_full` takes all the original features and selects the kept ones.
    ``spec`` describes the layers (what :func:`from_state` rebuilds them from).
    """

    def __init__(
        self, layers: nn.Sequential, kept_inputs: Tensor, n_features: int, spec: list
    ) -> None:
        super().__init__()
        self.layers = layers
        self.register_buffer("kept_inputs", kept_inputs.to(torch.int64))
        self.n_features = n_features
        self.spec = spec

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def forward_full(self, x: Tensor) -> Tensor:
        """The output for all ``n_features`` original inputs (the dead ones are ignored)."""
        return self.layers(x.index_select(-1, self.kept_inputs))


_WEIGHTED = (nn.Linear, nn.Conv2d)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU)
_KEPT_AS_IS = (*_ACTIVATIONS, nn.MaxPool2d, nn.Flatten)


def _dead_inputs(m: nn.Module) -> Tensor:
    """Input units (Linear columns) or input channels (conv) whose weights are all 0."""
    w = m.weight
    return (w == 0).all(dim=0) if isinstance(m, nn.Linear) else (w == 0).all(dim=(0, 2, 3))


@torch.no_grad()
def compress_model(model: nn.Sequential) -> CompressedNet:
    """Compress an MLP (:func:`regexp.model.mlp.mlp`) or a conv net
    (:func:`regexp.model.cnn.cnn`): a chain of ``[Unflatten] → Conv2d/activation/MaxPool2d →
    Flatten → Linear/activation`` with dropout anywhere.

    Raises ``ValueError`` for another kind of model, or one that has no kept input.
    """
    modules = [m for m in model if not isinstance(m, nn.Dropout)]
    allowed = (*_WEIGHTED, *_KEPT_AS_IS, nn.Unflatten)
    if not modules or not isinstance(modules[-1], nn.Linear):
        raise ValueError("compress needs an MLP or a conv net ending with an nn.Linear")
    bad = [type(m).__name__ for m in modules if not isinstance(m, allowed)]
    if bad:
        raise ValueError(f"compress cannot remove units through {', '.join(sorted(set(bad)))}")
    weighted = [m for m in modules if isinstance(m, _WEIGHTED)]
    alive_in = [~_dead_inputs(m) for m in weighted]
    for i in range(1, len(weighted)):  # the head after a flatten: alive per channel
        before, m = weighted[i - 1], weighted[i]
        if isinstance(before, nn.Conv2d) and isinstance(m, nn.Linear):
            per_channel = alive_in[i].reshape(before.out_channels, -1)
            alive_in[i] = per_channel.any(dim=1, keepdim=True).expand_as(per_channel).flatten()
    alive_out = []
    for i, m in enumerate(weighted):
        n_out = m.out_features if isinstance(m, nn.Linear) else m.out_channels
        if i + 1 == len(weighted):
            alive_out.append(torch.ones(n_out, dtype=torch.bool))
            continue
        nxt = alive_in[i + 1]  # a flatten: len(nxt) = n_out · positions, channel-major
        alive_out.append(nxt.reshape(n_out, -1).any(dim=1))
    first = weighted[0]
    if isinstance(first, nn.Conv2d):
        unflatten = next((m for m in modules if isinstance(m, nn.Unflatten)), None)
        if unflatten is None:
            raise ValueError("compress needs the conv net's nn.Unflatten of its input rows")
        channels, height, width = unflatten.unflattened_size
        pixels = torch.arange(channels * height * width).reshape(channels, height * width)
        kept_inputs = pixels[alive_in[0]].flatten()
        n_features = channels * height * width
    else:
        kept_inputs = alive_in[0].nonzero().flatten()
        n_features = first.in_features
    if kept_inputs.numel() == 0:
        raise ValueError("every input feature was removed: there is no network to compress")
    out: list[nn.Module] = []
    spec: list = []
    index = 0
    for m in modules:
        if isinstance(m, nn.Unflatten):
            _, h, w = m.unflattened_size
            size = (int(alive_in[0].sum()), h, w)
            out.append(nn.Unflatten(1, size))
            spec.append(["unflatten", *size])
        elif isinstance(m, _KEPT_AS_IS):
            out.append(copy.deepcopy(m))
            spec.append(_spec_of(m))
        else:
            rows, cols = alive_out[index].nonzero().flatten(), alive_in[index].nonzero().flatten()
            layer = _shrunk(m, rows, cols)
            out.append(layer)
            spec.append(_spec_of(layer))
            index += 1
    net = nn.Sequential(*out).eval()
    return CompressedNet(net, kept_inputs, n_features, spec).eval()


def _shrunk(m: nn.Module, rows: Tensor, cols: Tensor) -> nn.Module:
    """``m`` with only output units (or channels) ``rows`` and inputs ``cols``."""
    if isinstance(m, nn.Linear):
        layer: nn.Module = nn.Linear(len(cols), len(rows), bias=m.bias is not None)
    else:
        layer = nn.Conv2d(
            len(cols),
            len(rows),
            m.kernel_size,
            stride=m.stride,
            padding=m.padding,
            dilation=m.dilation,
            bias=m.bias is not None,
        )
    layer.weight.copy_(m.weight[rows][:, cols])
    if m.bias is not None:
        layer.bias.copy_(m.bias[rows])
    return layer


def _spec_of(m: nn.Module) -> list:
    """One layer as plain values (loadable with ``weights_only=True``)."""
    if isinstance(m, nn.Linear):
        return ["linear", m.in_features, m.out_features]
    if isinstance(m, nn.Conv2d):
        return ["conv2d", m.in_channels, m.out_channels, list(m.kernel_size), list(m.padding)]
    if isinstance(m, nn.MaxPool2d):
        return ["maxpool2d", m.kernel_size]
    if isinstance(m, nn.Flatten):
        return ["flatten"]
    args = {"negative_slope": m.negative_slope} if isinstance(m, nn.LeakyReLU) else {}
    if isinstance(m, nn.ELU):
        args = {"alpha": m.alpha}
    return ["activation", type(m).__name__, args]


def _from_spec(entry: list) -> nn.Module:
    kind = entry[0]
    if kind == "linear":
        return nn.Linear(entry[1], entry[2])
    if kind == "conv2d":
        return nn.Conv2d(entry[1], entry[2], tuple(entry[3]), padding=tuple(entry[4]))
    if kind == "maxpool2d":
        return nn.MaxPool2d(entry[1])
    if kind == "flatten":
        return nn.Flatten()
    if kind == "unflatten":
        return nn.Unflatten(1, tuple(entry[1:]))
    if kind == "activation":
        cls = {c.__name__: c for c in _ACTIVATIONS}[entry[1]]
        return cls(**entry[2])
    raise ValueError(f"unknown layer '{kind}' in compressed.pt")


def params(model: nn.Module) -> int:
    """Weights and biases of every ``nn.Linear`` and ``nn.Conv2d`` of ``model``."""
    layers = [m for m in model.modules() if isinstance(m, _WEIGHTED)]
    return sum(p.numel() for m in layers for p in m.parameters())


def state(model: CompressedNet, extra: dict | None = None) -> dict:
    """What ``compressed.pt`` holds: the state dict, the layer spec and the kept input
    indices (plain types, loadable with ``weights_only=True``)."""
    return {
        "state_dict": model.state_dict(),
        "spec": model.spec,
        "kept_inputs": model.kept_inputs.tolist(),
        "n_features": model.n_features,
        **(extra or {}),
    }


def from_state(ckpt: dict) -> CompressedNet:
    """Rebuild a :class:`CompressedNet` from :func:`state` (``torch.load(weights_only=True)``)."""
    layers = nn.Sequential(*(_from_spec(entry) for entry in ckpt["spec"]))
    model = CompressedNet(
        layers, torch.tensor(ckpt["kept_inputs"]), ckpt["n_features"], ckpt["spec"]
    )
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
