"""Data sets: loading, the train/validation/test split and feature scaling.

Every data set becomes a :class:`Dataset` of float32 tensors. The split is seeded and,
for classification, stratified; scaling statistics come from the training split only,
and the test split is never used for training or model selection.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import numbers
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from regexp.data import cache as datacache
from regexp.data import images
from regexp.data import sources as tables
from regexp.data.sources import BUILTIN_TASKS, LOADERS

if TYPE_CHECKING:
    from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

log = logging.getLogger(__name__)

TASKS = ("classification", "regression")
SCALERS = ("standard", "minmax", "none")


@dataclass(frozen=True)
class Dataset:
    """Split and scaled tensors, ready for training.

    Classification targets are int64 class indices ``0..n_classes-1``; index ``i`` is
    the original label ``classes[i]`` (e.g. ``'setosa'`` or ``3``; sorted, numbers before
    text). Regression targets are standardized with the training mean and std (``y_mean``,
    ``y_std``) so the network trains on unit scale; metrics are reported in the original
    units.
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
    # The original label of each class index, e.g. ('setosa', 'versicolor', 'virginica').
    classes: tuple = ()
    y_mean: float = 0.0
    y_std: float = 1.0
    image_shape: tuple[int, int] | None = None
    # Image sets: each row is ``channels × image_shape`` pixels in channel-major order.
    channels: int = 1
    # What the tensors were made from: the data_id of the bytes read (a CSV file's
    # csv:<sha256>, or sklearn-<version>:<name>); regexp.data.sources.csv_id, builtin_id.
    data_id: str = ""

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


def _check_sizes(val_size: float, test_size: float) -> None:
    for key, value in (("val_size", val_size), ("test_size", test_size)):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1
        if not ok:
            raise ValueError(f"dataset.{key} must be in (0, 1), got {value!r}")
    if val_size + test_size >= 1:
        raise ValueError(
            f"dataset.val_size + dataset.test_size must be < 1, got {val_size + test_size:g}"
        )


