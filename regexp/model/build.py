"""The model of a config (``model=mlp`` or ``model=cnn``), and rebuilding one from ``model.pt``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from regexp.model.cnn import cnn, validate_cnn
from regexp.model.mlp import mlp, validate_mlp

MODELS = ("mlp", "cnn")


def validate_model(m: Mapping, image_shape: tuple[int, int] | None = None) -> None:
    """Raise ``ValueError`` naming the first bad ``model`` option (``image_shape``: the data
    set's, checked by ``model=cnn`` only, ``None`` when it is not known yet)."""
    name = m.get("name", "mlp")
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}")
    if name == "mlp":
        validate_mlp(m["hidden"], m["activation"], m["dropout"], m.get("init", "default"))
        return
    validate_cnn(
        m["channels"],
        m["kernel_size"],
        m["pool"],
        m["activation"],
        m["dropout"],
        m.get("init", "default"),
        m.get("hidden", []),
        image_shape or (1 << 30, 1 << 30),  # no data yet: the shape is checked at build
    )


def build_model(
    m: Mapping, n_features: int, n_outputs: int, input_shape: tuple[int, int, int] | None = None
) -> nn.Sequential:
    """The network of config group ``model`` for ``n_features`` inputs (``input_shape``:
    ``(C, H, W)`` of an image data set, which ``model=cnn`` needs)."""
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
