"""A run's results: its metrics row, per-layer sparsity and the files that hold them.

:func:`measure` evaluates a trained model, thresholds it and measures its sparsity (all in
memory); :func:`write` writes the run directory. The batched launcher computes the
outputs of a stack's jobs in its own process and, in large sweeps, writes them in worker
processes.
"""

from __future__ import annotations

import copy
import io
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import Tensor, nn

from regexp.core import sparsity
from regexp.core.regularizers import option_names
from regexp.data.prepare import Dataset
from regexp.errors import fault_point, one_line
from regexp.io.atomic import remove_temporaries, save_checkpoint, write_csv, write_text
from regexp.plots import run as run_plots
from regexp.results import schema, selection
from regexp.results.identity import config_id, data_id, flatten
from regexp.runs import compression, console, trackers
from regexp.train.build import resolve_prox_metric
from regexp.train.evaluate import evaluate
from regexp.train.loop import FitResult

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
# In every run folder: "a regexp run wrote here" (regexp.runs.sweep_dir.open_run). A folder
# holding anything but the names of OWNED is not a run's, and no run writes into it.
MARKER = ".regexp-run"
# Every name a run creates in its folder: its files, the marker, Hydra's config and log
# (train.log; train.previous.log when a resumed run took an earlier one over), TensorBoard's
# event files. Setting an earlier run aside moves these and nothing else.
OWNED = (
    *RUN_FILES,
    MARKER,
    ".hydra",
    "train.log",
    "train.previous.log",
    "tensorboard",
    compression.COMPRESSED_FILE,  # with compress=true, or `regexp compress`
    compression.COMPRESSION_FILE,
)


def is_owned(name: str) -> bool:
    """Whether ``name`` is a run's own (:data:`OWNED`), or a temporary of one of those
    (``.<name>.<pid>.tmp``, left by a killed writer)."""
    if name in OWNED:
        return True
    parts = name.split(".")
    return (
        len(parts) >= 4
        and name.startswith(".")
        and parts[-1] == "tmp"
        and (".".join(parts[1:-2]) in OWNED)
    )


def mark_run(run_dir: Path) -> None:
    """Create ``run_dir`` (if needed) with its :data:`MARKER` file: the pid and time of the
    process that writes the run."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / MARKER).is_file():
        write_text(run_dir / MARKER, f"regexp run; pid {os.getpid()}; {time.time()}\n")


def short_columns(
    cfg: Mapping, n_in: int = 0, n_out: int = 0, image: Sequence[int] | None = None
) -> dict:
    """The short, readable config columns of ``metrics.csv`` (:data:`schema.SHORT`, and
    one per option of the regularizer's class that the config sets: ``l1_ratio``, ``p``,
    :func:`regexp.core.regularizers.option_names`).

    ``prox_metric`` is the step's metric as resolved for the optimizer (``identity`` or
    ``adaptive``, for proximal mode); ``architecture`` needs the data's ``n_in``/``n_out``
    and is left out when they are 0. A conv net (``model=cnn``) lists its conv layers as
    ``c<channels>`` in ``hidden`` and ``architecture``, whose input is the image's
    ``CxHxW`` (``image``), e.g. ``1x8x8-c8-c16-10``: each part is the units or channels
    that a layer reads.
    """
    reg, opt = cfg["regularizer"], cfg["optimizer"]
    hidden: list = list(cfg["model"].get("hidden", []))
    if cfg["model"].get("name") == "cnn":
        hidden = [f"c{c}" for c in cfg["model"]["channels"]] + hidden
        if image is not None:
            n_in = "x".join(map(str, image))  # type: ignore[assignment]
    mode = reg.get("mode", "penalty")
    row = {
        "dataset": cfg["dataset"]["name"],
        "task": cfg["dataset"]["task"],
        "regularizer": reg["name"],
        "mode": mode,
        "lambda": cfg["lambda"],
        **{k: reg[k] for k in option_names(reg["name"]) if k in reg},
        "seed": cfg["seed"],
        "hidden": "-".join(map(str, hidden)),
        "architecture": "-".join(map(str, [n_in, *hidden, n_out])),
        "activation": cfg["model"]["activation"],
        "dropout": cfg["model"]["dropout"],
        "optimizer": opt["name"],
        "lr": opt["lr"],
        "epochs": cfg["trainer"]["epochs"],
        "batch_size": cfg["trainer"]["batch_size"],
        "drop_last": bool(cfg["trainer"].get("drop_last", False)),
        "threshold": cfg["threshold"],
    }
    if mode == "proximal":
        row["prox_metric"] = resolve_prox_metric(reg, opt["name"])
    if not n_in:
        del row["architecture"]
    return row


def config_row(
    cfg: Mapping,
    n_in: int = 0,
    n_out: int = 0,
    image: Sequence[int] | None = None,
    data: str | None = None,
) -> dict:
    """Every config column of ``metrics.csv``: the short ones, ``config_id``, ``data_id``,
    then every key of the resolved config, flattened (:func:`regexp.results.identity.flatten`).

    ``data``: the ``data_id`` of the bytes the run read (``Dataset.data_id``); without it,
    that of the data as it is now, empty when the data cannot be read (a job that failed
    on it).
    """
    try:
        data = data or data_id(cfg["dataset"])
    except (KeyError, OSError, TypeError, ValueError):
        data = None
    ids = {"config_id": config_id(cfg), "data_id": data}
    return short_columns(cfg, n_in, n_out, image) | ids | flatten(cfg)


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

    ``model`` is on the CPU (thresholded if ``row["status"] == "ok"``) and ``raw`` its
    state dict before thresholding (saved in ``model.pt`` as ``raw_state_dict``); ``layers`` is the
    per-layer table of ``sparsity.csv`` and ``features`` the arguments of
    :func:`regexp.plots.run.plot_features`: both are ``None`` unless the run is ok.
    """

    cfg: dict
    row: dict
    history: pd.DataFrame
    model: nn.Module
    layers: pd.DataFrame | None = None
    features: dict | None = None
    # A conv net's channel layers: name → each channel's group L2 norm (channels.png).
    channels: dict | None = None
    # [channels, height, width] of an image data set, for rebuilding a conv net from model.pt.
    input_shape: list[int] | None = None
    # The inputs' names as trained on (the data's columns), kept in model.pt for regexp plot.
    feature_names: list[str] | None = None
    raw: dict | None = None


