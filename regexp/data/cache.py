"""A disk cache of prepared built-in data sets: a run then does not import scikit-learn.

Loading, splitting and scaling a built-in data set takes milliseconds, but importing
scikit-learn (and the SciPy it loads) takes most of a second: more than anything else a
run does outside training. :func:`regexp.data.prepare.load_dataset` keeps each built-in data
set it prepares (the tensors of its three splits and their metadata) in one file per
configuration, named by a hash of everything the result depends on (the ``dataset``
options, the versions of scikit-learn, NumPy and torch, and the source of regexp's data
code). A missing or unreadable file is prepared again; a stale one is never read, its
name no longer matches.

The cache lives in ``$REGEXP_CACHE_DIR/datasets`` (default ``$XDG_CACHE_HOME/regexp``,
else ``~/.cache/regexp``); ``REGEXP_CACHE_DIR=`` (empty) turns it off. Deleting the
folder is always safe.

Why not ``joblib.Memory``: it pickles results (loading runs code; this cache stores
tensors read back with ``torch.load(weights_only=True)``), keys them by the function's
arguments and source only (not by the versions of scikit-learn, NumPy and torch, which
change the prepared numbers), and importing joblib here would cost a run what the cache
saves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from regexp.io.atomic import atomic_path

log = logging.getLogger(__name__)

ENV = "REGEXP_CACHE_DIR"


def folder() -> Path | None:
    """Where prepared data sets are kept, or ``None`` when the cache is off."""
    root = os.environ.get(ENV)
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = str(Path(base) / "regexp")
    return Path(root).expanduser() / "datasets" if root else None


def key(*parts: object) -> str:
    """A name for ``parts`` (JSON-encodable): the SHA-256 of their JSON, in hex."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load(name: str) -> dict | None:
    """The fields saved under ``name``, or ``None`` (not cached, unreadable, cache off)."""
    where = folder()
    path = where / f"{name}.pt" if where is not None else None
    if path is None or not path.is_file():
        return None
    try:
        # weights_only: tensors, numbers, strings, lists, tuples, dicts; never code.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        log.debug("data cache: cannot read %s (%s: %s); preparing it again", path, type(err), err)
        return None


def save(name: str, fields: dict) -> None:
    """Keep ``fields`` under ``name``; if the cache cannot be written, say so in the debug log.

    Written atomically (:func:`regexp.io.atomic.atomic_path`), so a reader sees a whole
    file or none.
    """
    where = folder()
    if where is None:
        return
    try:
        where.mkdir(parents=True, exist_ok=True)
        with atomic_path(where / f"{name}.pt") as tmp:
            torch.save(fields, tmp)
    except OSError as err:
        log.debug("data cache: cannot write %s (%s)", where, err)
