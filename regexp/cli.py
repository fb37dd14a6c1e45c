"""The ``regexp`` command: ``regexp train`` (Hydra) and its siblings.

Bad input ends with one line on stderr that names the bad value, exit code 2 and no
traceback; set ``REGEXP_DEBUG=1`` to see the full traceback instead.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from regexp.errors import DEBUG_ENV, debug, fail, one_line

if TYPE_CHECKING:
    from omegaconf import DictConfig

# This module imports nothing heavy at its top (Hydra, torch, pandas come inside main()'s
# handlers), so that a Ctrl-C at any moment of startup ends with one line.

log = logging.getLogger("regexp")

USAGE = """usage: regexp <command> [options]

Experiments on how regularization shapes neural networks.

commands:
  train     train and evaluate one configuration, or a sweep with -m (Hydra overrides;
            `regexp train --help` lists the config groups)
  compare   summarize and plot sweeps, run directories or results CSVs together
            (`regexp compare --help`)
  plot      draw the figures of finished runs, or of every job of a sweep
            (`regexp plot --help`)
  refine    propose a finer λ grid where a sweep's accuracy falls, and print the
            command that adds it to the sweep (`regexp refine --help`)
  compress  rebuild finished runs' sparse MLPs as smaller dense ones, checked and timed
            (`regexp compress --help`)

examples:
  regexp train regularizer=sgl lambda=1e-3
  regexp train -m regularizer=l1,l2,group_lasso,sgl lambda=1e-4,1e-3,1e-2 seed=0,1,2
  regexp train -m experiment=digits_sweep
  regexp compare outputs/multirun/2024-05-01/12-00-00 outputs/multirun/2024-05-02/09-30-00
  regexp compare outputs/multirun/2024-05-01/12-00-00 --rule within:0.01

Set REGEXP_DEBUG=1 to see full tracebacks.
"""


def _remove_if_empty(run_dir: Path) -> None:
    """Delete a run directory that holds nothing but Hydra's own files, the run's marker
    and its lock (released first)."""
    from regexp.runs.run_files import MARKER
    from regexp.runs.sweep_dir import LOCK_FILE, STATE_DIR, release_locks

    release_locks()

    def hydra_only(p: Path) -> bool:
        if p.name == STATE_DIR and p.is_dir():
            return all(q.name == LOCK_FILE for q in p.iterdir())
        return p.name in (".hydra", MARKER) or p.suffix == ".log"

    if run_dir.is_dir() and all(hydra_only(p) for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def train_app() -> Callable[[], object]:
    """``regexp train``: :func:`train_task` as a Hydra app (``@hydra.main``) over the
    shipped config (``regexp.conf``)."""
    import hydra

    main_ = hydra.main(config_path="pkg://regexp.conf", config_name="config", version_base="1.3")
    return main_(train_task)


def train_task(cfg: DictConfig) -> float | list[float] | None:
    """Hydra task: one run. Returns its ``objectives`` for the sweeper.

    See :func:`regexp.hydra_app.objectives.objective_values`: one float (by default the validation
    metric), a list for a multi-objective search, ``None`` for a job that is not ``ok``.

    In a sweep (``-m``) a failing job writes a ``metrics.csv`` row with
    ``status=failed`` and the error, and the sweep goes on. With ``resume=true`` a job
    whose ``metrics.csv`` records a finished run (ok or diverged) of the same
    configuration is skipped.
    """
    import torch
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from regexp.config import validate_once
    from regexp.hydra_app.objectives import objective_values, validate_objectives
    from regexp.hydra_app.task import run_task
    from regexp.runs import sweep_dir
    from regexp.runs.run_files import failed_row

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    config: dict = {}
    try:
        config = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        objectives = validate_objectives(config["objectives"])
        root = Path(str(hc.sweep.dir)) if multirun else run_dir  # where runs are set aside
        row = sweep_dir.reuse(run_dir, config, root) if config.get("resume") else None
        if row is not None:
            log.info("resume: %s is complete, skipping", run_dir)
            return objective_values(row, objectives)
        validate_once(config)  # a single run's was validated before its directory existed
        torch.set_num_threads(config["trainer"]["num_threads"])  # the process's, not the library's
        row = run_task(config, run_dir, summary=not multirun, sweep=multirun)
    except Exception as err:
        if debug():
            raise
        bad_input = isinstance(err, ValueError | OmegaConfBaseException)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise  # a full disk: every job would fail; regexp stops (main() says so)
        if multirun:
            log.error("job %s failed: %s: %s", hc.job.num, type(err).__name__, err)
            failed_row(config, run_dir, err)
            return None
        _remove_if_empty(run_dir)
        if bad_input:
            fail(one_line(err))
        fail(f"{type(err).__name__}: {err} (set {DEBUG_ENV}=1 for the traceback)", code=1)
    return objective_values(row, objectives)


COMPARE_EPILOG = """examples:
  regexp compare outputs/multirun/2024-05-01/12-00-00
  regexp compare outputs/multirun/a outputs/multirun/b/results.csv outputs/multirun/a/0
  regexp compare outputs/multirun/a outputs/multirun/b --by source,regularizer --out cmp
  regexp compare outputs/multirun/a --rule within:0.01 --sparsity inputs
