"""The model of a config (``model=mlp`` or ``model=cnn``), and rebuilding one from ``model.pt``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from regexp.model.cnn import cnn
from regexp.model.mlp import mlp

MODELS = ("mlp", "cnn")


def build_model(
    m: Mapping, n_features: int, n_outputs: int, input_shape: tuple[int, int, int] | None = None
) -> nn.Sequential:
    """The network of config group ``model`` for ``n_features`` inputs (``input_shape``:
    ``(C, H, W)`` of an image data set, which ``model=cnn`` needs). ``m`` passed
    :func:`regexp.config.validate`; the conv net checks its pooling against the image
    size here, where the size is known."""
    if m.get("name", "mlp") == "cnn":
        if input_shape is None:
            raise ValueError("model=cnn needs an image data set (e.g. dataset=digits_images)")
        return cnn(
            tuple(input_shape),
            list(m["channels"]),
            n_outputs,
            m["kernel_size"],
            m["pool"],
            m["activation"],
            m["dropout"],
            m.get("init", "default"),
            list(m.get("hidden", [])),
        )
    hidden = list(m["hidden"])
    return mlp(
        n_features, hidden, n_outputs, m["activation"], m["dropout"], m.get("init", "default")
    )


def load_model(path: str | Path) -> tuple[nn.Sequential, dict]:
    """Rebuild the network saved by ``regexp train`` (MLP or conv net); returns the model in
    eval mode and the resolved run config."""
    # weights_only: the checkpoint holds tensors, dicts, lists, strings and numbers only.
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ckpt["config"]
    state = ckpt["state_dict"]
    linear = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    shape = ckpt.get("input_shape")
    n_features = linear[0].shape[1] if cfg["model"].get("name", "mlp") == "mlp" else 0
    model = build_model(
        {**cfg["model"], "init": "default"},
        n_features,
        linear[-1].shape[0],
        tuple(shape) if shape else None,
    )
    model.load_state_dict(state)
    return model.eval(), cfg
