"""Validation of a whole run config, up front, before any data is loaded or trained on.

:func:`validate` is the one place that checks a resolved config (the dict that
``regexp train`` composes with Hydra). It checks the top-level keys and calls the
validators of the library that build each part (:func:`regexp.data.prepare.validate_dataset`,
:func:`regexp.model.mlp.validate_mlp`, :func:`regexp.train.build.build_regularizer`,
``validate_optimizer`` and ``validate_trainer``). Every error is a ``ValueError`` whose
message names the config key, the bad value and what is allowed, e.g.
``lambda must be a finite number >= 0, got -1``.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regexp.core.checks import check_choice, check_int, check_real
from regexp.data.prepare import validate_dataset
from regexp.model.build import validate_model
from regexp.train.build import (
    build_regularizer,
    resolve_prox_metric,
    validate_optimizer,
    validate_trainer,
)

# Config key ``figures``: whether a run draws its three figures (regexp.runs.run_files).
FIGURES = ("auto", "always", "never")
# torch.manual_seed takes seeds modulo 2**32: larger ones would alias smaller ones.
SEED_LIMIT = 2**32
# The top level of a run config: its groups, and its own keys (regexp.results.schema.TOP_LEVEL
# lists the same keys for the results' columns). Nothing else is accepted (check_keys).
GROUPS = ("dataset", "model", "regularizer", "optimizer", "trainer", "logger")
TOP_LEVEL_KEYS = ("lambda", "seed", "threshold", "resume", "objectives", "figures", "compress")
# Groups of the defaults list that select other files and add no key of their own.
SELECTORS = ("experiment", "hparams_search", "hydra")


def unknown_key_message(key: str) -> str:
    """The one line for a top-level ``key`` that no code reads: the closest known key and
    every key allowed."""
    known = (*TOP_LEVEL_KEYS, *GROUPS)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return (
        f"'{key}' is not a config key (with or without +); {hint}the top-level keys are: "
        + ", ".join(TOP_LEVEL_KEYS)
        + "; the groups: "
        + ", ".join(GROUPS)
    )


def check_overrides(overrides: list[str]) -> None:
    """Refuse, with a one-line ``ValueError``, what Hydra would answer with a multi-line
    error: an override its grammar cannot parse (a value with spaces and brackets,
    parentheses or ``=``: the message says to quote it) and a top-level key that is not in
    the config (Hydra's own message suggests the ``+``, which :func:`check_keys` refuses
    too). Arguments without ``=`` (Hydra's flags and their values) are skipped."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in overrides:
        if not isinstance(arg, str) or "=" not in arg:
            continue
        try:
            (override,) = parser.parse_overrides([arg])
        except OverrideParseException as err:
            key, _, value = arg.partition("=")
            reason = str(err).strip().splitlines()[0].strip()
            raise ValueError(
                f"cannot read the override '{arg}' ({reason}); quote a value with spaces or "
                f"any of ()[]{{}}=,: '{key}=\"{value}\"' (on a shell, within single quotes)"
            ) from None
        key = override.key_or_group
        top = "." not in key and "/" not in key and override.package is None
        known = (*GROUPS, *TOP_LEVEL_KEYS, *SELECTORS)
        if top and override.type == OverrideType.CHANGE and key not in known:
            raise ValueError(unknown_key_message(key))


def check_keys(cfg: Mapping) -> None:
    """Refuse a top-level key that is neither a group nor one of :data:`TOP_LEVEL_KEYS`
    (``+lamdba=0.5`` on the command line, in ``regexp.run`` or in an experiment file),
    with :func:`unknown_key_message`."""
    unknown = sorted(str(k) for k in cfg if k not in GROUPS and k not in TOP_LEVEL_KEYS)
    if unknown:
        raise ValueError(unknown_key_message(unknown[0]))


# The keys and types of each config group, one dataclass per choice. validate() merges a
# resolved config into these structured configs (OmegaConf.structured), so an unknown key
# (`+trainer.foo=1`, `+optimizer.momentum=0.9` with Adam) or a value of the wrong type is
# refused; the ranges, and the one-line messages of README's troubleshooting table, come
# from the hand checks of the library that run first.
@dataclass
class TrainerConf:
    epochs: int = 200
    batch_size: int = 32
    drop_last: bool = False
    early_stopping_patience: int | None = None
    device: str = "cpu"
    num_threads: int = 1
    engine: str = "auto"


@dataclass
class ModelConf:
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [40, 20])
    activation: str = "relu"
    dropout: float = 0.0
    init: str = "default"


@dataclass
class CNNConf:
    name: str = "cnn"
    channels: list[int] = field(default_factory=lambda: [8, 16])
    kernel_size: int = 3
    pool: int = 2
    activation: str = "relu"
    dropout: float = 0.0
    init: str = "default"
    hidden: list[int] = field(default_factory=list)


@dataclass
class AdamConf:
    name: str = "adam"
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class SGDConf:
    name: str = "sgd"
    lr: float = 1e-2
    momentum: float = 0.0


@dataclass
class BuiltinDatasetConf:
    name: str = MISSING
    task: str = MISSING
    val_size: float = 0.2
    test_size: float = 0.2
    split_seed: int = 0
    scaler: str = "standard"


@dataclass
class CSVDatasetConf(BuiltinDatasetConf):
    path: str = MISSING
    target: Any = MISSING  # a column name, or a number for a column named by digits
    encode_categorical: bool = False
    sep: str | None = ","


@dataclass
class ImageDatasetConf(BuiltinDatasetConf):
    root: str = "~/.cache/regexp/data"
    download: bool = False


