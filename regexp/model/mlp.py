"""The multilayer perceptron, and rebuilding one from its checkpoint (``model.pt``)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
}
INITS = ("default", "glorot_normal", "glorot_uniform")


def mlp(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    activation: str = "relu",
    dropout: float = 0.0,
    init: str = "default",
) -> nn.Sequential:
    """``Linear → activation → [Dropout]`` per hidden layer, then a linear output layer.

    The ``nn.Linear`` modules are registered in forward order, which the sparsity
    functions rely on. ``init="glorot_normal"`` draws weights from N(0, 2/(fan_in+fan_out))
    and zeroes biases, as Lasagne (and so Scardapane et al. 2017) does. The options are
    those of config group ``model``, which :func:`regexp.config.validate` checks.
    """
    sizes = [n_in, *hidden, n_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(hidden):
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    model = nn.Sequential(*layers)
    if init != "default":
        for layer in model:
            if isinstance(layer, nn.Linear):
                if init == "glorot_normal":
                    nn.init.xavier_normal_(layer.weight)
                else:
                    nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    return model


def load_checkpoint(path: str | Path) -> tuple[nn.Sequential, dict]:
    """Rebuild the MLP saved by ``regexp train`` (:func:`regexp.io.atomic.save_checkpoint`).

    Returns the model (in eval mode) and the resolved run config.
    """
    # weights_only: the checkpoint holds tensors, dicts, lists, strings and numbers only,
    # so loading one never runs code from the file.
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ckpt["config"]
    weights = [v for k, v in ckpt["state_dict"].items() if k.endswith("weight")]
    m = cfg["model"]
    model = mlp(
        weights[0].shape[1],
        list(m["hidden"]),
        weights[-1].shape[0],
        m["activation"],
        m["dropout"],
        "default",
    )
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), cfg