"""


def _rule(text: str) -> str:
    """argparse type of ``--rule``: :func:`regexp.results.selection.parse_rule`."""
    import argparse

    from regexp.results.selection import parse_rule

    try:
        parse_rule(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def compare_main(argv: list[str]) -> None:
    """``regexp compare``: summary table, ``comparison.csv`` and plots of several results."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="regexp compare",
        description="Summarize sweeps, run directories and results CSVs together: mean and\n"
        "std over seeds per group (failed and diverged jobs counted in n, left out of the\n"
        "means), printed as a table and written as comparison.csv, with the plots against\n"
        "λ and the Pareto front.",
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="sweep directory, run directory, results.csv or metrics.csv",
    )
    parser.add_argument(
        "--by",
        type=lambda s: [c for c in s.split(",") if c],
        default=None,
        metavar="COLS",
        help="comma-separated columns to group on, e.g. source,regularizer,lambda "
        "(default: dataset,regularizer,mode,lambda and every other config "
        "column that varies; `source` is the PATH a row came from)",
    )
    parser.add_argument(
        "--metric",
        default=None,
        metavar="COL",
        help="column to sort on, best first, and to plot against λ (default: sort on "
        "val_accuracy, or val_r2 when no job reports accuracy, or val_metric, each job's "
        "own, when both occur; plot the test metric)",
    )
    parser.add_argument(
        "--select",
        default=None,
        metavar="COL",
        help="validation column that chooses the best λ of each group, written to "
        "best.csv (default: val_accuracy, val_r2 or val_metric, as for --metric); a test_* "
        "column is refused unless --allow-test-selection",
    )
    parser.add_argument(
        "--allow-test-selection",
        action="store_true",
        help="let --select name a test_* column (λ chosen on the test split: its test "
        "numbers are then optimistic)",
    )
    parser.add_argument(
        "--rule",
        type=_rule,
        default="best",
        metavar="RULE",
        help="best: the λ with the best mean; 1se: the sparsest λ within one standard "
        "error of the best mean; within:TOL: the sparsest λ whose mean is within TOL of "
        "the best (within:0.01: one point of accuracy), and one line with the sparsest "
        "network of all within TOL of the best; ties go to the sparser λ (default: best)",
    )
    parser.add_argument(
        "--sparsity",
        choices=("params", "inputs"),
        default="params",
        help="what 'sparsest' counts: parameters kept or input features kept (default: params)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to write comparison.csv, best.csv and the plots "
        "(default: outputs/compare/<date>_<time>)",
    )
    args = parser.parse_args(argv)
    from datetime import datetime

    from regexp.hydra_app.report import compare
    from regexp.runs.console import print_answers, print_best, print_comparison

    out = args.out or Path("outputs/compare") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    try:
        summary, by, metric, best, answer = compare(
            args.paths,
            args.by,
            args.metric,
            out,
            args.select,
            args.rule,
            args.sparsity,
            allow_test_selection=args.allow_test_selection,
        )
    except ValueError as err:
        if debug():
            raise
        fail(str(err))
    print_comparison(summary, by, metric)
    if best is None:
        print(f"comparison.csv and plots written to {out} (no best.csv: no ok run to choose λ)")
        return
    print_best(best)
    written = "comparison.csv, best.csv"
    if answer is not None:
        written += ", sparsest.csv"
        print_answers(best, answer)
    print(f"{written} and plots written to {out}")


