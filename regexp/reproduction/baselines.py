"""Baselines for the reproduction: magnitude pruning of dense networks, the same fine-tuning
of the SGL networks, and LassoNet (its path, and its selections refitted).

``python -m regexp.reproduction.baselines [SWEEPS]`` reads the runs under ``SWEEPS``
(default ``outputs/reproduce``) and writes ``SWEEPS/baselines/pruning.csv``,
``finetuned.csv`` and ``lassonet.csv``, which :mod:`regexp.reproduction.reproduce` reads (a
table that exists already is kept unless ``--force``).

Magnitude pruning (:func:`prune_`): after training, in each ``nn.Linear`` layer keep the
``k`` input units of largest score and set the others' outgoing weights to 0 (a unit with
no outgoing weight is removed, as everywhere in regexp). Two scores of input unit ``j``:
``norm`` = ‖W[:, j]‖₂ (as ``torch.nn.utils.prune.ln_structured(layer, "weight", amount,
n=2, dim=1)``), and ``norm·std`` = ‖W[:, j]‖₂ · std(x_j) over the training rows for the
input layer (a weight's effect scales with its input's spread; hidden layers keep the
norm score). The scores are computed here rather than by ``ln_structured`` itself because
``ln_structured`` scores a column by the weight alone, so it cannot take the input layer's
``norm·std`` score (one function, :func:`keep_columns`, serves both), it breaks ties in
``torch.topk``'s unspecified order where :func:`keep_columns` keeps the lower index, and it
leaves a ``weight_orig``/``weight_mask`` reparametrization and a forward hook on the
layer that would have to be removed before saving and fine-tuning; for the ``norm`` score
the two masks agree (``tests/test_reproduce.py``). Two schedules: ``all`` keeps
``round(q·units)`` units of every layer (inputs and hidden), ``inputs`` only prunes the
input features. With fine-tuning
(:func:`fine_tune_`), the pruned network then trains on the data loss for
:data:`FINETUNE_EPOCHS` epochs with the pruned weights held at 0; the penalty-mode SGL
networks get the same fine-tuning (:func:`finetune_front`), so that both sides have the
same budget.

LassoNet (Lemhadri et al. 2021, the ``lassonet`` package) selects input features along
its own λ path, with the package's defaults (path multiplier
:data:`LASSONET_PATH_MULTIPLIER`). Two readings: each network of the path, scored on the
validation and test rows; and the refit protocol of the paper: the inputs selected at a
point of the path, retrained with this project's MLP and training budget
(:func:`refit`).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from regexp.core import sparsity
from regexp.core.regularizers import NoRegularizer
from regexp.data.prepare import Dataset
from regexp.io.atomic import write_csv
from regexp.model.mlp import load_checkpoint, mlp
from regexp.reproduction import runs as runlib
from regexp.reproduction.protocol import SplitCache
from regexp.train.autograd import AutogradStep
from regexp.train.evaluate import evaluate
from regexp.train.step import train

log = logging.getLogger(__name__)

FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
SCHEDULES = ("all", "inputs")
CRITERIA = ("norm", "norm·std")
FINETUNE_EPOCHS = 100
LASSONET_PATH_MULTIPLIER = 1.02  # the lassonet package's default
# Fractions of the inputs at which LassoNet's selection is refitted: the path point nearest
# round(q·inputs) for each q (digits: 56, 48, 40, 32, 24, 16 and 6 of 64).
REFIT_FRACTIONS = (0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.1)
PRUNING_FILE, LASSONET_FILE, FINETUNED_FILE = "pruning.csv", "lassonet.csv", "finetuned.csv"


def keep_columns(w: Tensor, k: int, scale: Tensor | None = None) -> Tensor:
    """Bool mask ``[in]``: the ``k`` columns of ``w [out, in]`` with the largest score
    ``‖w[:, j]‖₂ · scale_j`` (``scale`` 1 when ``None``; equal scores: the lower index
    first)."""
    if not 0 <= k <= w.shape[1]:
        raise ValueError(f"k must be in [0, {w.shape[1]}], got {k}")
    norms = w.detach().double().norm(dim=0)
    if scale is not None:
        norms = norms * scale.double()
    mask = torch.zeros(w.shape[1], dtype=torch.bool)
    mask[np.argsort(-norms.numpy(), kind="stable")[:k]] = True
    return mask


@torch.no_grad()
def prune_(
    model: nn.Module, keep: Sequence[int], input_scale: Tensor | None = None
) -> list[Tensor]:
    """In place: layer ``i`` keeps the outgoing weights of its ``keep[i]`` input units of
    largest score (:func:`keep_columns`; the input layer's norms times ``input_scale`` when
    given) and zeroes the rest. Returns the masks."""
    weights = sparsity.linear_weights(model)
    if len(keep) != len(weights):
        raise ValueError(f"keep needs one count per layer ({len(weights)}), got {len(keep)}")
    scales = [input_scale, *[None] * (len(weights) - 1)]
    masks = [keep_columns(w, k, c) for w, k, c in zip(weights, keep, scales, strict=True)]
    for w, m in zip(weights, masks, strict=True):
        w.mul_(m.to(w.dtype))
    return masks


def schedule_counts(units: Sequence[int], fraction: float, schedule: str) -> list[int]:
    """Units kept per layer: ``round(fraction·units)`` in every layer (``all``) or in the
    input layer only (``inputs``), at least 1."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    keep = [max(1, round(fraction * u)) for u in units]
    return keep if schedule == "all" else [keep[0], *units[1:]]


