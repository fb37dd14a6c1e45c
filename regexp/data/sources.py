"""Raw data sets, before splitting: the bundled scikit-learn ones and CSV files.

A loader returns a :class:`Table` (features, target, names, task and ``data_id``, the
identity of the content it was built from: :func:`csv_id` of the bytes read, or
:func:`builtin_id`). A CSV file is read once, whole, and parsed from those bytes, so the
``data_id`` is the hash of what the run trains on even if the file is rewritten meanwhile.
Reading a CSV file refuses, with one line that names the file and the columns, what would
silently give wrong numbers: duplicate or unnamed columns (label leakage, a pandas index
as a feature), header-only files, rows longer than the header, infinite or overflowing
values and classification targets that look continuous.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import numbers
import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from regexp.data import images

log = logging.getLogger(__name__)

# The task of each built-in data set; only dataset=csv takes dataset.task from the config.
BUILTIN_TASKS = {
    "digits": "classification",
    "diabetes": "regression",
    "breast_cancer": "classification",
    "wine": "classification",
    "synthetic": "classification",
    # Images (regexp.data.images): digits as 1×8×8, and torchvision's files under dataset.root.
    "digits_images": "classification",
    "mnist": "classification",
    "fashion_mnist": "classification",
    "cifar10": "classification",
}
# Separators that dataset.sep=null (auto-detect) chooses from.
SNIFF_SEPS = ",;\t|"
# Feature values beyond this break the scalers: their square overflows float64.
LARGE = math.sqrt(np.finfo(np.float64).max)  # about 1.3e154
# Hex digits of sha256 kept in an id (a CSV file's data_id, a config_id): 64 bits.
ID_LENGTH = 16
# Reads of a file that changes while it is read, before giving up.
READ_ATTEMPTS = 5


def csv_id(content: bytes) -> str:
    """The ``data_id`` of a CSV file's bytes: ``csv:<first 16 hex digits of their sha256>``."""
    return f"csv:{hashlib.sha256(content).hexdigest()[:ID_LENGTH]}"


def builtin_id(name: str) -> str:
    """The ``data_id`` of a data set bundled with scikit-learn: ``sklearn-<version>:<name>``
    (its data changes only with scikit-learn's version; read from the installed package's
    metadata, without importing it)."""
    from importlib.metadata import version

    return f"sklearn-{version('scikit-learn')}:{name}"


def read_stable(file: Path) -> bytes:
    """The whole content of ``file``, read once; read again when the file changed while it
    was read (its size, modification time or inode differ before and after, or the bytes
    read are not its size), at most :data:`READ_ATTEMPTS` times."""
    for _ in range(READ_ATTEMPTS):
        before = os.stat(file)
        content = file.read_bytes()
        after = os.stat(file)
        same = (before.st_size, before.st_mtime_ns, before.st_ino) == (
            after.st_size,
            after.st_mtime_ns,
            after.st_ino,
        )
        if same and len(content) == after.st_size:
            return content
    raise ValueError(
        f"dataset.path: '{file}' kept changing while it was read ({READ_ATTEMPTS} times); "
        "train once it is completely written"
    )


@dataclass(frozen=True)
class Table:
    """A raw data set before splitting: features ``x`` [n, d] and target ``y`` [n]."""

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    task: str
    image_shape: tuple[int, int] | None = None
    # Image sets: each row is ``channels × image_shape`` pixels in channel-major order.
    channels: int = 1
    data_id: str | None = None  # csv_id of the bytes read, or builtin_id


def _sklearn(
    name: str, task: str, image_shape=None, loader: str | None = None
) -> Callable[..., Table]:
    """The Table of data set ``name``: ``sklearn.datasets.<loader>()`` (by default
    ``load_<name>``; scikit-learn imported when called)."""

    def load(**_: object) -> Table:
        from sklearn import datasets as skdatasets

        bunch = getattr(skdatasets, loader or f"load_{name}")()
        names = [str(n) for n in getattr(bunch, "feature_names", [])] or [
            f"x{i}" for i in range(bunch.data.shape[1])
        ]
        return Table(bunch.data, bunch.target, names, task, image_shape, data_id=builtin_id(name))

    return load


def _image_loader(name: str) -> Callable[..., Table]:
    """The Table of image set ``name`` (:func:`regexp.data.images.load_image_set`)."""

    def load(
        root: str = images.DEFAULT_ROOT, download: bool = False, task: str = "", **_: object
    ) -> Table:
        x, y, (channels, height, width) = images.load_image_set(name, root, download)
        names = images.pixel_names((channels, height, width))
        return Table(x, y, names, BUILTIN_TASKS[name], (height, width), channels)

    return load


