"""A disk cache of prepared built-in data sets: a run then does not import scikit-learn.

Loading, splitting and scaling a built-in data set takes milliseconds, but importing
scikit-learn (and the SciPy it loads) takes most of a second: more than anything else a
run does outside training. :func:`regexp.data.prepare.load_dataset` keeps each built-in data
set it prepares (the tensors of its three splits and their metadata) in one file per
configuration, named by a hash of everything the result depends on (the ``dataset``
options, the versions of scikit-learn, NumPy and torch, and the source of regexp's data
code). A stale one is never read, its name no longer matches.

A file is not trusted by its name alone: each entry records its key (every setting and
version, :data:`KEY_FIELD`) and a checksum of its contents (:data:`CHECKSUM_FIELD`,
:func:`checksum`). A missing file is a miss; an unreadable one, one recorded under
another key (another setting's file copied over it) or one whose contents do not match
its checksum is a miss too, with one warning line: it is prepared again and rewritten,
never used.

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
# What an entry records besides its fields: the key it was built for, and its checksum.
KEY_FIELD = "cache_key"
CHECKSUM_FIELD = "cache_checksum"


def folder() -> Path | None:
    """Where prepared data sets are kept, or ``None`` when the cache is off."""
    root = os.environ.get(ENV)
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = str(Path(base) / "regexp")
    return Path(root).expanduser() / "datasets" if root else None


def key(*parts: object) -> str:
    """A name for ``parts`` (JSON-encodable): the SHA-256 of their JSON, in hex."""
    return hashlib.sha256(_canonical(parts).encode()).hexdigest()[:32]


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def checksum(fields: dict) -> str:
    """SHA-256 (hex) over ``fields`` in name order: each name, and for a tensor its dtype,
    shape and bytes, for any other value its ``repr``."""
    digest = hashlib.sha256()
    for name in sorted(fields):
        value = fields[name]
        digest.update(name.encode() + b"\0")
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.numpy().tobytes())
        else:
            digest.update(repr(value).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def load(name: str, expected: dict) -> dict | None:
    """The fields saved under ``name`` for key ``expected``, or ``None`` (not cached, cache
    off, or a file that is unreadable, was built for another key, or fails its checksum:
    each of these says so in one warning line)."""
    where = folder()
    path = where / f"{name}.pt" if where is not None else None
    if path is None or not path.is_file():
        return None
    try:
        # weights_only: tensors, numbers, strings, lists, tuples, dicts; never code.
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        return _miss(path, f"unreadable ({type(err).__name__})")
    if not isinstance(entry, dict) or KEY_FIELD not in entry:
        return _miss(path, "it records no key")
    if _canonical(entry[KEY_FIELD]) != _canonical(expected):
        return _miss(path, "it was built for other settings")
    fields = {k: v for k, v in entry.items() if k not in (KEY_FIELD, CHECKSUM_FIELD)}
    if entry.get(CHECKSUM_FIELD) != checksum(fields):
        return _miss(path, "its contents do not match its checksum")
    return fields


def _miss(path: Path, why: str) -> None:
    log.warning("data cache: %s is not used (%s); preparing the data set again", path, why)
    return None


def save(name: str, expected: dict, fields: dict) -> None:
    """Keep ``fields`` under ``name``, with their key ``expected`` and :func:`checksum`; if
    the cache cannot be written, say so in the debug log.

    Written atomically (:func:`regexp.io.atomic.atomic_path`), so a reader sees a whole
    file or none.
    """
    where = folder()
    if where is None:
        return
    entry = {**fields, KEY_FIELD: expected, CHECKSUM_FIELD: checksum(fields)}
    try:
        where.mkdir(parents=True, exist_ok=True)
        with atomic_path(where / f"{name}.pt") as tmp:
            torch.save(entry, tmp)
    except OSError as err:
        log.debug("data cache: cannot write %s (%s)", where, err)
