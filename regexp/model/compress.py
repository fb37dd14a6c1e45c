"""A sparse MLP compressed into a smaller dense one: dead units physically removed.

A unit is *dead* when all of its outgoing weights are exactly 0
(:func:`regexp.core.sparsity.dead_units`): input feature ``j`` is dead when
``W_0[:, j] == 0``, hidden unit ``j`` of layer ``i`` when ``W_i[:, j] == 0``. Removing it
changes no output, since it feeds nothing. The compressed network keeps, for each
``nn.Linear`` ``i`` with kept inputs ``a_i`` and kept outputs ``a_{i+1}`` (every output of the
last layer is kept)::

    W_i' = W_i[a_{i+1}][:, a_i],    b_i' = b_i[a_{i+1}]

so it has exactly :func:`regexp.core.sparsity.params_kept` parameters. Its input is the kept
features only, ``x[:, kept_inputs]``; :attr:`CompressedMLP.kept_inputs` records their indices
in the original feature order. Dropout is dropped (the compressed model is for inference).
A unit whose *incoming* weights are all 0 still outputs the constant ``f(b_j)`` and is kept,
as ``params_kept`` counts it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from regexp.core.sparsity import dead_units


class CompressedMLP(nn.Module):
    """A dense MLP over the kept input features, with the removed units gone.

    ``forward(x)`` takes ``x[:, kept_inputs]`` (shape ``[batch, len(kept_inputs)]``);
    :meth:`forward_full` takes all the original features and selects the kept ones.
    """

    def __init__(self, layers: nn.Sequential, kept_inputs: Tensor, n_features: int) -> None:
        super().__init__()
        self.layers = layers
        self.register_buffer("kept_inputs", kept_inputs.to(torch.int64))
        self.n_features = n_features

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def forward_full(self, x: Tensor) -> Tensor:
        """The output for all ``n_features`` original inputs (the dead ones are ignored)."""
        return self.layers(x.index_select(-1, self.kept_inputs))


def sizes(model: CompressedMLP) -> list[int]:
    """``[n_in, hidden..., n_out]`` of the compressed network."""
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    return [linears[0].in_features, *(m.out_features for m in linears)]


@torch.no_grad()
def compress_mlp(model: nn.Sequential) -> CompressedMLP:
    """Compress a ``Linear → activation [→ Dropout]`` stack (:func:`regexp.model.mlp.mlp`).

    Raises ``ValueError`` for a model that is not such a chain, or that has no kept input.
    """
    modules = list(model)
    linears = [m for m in modules if isinstance(m, nn.Linear)]
    allowed = (nn.Linear, nn.Dropout, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU)
    if not linears or not isinstance(modules[-1], nn.Linear):
        raise ValueError("compress needs an MLP: a chain of nn.Linear ending with one")
    if any(not isinstance(m, allowed) for m in modules):
        raise ValueError("compress needs an MLP of Linear, activation and Dropout layers only")
    dead = dead_units([m.weight for m in linears])
    alive = [(~d).nonzero().flatten() for d in dead]
    alive.append(torch.arange(linears[-1].out_features))
    if alive[0].numel() == 0:
        raise ValueError("every input feature was removed: there is no network to compress")
    out: list[nn.Module] = []
    index = 0
    for m in modules:
        if isinstance(m, nn.Dropout):
            continue
        if not isinstance(m, nn.Linear):
            out.append(type(m)(**_activation_args(m)))
            continue
        rows, cols = alive[index + 1], alive[index]
        layer = nn.Linear(len(cols), len(rows), bias=m.bias is not None)
        layer.weight.copy_(m.weight[rows][:, cols])
        if m.bias is not None:
            layer.bias.copy_(m.bias[rows])
        out.append(layer)
        index += 1
    return CompressedMLP(nn.Sequential(*out).eval(), alive[0], linears[0].in_features).eval()


def _activation_args(m: nn.Module) -> dict:
    """The constructor arguments that change an activation's output."""
    if isinstance(m, nn.LeakyReLU):
        return {"negative_slope": m.negative_slope}
    if isinstance(m, nn.ELU):
        return {"alpha": m.alpha}
    return {}


def params(model: nn.Module) -> int:
    """Weights and biases of every ``nn.Linear`` of ``model``."""
    return sum(
        p.numel() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()
    )


def state(model: CompressedMLP, activation: str, extra: dict | None = None) -> dict:
    """What ``compressed.pt`` holds: the state dict, the layer sizes, the activation and
    the kept input indices (plain types, loadable with ``weights_only=True``)."""
    return {
        "state_dict": model.state_dict(),
        "sizes": sizes(model),
        "activation": activation,
        "kept_inputs": model.kept_inputs.tolist(),
        "n_features": model.n_features,
        **(extra or {}),
    }


def from_state(ckpt: dict, activations: dict[str, type[nn.Module]]) -> CompressedMLP:
    """Rebuild a :class:`CompressedMLP` from :func:`state` (``torch.load(weights_only=True)``)."""
    dims: Sequence[int] = ckpt["sizes"]
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(activations[ckpt["activation"]]())
    model = CompressedMLP(
        nn.Sequential(*layers), torch.tensor(ckpt["kept_inputs"]), ckpt["n_features"]
    )
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