def channel_norms(model: nn.Module) -> dict | None:
    """Per layer whose units are channels (conv layers' inputs, and the linear head's
    inputs grouped per channel): the L2 norm of each channel's group; ``None`` for an MLP."""
    names = sparsity.unit_names(model)
    out = {}
    for name, w, g in zip(
        names, sparsity.layer_weights(model), sparsity.layer_groupings(model), strict=True
    ):
        if g.unit == "channel" and not (name == "input" and w.shape[1] == 1):
            out[name] = g.groups(w.detach()).norm(dim=-2).numpy()
    return out or None


def feature_map(first: Tensor, names: list[str], image_shape: tuple | None) -> dict:
    """The arguments of :func:`run_plots.plot_features` from the first layer's weight: which
    inputs keep a nonzero outgoing weight, and the L2 norm of those weights.

    A Linear first layer ``[hidden, inputs]`` reads each input through its column. A conv
    first layer ``[out, C, *kernel]`` reads whole image channels (with same padding, every
    pixel is in the receptive field of some output), so a pixel survives with its channel
    and takes the channel's norm. An image of several channels is drawn per pixel: kept
    when any of its channels is, with the norm over its channels.
    """
    if first.dim() > 2:
        per_channel = first.transpose(0, 1).reshape(first.shape[1], -1)
        positions = len(names) // first.shape[1]
        alive = (per_channel != 0).any(dim=1).repeat_interleave(positions)
        importance = per_channel.norm(dim=1).repeat_interleave(positions)
    else:
        alive, importance = ~sparsity.dead_units([first])[0], first.norm(dim=0)
    if image_shape is not None and alive.numel() > math.prod(image_shape):
        pixels = math.prod(image_shape)
        alive = alive.reshape(-1, pixels).any(dim=0)
        importance = importance.reshape(-1, pixels).norm(dim=0)
        names = [n.split("_", 1)[1] for n in names[:pixels]]  # c0_pixel_r_c → pixel_r_c
    return {
        "alive": alive.numpy(),
        "names": names,
        "image_shape": image_shape,
        "importance": importance.numpy(),
    }


def measure(cfg: Mapping, model: nn.Module, data: Dataset, result: FitResult) -> RunOutputs:
    """Evaluate, threshold (in place), evaluate again and measure a trained run.

    A ``diverged`` run keeps its weights as they were (no thresholding) and reports every
    metric but ``params_total`` as NaN: its accuracy and sparsity say nothing about its
    regularizer (a huge proximal step zeroes every weight, which would look maximally
    sparse).
    """
    model = model.cpu()
    data = data.to("cpu")
    image = (data.channels, *data.image_shape) if data.image_shape is not None else None
    config = config_row(cfg, data.n_features, data.n_outputs, image, data.data_id)
    short = schema.short_columns(config)
    dotted = {k: v for k, v in config.items() if k not in short and k not in schema.IDS}
    row = {k: v for k, v in config.items() if k not in dotted}
    row |= {"status": result.status, "engine": result.engine, "epochs_run": len(result.history)}
    ok = result.status == "ok"
    raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
    metrics, layers = run_metrics(model if ok else copy.deepcopy(model), data, cfg["threshold"])
    if not ok:
        metrics = {k: (v if k == "params_total" else math.nan) for k, v in metrics.items()}
    row |= metrics
    row["collapsed"] = collapsed(row, data)
    row["train_seconds"] = result.seconds
    row |= dotted  # the whole config last: the CSV's first columns stay readable
    out = RunOutputs(dict(cfg), row, result.history, model, raw=raw)
    out.feature_names = [str(n) for n in data.feature_names]
    if data.image_shape is not None:
        out.input_shape = [data.channels, *data.image_shape]
    if ok:
        out.layers = pd.DataFrame(
            [vars(layer) for layer in layers], columns=["layer", "units", "removed", "fraction"]
        )
        first = sparsity.layer_weights(model)[0].detach()
        out.features = feature_map(first, data.feature_names, data.image_shape)
        out.channels = channel_norms(model)
    return out


