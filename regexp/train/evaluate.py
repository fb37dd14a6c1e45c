"""A model evaluated on one split of a data set, with :mod:`regexp.core.metrics`."""

from __future__ import annotations

import torch
from torch import nn

from regexp.core.metrics import scores
from regexp.data.prepare import Dataset


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, split: str) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``split`` (``train``, ``val`` or ``test``).

    Classification: ``loss`` and ``accuracy``. Regression: ``loss`` (on the standardized
    target), ``r2`` and ``rmse`` (in the target's original units). The model is evaluated
    in eval mode (no dropout) and left in the mode it was in.
    """
    was_training = model.training
    model.eval()
    out = model(getattr(data, f"x_{split}"))
    model.train(was_training)
    return scores(out, getattr(data, f"y_{split}"), data.task, data.y_std)
