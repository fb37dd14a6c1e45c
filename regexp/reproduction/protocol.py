"""What each run trained on, read back from its ``model.pt``: split, inputs, methods.

An input that is constant in the training rows of a run's split gets no gradient from the
data (after scaling it is the same number in every row), so any penalty drives its weights
to 0: removing it says nothing about a method. :func:`constant_inputs` finds them and
:func:`add_details` counts, per run, the inputs removed among them and beyond them.
Methods are named by :func:`method_key`: the regularizer, and for proximal mode its metric.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from regexp.core import sparsity
from regexp.data.prepare import Dataset, load_dataset
from regexp.model.mlp import load_checkpoint
from regexp.reproduction import thresholds
from regexp.train.build import resolve_prox_metric

SHORT = {"none": "none", "l2": "L2", "l1": "L1", "group_lasso": "GL", "sgl": "SGL"}
METRIC_LABEL = {"adaptive": "Adam metric", "identity": "identity metric, after Adam"}


def constant_inputs(data: Dataset) -> np.ndarray:
    """``max = min`` over the training rows, per input feature (bool ``[n_features]``)."""
    x = data.x_train
    return (x.max(dim=0).values == x.min(dim=0).values).numpy()


def method_key(
    regularizer: str,
    mode: str,
    prox_metric: str = "identity",
    optimizer: str = "adam",
    input_only: bool = False,
) -> str:
    """``"sgl"`` in penalty mode; ``"sgl/prox-adaptive"``, ``"sgl/prox-identity"`` proximal
    after Adam; ``"sgl/prox-sgd"`` proximal after plain SGD; ``"sgl/input"`` for the
    penalty on the input layer only."""
    if mode != "penalty":
        key = f"{regularizer}/prox-{'sgd' if optimizer == 'sgd' else prox_metric}"
    else:
        key = regularizer
    return f"{key}/input" if input_only else key


def method_label(key: str) -> str:
    """``"SGL"``, ``"SGL prox (Adam metric)"``, ``"SGL prox (identity metric, after
    Adam)"``, ``"SGL proximal SGD"``, ``"SGL, input layer only"``; other keys as they are."""
    key, inp, _ = key.partition("/input")
    reg, _, prox = key.partition("/prox-")
    name = SHORT.get(reg, reg)
    if prox == "sgd":
        name = f"{name} proximal SGD"
    elif prox:
        name = f"{name} prox ({METRIC_LABEL.get(prox, prox)})"
    return f"{name}, input layer only" if inp else name


class SplitCache:
    """:func:`regexp.data.prepare.load_dataset` per distinct ``dataset`` config, loaded once."""

    def __init__(self) -> None:
        self._data: dict[str, Dataset] = {}

    def get(self, dataset_cfg: Mapping) -> Dataset:
        key = json.dumps(dict(dataset_cfg), sort_keys=True, default=str)
        if key not in self._data:
            self._data[key] = load_dataset(**dataset_cfg)
        return self._data[key]


def add_details(runs: pd.DataFrame, splits: SplitCache | None = None) -> pd.DataFrame:
    """``runs`` (of :func:`regexp.reproduction.runs.read_runs`) plus, from each ok run's
    ``model.pt``:

    ``split_seed``, ``method`` (:func:`method_key`, ``prox_metric``
    resolved for the run's optimizer), ``constant_inputs`` (how many inputs are constant in
    the training rows of its split), ``removed_input_constant`` and
    ``removed_input_beyond`` (its removed inputs among / not among those),
    ``constant_max_weight`` (the largest ``|w|`` left on them), and the bool
    masks ``alive`` (kept inputs) and ``constant``. Runs that are not ok get NaN
    (``method`` is still set).
    """
    splits = splits or SplitCache()
    rows = []
    for r in runs.to_dict("records"):
        metric = "identity"
        if r["mode"] == "proximal":
            metric = resolve_prox_metric({"prox_metric": r.get("prox_metric")}, r["optimizer"])
        params = r.get("regularizer.params")
        input_only = isinstance(params, str) and params.strip() not in ("", "nan")
        key = method_key(r["regularizer"], r["mode"], metric, r["optimizer"], input_only)
        row: dict = {"method": key}
        if r["status"] == "ok":
            path = Path(r["run_dir"]) / "model.pt"
            model, cfg = load_checkpoint(path)
            raw = torch.load(path, map_location="cpu", weights_only=True).get("raw_state_dict")
            if raw is not None:
                fresh, _ = load_checkpoint(path)
                row |= thresholds.remeasure(fresh, raw, splits.get(cfg["dataset"]))
            first = sparsity.linear_weights(model)[0].detach()
            alive = (first != 0).any(dim=0).numpy()
            const = constant_inputs(splits.get(cfg["dataset"]))
            left = first[:, torch.from_numpy(const)].abs()
            row |= {
                "split_seed": cfg["dataset"]["split_seed"],
                "constant_inputs": int(const.sum()),
                "removed_input_constant": int((~alive & const).sum()),
                "removed_input_beyond": int((~alive & ~const).sum()),
                "constant_max_weight": float(left.max()) if left.numel() else 0.0,
                "alive": alive,
                "constant": const,
            }
        rows.append(row)
    out = pd.concat([runs.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    if "drop_last" not in out:  # runs written before trainer.drop_last existed
        out["drop_last"] = False
    return out


def constant_summary(runs: pd.DataFrame) -> dict:
    """The constant inputs of the distinct splits of the ok runs of :func:`add_details`.

    Returns ``counts`` (``{split_seed: how many}``), ``every`` and ``some`` (bool masks:
    constant in every split, in at least one) and ``pixels`` (``{split_seed: indices}``).
    """
    ok = runs[runs["status"] == "ok"].drop_duplicates("split_seed").sort_values("split_seed")
    masks = dict(zip(ok["split_seed"], ok["constant"], strict=True))
    stacked = np.array(list(masks.values()))
    return {
        "counts": {s: int(m.sum()) for s, m in masks.items()},
        "every": stacked.all(axis=0),
        "some": stacked.any(axis=0),
        "pixels": {s: np.flatnonzero(m).tolist() for s, m in masks.items()},
    }


def keep_fraction(alive: pd.Series) -> np.ndarray:
    """Per input, the fraction of the runs (masks in ``alive``) that keep it."""
    return np.mean(np.stack(list(alive)), axis=0)
