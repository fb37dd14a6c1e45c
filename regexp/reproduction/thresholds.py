"""The verdicts' dependence on the sparsity threshold: every run re-measured from the
weights it had before thresholding (``model.pt``'s ``raw_state_dict``).

A penalty-mode network has almost no exact zeros: its sparsity is made by the threshold
``|w| < t → 0``, and with Adam (lr 1e-3) a weight near 0 moves by about ±lr per step, so a
threshold near lr decides what is removed. :func:`remeasure` applies each of
:data:`THRESHOLDS` to the saved weights and measures the run as ``regexp train`` does
(:func:`regexp.core.sparsity.threshold_`, accuracy on the validation and test rows, kept
units and parameters); :func:`at_threshold` swaps those numbers into the run table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from regexp.core import sparsity
from regexp.data.prepare import Dataset
from regexp.train.evaluate import evaluate

THRESHOLDS = (0.0, 1e-4, 5e-4, 1e-3)
MEASURES = ("val_accuracy", "test_accuracy", "kept_input", "kept_hidden", "params_kept")


def column(measure: str, threshold: float) -> str:
    """``test_accuracy@0p0005``: the column of ``measure`` at ``threshold``, its dot written
    ``p`` (a dotted column would read as a config key)."""
    return f"{measure}@{threshold:g}".replace(".", "p")


@torch.no_grad()
def remeasure(
    model: nn.Module, raw: Mapping, data: Dataset, thresholds: Sequence[float] = THRESHOLDS
) -> dict:
    """``model`` loaded with the weights ``raw`` and thresholded at each of ``thresholds``
    (ascending, each on the previous one's result, which is the same as thresholding the
    raw weights at each): :func:`column` → value, and ``column("alive", t)`` (bool mask of
    kept inputs)."""
    model.load_state_dict(dict(raw))
    out: dict = {}
    for t in sorted(thresholds):
        sparsity.threshold_(model, t)
        layers = sparsity.neuron_sparsity(model)
        first = sparsity.linear_weights(model)[0]
        out |= {
            column("val_accuracy", t): evaluate(model, data, "val")["accuracy"],
            column("test_accuracy", t): evaluate(model, data, "test")["accuracy"],
            column("kept_input", t): layers[0].units - layers[0].removed,
            column("kept_hidden", t): sum(s.units - s.removed for s in layers[1:]),
            column("params_kept", t): sparsity.params_kept(model),
            column("alive", t): (first != 0).any(dim=0).numpy(),
        }
    return out


def at_threshold(runs: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """``runs`` with :data:`MEASURES` and ``alive`` replaced by their values at
    ``threshold`` (runs without them keep theirs)."""
    out = runs.copy()
    for m in [*MEASURES, "alive"]:
        col = column(m, threshold)
        if col in out:
            out[m] = out[col].where(out[col].notna(), out[m]) if m != "alive" else out[col]
    return out
