"""A run's results: its metrics row, per-layer sparsity and the files that hold them.

:func:`outputs` evaluates a trained model, thresholds it and measures its sparsity (all in
memory); :func:`write` writes the run directory. The batched launcher computes the
outputs of a stack's jobs in its own process and, in large sweeps, writes them in worker
processes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import nn

from regexp.core import sparsity
from regexp.engine.data import Dataset
from regexp.engine.evaluation import evaluate
from regexp.engine.train import FitResult
from regexp.outputs import console, run_plots
from regexp.outputs.files import remove_temporaries, save_checkpoint, write_csv

# Every file a run writes into its directory; metrics.csv is written last.
RUN_FILES = (
    "history.csv",
    "model.pt",
    "learning_curves.png",
    "sparsity.csv",
    "sparsity.png",
    "features.png",
    "metrics.csv",
)


def config_row(cfg: Mapping, n_in: int, n_out: int) -> dict:
    """The flattened config columns of ``metrics.csv``."""
    reg = cfg["regularizer"]
    hidden = list(cfg["model"]["hidden"])
    row = {
        "dataset": cfg["dataset"]["name"],
        "task": cfg["dataset"]["task"],
        "regularizer": reg["name"],
        "mode": reg.get("mode", "penalty"),
        "lambda": cfg["lambda"],
        **{k: v for k, v in reg.items() if k not in ("name", "mode")},
        "seed": cfg["seed"],
        "hidden": "-".join(map(str, hidden)),
        "architecture": "-".join(map(str, [n_in, *hidden, n_out])),
        "activation": cfg["model"]["activation"],
        "dropout": cfg["model"]["dropout"],
        "optimizer": cfg["optimizer"]["name"],
        "lr": cfg["optimizer"]["lr"],
        "epochs": cfg["trainer"]["epochs"],
        "batch_size": cfg["trainer"]["batch_size"],
        "drop_last": bool(cfg["trainer"].get("drop_last", False)),
        "threshold": cfg["threshold"],
    }
    return row


def run_metrics(
    model: nn.Module, data: Dataset, threshold: float
) -> tuple[dict, list[sparsity.LayerSparsity]]:
    """Evaluate ``model``, threshold it in place, evaluate again and measure its sparsity.

    Returns the metric columns of ``metrics.csv`` (``<split>_<metric>`` after and
    ``<split>_<metric>_dense`` before thresholding, sparsity, parameter counts) and the
    per-layer sparsity.
    """
    dense = {s: evaluate(model, data, s) for s in ("val", "test")}
    sparsity.threshold_(model, threshold)
    sparse = {s: evaluate(model, data, s) for s in ("val", "test")}
    names = ("accuracy",) if data.task == "classification" else ("r2", "rmse")
    row = {}
    for split in ("test", "val"):
        for name in names:
            row[f"{split}_{name}"] = sparse[split][name]
            row[f"{split}_{name}_dense"] = dense[split][name]
    layers = sparsity.neuron_sparsity(model)
    row["weight_sparsity"] = sparsity.weight_sparsity(model)
    for layer in layers:
        row[f"neuron_sparsity_{layer.layer}"] = layer.fraction
    row["params_total"] = sparsity.params_total(model)
    row["params_kept"] = sparsity.params_kept(model)
    return row, layers


@dataclass
class RunOutputs:
    """Everything a run writes, computed and held in memory (small and picklable).

    ``model`` is on the CPU (thresholded if ``row["status"] == "ok"``); ``layers`` is the
    per-layer table of ``sparsity.csv`` and ``features`` the arguments of
    :func:`regexp.run_plots.plot_features`: both are ``None`` unless the run is ok.
    """

    cfg: dict
    row: dict
    history: pd.DataFrame
    model: nn.Module
    layers: pd.DataFrame | None = None
    features: dict | None = None


def outputs(cfg: Mapping, model: nn.Module, data: Dataset, result: FitResult) -> RunOutputs:
    """Evaluate, threshold (in place), evaluate again and measure a trained run.

    A ``diverged`` run keeps its weights as they were (no thresholding) and reports every
    metric but ``params_total`` as NaN: its accuracy and sparsity say nothing about its
    regularizer (a huge proximal step zeroes every weight, which would look maximally
    sparse).
    """
    model = model.cpu()
    data = data.to("cpu")
    row = config_row(cfg, data.n_features, data.n_outputs)
    row |= {"status": result.status, "epochs_run": len(result.history)}
    ok = result.status == "ok"
    metrics, layers = run_metrics(model if ok else copy.deepcopy(model), data, cfg["threshold"])
    if not ok:
        metrics = {k: (v if k == "params_total" else math.nan) for k, v in metrics.items()}
    row |= metrics
    row["train_seconds"] = result.seconds
    out = RunOutputs(dict(cfg), row, result.history, model)
    if ok:
        out.layers = pd.DataFrame(
            [vars(layer) for layer in layers], columns=["layer", "units", "removed", "fraction"]
        )
        first = sparsity.linear_weights(model)[0].detach()
        out.features = {
            "alive": (~sparsity.dead_units([first])[0]).numpy(),
            "names": data.feature_names,
            "image_shape": data.image_shape,
            "importance": first.norm(dim=0).numpy(),
        }
    return out


def write(run_dir: Path, out: RunOutputs, summary: bool = False) -> dict:
    """Write every output file of a run into ``run_dir``; returns its metrics row.

    Every file is written atomically and ``metrics.csv`` last (an older one is removed
    first), so its presence marks a complete run. A run that is not ok gets
    ``history.csv``, ``learning_curves.png``, ``model.pt`` and ``metrics.csv`` only.
    ``summary``: print the metrics table.
    """
    _mark_incomplete(run_dir)
    write_csv(run_dir / "history.csv", out.history)
    save_checkpoint(run_dir / "model.pt", out.model, out.cfg, {"metrics": out.row})
    run_plots.plot_learning_curves(out.history, run_dir / "learning_curves.png")
    if out.layers is not None:
        write_csv(run_dir / "sparsity.csv", out.layers)
        run_plots.plot_sparsity(out.layers, run_dir / "sparsity.png")
    if out.features is not None:
        run_plots.plot_features(**out.features, path=run_dir / "features.png")
    write_csv(run_dir / "metrics.csv", pd.DataFrame([out.row]))
    if summary:
        console.print_summary(out.row, out.layers)
    return out.row


def finish(
    cfg: Mapping,
    run_dir: Path,
    model: nn.Module,
    data: Dataset,
    result: FitResult,
    summary: bool = False,
) -> dict:
    """:func:`outputs` then :func:`write`: returns the metrics row.

    An older ``metrics.csv`` in ``run_dir`` goes first, so a failure while evaluating
    leaves the directory without one (an incomplete run).
    """
    _mark_incomplete(run_dir)
    return write(run_dir, outputs(cfg, model, data, result), summary)


def _mark_incomplete(run_dir: Path) -> None:
    """Create ``run_dir`` without a ``metrics.csv`` (or a killed writer's temporaries)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.csv").unlink(missing_ok=True)
    remove_temporaries(run_dir, RUN_FILES)


def read_metrics(run_dir: Path) -> dict | None:
    """The metrics row of a complete run in ``run_dir``, or ``None`` if there is none."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    return pd.read_csv(path).iloc[0].to_dict()


def failed_row(cfg: Mapping, run_dir: Path, err: BaseException | str) -> dict:
    """Write the ``metrics.csv`` row of a job that raised ``err``: ``status=failed``.

    ``err`` is the exception, or its text already formatted as ``"Type: message"``.
    """
    try:
        row = config_row(cfg, 0, 0)
        row.pop("architecture")
    except (KeyError, TypeError):
        row = {}
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    row |= {"status": "failed", "error": text}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_csv(run_dir / "metrics.csv", pd.DataFrame([row]))
    return row
