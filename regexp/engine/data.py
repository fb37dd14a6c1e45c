"""Data sets: loading, the train/validation/test split and feature scaling.

Every data set becomes a :class:`Dataset` of float32 tensors. The split is seeded and,
for classification, stratified; scaling statistics come from the training split only,
and the test split is never used for training or model selection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split

log = logging.getLogger(__name__)

TASKS = ("classification", "regression")
SCALERS = ("standard", "minmax", "none")


@dataclass(frozen=True)
class Table:
    """A raw data set before splitting: features ``x`` [n, d] and target ``y`` [n]."""

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    task: str
    image_shape: tuple[int, int] | None = None


@dataclass(frozen=True)
class Dataset:
    """Split and scaled tensors, ready for training.

    Classification targets are int64 class indices ``0..n_classes-1``. Regression
    targets are standardized with the training mean and std (``y_mean``, ``y_std``) so
    the network trains on unit scale; metrics are reported in the original units.
    """

    name: str
    task: str
    feature_names: list[str]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int = 0
    classes: tuple = ()
    y_mean: float = 0.0
    y_std: float = 1.0
    image_shape: tuple[int, int] | None = None

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task == "classification" else 1

    def to(self, device: torch.device | str) -> Dataset:
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k, v in fields.items():
            if isinstance(v, torch.Tensor):
                fields[k] = v.to(device)
        return Dataset(**fields)


def _sklearn(loader: Callable, task: str, image_shape=None) -> Callable[..., Table]:
    def load(**_: object) -> Table:
        bunch = loader()
        names = [str(n) for n in getattr(bunch, "feature_names", [])] or [
            f"x{i}" for i in range(bunch.data.shape[1])
        ]
        return Table(bunch.data, bunch.target, names, task, image_shape)

    return load


def load_csv(
    path: str, target: str, task: str, encode_categorical: bool = False, **_: object
) -> Table:
    """Read a CSV whose column ``target`` is the target and every other column a feature.

    Non-numeric feature columns are an error unless ``encode_categorical`` is true; then
    each becomes one 0/1 column per category (``pandas.get_dummies``), named
    ``<column>_<category>``.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"dataset.path: no such file '{path}'")
    try:
        frame = pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"dataset.path: cannot read '{path}' as CSV: {err}") from None
    if target not in frame.columns:
        raise ValueError(
            f"dataset.target: column '{target}' not in {path}; columns are: "
            + ", ".join(map(str, frame.columns))
        )
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise ValueError(f"dataset.path: '{path}' has no feature columns besides '{target}'")
    missing = frame.columns[frame.isna().any()].tolist()
    if missing:
        raise ValueError(
            f"dataset.path: missing (NaN) values in '{path}', columns: "
            + ", ".join(map(str, missing))
            + "; fill or drop those rows first"
        )
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text and not encode_categorical:
        raise ValueError(
            f"dataset.path: non-numeric feature columns in '{path}': "
            + ", ".join(map(str, text))
            + "; encode them as numbers first, or set dataset.encode_categorical=true"
        )
    if text:
        features = pd.get_dummies(features, columns=text, dtype=np.float64)
    y = frame[target].to_numpy()
    if task == "regression" and not pd.api.types.is_numeric_dtype(frame[target]):
        raise ValueError(f"dataset.target: regression target '{target}' must be numeric")
    return Table(features.to_numpy(dtype=np.float64), y, [str(c) for c in features.columns], task)


LOADERS: dict[str, Callable[..., Table]] = {
    "digits": _sklearn(skdatasets.load_digits, "classification", (8, 8)),
    "diabetes": _sklearn(skdatasets.load_diabetes, "regression"),
    "breast_cancer": _sklearn(skdatasets.load_breast_cancer, "classification"),
    "wine": _sklearn(skdatasets.load_wine, "classification"),
    "csv": load_csv,
}


def _check_sizes(val_size: float, test_size: float) -> None:
    for key, value in (("val_size", val_size), ("test_size", test_size)):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1
        if not ok:
            raise ValueError(f"dataset.{key} must be in (0, 1), got {value!r}")
    if val_size + test_size >= 1:
        raise ValueError(
            f"dataset.val_size + dataset.test_size must be < 1, got {val_size + test_size:g}"
        )


