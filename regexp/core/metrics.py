"""The data loss and the evaluation metrics of one model's outputs (accuracy, R², RMSE).

Pure functions of output and target tensors; :func:`regexp.train.evaluate.evaluate`
applies them to a data split, and the stacked engine computes the same quantities for N
models at once (its tests check it against these definitions).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def data_loss(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Mean cross-entropy (classification) or mean squared error (regression)."""
    if task == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out.squeeze(-1), y)


@torch.no_grad()
def scores(out: torch.Tensor, y: torch.Tensor, task: str, y_std: float = 1.0) -> dict[str, float]:
    """``loss`` and the task's metrics of outputs ``out`` [n, C] against targets ``y`` [n].

    Classification: ``accuracy``, the fraction of rows with ``argmax(out) == y``.
    Regression (``y`` standardized, ``y_std`` the original std): ``r2 = 1 − SSE/SST`` in
    float64 (NaN for a constant target) and ``rmse = sqrt(SSE/n)·y_std``, in the target's
    original units. ``loss`` is :func:`data_loss`, on the standardized target.
    """
    metrics = {"loss": data_loss(out, y, task).item()}
    if task == "classification":
        metrics["accuracy"] = (out.argmax(-1) == y).double().mean().item()
    else:
        pred, true = out.squeeze(-1).double(), y.double()
        sse = ((pred - true) ** 2).sum().item()
        sst = ((true - true.mean()) ** 2).sum().item()
        metrics["r2"] = 1 - sse / sst if sst > 0 else float("nan")
        metrics["rmse"] = math.sqrt(sse / len(y)) * y_std
    return metrics