def collapsed(row: Mapping, data: Dataset) -> bool:
    """:func:`selection.is_collapsed` of the run: chance is the share of the validation
    split's most frequent class (what always predicting it scores)."""
    chance = 0.0
    if data.task == "classification" and len(data.y_val):
        chance = float(data.y_val.bincount().max()) / len(data.y_val)
    val = row.get("val_accuracy" if data.task == "classification" else "val_r2")
    return selection.is_collapsed(data.task, val, chance)


def write(run_dir: Path, out: RunOutputs, summary: bool = False, figures: bool = True) -> dict:
    """Write every output file of a run into ``run_dir``; returns its metrics row.

    Every file is written atomically and ``metrics.csv`` last (an older one is removed
    first), so its presence marks a complete run. A run that is not ok gets
    ``history.csv``, ``model.pt``, ``metrics.csv`` and (with ``figures``)
    ``learning_curves.png`` only. The run goes to the experiment tracker (``logger``)
    after ``metrics.csv`` is written; a tracker that fails is one logged line and a
    ``tracker_error`` column in ``metrics.csv``, and the run keeps its status.
    ``summary``: print the metrics table. ``figures``: draw the run's three figures
    (:func:`draw_figures`; ``regexp plot`` draws them later).
    """
    fault_point("write_run")  # tests: a full disk (REGEXP_FAULT=write_run:enospc)
    _mark_incomplete(run_dir)
    write_csv(run_dir / "history.csv", out.history)
    ids = {k: out.row.get(k) for k in schema.IDS}
    extra = {"metrics": out.row, **ids, "input_shape": out.input_shape, "raw_state_dict": out.raw}
    if out.feature_names is not None:  # the inputs' names as trained on, for regexp plot
        extra["feature_names"] = out.feature_names
    save_checkpoint(run_dir / "model.pt", out.model, out.cfg, extra)
    if out.layers is not None:
        write_csv(run_dir / "sparsity.csv", out.layers)
    if figures:
        title = run_plots.run_title(out.row)
        draw_figures(run_dir, out.history, out.layers, out.features, title, out.channels)
    if out.cfg.get("compress") and out.row.get("status") == "ok":
        out.row.update(compression.compressed_columns(run_dir))
    write_csv(run_dir / "metrics.csv", pd.DataFrame([out.row]))
    # logger=tensorboard, mlflow: after the run's own files, so a tracker never costs the run
    error = trackers.track(run_dir, out.cfg, out.history, out.row)
    if error is not None:
        out.row["tracker_error"] = error
        write_csv(run_dir / "metrics.csv", pd.DataFrame([out.row]))
    if summary:
        console.print_summary(out.row, out.layers, run_dir)
    return out.row


def finish_run(
    cfg: Mapping,
    run_dir: Path,
    model: nn.Module,
    data: Dataset,
    result: FitResult,
    summary: bool = False,
    figures: bool = True,
) -> dict:
    """:func:`measure` then :func:`write`: returns the metrics row.

    An older ``metrics.csv`` in ``run_dir`` goes first, so a failure while evaluating
    leaves the directory without one (an incomplete run).
    """
    _mark_incomplete(run_dir)
    return write(run_dir, measure(cfg, model, data, result), summary, figures)


def wants_figures(cfg: Mapping, sweep: bool) -> bool:
    """Config key ``figures``: ``auto`` draws a single run's figures and none of a sweep's
    jobs (``regexp plot`` draws them on demand); ``always``; ``never``."""
    choice = cfg.get("figures", "auto")
    return choice == "always" or (choice == "auto" and not sweep)