def validate_dataset(
    name: str,
    task: str,
    val_size: float = 0.2,
    test_size: float = 0.2,
    split_seed: int = 0,
    scaler: str = "standard",
    **options: object,
) -> None:
    """Raise ``ValueError`` naming the first bad ``dataset`` option (before any loading).

    Checks that need the file's contents (target column, numeric features, NaN, classes,
    enough rows) run when :func:`load_dataset` reads it.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset '{name}'; choose one of: {', '.join(LOADERS)}")
    if task not in TASKS:
        raise ValueError(f"dataset.task must be one of {', '.join(TASKS)}, got '{task}'")
    _check_sizes(val_size, test_size)
    seed_ok = isinstance(split_seed, int) and not isinstance(split_seed, bool)
    if not (seed_ok and 0 <= split_seed < 2**32):
        raise ValueError(f"dataset.split_seed must be an integer in [0, 2**32), got {split_seed!r}")
    if scaler not in SCALERS:
        raise ValueError(f"dataset.scaler must be one of {', '.join(SCALERS)}, got '{scaler}'")
    if name == "csv":
        path = options.get("path")
        if not isinstance(path, str) or not Path(path).expanduser().is_file():
            raise ValueError(f"dataset.path: no such file '{path}'")
        if not isinstance(options.get("encode_categorical", False), bool):
            raise ValueError(
                "dataset.encode_categorical must be true or false, "
                f"got {options['encode_categorical']!r}"
            )


def split_indices(
    y: np.ndarray, task: str, val_size: float, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint train/validation/test row indices; stratified on ``y`` for classification.

    ``val_size`` and ``test_size`` are fractions of all rows.
    """
    _check_sizes(val_size, test_size)
    rows = np.arange(len(y))
    strat = y if task == "classification" else None
    try:
        rest, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=strat)
        strat_rest = y[rest] if strat is not None else None
        train, val = train_test_split(
            rest, test_size=val_size / (1 - test_size), random_state=seed, stratify=strat_rest
        )
    except ValueError as err:  # too few rows, or a class with a single member
        raise ValueError(
            f"dataset: cannot split {len(y)} rows into train/val/test "
            f"(val_size={val_size}, test_size={test_size}): {err}; use more rows"
        ) from None
    return np.sort(train), np.sort(val), np.sort(test)


def fit_scaler(x_train: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(shift, scale)`` such that ``(x - shift) / scale`` is the scaled ``x``.

    ``standard``: train mean and std; ``minmax``: train min and range (to [0, 1]);
    ``none``: identity. Constant columns get scale 1.
    """
    if kind == "standard":
        shift, scale = x_train.mean(axis=0), x_train.std(axis=0)
    elif kind == "minmax":
        shift, scale = x_train.min(axis=0), np.ptp(x_train, axis=0)
    elif kind == "none":
        shift, scale = np.zeros(x_train.shape[1]), np.ones(x_train.shape[1])
    else:
        raise ValueError(f"dataset.scaler must be one of {', '.join(SCALERS)}, got '{kind}'")
    return shift, np.where(scale > 0, scale, 1.0)


def load_dataset(
    name: str,
    task: str,
    val_size: float = 0.2,
    test_size: float = 0.2,
    split_seed: int = 0,
    scaler: str = "standard",
    **options: object,
) -> Dataset:
    """Load data set ``name``, split it and scale features with training statistics."""
    validate_dataset(name, task, val_size, test_size, split_seed, scaler, **options)
    table = LOADERS[name](task=task, **options)
    x = np.asarray(table.x, dtype=np.float64)
    classes: tuple = ()
    if task == "classification":
        classes_arr, y = np.unique(table.y, return_inverse=True)
        classes = tuple(classes_arr.tolist())
        if len(classes) < 2:
            raise ValueError(
                f"dataset: classification needs at least 2 classes in the target, "
                f"found {len(classes)}: {list(classes)}"
            )
    else:
        y = np.asarray(table.y, dtype=np.float64)
    train, val, test = split_indices(y, task, val_size, test_size, split_seed)
    shift, scale = fit_scaler(x[train], scaler)
    xs = ((x - shift) / scale).astype(np.float32)

    y_mean, y_std = 0.0, 1.0
    if task == "regression":
        y_mean, y_std = float(y[train].mean()), float(y[train].std() or 1.0)
        yt = torch.as_tensor((y - y_mean) / y_std, dtype=torch.float32)
    else:
        yt = torch.as_tensor(y, dtype=torch.int64)
    xt = torch.from_numpy(xs)
    log.info(
        "dataset %s: %d features, train/val/test = %d/%d/%d rows",
        name,
        x.shape[1],
        len(train),
        len(val),
        len(test),
    )
    return Dataset(
        name=name,
        task=task,
        feature_names=table.feature_names,
        x_train=xt[train],
        y_train=yt[train],
        x_val=xt[val],
        y_val=yt[val],
        x_test=xt[test],
        y_test=yt[test],
        n_classes=len(classes),
        classes=classes,
        y_mean=y_mean,
        y_std=y_std,
        image_shape=table.image_shape,
    )