def _sep(sep: str | None, content: bytes) -> str:
    """The separator to read ``content`` with: ``sep``, or for ``None`` the sniffed one.

    ``None`` lets :class:`csv.Sniffer` choose among ``, ; tab |`` from the first 64 KiB;
    when it cannot tell (e.g. a single column), it is ``,``. The two characters ``\\t``
    mean a tab (what a shell passes for ``dataset.sep='\\t'``).
    """
    if sep == "\\t":
        return "\t"
    if sep is not None:
        return sep
    sample = content[:65536].decode(errors="replace")
    try:
        return csv.Sniffer().sniff(sample, delimiters=SNIFF_SEPS).delimiter
    except csv.Error:
        return ","


def _columns(names: list[str]) -> str:
    return ", ".join(map(str, names))


def _check_header(header: list[str], path: str) -> None:
    """Refuse a header with unnamed or repeated column names (as written in the file)."""
    unnamed = [i for i, name in enumerate(header) if not name.strip()]
    if unnamed and unnamed[0] == 0:
        raise ValueError(
            f"dataset.path: the first column of '{path}' has no name ('Unnamed: 0'): an index "
            "column, as DataFrame.to_csv writes by default; write the file with "
            "to_csv(..., index=False), or give the column a name if it is a feature"
        )
    if unnamed:
        raise ValueError(
            f"dataset.path: column {unnamed[0] + 1} of '{path}' has no name in the header; "
            "name it, or delete it (a trailing separator on each line makes such a column)"
        )
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        raise ValueError(
            f"dataset.path: duplicate column names in '{path}': {_columns(repeated)}; "
            "every column needs its own name (pandas would rename a copy to "
            f"{repeated[0]}.1 and use it as a feature)"
        )


def _check_finite(x: np.ndarray, names: list[str], path: str, what: str) -> None:
    """Refuse infinite values, and finite ones too large to scale (|x| > ``LARGE``)."""
    inf = np.isinf(x).any(axis=0)
    if inf.any():
        raise ValueError(
            f"dataset.path: infinite values (inf, -inf) in '{path}', {what}: "
            f"{_columns(np.asarray(names)[inf].tolist())}; only finite numbers are allowed, "
            "replace or drop those rows first"
        )
    huge = (np.abs(x) > LARGE).any(axis=0)
    if huge.any():
        raise ValueError(
            f"dataset.path: values too large in '{path}', {what}: "
            f"{_columns(np.asarray(names)[huge].tolist())}; |x| must be <= {LARGE:.3g} "
            "(its square must fit in float64), rescale those columns first"
        )


def _check_classes(y: pd.Series, target: str, path: str) -> None:
    """Refuse a continuous classification target: non-integer floats, over half distinct."""
    if not pd.api.types.is_float_dtype(y):
        return
    values = y.to_numpy(dtype=np.float64)
    non_integer = not np.array_equal(values, np.round(values))
    distinct = y.nunique()
    if non_integer and distinct > len(y) / 2:
        raise ValueError(
            f"dataset.target: '{target}' in '{path}' looks continuous ({distinct} distinct "
            f"values in {len(y)} rows, not all integers), not like class labels; "
            "set dataset.task=regression, or use a column of class labels"
        )