def plot_main(argv: list[str]) -> None:
    """``regexp plot PATH...``: the three figures of each finished run under the paths."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="regexp plot",
        description="Draw learning_curves.png, sparsity.png and features.png of finished runs\n"
        "from their CSVs and model.pt (sweep jobs write none unless figures=always).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run or sweep directory")
    args = parser.parse_args(argv)
    from regexp.runs.collect import job_dirs
    from regexp.runs.run_files import plot_run

    runs = []
    for path in map(Path, args.paths):
        found = (
            [d for d in job_dirs(path) if (d / "metrics.csv").is_file()] if path.is_dir() else []
        )
        if not found:
            fail(f"no finished runs in '{path}' (expected a run or sweep directory)")
        runs += [d for d in found if d not in runs]
    from regexp.runs.console import item_progress

    drawn, unwritable, failed = 0, [], 0
    with item_progress(len(runs), "runs drawn") as advance:
        for run_dir in runs:
            try:
                drawn += len(plot_run(run_dir))
            except (ValueError, OSError) as err:
                if debug():
                    raise
                failed += 1
                if isinstance(err, PermissionError) or getattr(err, "errno", None) == errno.EROFS:
                    unwritable.append((run_dir, err))
                else:  # one line per run that cannot be drawn (a corrupt model.pt); others go on
                    print(f"regexp: error: {run_dir}: {one_line(err)}", file=sys.stderr)
            advance(run_dir.name)
    print(f"{drawn} figures of {len(runs)} run(s) written")
    if unwritable:
        where, err = unwritable[0]
        fail(
            f"{len(unwritable)} run folder(s) cannot be written, e.g. '{where}' "
            f"({getattr(err, 'strerror', None) or err}): no figures drawn there",
            code=1,
        )
    if failed:
        raise SystemExit(1)


REFINE_EPILOG = """examples:
  regexp refine outputs/multirun/2024-05-01/12-00-00
  regexp refine outputs/multirun/2024-05-01/12-00-00 --tol 0.02 --points 6
"""


def refine_main(argv: list[str]) -> None:
    """``regexp refine SWEEP_DIR``: a finer λ grid between each group's last good and first
    collapsed λ (:mod:`regexp.results.refine`), and the command that runs it."""
    import argparse
    import shlex

    parser = argparse.ArgumentParser(
        prog="regexp refine",
        description="Propose a finer λ grid where a sweep's validation metric falls: per\n"
        "group (regularizer, mode, ...), between the last good λ (mean within --tol of the\n"
        "group's best, no run collapsed) and the first collapsed λ above it (a run at or\n"
        "below chance, or R² <= 0). Prints the grid and the command that adds it to the\n"
        "sweep with resume=true (finished runs are reused, not trained again).",
        epilog=REFINE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep", type=Path, metavar="SWEEP_DIR", help="a finished sweep")
    parser.add_argument(
        "--tol",
        type=float,
        default=0.01,
        help="a λ is good when its mean validation metric is within TOL of its group's "
        "best (default: 0.01)",
    )
    parser.add_argument(
        "--points",
        type=int,
        default=4,
        help="new λ values per interval, log-spaced (default: 4)",
    )
    args = parser.parse_args(argv)
    if not args.tol >= 0:
        fail(f"--tol must be a number >= 0, got {args.tol}")
    if args.points < 1:
        fail(f"--points must be an integer >= 1, got {args.points}")
    from omegaconf import OmegaConf

    from regexp.results import refine
    from regexp.runs.collect import load_results
    from regexp.runs.console import fmt

    multirun = args.sweep / "multirun.yaml"
    if not multirun.is_file():
        fail(f"no multirun.yaml in '{args.sweep}' (expected the directory of a regexp train -m)")
    try:
        results = load_results(args.sweep)
        intervals = refine.drop_intervals(results, args.tol)
    except ValueError as err:
        if debug():
            raise
        fail(str(err))
    lambdas = sorted(results["lambda"].dropna().unique())
    grid = refine.finer_grid(intervals, lambdas, args.points)
    groups = [c for c in intervals.columns if c not in ("last_good", "first_bad", "bad")]
    for row in intervals.to_dict("records"):
        name = " ".join(fmt(row[c]) for c in groups)
        low, high = row["last_good"], row["first_bad"]
        if _missing(low) or _missing(high):
            print(f"{name}: no λ above the last good one, λ={fmt(low)}; extend the grid up")
            continue
        new = [v for v in refine.between(low, high, args.points) if v in grid]
        first = "first collapsed" if row["bad"] == "collapsed" else "first out of tolerance"
        print(f"{name}: last good λ={fmt(low)}, {first} λ={fmt(high)}; "
              f"new: {', '.join(fmt(v) for v in new)}")  # fmt: skip
    if not grid:
        print("nothing to refine: no group has a λ above its last good one")
        return
    config = OmegaConf.load(multirun)
    keep = [o for o in config.hydra.overrides.task if o.split("=")[0] not in ("lambda", "resume")]
    hydra_keys = ("hydra.sweep.dir", "hydra.run.dir", "hydra.mode")
    keep += [o for o in config.hydra.overrides.hydra if o.split("=")[0] not in hydra_keys]
    union = ",".join(fmt(float(v)) for v in sorted({*lambdas, *grid}))
    words = ["regexp", "train", "-m", *keep, f"lambda={union}"]
    words += [f"hydra.sweep.dir={args.sweep}", "resume=true"]
    replicas = [c for c in [*groups, "seed"] if c in results.columns]
    per_lambda = len(results.drop_duplicates(replicas)) if replicas else 1
    print(
        f"{len(grid)} new λ for every group ({per_lambda * len(grid)} new jobs; "
        "finished runs are reused):"
    )
    print(" ".join(shlex.quote(w) for w in words))


def _missing(value: object) -> bool:
    """Whether ``value`` is a missing number (NaN or None)."""
    return value is None or value != value


def compress_main(argv: list[str]) -> None:
    """``regexp compress PATH...``: ``compressed.pt`` and ``compression.csv`` of each ok run."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="regexp compress",
        description="Remove the dead inputs and units of finished runs' MLPs: writes\n"
        "compressed.pt (a smaller dense network over the kept features) and compression.csv\n"
        "(parameters, file size and latency before and after) into each run directory.\n"
        "Nothing is written for a run whose compressed outputs differ by more than 1e-5.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run or sweep directory")
    args = parser.parse_args(argv)
    from regexp.runs.collect import job_dirs
    from regexp.runs.compression import compress
    from regexp.runs.run_files import read_metrics

    runs: list[Path] = []
    for path in map(Path, args.paths):
        found = [d for d in job_dirs(path) if (d / "model.pt").is_file()] if path.is_dir() else []
        if not found:
            fail(f"no finished runs in '{path}' (expected a run or sweep directory)")
        runs += [d for d in found if d not in runs]
    done = 0
    for run_dir in runs:
        if (read_metrics(run_dir) or {}).get("status") != "ok":
            log.warning("%s: not an ok run; skipped", run_dir)
            continue
        try:
            frame = compress(run_dir)
        except (ValueError, OSError) as err:
            if debug():
                raise
            log.warning("%s: %s", run_dir, one_line(err))
            continue
        before, after = frame.iloc[0], frame.iloc[1]
        print(
            f"{run_dir}: {before['params']} -> {after['params']} parameters, "
            f"{before['latency_b1_us']:.1f} -> {after['latency_b1_us']:.1f} us at batch 1, "
            f"max |diff| {after['max_abs_diff']:.2g}"
        )
        done += 1
    print(f"{done} of {len(runs)} run(s) compressed")
    if done == 0:
        raise SystemExit(1)