def fine_tune_(
    model: nn.Module,
    masks: Sequence[Tensor],
    data: Dataset,
    epochs: int,
    opt_cfg: Mapping,
    batch_size: int,
    seed: int,
    drop_last: bool,
) -> None:
    """Adam on the data loss (as in training: :func:`regexp.train.step.train`, minibatches
    of a seeded permutation), with each layer's pruned columns set back to 0 after every
    step (the projection of :class:`regexp.train.autograd.AutogradStep`)."""
    opt = torch.optim.Adam(
        model.parameters(), lr=opt_cfg["lr"], betas=tuple(opt_cfg["betas"]), eps=opt_cfg["eps"]
    )
    weights = sparsity.linear_weights(model)

    def keep_pruned() -> None:
        for w, m in zip(weights, masks, strict=True):
            w.mul_(m.to(w.dtype))

    step = AutogradStep(model, data, NoRegularizer(), "penalty", opt, project=keep_pruned)
    n = len(data.y_train)
    train(
        step, [seed], n, data.x_train.device, data.task, epochs, batch_size, None, None, drop_last
    )
    model.eval()


def measure(model: nn.Module, data: Dataset, threshold: float) -> dict:
    """Validation and test accuracy, kept units/parameters and the kept inputs (indices,
    space-separated) after the protocol's threshold."""
    sparsity.threshold_(model, threshold)
    layers = sparsity.neuron_sparsity(model)
    alive = (sparsity.linear_weights(model)[0].detach() != 0).any(dim=0)
    return {
        "val_accuracy": evaluate(model, data, "val")["accuracy"],
        "test_accuracy": evaluate(model, data, "test")["accuracy"],
        "kept_input": layers[0].units - layers[0].removed,
        "kept_hidden": sum(s.units - s.removed for s in layers[1:]),
        "params_kept": sparsity.params_kept(model),
        "inputs": " ".join(map(str, np.flatnonzero(alive.numpy()).tolist())),
    }


def _fine_tuned(model: nn.Module, masks, data: Dataset, cfg: Mapping, epochs: int) -> None:
    tr = cfg["trainer"]
    fine_tune_(
        model,
        masks,
        data,
        epochs,
        cfg["optimizer"],
        tr["batch_size"],
        cfg["seed"],
        bool(tr.get("drop_last", False)),
    )


