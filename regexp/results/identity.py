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
from regexp.data.sources import ID_LENGTH, builtin_id, csv_id, read_stable

# Config keys that cannot change a run's numbers, and so are left out of its config_id:
# resume (whether finished runs are reused), objectives (what a sweeper is told), logger
# (where metrics are copied to), figures (whether per-run figures are drawn), compress
# and trainer.engine (engines agree up to float reordering: tests/test_engines.py), and
# selection (how a sweep's best.csv chooses λ once the runs are done).
NOT_IDENTITY = (
    "resume",
    "objectives",
    "logger",
    "figures",
    "compress",
    "trainer.engine",
    "selection",
)


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
    for path in (k.split(".") for k in NOT_IDENTITY if "." in k):
        if isinstance(kept.get(path[0]), Mapping) and path[1] in kept[path[0]]:
            kept[path[0]] = {k: v for k, v in kept[path[0]].items() if k != path[1]}
    text = json.dumps(_canonical(kept), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


@lru_cache(maxsize=64)
def _file_id(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return csv_id(read_stable(Path(path)))


def data_id(dataset: Mapping) -> str:
    """The content behind config group ``dataset`` as it is now: ``csv:<sha256 of the
    file's bytes>`` (:func:`regexp.data.sources.csv_id`), ``files:<sha256 of the files'
    bytes>`` for an image set read from ``dataset.root``
    (:func:`regexp.data.images.files_digest`), or ``sklearn-<version>:<name>`` for a data
    set bundled with scikit-learn (:func:`regexp.data.sources.builtin_id`).

    A run records the ``data_id`` of the bytes it read (``Dataset.data_id``, for a CSV
    file); this one, of the data as it is now, is what resume compares it with.
    """
    if dataset["name"] == "csv":
        path = Path(str(dataset["path"])).expanduser().resolve()
        stat = path.stat()
        return _file_id(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if dataset["name"] in IMAGE_SETS:  # torchvision's files under dataset.root, by content
        root = str(dataset.get("root", DEFAULT_ROOT))
        return f"files:{files_digest(dataset['name'], root) or 'missing'}"
    return builtin_id(dataset["name"])
