"""The data loss and the evaluation metrics of one model (accuracy, R², RMSE).

The stacked engine (:mod:`regexp.stacked`) computes the same quantities for N models at
once; its tests check it against these definitions.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from regexp.data import Dataset


def data_loss(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Mean cross-entropy (classification) or mean squared error (regression)."""
    if task == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out.squeeze(-1), y)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, split: str) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``split`` (``train``, ``val`` or ``test``).

    Classification: ``loss`` and ``accuracy``. Regression: ``loss`` (on the standardized
    target), ``r2`` and ``rmse`` (in the target's original units).
    """
    was_training = model.training
    model.eval()
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    out = model(x)
    model.train(was_training)
    metrics = {"loss": data_loss(out, y, data.task).item()}
    if data.task == "classification":
        metrics["accuracy"] = (out.argmax(-1) == y).double().mean().item()
    else:
        pred, true = out.squeeze(-1).double(), y.double()
        sse = ((pred - true) ** 2).sum().item()
        sst = ((true - true.mean()) ** 2).sum().item()
        metrics["r2"] = 1 - sse / sst if sst > 0 else float("nan")
        metrics["rmse"] = math.sqrt(sse / len(y)) * data.y_std
    return metrics
