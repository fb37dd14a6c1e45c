"""One job of ``regexp train``: train, evaluate and write its run directory.

:func:`run` is what the Hydra task of ``regexp train`` calls for each job (the CLI, and the
batched launcher for jobs that run alone).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from regexp import errors
from regexp.runs import console
from regexp.runs.run_files import finish_run, wants_figures
from regexp.train.loop import fit_setup, prepare

log = logging.getLogger(__name__)


def run_task(cfg: Mapping, run_dir: Path, summary: bool = True, sweep: bool = False) -> dict:
    """Train one configuration, write its outputs into ``run_dir``.

    ``cfg`` has passed :func:`regexp.config.validate` (each caller validates it once).

    Returns the metrics row of ``metrics.csv``. ``summary``: print the metrics table at
    the end (a sweep's jobs leave it out). ``sweep``: a job of a sweep, which draws its
    figures only with ``figures=always``. A progress bar shows on a terminal.
    """
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
    errors.fault_point("fit")  # tests: a Ctrl-C between training and writing
    figures = wants_figures(cfg, sweep)
    row = finish_run(cfg, run_dir, s.model, s.data, result, summary=summary, figures=figures)
    log.info(console.metrics_line(row, run_dir))
    errors.fault_point("run_written")
    return row