SCHEMAS: dict[str, dict[str, type]] = {
    "trainer": {"default": TrainerConf},
    "model": {"mlp": ModelConf, "cnn": CNNConf},
    "optimizer": {"adam": AdamConf, "adamw": AdamConf, "sgd": SGDConf},
    # every other data set: BuiltinDatasetConf
    "dataset": {
        "csv": CSVDatasetConf,
        "mnist": ImageDatasetConf,
        "fashion_mnist": ImageDatasetConf,
        "cifar10": ImageDatasetConf,
    },
}


def _schema(group: str, node: Mapping) -> type:
    choices = SCHEMAS[group]
    if group == "dataset":
        return choices.get(node.get("name"), BuiltinDatasetConf)
    if group == "model":
        return choices.get(node.get("name", "mlp"), ModelConf)
    if group in ("optimizer",):
        return choices[node["name"]]
    return next(iter(choices.values()))


def check_schema(cfg: Mapping) -> None:
    """Refuse keys that no code reads and values of the wrong type, group by group.

    Raises ``ValueError``: ``trainer.foo is not a key of trainer; its keys are: ...``
    (in the style of ``regularizer.foo is not an option of regularizer=sgl``).
    """
    for group in SCHEMAS:
        node = cfg[group]
        schema = _schema(group, node)
        known = [f.name for f in fields(schema)]
        unknown = sorted(set(node) - set(known))
        if unknown:
            where = f"{group}={node['name']}" if "name" in node else group
            raise ValueError(
                f"{group}.{unknown[0]} is not a key of {where}; its keys are: "
                + ", ".join(f"{group}.{k}" for k in known)
            )
        try:
            OmegaConf.merge(OmegaConf.structured(schema), dict(node))
        except OmegaConfBaseException as err:
            key = f"{group}.{getattr(err, 'full_key', '') or ''}".rstrip(".")
            raise ValueError(f"{key}: {str(err).splitlines()[0]}") from None


def validate(cfg: Mapping) -> None:
    """Check a resolved run config; raise ``ValueError`` naming the first bad value.

    Parameters
    ----------
    cfg : Mapping
        The composed config: top-level ``lambda``, ``seed``, ``threshold``, ``resume`` and
        the groups ``dataset``, ``model``, ``regularizer``, ``optimizer``, ``trainer`` and
        ``logger`` (optional).
    """
    check_keys(cfg)
    missing = sorted(OmegaConf.missing_keys(OmegaConf.create(dict(cfg))))
    if missing:
        raise ValueError(
            f"missing required value{'s' if len(missing) > 1 else ''}: {', '.join(missing)}; "
            f"set {'them' if len(missing) > 1 else 'it'} on the command line, "
            f"e.g. {missing[0]}=..."
        )
    lam = check_real("lambda", cfg["lambda"], 0.0)
    check_real("threshold", cfg["threshold"], 0.0)
    check_int("seed", cfg["seed"], 0, SEED_LIMIT)
    check_choice("figures", cfg.get("figures", "auto"), FIGURES)
    if not isinstance(cfg.get("resume", False), bool):
        raise ValueError(f"resume must be true or false, got {cfg['resume']!r}")
    if not isinstance(cfg.get("compress", False), bool):
        raise ValueError(f"compress must be true or false, got {cfg['compress']!r}")
    validate_dataset(**cfg["dataset"])
    m = cfg["model"]
    validate_model(m)
    build_regularizer(cfg["regularizer"], lam)
    validate_optimizer(cfg["optimizer"])
    resolve_prox_metric(cfg["regularizer"], cfg["optimizer"]["name"])
    validate_trainer(cfg["trainer"])
    validate_logger(cfg.get("logger"))
    check_schema(cfg)


# logger=<name> (conf/logger/): the options each experiment tracker reads.
LOGGERS: dict[str, tuple[str, ...]] = {
    "csv": (),
    "tensorboard": ("save_dir",),
    "mlflow": ("tracking_uri", "experiment_name", "timeout"),
}


def logger_packages(logger: Mapping) -> tuple[str, ...]:
    """The packages a tracker imports; its optional extra (``.[<name>]``) installs them."""
    if logger["name"] == "tensorboard":
        return ("tensorboard",)
    if logger["name"] == "mlflow":  # mlflow-skinny leaves out the SQL store's packages
        sql = str(logger["tracking_uri"]).startswith("sqlite:")
        return ("mlflow", "sqlalchemy", "alembic") if sql else ("mlflow",)
    return ()


def validate_logger(logger: Mapping | None) -> None:
    """Check the ``logger`` group; ``None`` (a config without one) means ``csv``.

    The tracker's packages must be installed, so that a run fails here, before training,
    rather than after it.
    """
    if logger is None:
        return
    name = logger.get("name")
    if not isinstance(name, str) or name not in LOGGERS:
        raise ValueError(f"logger.name must be one of {', '.join(LOGGERS)}, got {name!r}")
    options = LOGGERS[name]
    extra = sorted(str(k) for k in logger if k != "name" and k not in options)
    if extra:
        takes = ", ".join(options) or "none"
        raise ValueError(f"logger.{extra[0]} is not an option of logger={name}; it takes {takes}")
    for key in options:
        value = logger.get(key)
        if key == "timeout":  # seconds a request to a tracking server may take
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and value > 0):
                raise ValueError(f"logger.timeout must be a number of seconds > 0, got {value!r}")
            continue
        if not (isinstance(value, str) and value) and not (key == "save_dir" and value is None):
            allowed = "null or a folder" if key == "save_dir" else "a non-empty string"
            raise ValueError(f"logger.{key} must be {allowed}, got {value!r}")
    for package in logger_packages(logger):
        if importlib.util.find_spec(package) is None:
            raise ValueError(
                f'logger={name} needs the {package} package: pip install -e ".[{name}]"'
            )
