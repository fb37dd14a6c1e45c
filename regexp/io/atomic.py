"""Atomic file writes: every file regexp writes goes to a temporary name, then a rename.

A killed process leaves either the old file or the complete new one, never a part. The
temporary name is ``.<name>.<pid>.tmp`` in the same folder (a rename within one file
system is atomic), and :func:`remove_temporaries` deletes those a killed writer left.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the writers take these; importing this module does not load them
    import pandas as pd
    from matplotlib.figure import Figure
    from torch import nn

# The run or sweep directories this process writes into (regexp's Hydra callback adds them),
# so that an interrupted command can remove its temporaries everywhere.
OUTPUT_ROOTS: list[Path] = []


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    If the body raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporaries(folder: Path, names: Sequence[str]) -> None:
    """Delete the temporary files of ``names`` that a killed writer left in ``folder``."""
    for name in names:
        for path in Path(folder).glob(f".{name}.*.tmp"):
            path.unlink(missing_ok=True)


def remove_all_temporaries(root: Path) -> None:
    """Delete every ``.<name>.<pid>.tmp`` file under ``root``, at any depth."""
    if Path(root).is_dir():
        for path in Path(root).rglob(".*.tmp"):
            path.unlink(missing_ok=True)


# The file writable_dir() writes and removes at once.
WRITE_CHECK = ".regexp-write-check"


def writable_dir(path: Path, key: str) -> None:
    """Create directory ``path``; ``ValueError`` naming ``key`` if it cannot be written to."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(path) / WRITE_CHECK) as tmp:
            tmp.write_bytes(b"")
        (Path(path) / WRITE_CHECK).unlink()
    except OSError as err:
        raise ValueError(f"{key} '{path}' is not a writable directory ({err.strerror})") from None


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` to ``path`` as CSV (no index), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_figure(fig: Figure, path: Path, tight: bool = True) -> None:
    """Save a :class:`matplotlib.figure.Figure` as PNG (110 dpi), atomically.

    ``tight`` crops the PNG to what is drawn (it renders twice: about 60% slower). Figures
    built with constrained layout need no cropping. Drawing on ``Figure`` objects needs no
    pyplot backend, so nothing here changes a notebook's backend.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight" if tight else None)


def save_checkpoint(path: Path, model: nn.Module, config: dict, extra: dict | None = None) -> None:
    """Save ``{"state_dict", "config", **extra}`` to ``path``, atomically.

    ``config`` and ``extra`` must hold only dicts, lists, strings, numbers and None, so
    that :func:`regexp.model.mlp.load_checkpoint` can load them with
    ``weights_only=True``.
    """
    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "config": config, **(extra or {})}, tmp)
