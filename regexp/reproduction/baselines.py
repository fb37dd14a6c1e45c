"""Baselines for the reproduction: magnitude pruning of dense networks, and LassoNet.

``python -m regexp.reproduction.baselines [SWEEPS]`` reads the unregularized (``none``) runs under
``SWEEPS`` (default ``outputs/reproduce``) and writes ``SWEEPS/baselines/pruning.csv`` and
``SWEEPS/baselines/lassonet.csv``, which :mod:`regexp.reproduction.reproduce` reads (a table that
exists already is kept unless ``--force``).

Magnitude pruning (:func:`prune_`): after training, in each ``nn.Linear`` layer keep the
``k`` input units whose outgoing weights ``W[:, j]`` have the largest L2 norm and set the
others' outgoing weights to 0 (a unit with no outgoing weight is removed, as everywhere in
regexp; the same as ``torch.nn.utils.prune.ln_structured(layer, "weight", amount, n=2,
dim=1)``). Two schedules: ``all`` keeps ``round(q·units)`` units of every layer (inputs
and hidden), ``inputs`` only prunes the input features. With fine-tuning
(:func:`fine_tune_`), the pruned network then trains on the data loss for a few epochs with
the pruned weights held at 0.

LassoNet (Lemhadri et al. 2021, the ``lassonet`` package, ``pip install lassonet``) selects
input features along its own λ path; each point of the path is scored on the test rows.
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
from regexp.model.mlp import load_checkpoint
from regexp.reproduction import runs as runlib
from regexp.reproduction.protocol import SplitCache
from regexp.train.autograd import AutogradStep
from regexp.train.evaluate import evaluate
from regexp.train.step import train

log = logging.getLogger(__name__)

FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
SCHEDULES = ("all", "inputs")
FINETUNE_EPOCHS = 100
LASSONET_PATH_MULTIPLIER = 1.05
PRUNING_FILE, LASSONET_FILE = "pruning.csv", "lassonet.csv"


def keep_columns(w: Tensor, k: int) -> Tensor:
    """Bool mask ``[in]``: the ``k`` columns of ``w [out, in]`` with the largest L2 norm
    (equal norms: the lower index first)."""
    if not 0 <= k <= w.shape[1]:
        raise ValueError(f"k must be in [0, {w.shape[1]}], got {k}")
    norms = w.detach().double().norm(dim=0).numpy()
    mask = torch.zeros(w.shape[1], dtype=torch.bool)
    mask[np.argsort(-norms, kind="stable")[:k]] = True
    return mask


@torch.no_grad()
def prune_(model: nn.Module, keep: Sequence[int]) -> list[Tensor]:
    """In place: layer ``i`` keeps the outgoing weights of its ``keep[i]`` input units of
    largest L2 norm (:func:`keep_columns`) and zeroes the rest. Returns the masks."""
    weights = sparsity.linear_weights(model)
    if len(keep) != len(weights):
        raise ValueError(f"keep needs one count per layer ({len(weights)}), got {len(keep)}")
    masks = [keep_columns(w, k) for w, k in zip(weights, keep, strict=True)]
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
    """Test accuracy and kept units/parameters after the protocol's threshold."""
    sparsity.threshold_(model, threshold)
    layers = sparsity.neuron_sparsity(model)
    return {
        "test_accuracy": evaluate(model, data, "test")["accuracy"],
        "kept_input": layers[0].units - layers[0].removed,
        "kept_hidden": sum(s.units - s.removed for s in layers[1:]),
        "params_kept": sparsity.params_kept(model),
    }


def pruning_front(
    run_dirs: Sequence[Path],
    fractions: Sequence[float] = FRACTIONS,
    finetune_epochs: int = FINETUNE_EPOCHS,
    splits: SplitCache | None = None,
) -> pd.DataFrame:
    """Every dense run of ``run_dirs`` pruned at each fraction and schedule, with and without
    fine-tuning: one row per (seed, schedule, fraction, finetune)."""
    splits = splits or SplitCache()
    rows = []
    for run_dir in run_dirs:
        _, cfg = load_checkpoint(Path(run_dir) / "model.pt")
        data = splits.get(cfg["dataset"])
        tr = cfg["trainer"]
        for schedule in SCHEDULES:
            for q in fractions:
                for ft in (False, True):
                    model, _ = load_checkpoint(Path(run_dir) / "model.pt")
                    units = [w.shape[1] for w in sparsity.linear_weights(model)]
                    masks = prune_(model, schedule_counts(units, q, schedule))
                    if ft:
                        fine_tune_(
                            model,
                            masks,
                            data,
                            finetune_epochs,
                            cfg["optimizer"],
                            tr["batch_size"],
                            cfg["seed"],
                            bool(tr.get("drop_last", False)),
                        )
                    rows.append(
                        {
                            "seed": cfg["seed"],
                            "schedule": schedule,
                            "fraction": q,
                            "finetune_epochs": finetune_epochs if ft else 0,
                            **measure(model, data, cfg["threshold"]),
                        }
                    )
    return pd.DataFrame(rows)


def lassonet_path(
    cfg: Mapping, data: Dataset, path_multiplier: float = LASSONET_PATH_MULTIPLIER
) -> pd.DataFrame:
    """LassoNet's λ path on ``data`` (its validation rows for LassoNet's early stopping),
    hidden layers of ``cfg``'s model, seeded with ``cfg``'s seed; one row per point.

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
    rows = []
    for item in path:
        model.load(item.state_dict)
        acc = float((model.predict(x_test) == y_test).mean())
        rows.append(
            {
                "seed": seed,
                "lambda": item.lambda_,
                "kept_input": int(item.selected.sum()),
                "test_accuracy": acc,
                "path_seconds": seconds,
            }
        )
    return pd.DataFrame(rows)


def _pruning_job(run_dir: Path, finetune_epochs: int) -> pd.DataFrame:
    torch.set_num_threads(1)  # a worker process per core: one thread each
    return pruning_front([run_dir], FRACTIONS, finetune_epochs)


def _lassonet_job(run_dir: Path, path_multiplier: float) -> pd.DataFrame:
    torch.set_num_threads(1)
    _, cfg = load_checkpoint(Path(run_dir) / "model.pt")
    return lassonet_path(cfg, SplitCache().get(cfg["dataset"]), path_multiplier)


def dense_runs(root: Path) -> list[Path]:
    """The ok runs of regularizer ``none`` under ``root``, one per configuration."""
    runs, _, _ = runlib.dedupe(runlib.read_runs(root))
    ok = runs[(runs["regularizer"] == "none") & (runs["status"] == "ok")]
    if ok.empty:
        raise ValueError(f"no finished run with regularizer=none under '{root}'")
    return list(ok.sort_values("seed")["run_dir"])


def write_baselines(
    root: Path,
    finetune_epochs: int = FINETUNE_EPOCHS,
    lassonet: bool = True,
    n_jobs: int = -1,
    path_multiplier: float = LASSONET_PATH_MULTIPLIER,
    force: bool = True,
) -> Path:
    """Write ``root/baselines/pruning.csv`` and (if ``lassonet``) ``lassonet.csv``.

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