def draw_figures(
    run_dir: Path,
    history: pd.DataFrame,
    layers: pd.DataFrame | None,
    features: Mapping | None,
    title: str,
    channels: Mapping | None = None,
) -> list[Path]:
    """``learning_curves.png``, and for an ok run ``sparsity.png`` and ``features.png``
    (and a conv net's ``channels.png``)."""
    paths = [run_dir / "learning_curves.png"]
    run_plots.plot_learning_curves(history, paths[0], title)
    if layers is not None:
        paths.append(run_dir / "sparsity.png")
        run_plots.plot_sparsity(layers, paths[-1], title)
    if features is not None:
        paths.append(run_dir / "features.png")
        run_plots.plot_features(**features, path=paths[-1], title=title)
    if channels:
        paths.append(run_dir / "channels.png")
        run_plots.plot_channels(channels, paths[-1], title)
    return paths


def plot_run(run_dir: Path) -> list[Path]:
    """Draw the figures of a finished run from its files (``metrics.csv``, ``history.csv``,
    ``sparsity.csv``, ``model.pt``): what :func:`write` draws with ``figures``."""
    import torch

    row = read_metrics(run_dir)
    if row is None:
        raise ValueError(f"'{run_dir}' holds no finished run (no complete metrics.csv)")
    history = pd.read_csv(run_dir / "history.csv")
    ok = row.get("status") == "ok"
    layers = pd.read_csv(run_dir / "sparsity.csv") if ok else None
    features = channels = None
    if ok:
        path = run_dir / "model.pt"
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            first = next(v for k, v in ckpt["state_dict"].items() if k.endswith("weight"))
            names = ckpt.get("feature_names")
            shape = tuple(ckpt["input_shape"][1:]) if ckpt.get("input_shape") else None
            dataset = ckpt["config"]["dataset"]
        except Exception as err:  # corrupt, truncated, or not a checkpoint of regexp
            raise ValueError(
                f"'{path}' is not a readable checkpoint ({type(err).__name__}: "
                f"{one_line(err)[:200]}); train the run again to rewrite it"
            ) from None
        if names is None:  # a model.pt written before the names were stored in it
            names, shape = _names_now(dataset, ckpt.get("data_id"), first)
        features = feature_map(first, list(names), shape)
        if first.dim() > 2:  # a conv net: its channels from the rebuilt model
            from regexp.model.build import load_model

            channels = channel_norms(load_model(run_dir / "model.pt")[0])
    title = run_plots.run_title(row)
    return draw_figures(run_dir, history, layers, features, title, channels)


def _names_now(dataset: Mapping, trained_on: str | None, first: Tensor) -> tuple[list, tuple]:
    """The inputs' names read from the data as it is now, when it is still what the run
    trained on (the same ``data_id``); else ``x0``, ``x1``, ... (never another file's
    columns)."""
    from regexp.data.sources import LOADERS

    try:
        same = trained_on is not None and data_id(dataset) == trained_on
    except (OSError, ValueError, KeyError):
        same = False
    if same:
        table = LOADERS[dataset["name"]](**{k: v for k, v in dataset.items() if k != "name"})
        return table.feature_names, table.image_shape
    return [f"x{i}" for i in range(first.shape[1])], None  # an MLP's inputs (conv nets are newer)


def _mark_incomplete(run_dir: Path) -> None:
    """Create ``run_dir`` without any file of an earlier run (``metrics.csv`` first, so a
    failure midway leaves an incomplete run, never a mix of two) or a killed writer's
    temporaries; with its :data:`MARKER`."""
    mark_run(run_dir)
    for name in ("metrics.csv", *RUN_FILES):
        (run_dir / name).unlink(missing_ok=True)
    remove_temporaries(run_dir, RUN_FILES)


def read_metrics(run_dir: Path) -> dict | None:
    """The metrics row of a complete run in ``run_dir``, or ``None`` if there is none.

    A ``metrics.csv`` that is empty, truncated (not a header and one whole row ending in a
    newline, with as many fields as the header) or unreadable counts as none: the job was
    cut off, and runs again.
    """
    path = Path(run_dir) / "metrics.csv"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.endswith("\n"):
        return None
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=schema.TEXT_COLUMNS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None
    if len(frame) != 1 or "status" not in frame.columns:
        return None
    return frame.iloc[0].to_dict()


def failed_row(cfg: Mapping, run_dir: Path, err: BaseException | str) -> dict:
    """Write the ``metrics.csv`` row of a job that raised ``err``: ``status=failed``.

    ``err`` is the exception, or its text already formatted as ``"Type: message"``.
    """
    try:
        config = config_row(cfg)
    except (KeyError, TypeError, ValueError):
        config = {}
    names = schema.short_columns(config)
    short = {k: v for k, v in config.items() if k in names or k in schema.IDS}
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    row = short | {"status": "failed", "error": text} | config
    mark_run(run_dir)
    write_csv(run_dir / "metrics.csv", pd.DataFrame([row]))
    return row