def _register_plugins() -> None:
    """Register regexp's Hydra plugins (``hydra/launcher=batched``, ``hydra/sweeper=regexp``).

    Hydra finds plugins by scanning the ``hydra_plugins`` namespace package, which an
    editable install (``pip install -e``) hides from it; registering by hand always works.
    """
    from hydra.core.plugins import Plugins

    from hydra_plugins.regexp_launcher.batched_launcher import BatchedLauncher
    from hydra_plugins.regexp_launcher.regexp_sweeper import RegexpSweeper

    Plugins.instance().register(BatchedLauncher)
    Plugins.instance().register(RegexpSweeper)


def _check_overrides(argv: list[str]) -> None:
    """One line, not Hydra's multi-line error, for an override that cannot be parsed or
    names an unknown key (:func:`regexp.config.check_overrides`)."""
    if not any("=" in arg and not arg.startswith("-") for arg in argv):
        return
    from regexp.config import check_overrides

    try:
        check_overrides([arg for arg in argv if not arg.startswith("-")])
    except ValueError as err:
        if debug():
            raise
        fail(str(err))


def _hydra(app: Callable[[], object], prog: str, argv: list[str]) -> None:
    _register_plugins()
    sys.argv = [prog, *argv]
    # Hydra's errors reach main() as exceptions (not Hydra's own lines): one line each.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    app()
    # The interpreter's final garbage collections would walk every object that torch,
    # pandas and the others created (about a second); frozen objects are skipped. Exit
    # handlers and flushing still run.
    gc.freeze()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``regexp`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if debug():
        os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's own errors with their traceback too
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return
    command, rest = argv[0], argv[1:]
    signal.signal(signal.SIGTERM, _terminated)  # `kill`, a scheduler's stop: as Ctrl-C
    os.environ["REGEXP_PID"] = str(os.getpid())  # the default hydra.run.dir ends with it
    try:
        if command == "train":
            _check_overrides(rest)
            _hydra(train_app(), "regexp train", rest)
        elif command == "compare":
            compare_main(rest)
        elif command == "plot":
            plot_main(rest)
        elif command == "refine":
            refine_main(rest)
        elif command == "compress":
            compress_main(rest)
        else:
            print(USAGE, end="", file=sys.stderr)
            fail(
                f"unknown command '{command}'; choose one of: train, compare, plot, refine, "
                "compress"
            )
    except KeyboardInterrupt as stop:
        _interrupted(isinstance(stop, _Terminated))
    except BrokenPipeError:  # `regexp compare ... | head`: the reader has what it wants
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        raise SystemExit(0) from None
    except OSError as err:  # a full disk, a read-only folder: one line
        if debug():
            raise
        _os_error(err)
    except Exception as err:  # Hydra's errors (a bad override), or a crash: one line
        if debug():
            raise
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        if isinstance(err, HydraException | OmegaConfBaseException | ValueError):
            from regexp.config import composition_error

            schema = composition_error(err)  # a value of the wrong type: the table's line
            fail(str(schema) if schema is not None else _unknown_key(one_line(err)))
        fail(f"{type(err).__name__}: {one_line(err)} (set {DEBUG_ENV}=1 for the traceback)", 1)
    finally:
        sweep_dir = sys.modules.get("regexp.runs.sweep_dir")
        if sweep_dir is not None:
            sweep_dir.release_locks()


def _unknown_key(message: str) -> str:
    """Hydra's "Could not override 'K'. To append to your config use +K=V" names a key that
    the config does not have; regexp refuses it with ``+`` too, so say that instead."""
    found = re.match(r"Could not override '([^']+)'\.; To append to your config use \+", message)
    if found is None:
        return message
    key = found.group(1)
    group = key.split(".")[0]
    return (
        f"{key} is not a config key (with or without +); `regexp train --help` lists the "
        f"config groups, and docs/configuration.md every key of {group}"
    )


def _loaded(name: str) -> object | None:
    """Module ``name`` if this process has imported it, else ``None``. The handlers below
    import nothing: a Ctrl-C during the first import of torch leaves it half-initialized,
    and importing it again would raise a second, chained error."""
    module = sys.modules.get(name)
    return module if getattr(module, "__spec__", None) is not None else None


def _output_roots() -> list[Path]:
    atomic = _loaded("regexp.io.atomic")
    return list(getattr(atomic, "OUTPUT_ROOTS", []))


class _Terminated(KeyboardInterrupt):
    """``SIGTERM``, raised in the main thread as Ctrl-C is, so that it unwinds the same way
    (the batched launcher's workers are stopped on the way out)."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _interrupted(terminated: bool = False) -> None:
    """Ctrl-C (or ``SIGTERM``): remove half-written temporaries, say what is kept, exit
    130 (143 for ``SIGTERM``), no traceback. Imports nothing (see :func:`_loaded`)."""
    try:
        atomic, sweep_dir = _loaded("regexp.io.atomic"), _loaded("regexp.runs.sweep_dir")
        for root in _output_roots():
            if atomic is not None:
                atomic.remove_all_temporaries(root)
            if sweep_dir is not None:  # an interrupted resume: runs back where they were
                sweep_dir.restore_unclaimed(root)
    except KeyboardInterrupt:  # a second Ctrl-C: stop tidying up
        pass
    roots = _output_roots()
    where = f" in {roots[-1]}" if roots else ""
    how = "terminated (SIGTERM)" if terminated else "interrupted"
    print(
        f"regexp: {how}; finished runs are kept{where}. To continue a sweep, run the "
        "same command with resume=true",
        file=sys.stderr,
    )
    raise SystemExit(143 if terminated else 130)


def _os_error(err: OSError) -> None:
    """An ``OSError`` that reached the top (a full disk, a folder that cannot be written):
    one line naming the file, exit 1. A sweep cut off by it keeps a ``results.csv`` of
    the jobs that finished."""
    where = f" '{err.filename}'" if err.filename else ""
    kept = ""
    lifecycle = _loaded("regexp.hydra_app.lifecycle")
    for root in _output_roots() if lifecycle is not None else []:
        try:
            if lifecycle.report_finished_jobs(root):
                kept = f"; results.csv in {root} holds the jobs that finished"
        except Exception:  # the disk is still full: nothing more to save
            pass
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        reason = "the disk is full (No space left on device)"
    fail(f"cannot write{where}: {reason}{kept}", code=1)


if __name__ == "__main__":
    main()