def load_csv(
    path: str,
    target: str | int,
    task: str,
    encode_categorical: bool = False,
    sep: str | None = ",",
    **_: object,
) -> Table:
    """Read a CSV whose column ``target`` is the target and every other column a feature.

    Non-numeric feature columns are an error unless ``encode_categorical`` is true; then
    each becomes one 0/1 column per category (``pandas.get_dummies``), named
    ``<column>_<category>``.

    ``sep`` is the field separator (one character; ``"\\t"`` may be spelled as the two
    characters ``\\t``); ``None`` detects it with :class:`csv.Sniffer` among ``, ; tab |``.
    A number ``target`` (Hydra reads ``dataset.target=3`` as the int 3) names the column
    ``"3"``.

    Bad data is refused with a one-line ``ValueError`` that names the file and columns:
    an empty file, a header without rows, unnamed or duplicate column names (read from the
    header as written: pandas would rename a second ``y`` to ``y.1``, a feature that leaks
    the target), rows with more fields than the header, missing (NaN), infinite or huge
    (|x| > 1.3e154, whose square overflows float64) values, and, for classification, a
    target that looks continuous: float values, not all integers, with more distinct
    values than half the rows. A leading unnamed column, the index that
    ``DataFrame.to_csv`` writes by default, is refused too rather than dropped: it is
    usually the row number, which leaks the target when the rows are sorted by it;
    the message says to write the file with ``index=False``.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"dataset.path: no such file '{path}'")
    if isinstance(target, numbers.Number) and not isinstance(target, bool):
        given, target = target, str(target)
    else:
        given, target = None, str(target)
    content = read_stable(file)  # once: what is parsed is what data_id names
    try:
        sep = _sep(sep, content)
        header = pd.read_csv(
            io.BytesIO(content), sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False
        ).iloc[0]
        _check_header([str(name) for name in header], path)
        with warnings.catch_warnings():
            # index_col=False: rows longer than the header are an error, not an index
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.BytesIO(content), sep=sep, index_col=False)
    except pd.errors.ParserWarning:
        raise ValueError(
            f"dataset.path: rows of '{path}' have more fields than its header "
            f"({len(header)} names); name every column, or fix those rows"
        ) from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"dataset.path: '{path}' is empty; it needs a header and rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(
            f"dataset.path: cannot read '{path}' as CSV: " + " ".join(str(err).split())
        ) from None
    if len(frame) == 0:
        raise ValueError(f"dataset.path: '{path}' has a header but no rows")
    if target not in frame.columns:
        hint = ""
        if frame.shape[1] == 1:
            hint = (
                f"; is {sep!r} the wrong separator? set dataset.sep, "
                "or dataset.sep=null to detect it"
            )
        elif given is not None:
            hint = f"; the command line gave the number {given!r}, quote it for text"
        raise ValueError(
            f"dataset.target: column '{target}' not in {path}; columns are: "
            + _columns(frame.columns)
            + hint
        )
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise ValueError(f"dataset.path: '{path}' has no feature columns besides '{target}'")
    missing = frame.columns[frame.isna().any()].tolist()
    if missing:
        raise ValueError(
            f"dataset.path: missing (NaN) values in '{path}', columns: "
            + _columns(missing)
            + "; fill or drop those rows first"
        )
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text and not encode_categorical:
        raise ValueError(
            f"dataset.path: non-numeric feature columns in '{path}': "
            + _columns(text)
            + "; encode them as numbers first, or set dataset.encode_categorical=true"
        )
    if text:
        features = pd.get_dummies(features, columns=text, dtype=np.float64)
    names = [str(c) for c in features.columns]
    x = features.to_numpy(dtype=np.float64)
    _check_finite(x, names, path, "columns")
    y = frame[target]
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y):
            raise ValueError(f"dataset.target: regression target '{target}' must be numeric")
        _check_finite(y.to_numpy(dtype=np.float64)[:, None], [target], path, "target")
    else:
        _check_classes(y, target, path)
    return Table(x, y.to_numpy(), names, task, data_id=csv_id(content))


# conf/dataset/synthetic.yaml: scikit-learn's make_classification with these settings.
SYNTHETIC = {
    "n_samples": 2000,
    "n_features": 200,
    "n_informative": 20,
    "n_redundant": 20,
    "n_repeated": 0,
    "n_classes": 2,
    "shuffle": False,
    "random_state": 0,
}


def load_synthetic(**_: object) -> Table:
    """``sklearn.datasets.make_classification(**SYNTHETIC)``: with ``shuffle=False`` its
    columns are the 20 informative features, then 20 redundant ones (linear combinations
    of the informative), then 160 noise features; the names say which."""
    from sklearn.datasets import make_classification

    x, y = make_classification(**SYNTHETIC)
    s = SYNTHETIC
    kinds = [("informative", s["n_informative"]), ("redundant", s["n_redundant"])]
    names = [f"{kind}_{i}" for kind, n in kinds for i in range(n)]
    names += [f"noise_{i}" for i in range(s["n_features"] - len(names))]
    return Table(x, y, names, "classification", data_id=builtin_id("synthetic"))


LOADERS: dict[str, Callable[..., Table]] = {
    "digits": _sklearn("digits", BUILTIN_TASKS["digits"], (8, 8)),
    "diabetes": _sklearn("diabetes", BUILTIN_TASKS["diabetes"]),
    "breast_cancer": _sklearn("breast_cancer", BUILTIN_TASKS["breast_cancer"]),
    "wine": _sklearn("wine", BUILTIN_TASKS["wine"]),
    "synthetic": load_synthetic,
    "csv": load_csv,
    "digits_images": _sklearn(
        "digits_images", BUILTIN_TASKS["digits_images"], (8, 8), "load_digits"
    ),
    **{name: _image_loader(name) for name in images.IMAGE_SETS},
}