def split_indices(
    y: np.ndarray, task: str, val_size: float, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint train/validation/test row indices; stratified on ``y`` for classification.

    ``val_size`` and ``test_size`` are fractions of all rows.
    """
    from sklearn.model_selection import train_test_split

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


def make_scaler(kind: str) -> StandardScaler | MinMaxScaler | FunctionTransformer:
    """The (unfitted) scikit-learn transformer of ``dataset.scaler=kind``.

    ``standard``: :class:`~sklearn.preprocessing.StandardScaler` (train mean and std,
    ddof 0); ``minmax``: :class:`~sklearn.preprocessing.MinMaxScaler` (train min and range,
    to [0, 1]); ``none``: the identity. Both scalers give constant columns scale 1.
    """
    from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

    if kind == "standard":
        return StandardScaler()
    if kind == "minmax":
        return MinMaxScaler()
    if kind == "none":
        return FunctionTransformer()
    raise ValueError(f"dataset.scaler must be one of {', '.join(SCALERS)}, got '{kind}'")


def fit_scaler(x_train: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(shift, scale)`` such that ``(x - shift) / scale`` is the scaled ``x``.

    The affine form of :func:`make_scaler` ``(kind)`` fitted on ``x_train``.
    """
    scaler = make_scaler(kind).fit(x_train)
    if kind == "standard":
        return scaler.mean_, scaler.scale_
    if kind == "minmax":
        return scaler.data_min_, 1.0 / scaler.scale_
    return np.zeros(x_train.shape[1]), np.ones(x_train.shape[1])


def encode_classes(y: np.ndarray) -> tuple[tuple, np.ndarray]:
    """``(classes, codes)``: the sorted distinct labels of ``y`` and each row's index.

    Labels become plain Python values (``'setosa'``, ``3``); labels of mixed types, which
    do not sort together, sort numbers first, then the rest by their text.
    """
    try:
        labels, codes = np.unique(y, return_inverse=True)
        return tuple(labels.tolist()), codes.reshape(-1)
    except TypeError:  # e.g. 1 and "a"
        values = [v.item() if isinstance(v, np.generic) else v for v in np.asarray(y).tolist()]

        def key(v: object) -> tuple:
            number = isinstance(v, numbers.Real) and not isinstance(v, bool)
            return (0, v, "") if number else (1, 0, str(v))

        classes = tuple(sorted(set(values), key=key))
        index = {label: i for i, label in enumerate(classes)}
        return classes, np.array([index[v] for v in values], dtype=np.int64)


def _listed(values: tuple, most: int = 20) -> str:
    shown = ", ".join(map(str, values[:most]))
    return shown + (f", ... ({len(values)} in all)" if len(values) > most else "")


def load_dataset(
    name: str,
    task: str,
    val_size: float = 0.2,
    test_size: float = 0.2,
    split_seed: int = 0,
    scaler: str = "standard",
    **options: object,
) -> Dataset:
    """Load data set ``name``, split it and scale features with training statistics.

    A built-in data set, once prepared, is kept in :mod:`regexp.data.cache` and read
    back from there (the same tensors, without importing scikit-learn). The arguments are
    a ``dataset`` config group that passed :func:`regexp.config.validate` (the file's
    contents, which no config check sees, are checked as they are read).
    """
    cache_name, settings = None, None
    if name in BUILTIN_TASKS:
        settings = {
            "name": name,
            "task": task,
            "val_size": val_size,
            "test_size": test_size,
            "split_seed": split_seed,
            "scaler": scaler,
            "options": dict(options),
            "versions": _versions(),
        }
        if name in images.IMAGE_SETS:  # the files under dataset.root, by content
            root = str(options.get("root", images.DEFAULT_ROOT))
            settings["files"] = images.files_digest(name, root)
        cache_name = f"{name}-{datacache.key(settings)}"
        cached = datacache.load(cache_name, settings)
        if cached is not None and set(cached) == {f.name for f in fields(Dataset)}:
            data = Dataset(**cached)
            log.info(describe(data))
            return data
    data = _prepare(name, task, val_size, test_size, split_seed, scaler, **options)
    log.info(describe(data))
    if cache_name is not None and settings is not None:
        datacache.save(
            cache_name, settings, {f.name: getattr(data, f.name) for f in fields(Dataset)}
        )
    return data


def _versions() -> list:
    """What a prepared built-in data set depends on besides its options: the installed
    scikit-learn (its data files, split and scalers; found without importing it, by its
    ``__init__.py``, which every install rewrites), NumPy and torch, and the source of this
    module and :mod:`regexp.data.sources`."""
    spec = importlib.util.find_spec("sklearn")
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    stat = origin.stat() if origin is not None else None
    code = Path(__file__).read_bytes() + Path(tables.__file__).read_bytes()
    return [
        [str(origin), stat.st_size, stat.st_mtime_ns] if stat is not None else None,
        str(np.__version__),
        str(torch.__version__),  # a TorchVersion: weights_only loading wants a str
        hashlib.sha256(code).hexdigest(),
    ]


def _prepare(
    name: str,
    task: str,
    val_size: float,
    test_size: float,
    split_seed: int,
    scaler: str,
    **options: object,
) -> Dataset:
    table = LOADERS[name](task=task, **options)
    x = np.asarray(table.x, dtype=np.float64)
    classes: tuple = ()
    if task == "classification":
        classes, y = encode_classes(np.asarray(table.y))
        if len(classes) < 2:
            raise ValueError(
                f"dataset: classification needs at least 2 classes in the target, "
                f"found {len(classes)}: {list(classes)}"
            )
    else:
        y = np.asarray(table.y, dtype=np.float64)
    if task == "classification":
        _check_class_sizes(classes, y)
    train, val, test = split_indices(y, task, val_size, test_size, split_seed)
    with np.errstate(over="ignore"):  # overflow to inf is refused just below
        xs = make_scaler(scaler).fit(x[train]).transform(x).astype(np.float32)
    overflow = np.isinf(xs).any(axis=0)
    if overflow.any():
        raise ValueError(overflow_message(table.feature_names, x, overflow, scaler))

    y_mean, y_std = 0.0, 1.0
    if task == "regression":
        y_mean, y_std = float(y[train].mean()), float(y[train].std() or 1.0)
        yt = torch.as_tensor((y - y_mean) / y_std, dtype=torch.float32)
    else:
        yt = torch.as_tensor(y, dtype=torch.int64)
    xt = torch.from_numpy(xs)
    data = Dataset(
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
        channels=table.channels,
        data_id=table.data_id or "",
    )
    return data


def _check_class_sizes(classes: tuple, codes: np.ndarray) -> None:
    """Refuse classes of a single row (a stratified split needs two), naming the file's
    labels (not their encoded indices)."""
    counts = np.bincount(codes, minlength=len(classes))
    rare = tuple(classes[i] for i in np.flatnonzero(counts < 2))
    if rare:
        raise ValueError(
            f"dataset: cannot split {len(codes)} rows into train/val/test, stratified by "
            f"the target: {len(rare)} of its {len(classes)} classes have a single row: "
            f"{_listed(rare)}; "
            "if the target is a measurement, set dataset.task=regression, else use more rows"
        )


def overflow_message(names: list[str], x: np.ndarray, overflow: np.ndarray, scaler: str) -> str:
    """The error for feature columns that overflow float32 once scaled, with the remedy
    that fits: a scaler for ``scaler=none``; otherwise the values lie far outside the
    training rows that the scaler was fitted on, so the columns need clipping or a log."""
    columns = ", ".join(np.asarray(names)[overflow].tolist())
    largest = float(np.abs(x[:, overflow]).max())
    if scaler == "none":
        remedy = "rescale them, or use dataset.scaler=standard"
    else:
        remedy = (
            f"they hold values far outside the range of the training rows, on which the "
            f"{scaler} scaler is fitted; clip or log-transform those columns, or drop "
            "the rows that hold such values"
        )
    return (
        f"dataset: feature columns out of float32 range after dataset.scaler={scaler}: "
        f"{columns} (largest |x| = {largest:.3g}); {remedy}"
    )


def describe(data: Dataset) -> str:
    """The log line of a loaded data set: features, classes (or regression) and rows."""
    classes = data.classes
    kind = f"{len(classes)} classes ({_listed(classes)})" if classes else "regression"
    rows = "/".join(str(len(y)) for y in (data.y_train, data.y_val, data.y_test))
    return f"dataset {data.name}: {data.n_features} features, {kind}, train/val/test = {rows} rows"
