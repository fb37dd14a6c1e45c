"""Validation of a whole run config, up front, before any data is loaded or trained on.

:func:`validate` is the one place that checks a resolved config (the dict that
``regexp train`` composes with Hydra). It checks the top-level keys and calls the
validators of the library that build each part (:func:`regexp.engine.data.validate_dataset`,
:func:`regexp.engine.models.validate_mlp`, :func:`regexp.engine.build.build_regularizer`,
``validate_optimizer`` and ``validate_trainer``). Every error is a ``ValueError`` whose
message names the config key, the bad value and what is allowed, e.g.
``lambda must be a finite number >= 0, got -1``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from omegaconf import OmegaConf

from regexp.core.checks import check_int, check_real
from regexp.engine.build import build_regularizer, validate_optimizer, validate_trainer
from regexp.engine.data import validate_dataset
from regexp.engine.models import validate_mlp

# torch.manual_seed takes seeds modulo 2**32: larger ones would alias smaller ones.
SEED_LIMIT = 2**32


def validate(cfg: Mapping) -> None:
    """Check a resolved run config; raise ``ValueError`` naming the first bad value.

    Parameters
    ----------
    cfg : Mapping
        The composed config: top-level ``lambda``, ``seed``, ``threshold``, ``resume`` and
        the groups ``dataset``, ``model``, ``regularizer``, ``optimizer``, ``trainer`` and
        ``logger`` (optional).
    """
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
    if not isinstance(cfg.get("resume", False), bool):
        raise ValueError(f"resume must be true or false, got {cfg['resume']!r}")
    validate_dataset(**cfg["dataset"])
    m = cfg["model"]
    validate_mlp(m["hidden"], m["activation"], m["dropout"], m.get("init", "default"))
    build_regularizer(cfg["regularizer"], lam)
    validate_optimizer(cfg["optimizer"])
    validate_trainer(cfg["trainer"])
    validate_logger(cfg.get("logger"))


# logger=<name> (conf/logger/): the options each experiment tracker reads.
LOGGERS: dict[str, tuple[str, ...]] = {
    "csv": (),
    "tensorboard": ("save_dir",),
    "mlflow": ("tracking_uri", "experiment_name"),
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
        if not (isinstance(value, str) and value) and not (key == "save_dir" and value is None):
            allowed = "null or a folder" if key == "save_dir" else "a non-empty string"
            raise ValueError(f"logger.{key} must be {allowed}, got {value!r}")
    for package in logger_packages(logger):
        if importlib.util.find_spec(package) is None:
            raise ValueError(
                f'logger={name} needs the {package} package: pip install -e ".[{name}]"'
            )
