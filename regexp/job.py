"""One job of ``regexp train``: validate, train, evaluate and write its run directory.

:func:`run` is what the Hydra task of ``regexp train`` calls for each job, and
:func:`finished` tells whether a run directory already holds the finished run of a config
(``resume=true``). Both the CLI and the batched launcher use them.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from pathlib import Path

from regexp.config import validate
from regexp.engine.train import fit_setup, prepare
from regexp.outputs import console
from regexp.outputs.run import config_row, finish, read_metrics

log = logging.getLogger(__name__)


def run(cfg: Mapping, run_dir: Path, summary: bool = True) -> dict:
    """Validate and train one configuration, write its outputs into ``run_dir``.

    Returns the metrics row of ``metrics.csv``. ``summary``: print the metrics table at
    the end (a sweep's jobs leave it out). A progress bar shows on a terminal.
    """
    validate(cfg)
    s = prepare(cfg)
    m = cfg["model"]
    log.info(
        "training %s with %r (%s mode)",
        "-".join(map(str, [s.data.n_features, *m["hidden"], s.data.n_outputs])),
        s.reg,
        s.mode,
    )
    epochs = cfg["trainer"]["epochs"]
    with console.epoch_progress(epochs, enabled=sys.stderr.isatty()) as on_epoch:
        result = fit_setup(cfg, s, on_epoch)
    return finish(cfg, run_dir, s.model, s.data, result, summary=summary)


def _same(stored: object, wanted: object) -> bool:
    """Whether a value read back from metrics.csv equals the config's (numbers by value)."""
    try:
        x, y = float(stored), float(wanted)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(stored) == str(wanted)
    return x == y or (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-12)


def finished(run_dir: Path, config: Mapping) -> dict | None:
    """The metrics row of a finished run (ok or diverged) of ``config`` in ``run_dir``.

    A row written for a different configuration (the sweep command changed) does not
    count: that job runs again.
    """
    row = read_metrics(run_dir)
    if row is None or row.get("status") not in ("ok", "diverged"):
        return None
    try:
        wanted = config_row(config, 0, 0)
    except (KeyError, TypeError):
        return None
    wanted.pop("architecture")
    changed = [
        f"{k}={row.get(k)!r}, now {v!r}" for k, v in wanted.items() if not _same(row.get(k), v)
    ]
    if changed:
        log.warning(
            "resume: %s holds a run of another config (%s); running it again",
            run_dir,
            "; ".join(changed),
        )
        return None
    return row
