"""What identifies a run: its whole resolved config and its data.

A run's ``metrics.csv`` records every key of its resolved task config as a flattened dotted
column (:func:`flatten`), a ``config_id`` (:func:`config_id`) and a ``data_id``
(:func:`data_id`). Resume reuses a finished run only when both ids match, and aggregation
never averages rows whose config differs beyond the seed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from regexp.data.images import DEFAULT_ROOT, IMAGE_SETS, files_digest

# Config keys that cannot change a run's numbers, and so are left out of its config_id:
# resume (whether finished runs are reused), objectives (what a sweeper is told), logger
# (where metrics are copied to) and figures (whether per-run figures are drawn).
NOT_IDENTITY = ("resume", "objectives", "logger", "figures", "compress")
ID_LENGTH = 16  # hex digits of sha256 kept: 64 bits


def flatten(cfg: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"dataset.scaler": "standard", "model.hidden": "[40, 20]", ...}``: one dotted key
    per leaf of ``cfg``; lists and tuples become JSON text, an empty mapping ``"{}"``, other
    leaves stay as they are."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out |= flatten(value, f"{name}.")
        elif isinstance(value, Mapping):
            out[name] = "{}"
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(list(value))
        else:
            out[name] = value
    return out


def _canonical(value: Any) -> Any:
    """Numbers by value (``1e-3`` and ``0.001``, ``1`` and ``1.0`` hash alike), recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return str(value)


def config_id(cfg: Mapping) -> str:
    """sha256 of the resolved config less :data:`NOT_IDENTITY`, as canonical JSON (sorted
    keys, numbers as floats), first :data:`ID_LENGTH` hex digits."""
    kept = {k: v for k, v in cfg.items() if k not in NOT_IDENTITY}
    text = json.dumps(_canonical(kept), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:ID_LENGTH]


def data_id(dataset: Mapping) -> str:
    """The content behind config group ``dataset``: ``csv:<sha256 of the file's bytes>``,
    ``files:<sha256 of the files' bytes>`` for an image set read from ``dataset.root``
    (:func:`regexp.data.images.files_digest`), or ``sklearn-<version>:<name>`` for a data set
    bundled with scikit-learn (its data changes only with scikit-learn's version)."""
    if dataset["name"] == "csv":
        path = Path(str(dataset["path"])).expanduser().resolve()
        stat = path.stat()
        return f"csv:{_file_digest(str(path), stat.st_size, stat.st_mtime_ns)}"
    from importlib.metadata import version  # the installed version, without importing it

    if dataset["name"] in IMAGE_SETS:  # torchvision's files under dataset.root, by content
        root = str(dataset.get("root", DEFAULT_ROOT))
        return f"files:{files_digest(dataset['name'], root) or 'missing'}"

    return f"sklearn-{version('scikit-learn')}:{dataset['name']}"
