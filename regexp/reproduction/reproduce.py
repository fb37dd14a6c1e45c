"""The Scardapane et al. 2017 reproduction: finished runs → ``reproduction.md`` + figures.

``python -m regexp.reproduction.reproduce [SWEEPS] [DOCS]`` reads every run under ``SWEEPS``
(default
``outputs/reproduce``, see :mod:`regexp.reproduction.runs`), each run's ``model.pt`` and the
baselines of :mod:`regexp.reproduction.baselines` in ``SWEEPS/baselines`` (if they ran), and
writes ``DOCS/reproduction.md`` and ``DOCS/figures/``. Runs are selected by their config
columns, not by directory. The verdicts on the paper's claim compare methods at matched
sparsity or accuracy along their λ fronts, paired over seeds with 95% t intervals
(:mod:`regexp.reproduction.matched`, :mod:`regexp.reproduction.claims`); every number comes from
the runs.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from regexp.io.atomic import write_text
from regexp.reproduction import comparisons, fronts, known, sections, sensitivity, summary
from regexp.reproduction.claims import ACCURACY_TOLERANCE
from regexp.reproduction.study import load_study

log = logging.getLogger(__name__)

EXPERIMENT = "scardapane2017"


def experiment_lambda(name: str = EXPERIMENT) -> float:
    """λ of ``conf/experiment/<name>.yaml``, composed by Hydra as ``regexp train`` does."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("regexp.conf", version_base="1.3"):
        return float(compose("config", overrides=[f"experiment={name}"])["lambda"])


def write_report(
    root: Path,
    out: Path,
    lam: float,
    baselines: Path | None = None,
    seconds: float | None = None,
    fresh: bool = False,
) -> Path:
    """Write ``out/reproduction.md`` and ``out/figures/*.png`` from the runs under ``root``
    (and the baselines in ``baselines``, default ``root/baselines``); ``seconds``: the
    wall time of ``make reproduce`` before this call, to which the summary adds this
    call's own time; ``fresh``: it started from an empty ``root``."""
    start = time.perf_counter()
    study = load_study(root, lam, baselines)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    body = [
        *sections.header(study),
        *sections.constants(study),
        *sections.same_lambda(study, figs),
        *comparisons.claim(study),
    ]
    thresholds, per_threshold = sensitivity.section(study)
    body += [
        *thresholds,
        *comparisons.proximal(study),
        *comparisons.baselines(study),
        *known.synthetic(study),
        *known.breast_cancer(study),
        *fronts.fronts(study, figs),
        *sections.runs_and_times(study),
    ]
    # make's time up to this command, plus this command's own (all but writing the file)
    total = None if seconds is None else seconds + time.perf_counter() - start
    vchecks = comparisons.validation_checks(study, ACCURACY_TOLERANCE)
    mchecks = comparisons.matched_checks(study)
    doc = [
        "# Reproducing Scardapane et al. 2017 on digits",
        "",
        *summary.summary(study, vchecks, mchecks, per_threshold, total, fresh),
        *body,
    ]
    path = out / "reproduction.md"
    write_text(path, "\n".join(doc))
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m regexp.reproduction.reproduce [SWEEPS] [DOCS] [--lambda L]
    [--baselines DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m regexp.reproduction.reproduce", description=__doc__
    )
    parser.add_argument("sweeps", nargs="?", default=Path("outputs/reproduce"), type=Path)
    parser.add_argument("docs", nargs="?", default=Path("docs"), type=Path)
    parser.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=None,
        help=f"λ of the main table (default: experiment {EXPERIMENT}'s)",
    )
    parser.add_argument(
        "--baselines", type=Path, default=None, help="baseline tables (default: SWEEPS/baselines)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="the measured wall time of make reproduce, stated in the summary",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="make reproduce started from an empty SWEEPS (said with the run time)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.sweeps.is_dir():
        parser.exit(2, f"regexp.reproduction.reproduce: error: no such directory '{args.sweeps}'\n")
    try:
        path = write_report(
            args.sweeps,
            args.docs,
            args.lam or experiment_lambda(),
            args.baselines,
            args.seconds,
            args.fresh,
        )
    except ValueError as err:
        parser.exit(2, f"regexp.reproduction.reproduce: error: {err}\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
