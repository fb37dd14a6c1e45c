"""Validation of a whole run config, up front, before any data is loaded or trained on.

:func:`validate` is the one place that checks a resolved config (the dict that
``regexp train`` composes with Hydra). It calls the per-module validators that the library
API also uses (:func:`regexp.data.validate_dataset`, :func:`regexp.models.validate_mlp`,
:func:`regexp.regularizers.make_regularizer`) and checks the top-level, ``trainer`` and
``optimizer`` keys itself. Every error is a ``ValueError`` whose message names the config
key, the bad value and what is allowed, e.g. ``lambda must be a finite number >= 0, got -1``.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from regexp.data import validate_dataset
from regexp.models import validate_mlp
from regexp.regularizers import REGULARIZERS, Regularizer, make_regularizer

MODES = ("penalty", "proximal")
PROX_METRICS = ("auto", "identity", "adaptive")
OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICES = ("cpu", "cuda", "auto")
MISSING = "???"


def check_real(
    key: str,
    value: Any,
    low: float,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """Return ``value`` as float if it is a finite real in the interval, else raise.

    The interval is ``[low, high]``; ``open_low``/``open_high`` exclude an end, and
    ``high=None`` means unbounded above.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low)
    ok = ok and (high is None or (value < high if open_high else value <= high))
    if not ok:
        if high is None:
            what = f"a finite number {'>' if open_low else '>='} {low:g}"
        else:
            what = f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ValueError(f"{key} must be {what}, got {value!r}")
    return float(value)


def check_int(key: str, value: Any, low: int) -> int:
    """Return ``value`` if it is an int ``>= low`` (bools are not ints here), else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
    return value


def check_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def missing_keys(cfg: Mapping, prefix: str = "") -> Iterator[str]:
    """Dotted keys whose value is Hydra's mandatory-value marker ``???``."""
    for key, value in cfg.items():
        if isinstance(value, Mapping):
            yield from missing_keys(value, f"{prefix}{key}.")
        elif isinstance(value, str) and value == MISSING:
            yield f"{prefix}{key}"


def resolve_device(name: str) -> torch.device:
    """``trainer.device`` as a torch device; ``auto`` is CUDA when available, else CPU."""
    check_choice("trainer.device", name, DEVICES)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("trainer.device=cuda, but no CUDA device is available; use cpu or auto")
    return torch.device(name)


def validate_trainer(tr: Mapping) -> None:
    """Check the ``trainer`` group: epochs, batch_size, patience, device, num_threads."""
    check_int("trainer.epochs", tr["epochs"], 1)
    check_int("trainer.batch_size", tr["batch_size"], 1)
    patience = tr.get("early_stopping_patience")
    if patience is not None and (
        isinstance(patience, bool) or not isinstance(patience, int) or patience < 1
    ):
        raise ValueError(
            f"trainer.early_stopping_patience must be null or an integer >= 1, got {patience!r}"
        )
    check_int("trainer.num_threads", tr.get("num_threads", 1), 1)
    resolve_device(tr["device"])


def validate_optimizer(opt: Mapping) -> None:
    """Check the ``optimizer`` group: name, lr > 0, and Adam's betas/eps or SGD's momentum."""
    name = check_choice("optimizer.name", opt["name"], OPTIMIZERS)
    check_real("optimizer.lr", opt["lr"], 0.0, open_low=True)
    if name == "sgd":
        check_real("optimizer.momentum", opt.get("momentum", 0.0), 0.0, 1.0, open_high=True)
        return
    betas = opt["betas"]
    if isinstance(betas, str) or not isinstance(betas, list | tuple) or len(betas) != 2:
        raise ValueError(f"optimizer.betas must be a list of two numbers in [0, 1), got {betas!r}")
    for beta in betas:
        check_real("optimizer.betas", beta, 0.0, 1.0, open_high=True)
    check_real("optimizer.eps", opt["eps"], 0.0, open_low=True)