def pruning_front(
    run_dirs: Sequence[Path],
    fractions: Sequence[float] = FRACTIONS,
    finetune_epochs: int = FINETUNE_EPOCHS,
    splits: SplitCache | None = None,
) -> pd.DataFrame:
    """Every dense run of ``run_dirs`` pruned at each fraction, schedule and criterion
    (:data:`CRITERIA`), with and without fine-tuning: one row per (seed, schedule,
    criterion, fraction, finetune), with the run's data set."""
    splits = splits or SplitCache()
    rows = []
    for run_dir in run_dirs:
        _, cfg = load_checkpoint(Path(run_dir) / "model.pt")
        data = splits.get(cfg["dataset"])
        std = data.x_train.double().std(dim=0)
        for schedule in SCHEDULES:
            for criterion in CRITERIA:
                for q in fractions:
                    for ft in (False, True):
                        model, _ = load_checkpoint(Path(run_dir) / "model.pt")
                        units = [w.shape[1] for w in sparsity.linear_weights(model)]
                        scale = std if criterion == "norm·std" else None
                        masks = prune_(model, schedule_counts(units, q, schedule), scale)
                        if ft:
                            _fine_tuned(model, masks, data, cfg, finetune_epochs)
                        rows.append(
                            {
                                "dataset": cfg["dataset"]["name"],
                                "seed": cfg["seed"],
                                "schedule": schedule,
                                "criterion": criterion,
                                "fraction": q,
                                "finetune_epochs": finetune_epochs if ft else 0,
                                **measure(model, data, cfg["threshold"]),
                            }
                        )
    return pd.DataFrame(rows)


def finetune_front(
    run_dirs: Sequence[Path],
    finetune_epochs: int = FINETUNE_EPOCHS,
    splits: SplitCache | None = None,
) -> pd.DataFrame:
    """Each run of ``run_dirs`` (thresholded, as saved) fine-tuned as pruning is
    (:func:`fine_tune_`, its zero columns held at 0): one row per run, with its
    ``regularizer``, ``lambda`` and seed."""
    splits = splits or SplitCache()
    rows = []
    for run_dir in run_dirs:
        model, cfg = load_checkpoint(Path(run_dir) / "model.pt")
        data = splits.get(cfg["dataset"])
        masks = [(w != 0).any(dim=0) for w in sparsity.linear_weights(model)]
        _fine_tuned(model, masks, data, cfg, finetune_epochs)
        rows.append(
            {
                "dataset": cfg["dataset"]["name"],
                "seed": cfg["seed"],
                "regularizer": cfg["regularizer"]["name"],
                "lambda": float(cfg["lambda"]),
                "finetune_epochs": finetune_epochs,
                **measure(model, data, cfg["threshold"]),
            }
        )
    return pd.DataFrame(rows)


