"""One training run: config → data, model, regularizer → train → evaluate → write.

:func:`run` is what ``regexp train`` calls for each job. The pieces (:func:`fit`,
:func:`evaluate`, :func:`finish`) are public so that other engines (the batched
launcher) and notebooks can reuse them.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from regexp import report, sparsity
from regexp.config import (  # noqa: F401  (re-exported: train.MODES etc. are public API)
    DEVICES,
    MODES,
    OPTIMIZERS,
    build_regularizer,
    resolve_device,
    validate,
    validate_optimizer,
)
from regexp.data import Dataset, load_dataset
from regexp.models import mlp, save_checkpoint
from regexp.regularizers import Regularizer

log = logging.getLogger(__name__)

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


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch history, ``ok`` or ``diverged``, seconds."""

    history: pd.DataFrame
    status: str = "ok"
    seconds: float = 0.0
    notes: dict = field(default_factory=dict)


def make_optimizer(model: nn.Module, cfg: Mapping, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD from config group ``optimizer``.

    ``weight_decay`` applies to the ``nn.Linear`` weights only (never biases), like every
    other regularizer of regexp.
    """
    validate_optimizer(cfg)
    name, lr = cfg["name"], cfg["lr"]
    weights = set(map(id, sparsity.linear_weights(model)))
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if id(p) in weights], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) not in weights], "weight_decay": 0.0},
    ]
    # The fused kernels take one step for all parameters: about 3x faster for small MLPs.
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.get("momentum", 0.0), fused=True)
    kind = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return kind(groups, lr=lr, betas=tuple(cfg["betas"]), eps=cfg["eps"], fused=True)


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


def fit(
    model: nn.Module,
    data: Dataset,
    reg: Regularizer,
    mode: str,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    seed: int,
    patience: int | None = None,
    progress: bool = True,
) -> FitResult:
    """Minibatch training of ``model`` on ``data.x_train``.

    Each step minimizes ``data_loss + reg(model)`` (``mode="penalty"``) or takes the
    optimizer step on ``data_loss`` and then ``reg.prox_(model, lr)`` (``"proximal"``),
    which puts weights at exact zeros. Minibatches are index slices of a permutation
    drawn from a generator seeded with ``seed``. A non-finite loss stops training with
    status ``diverged``. With ``patience``, training stops when the validation loss has
    not improved for that many epochs and the best weights are restored.
    """
    n = len(data.y_train)
    lr = optimizer.param_groups[0]["lr"]
    gen = torch.Generator().manual_seed(seed)
    rows, status, best = [], "ok", (math.inf, None, 0)
    start = time.perf_counter()
    bar = report.progress(epochs, enabled=progress)
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=gen).to(data.x_train.device)
        total_data = torch.zeros((), device=data.x_train.device)
        steps = 0
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            loss = data_loss(model(data.x_train[idx]), data.y_train[idx], data.task)
            total_data += loss.detach()
            if mode == "penalty":
                loss = loss + reg(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if mode == "proximal":
                reg.prox_(model, lr)
            steps += 1
        d_loss = total_data.item() / steps
        with torch.no_grad():
            pen = float(reg(model))  # of the weights at the end of the epoch
        val = evaluate(model, data, "val")
        metric = "accuracy" if data.task == "classification" else "r2"
        rows.append(
            {
                "epoch": epoch,
                "train_loss": d_loss + pen,
                "data_loss": d_loss,
                "penalty": pen,
                "val_loss": val["loss"],
                f"val_{metric}": val[metric],
            }
        )
        bar.advance(f"loss {d_loss + pen:.4f} val {val['loss']:.4f}")
        if not (math.isfinite(d_loss + pen) and math.isfinite(val["loss"])):
            status = "diverged"
            log.warning("loss is not finite at epoch %d: run diverged, training stopped", epoch)
            break
        if patience is not None:
            if val["loss"] < best[0]:
                best = (val["loss"], copy.deepcopy(model.state_dict()), epoch)
            elif epoch - best[2] >= patience:
                log.info("early stopping at epoch %d (best epoch %d)", epoch, best[2])
                break
    bar.close()
    if patience is not None and best[1] is not None and status == "ok":
        model.load_state_dict(best[1])
    seconds = time.perf_counter() - start
    return FitResult(pd.DataFrame(rows), status, seconds, {"best_epoch": best[2]})


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


def finish(
    cfg: Mapping,
    run_dir: Path,
    model: nn.Module,
    data: Dataset,
    result: FitResult,
    summary: bool = False,
) -> dict:
    """Evaluate, threshold, evaluate again and write every output file of a run.

    Returns the metrics row. Every file is written atomically and ``metrics.csv`` last
    (an older one is removed first), so its presence marks a complete run.

    A ``diverged`` run keeps its weights as they were (no thresholding) and reports every
    metric but ``params_total`` as NaN: its accuracy and sparsity say nothing about its
    regularizer (a huge proximal step zeroes every weight, which would look maximally
    sparse). It writes ``history.csv``, ``learning_curves.png``, ``model.pt`` and
    ``metrics.csv``, but no sparsity table or figures.
    """
    model = model.cpu()
    data = data.to("cpu")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.csv").unlink(missing_ok=True)
    report.remove_temporaries(run_dir, RUN_FILES)
    row = config_row(cfg, data.n_features, data.n_outputs)
    row |= {"status": result.status, "epochs_run": len(result.history)}
    ok = result.status == "ok"
    metrics, layers = run_metrics(model if ok else copy.deepcopy(model), data, cfg["threshold"])
    if not ok:
        metrics = {k: (v if k == "params_total" else math.nan) for k, v in metrics.items()}
        layers = []
    row |= metrics
    row["train_seconds"] = result.seconds

    report.write_csv(run_dir / "history.csv", result.history)
    save_checkpoint(run_dir / "model.pt", model, dict(cfg), {"metrics": row})
    report.plot_learning_curves(result.history, run_dir / "learning_curves.png")
    sp = pd.DataFrame(
        [vars(layer) for layer in layers], columns=["layer", "units", "removed", "fraction"]
    )
    if ok:
        report.write_csv(run_dir / "sparsity.csv", sp)
        report.plot_sparsity(sp, run_dir / "sparsity.png")
        first = sparsity.linear_weights(model)[0].detach()
        report.plot_features(
            (~sparsity.dead_units([first])[0]).numpy(),
            data.feature_names,
            data.image_shape,
            run_dir / "features.png",
            importance=first.norm(dim=0).numpy(),
        )
    report.write_csv(run_dir / "metrics.csv", pd.DataFrame([row]))
    if summary:
        report.print_summary(row, sp)
    return row


def read_metrics(run_dir: Path) -> dict | None:
    """The metrics row of a complete run in ``run_dir``, or ``None`` if there is none."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    return pd.read_csv(path).iloc[0].to_dict()


def failed_row(cfg: Mapping, run_dir: Path, err: BaseException) -> dict:
    """Write the ``metrics.csv`` row of a job that raised ``err``: ``status=failed``."""
    try:
        row = config_row(cfg, 0, 0)
        row.pop("architecture")
    except (KeyError, TypeError):
        row = {}
    row |= {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    run_dir.mkdir(parents=True, exist_ok=True)
    report.write_csv(run_dir / "metrics.csv", pd.DataFrame([row]))
    return row


def objective(row: Mapping) -> float:
    """The validation metric a sweeper maximizes: accuracy, or R² for regression."""
    value = row.get("val_accuracy", row.get("val_r2", float("nan")))
    return float(value) if row.get("status") == "ok" else float("nan")


@dataclass
class Setup:
    """Everything :func:`fit` needs for one configuration, built by :func:`prepare`."""

    data: Dataset
    model: nn.Module
    reg: Regularizer
    mode: str
    optimizer: torch.optim.Optimizer
    patience: int | None
    device: torch.device


def prepare(cfg: Mapping, data: Dataset | None = None) -> Setup:
    """Validate ``cfg`` and build its data, seeded model, regularizer and optimizer.

    ``data`` (already on the right device) skips loading when the caller has it. The model
    is built right after ``torch.manual_seed(cfg["seed"])``, so the global RNG state on
    return is the one that draws the run's dropout masks.
    """
    validate(cfg)
    tr, lam = cfg["trainer"], cfg["lambda"]
    patience = tr.get("early_stopping_patience")
    device = resolve_device(tr["device"])
    torch.set_num_threads(tr.get("num_threads", 1))

    reg, mode = build_regularizer(cfg["regularizer"], lam)
    if data is None:
        data = load_dataset(**cfg["dataset"]).to(device)
    torch.manual_seed(cfg["seed"])
    m = cfg["model"]
    model = mlp(
        data.n_features,
        list(m["hidden"]),
        data.n_outputs,
        m["activation"],
        m["dropout"],
        m.get("init", "default"),
    ).to(device)
    opt = make_optimizer(model, cfg["optimizer"], getattr(reg, "weight_decay", 0.0))
    return Setup(data, model, reg, mode, opt, patience, device)


def fit_setup(cfg: Mapping, s: Setup, progress: bool = False) -> FitResult:
    """:func:`fit` the model of ``s = prepare(cfg)`` with ``cfg``'s trainer settings."""
    tr = cfg["trainer"]
    return fit(
        s.model,
        s.data,
        s.reg,
        s.mode,
        s.optimizer,
        tr["epochs"],
        tr["batch_size"],
        cfg["seed"],
        s.patience,
        progress,
    )


def run(cfg: Mapping, run_dir: Path, summary: bool = True) -> dict:
    """Train and evaluate one configuration; write its outputs into ``run_dir``.

    ``summary``: print the metrics table at the end (a sweep's jobs leave it out).
    """
    s = prepare(cfg)
    m = cfg["model"]
    log.info(
        "training %s with %r (%s mode)",
        "-".join(map(str, [s.data.n_features, *m["hidden"], s.data.n_outputs])),
        s.reg,
        s.mode,
    )
    result = fit_setup(cfg, s, progress=sys.stderr.isatty())
    return finish(cfg, run_dir, s.model, s.data, result, summary=summary)