def build_regularizer(cfg: Mapping, strength: float) -> tuple[Regularizer, str]:
    """The regularizer named by config group ``regularizer`` at ``strength``, and its mode.

    The regularizer classes validate their own options; their messages get the
    ``regularizer.`` prefix here so that they name the config key.
    """
    name = cfg["name"]
    if name not in REGULARIZERS:
        raise ValueError(
            f"regularizer.name must be one of {', '.join(sorted(REGULARIZERS))}, got {name!r}"
        )
    mode = check_choice("regularizer.mode", cfg.get("mode", "penalty"), MODES)
    if mode == "proximal" and name == "weight_decay":
        raise ValueError("regularizer.mode=proximal is not defined for weight_decay; use penalty")
    check_choice("regularizer.prox_metric", cfg.get("prox_metric", "identity"), PROX_METRICS)
    options = {k: v for k, v in cfg.items() if k not in ("name", "mode", "prox_metric")}
    known = set(inspect.signature(REGULARIZERS[name]).parameters) - {"strength", "params"}
    unknown = sorted(set(options) - known)
    if unknown:
        allowed = ", ".join(f"regularizer.{k}" for k in sorted(known))
        raise ValueError(
            f"regularizer.{unknown[0]} is not an option of regularizer={name}; "
            + (f"its options are: {allowed}" if allowed else "it takes none")
        )
    try:
        reg = make_regularizer(name, strength=strength, **options)
    except ValueError as err:
        raise ValueError(f"regularizer.{err}") from None
    return reg, mode


def resolve_prox_metric(reg_cfg: Mapping, optimizer: str) -> str:
    """``regularizer.prox_metric`` resolved for ``optimizer``: ``identity`` or ``adaptive``.

    The metric of proximal mode's step (:mod:`regexp.metric_prox`): ``identity`` is the
    plain ``prox_{lr·R}``; ``adaptive`` the prox in Adam's metric ``√v̂ + ε``; ``auto`` is
    ``identity`` for sgd and ``adaptive`` for adam and adamw. A config without the key is
    ``identity`` (the step of configs written before it existed).
    """
    metric = check_choice(
        "regularizer.prox_metric", reg_cfg.get("prox_metric", "identity"), PROX_METRICS
    )
    if metric == "adaptive" and optimizer == "sgd":
        raise ValueError(
            "regularizer.prox_metric=adaptive needs optimizer adam or adamw (sgd's metric is "
            "the identity); use auto or identity"
        )
    if metric == "auto":
        return "identity" if optimizer == "sgd" else "adaptive"
    return metric


def validate(cfg: Mapping) -> None:
    """Check a resolved run config; raise ``ValueError`` naming the first bad value.

    Parameters
    ----------
    cfg : Mapping
        The composed config: top-level ``lambda``, ``seed``, ``threshold``, ``resume`` and
        the groups ``dataset``, ``model``, ``regularizer``, ``optimizer``, ``trainer``.
    """
    missing = list(missing_keys(cfg))
    if missing:
        raise ValueError(
            f"missing required value{'s' if len(missing) > 1 else ''}: {', '.join(missing)}; "
            f"set {'them' if len(missing) > 1 else 'it'} on the command line, "
            f"e.g. {missing[0]}=..."
        )
    lam = check_real("lambda", cfg["lambda"], 0.0)
    check_real("threshold", cfg["threshold"], 0.0)
    check_int("seed", cfg["seed"], 0)
    if not isinstance(cfg.get("resume", False), bool):
        raise ValueError(f"resume must be true or false, got {cfg['resume']!r}")
    validate_dataset(**cfg["dataset"])
    m = cfg["model"]
    validate_mlp(m["hidden"], m["activation"], m["dropout"], m.get("init", "default"))
    build_regularizer(cfg["regularizer"], lam)
    validate_optimizer(cfg["optimizer"])
    resolve_prox_metric(cfg["regularizer"], cfg["optimizer"]["name"])
    validate_trainer(cfg["trainer"])