def lassonet_path(
    cfg: Mapping, data: Dataset, path_multiplier: float = LASSONET_PATH_MULTIPLIER
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """LassoNet's λ path on ``data`` (its validation rows for LassoNet's early stopping),
    hidden layers of ``cfg``'s model, seeded with ``cfg``'s seed, the package's other
    defaults; one row per point (validation and test accuracy of the path's network, and
    the epochs it trained), and each point's selected inputs.

    Raises ``ImportError`` if the ``lassonet`` package is not installed.
    """
    from lassonet import LassoNetClassifier

    start = time.perf_counter()
    seed = int(cfg["seed"])
    model = LassoNetClassifier(
        hidden_dims=tuple(cfg["model"]["hidden"]),
        path_multiplier=path_multiplier,
        torch_seed=seed,
        random_state=seed,
        verbose=0,
    )
    xv, yv = data.x_val.numpy(), data.y_val.numpy()
    path = model.path(
        data.x_train.numpy(), data.y_train.numpy(), X_val=xv, y_val=yv, return_state_dicts=True
    )
    seconds = time.perf_counter() - start
    x_test, y_test = data.x_test.numpy(), data.y_test.numpy()
    rows, selected = [], []
    for item in path:
        model.load(item.state_dict)
        sel = item.selected.cpu().numpy().astype(bool)
        selected.append(sel)
        rows.append(
            {
                "dataset": cfg["dataset"]["name"],
                "seed": seed,
                "reading": "path",
                "lambda": item.lambda_,
                "kept_input": int(sel.sum()),
                "val_accuracy": float((model.predict(xv) == yv).mean()),
                "test_accuracy": float((model.predict(x_test) == y_test).mean()),
                "epochs": int(getattr(item, "n_iters", 0) or 0),
                "path_seconds": seconds,
                "inputs": " ".join(map(str, np.flatnonzero(sel).tolist())),
            }
        )
    return pd.DataFrame(rows), selected


def refit(cfg: Mapping, data: Dataset, selected: np.ndarray) -> dict:
    """The protocol's MLP (``cfg``'s architecture, initialisation, optimizer, epochs, batch
    and seed) trained on the ``selected`` inputs only: the other inputs' weights start and
    stay at 0 (:func:`fine_tune_` with the input mask). Validation and test accuracy after
    the protocol's threshold, and the kept counts."""
    m, tr = cfg["model"], cfg["trainer"]
    torch.manual_seed(int(cfg["seed"]))
    model = mlp(data.n_features, list(m["hidden"]), data.n_outputs, m["activation"], 0.0, m["init"])
    weights = sparsity.linear_weights(model)
    masks = [torch.from_numpy(np.asarray(selected, bool))]
    masks += [torch.ones(w.shape[1], dtype=torch.bool) for w in weights[1:]]
    with torch.no_grad():
        weights[0].mul_(masks[0].to(weights[0].dtype))
    _fine_tuned(model, masks, data, cfg, int(tr["epochs"]))
    return measure(model, data, cfg["threshold"])


def lassonet_rows(cfg: Mapping, data: Dataset, path_multiplier: float) -> pd.DataFrame:
    """:func:`lassonet_path`, then :func:`refit` of the selection at the path point nearest
    ``round(q·inputs)`` inputs for each ``q`` of :data:`REFIT_FRACTIONS` (each distinct
    point once)."""
    path, selected = lassonet_path(cfg, data, path_multiplier)
    counts = path["kept_input"].to_numpy()
    targets = [round(q * data.n_features) for q in REFIT_FRACTIONS]
    picks = dict.fromkeys(int(np.argmin(np.abs(counts - k))) for k in targets)
    rows = []
    for i in picks:
        start = time.perf_counter()
        row = refit(cfg, data, selected[i])
        rows.append(
            {
                "dataset": cfg["dataset"]["name"],
                "seed": int(cfg["seed"]),
                "reading": "refit",
                "lambda": path["lambda"].iloc[i],
                **row,
                "epochs": int(cfg["trainer"]["epochs"]),
                "path_seconds": time.perf_counter() - start,
            }
        )
    return pd.concat([path, pd.DataFrame(rows)], ignore_index=True)


def _pruning_job(run_dir: Path, finetune_epochs: int) -> pd.DataFrame:
    torch.set_num_threads(1)  # a worker process per core: one thread each
    return pruning_front([run_dir], FRACTIONS, finetune_epochs)


def _finetune_job(run_dirs: Sequence[Path], finetune_epochs: int) -> pd.DataFrame:
    torch.set_num_threads(1)
    return finetune_front(run_dirs, finetune_epochs)


def _lassonet_job(run_dir: Path, path_multiplier: float) -> pd.DataFrame:
    torch.set_num_threads(1)
    _, cfg = load_checkpoint(Path(run_dir) / "model.pt")
    return lassonet_rows(cfg, SplitCache().get(cfg["dataset"]), path_multiplier)


def _runs(root: Path) -> pd.DataFrame:
    runs, _, _ = runlib.dedupe(runlib.read_runs(root))
    return runs[runs["status"] == "ok"]


def dense_runs(root: Path, dataset: str | None = None) -> list[Path]:
    """The ok runs of regularizer ``none`` under ``root`` (of ``dataset`` if given), one
    per configuration."""
    runs = _runs(root)
    ok = runs[runs["regularizer"] == "none"]
    if dataset is not None:
        ok = ok[ok["dataset"] == dataset]
    if ok.empty:
        raise ValueError(f"no finished run with regularizer=none under '{root}'")
    return list(ok.sort_values("seed")["run_dir"])


def sgl_runs(root: Path, dataset: str = "digits") -> list[Path]:
    """The ok penalty-mode SGL runs (every layer penalized) of ``dataset`` under ``root``."""
    runs = _runs(root)
    every_layer = runs.get("regularizer.params", pd.Series(index=runs.index)).isna()
    sel = runs[
        (runs["regularizer"] == "sgl")
        & (runs["mode"] == "penalty")
        & (runs["dataset"] == dataset)
        & (runs["optimizer"] == "adam")
        & every_layer
    ]
    return list(sel.sort_values(["seed", "lambda"])["run_dir"])


def write_baselines(
    root: Path,
    finetune_epochs: int = FINETUNE_EPOCHS,
    lassonet: bool = True,
    n_jobs: int = -1,
    path_multiplier: float = LASSONET_PATH_MULTIPLIER,
    force: bool = True,
) -> Path:
    """Write ``root/baselines/pruning.csv``, ``finetuned.csv`` and (if ``lassonet``)
    ``lassonet.csv``: every data set's unregularized runs pruned, and LassoNet's path and
    refit on every data set's split of each seed.

    Without ``force``, a table that exists already is kept (delete it to recompute).
    """
    from joblib import Parallel, delayed

    dirs = dense_runs(root)
    out = Path(root) / "baselines"
    out.mkdir(parents=True, exist_ok=True)
    if force or not (out / PRUNING_FILE).is_file():
        start = time.perf_counter()
        prune = Parallel(n_jobs=n_jobs)(delayed(_pruning_job)(d, finetune_epochs) for d in dirs)
        write_csv(out / PRUNING_FILE, pd.concat(prune, ignore_index=True))
        log.info("pruned %d dense runs: %.0f s", len(dirs), time.perf_counter() - start)
    else:
        log.info("%s exists: kept (delete it to recompute)", out / PRUNING_FILE)
    sgl = sgl_runs(root)
    if sgl and (force or not (out / FINETUNED_FILE).is_file()):
        start = time.perf_counter()
        chunks = [sgl[i::2] for i in range(2)]
        tuned = Parallel(n_jobs=n_jobs)(
            delayed(_finetune_job)(c, finetune_epochs) for c in chunks if c
        )
        write_csv(out / FINETUNED_FILE, pd.concat(tuned, ignore_index=True))
        log.info("fine-tuned %d SGL runs: %.0f s", len(sgl), time.perf_counter() - start)
    if not lassonet:
        return out
    if not force and (out / LASSONET_FILE).is_file():
        log.info("%s exists: kept (delete it to recompute)", out / LASSONET_FILE)
        return out
    try:
        import lassonet as _  # noqa: F401
    except ImportError:
        log.warning("lassonet is not installed (pip install lassonet): LassoNet not run")
        return out
    start = time.perf_counter()
    paths = Parallel(n_jobs=n_jobs)(delayed(_lassonet_job)(d, path_multiplier) for d in dirs)
    write_csv(out / LASSONET_FILE, pd.concat(paths, ignore_index=True))
    log.info("LassoNet paths of %d seeds: %.0f s", len(dirs), time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m regexp.reproduction.baselines [SWEEPS] [--finetune-epochs N]
    [--no-lassonet]``."""
    parser = argparse.ArgumentParser(
        prog="python -m regexp.reproduction.baselines", description=__doc__
    )
    parser.add_argument("sweeps", nargs="?", default=Path("outputs/reproduce"), type=Path)
    parser.add_argument("--finetune-epochs", type=int, default=FINETUNE_EPOCHS)
    parser.add_argument("--no-lassonet", action="store_true", help="skip LassoNet")
    parser.add_argument("--n-jobs", type=int, default=-1, help="worker processes (-1: all cores)")
    parser.add_argument("--force", action="store_true", help="recompute tables that exist already")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.finetune_epochs < 1:
        parser.exit(2, f"error: --finetune-epochs must be >= 1, got {args.finetune_epochs}\n")
    try:
        out = write_baselines(
            args.sweeps,
            args.finetune_epochs,
            not args.no_lassonet,
            args.n_jobs,
            force=args.force,
        )
    except ValueError as err:
        parser.exit(2, f"regexp.reproduction.baselines: error: {err}\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
