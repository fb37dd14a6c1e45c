"""The Scardapane et al. 2017 reproduction: finished runs → ``reproduction.md`` + figures.

``python -m regexp.paper.reproduce [SWEEPS] [DOCS]`` reads every run under ``SWEEPS`` (default
``outputs/reproduce``, see :mod:`regexp.paper.runs`) and each run's ``model.pt``, and writes
``DOCS/reproduction.md`` and ``DOCS/figures/``. Runs are selected by their config columns,
not by directory: the main table is every penalty-mode run at the λ of
``conf/experiment/scardapane2017.yaml``, the penalty/proximal table every run at that λ of
a method that also ran in proximal mode, the front every penalty-mode L1/GL/SGL run. Every
number in the document comes from the runs; the verdicts on the paper's claim are computed
by :func:`regexp.paper.claims.paper_checks`, and each one that fails is also logged as a warning.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from regexp.core import sparsity
from regexp.engine.data import load_dataset
from regexp.engine.models import load_checkpoint
from regexp.outputs import aggregate
from regexp.outputs.files import write_text
from regexp.paper import figures
from regexp.paper import runs as runlib
from regexp.paper.claims import (
    ACCURACY_TOLERANCE,
    FAR_MORE,
    METHODS,
    SHORT,
    front_notes,
    lam_label,
    mode_notes,
    paper_checks,
    prox_note,
    ranking_note,
)

log = logging.getLogger(__name__)

EXPERIMENT = "scardapane2017"
FRONT_METHODS = ("l1", "group_lasso", "sgl")
# The front's figure leaves out points below this fraction of the best accuracy (collapsed
# networks, which would flatten the rest); the document names them under the figure.
FRONT_FLOOR = 0.8


def experiment_lambda(name: str = EXPERIMENT) -> float:
    """λ of ``conf/experiment/<name>.yaml``, composed by Hydra as ``regexp train`` does."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("regexp.conf", version_base="1.3"):
        return float(compose("config", overrides=[f"experiment={name}"])["lambda"])


def _order(col: pd.Series) -> pd.Series:
    """Sort key: methods in :data:`METHODS` order, other columns as they are."""
    return col.map(list(METHODS).index) if col.name == "regularizer" else col


def keep_fraction(run_dirs: list[Path]) -> np.ndarray:
    """Per input feature, the fraction of the runs whose ``model.pt`` keeps it (not dead)."""
    alive = []
    for d in run_dirs:
        model, cfg = load_checkpoint(Path(d) / "model.pt")
        sparsity.threshold_(model, cfg["threshold"])  # a no-op: saved after thresholding
        alive.append((~sparsity.dead_units(sparsity.linear_weights(model))[0]).numpy())
    return np.mean(alive, axis=0)


def pixel_maps(runs: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """``{(mode, method): keep fraction per input}`` over the ok runs of each pair."""
    ok = runs[runs["status"] == "ok"]
    out = {}
    for mode in [m for m in ("penalty", "proximal") if m in set(ok["mode"])]:
        for method, label in SHORT.items():
            sel = ok[(ok["mode"] == mode) & (ok["regularizer"] == method)]
            if not sel.empty:
                out[mode, label] = keep_fraction(list(sel["run_dir"]))
    return out


def setup_lines(run_dir: Path, runs: pd.DataFrame) -> tuple[list[str], tuple | None, int]:
    """The protocol as run (from ``run_dir``'s saved config), image shape, optimizer steps."""
    _, cfg = load_checkpoint(Path(run_dir) / "model.pt")
    data = load_dataset(**cfg["dataset"])
    d, m, o, t = cfg["dataset"], cfg["model"], cfg["optimizer"], cfg["trainer"]
    n = len(data.y_train), len(data.y_val), len(data.y_test)
    rounding = " (exactly those that round to 0 at 3 decimals)" if cfg["threshold"] == 5e-4 else ""
    steps = t["epochs"] * math.ceil(n[0] / t["batch_size"])
    return (
        [
            f"- data: {d['name']}, {d['scaler']} scaling fitted on the training rows; "
            f"{n[0]}/{n[1]}/{n[2]} train/validation/test rows (test_size {d['test_size']}, "
            f"val_size {d['val_size']}, split seed {d['split_seed']})",
            f"- net: {runs['architecture'].iloc[0]}, {m['activation']}, {m['init']} weights "
            f"(zero biases), dropout {m['dropout']:g}",
            f"- training: {o['name']}, lr {o['lr']:g}, batch {t['batch_size']}, {t['epochs']} "
            f"epochs, no early stopping; seeds {sorted(runs['seed'].unique().tolist())}; "
            f"{t['device']}, {t['num_threads']} torch thread(s) per job",
            f"- sparsity: after training, weights with |w| < {cfg['threshold']:g} are set to "
            f"0{rounding}; a unit is removed when all its outgoing weights are 0",
            "",
            f"The paper has no validation split and trains on all {n[0] + n[1]} non-test rows. "
            f"Here {n[1]} of them only monitor training (no early stopping, no model selection), "
            f"so each network trains on {n[0]} rows; the test rows are the paper's quarter.",
        ],
        data.image_shape,
        steps,
    )


def write_report(root: Path, out: Path, lam: float) -> Path:
    """Write ``out/reproduction.md`` and ``out/figures/*.png`` from the runs under ``root``."""
    everything = runlib.read_runs(root)
    runs, twins, differ = runlib.dedupe(everything)
    at_lam = np.isclose(runs["lambda"].astype(float), lam, rtol=1e-9, atol=0)
    penalty = runs[at_lam & (runs["mode"] == "penalty")]
    if penalty.empty:
        raise ValueError(f"no penalty-mode run at lambda={lam:g} under '{root}'")
    main = aggregate.summarize(penalty, ["regularizer"]).sort_values("regularizer", key=_order)
    method = {"regularizer": lambda r: METHODS.get(r, r)}
    setup, shape, steps = setup_lines(penalty["run_dir"].iloc[0], penalty)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    lam_s = lam_label(lam)
    doc = [
        "# Reproducing Scardapane et al. 2017 on digits",
        "",
        "_Generated by `make reproduce` (`python -m regexp.paper.reproduce`) from the runs under "
        f"`{root}`: every number below comes from those runs. Do not edit by hand._",
        "",
        "The protocol of the authors' Lasagne demo, as run here "
        "(`conf/experiment/scardapane2017.yaml`):",
        "",
        *setup,
        "",
        f"## Each method at λ = {lam_s} (penalty mode)",
        "",
        "Mean ± std (n − 1) over seeds of the runs with status ok; kept = not removed.",
        "",
        runlib.markdown_table(main, penalty, method),
        "",
    ]
    if shape is not None:
        maps = pixel_maps(runs[at_lam])
        figures.plot_feature_maps(maps, shape, out / "figures" / "pixel_maps.png")
        doc += [
            "![Input pixels kept by each method](figures/pixel_maps.png)",
            "",
            "Fraction of seeds in which each input pixel keeps a nonzero outgoing weight "
            "(white: kept by every seed; black: removed by every seed).",
            "",
        ]
        for r in main.to_dict("records"):
            kept = maps.get(("penalty", SHORT.get(r["regularizer"])))
            if kept is not None and not np.isclose(kept.sum(), r["kept_input_mean"]):
                log.warning("%s: model.pt and sparsity.csv disagree on kept inputs", r)
    checks = paper_checks(main, penalty)
    verdicts = [c.verdict for c in checks]
    tally = ", ".join(f"{verdicts.count(v)} {v}" for v in ("agrees", "partly agrees", "disagrees"))
    doc += [
        "## The paper's claim",
        "",
        "Scardapane et al. 2017: sparse group Lasso removes far more neurons and input "
        "features than L1 or L2, with equal or slightly lower accuracy. We test this on "
        f'the runs above, at the paper\'s λ = {lam_s}, reading "far more" as at least '
        f'{FAR_MORE:g}× as many removed and "slightly lower" as at most '
        f"{100 * ACCURACY_TOLERANCE:g} point below, on means over seeds. The paper's own "
        "digits table is not restated here; only its claim is compared.",
        "",
        *[f"- **{c.verdict}**: {c.claim}: {c.detail}." for c in checks],
        "",
        f"Of the {len(checks)} parts of the claim: {tally}.",
        "",
        *ranking_note(main),
    ]
    prox = runs[at_lam & (runs["mode"] == "proximal")]
    if not prox.empty:
        both = runs[at_lam & runs["regularizer"].isin(set(prox["regularizer"]))]
        table = aggregate.summarize(both, ["regularizer", "mode"])
        table = table.sort_values(["regularizer", "mode"], key=_order)
        doc += [
            f"## Penalty against proximal mode at λ = {lam_s}",
            "",
            "Penalty: the penalty's (sub)gradient is added to the loss's. Proximal: Adam "
            "steps on the data loss, then W ← prox_{lr·λ·R}(W), which can set weights to "
            "exact zeros.",
            "",
            runlib.markdown_table(table, both, method | {"mode": str}),
            "",
            *mode_notes(table),
            "",
            *prox_note(table, both, lam, steps),
        ]
    grid = runs[(runs["mode"] == "penalty") & runs["regularizer"].isin(FRONT_METHODS)]
    if grid["lambda"].nunique() > 1:
        front = aggregate.summarize(grid, ["regularizer", "lambda"])
        front = front.sort_values(["regularizer", "lambda"], key=_order)
        acc = front["test_accuracy_mean"]
        on = acc >= FRONT_FLOOR * acc.max()
        off, shown, low = front[~on], front[on], 100 * acc[on].min() - 2
        lams = shown.groupby("regularizer")["lambda"]
        ends = shown["lambda"].eq(lams.transform("min")) | shown["lambda"].eq(lams.transform("max"))
        shown = shown.assign(
            method=shown["regularizer"].map(SHORT),
            point=shown["lambda"].map(lam_label).where(ends, ""),
        )
        ref = main[main["regularizer"].isin(["none", "l2"])]
        ref = ref.assign(method=ref["regularizer"].map(SHORT) + f" (λ = {lam_s})")
        axes = {"kept_input": "input features kept", "params_kept": "parameters kept"}
        title = "Accuracy–sparsity front over λ (mean ± std over seeds; labels: end λ)"
        figures.plot_front(shown, ref, axes, out / "figures" / "front.png", title, (low, 100))
        doc += [
            "## Accuracy–sparsity front over λ",
            "",
            "![Test accuracy against kept inputs and parameters](figures/front.png)",
            "",
            "Left out of the chart (accuracy below "
            f"{100 * FRONT_FLOOR:g}% of the best point's): "
            + ", ".join(
                f"{METHODS[r['regularizer']]} at λ = {lam_label(r['lambda'])} "
                f"({100 * r['test_accuracy_mean']:.2f}%)"
                for r in off.to_dict("records")
            )
            + "."
            if len(off)
            else "Every point of the table is on the chart.",
            "",
            runlib.markdown_table(front, grid, method | {"lambda": lam_label}),
            "",
            *front_notes(front),
            "",
        ]
    doc += [
        "## Runs and times",
        "",
        "Seconds spent in the training loop, per sweep; launcher: the Hydra launcher of the "
        "sweep's first job.",
        "",
        runlib.times_table(everything),
        "",
    ]
    if twins:
        doc += [
            f"{twins} configurations ran in two sweeps; {twins - differ} of them gave "
            "identical metrics in both.",
            "",
        ]
    path = out / "reproduction.md"
    write_text(path, "\n".join(doc))
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m regexp.paper.reproduce [SWEEPS] [DOCS] [--lambda L]``."""
    parser = argparse.ArgumentParser(prog="python -m regexp.paper.reproduce", description=__doc__)
    parser.add_argument("sweeps", nargs="?", default=Path("outputs/reproduce"), type=Path)
    parser.add_argument("docs", nargs="?", default=Path("docs"), type=Path)
    parser.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=None,
        help=f"λ of the main table (default: experiment {EXPERIMENT}'s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.sweeps.is_dir():
        parser.exit(2, f"regexp.paper.reproduce: error: no such directory '{args.sweeps}'\n")
    try:
        path = write_report(args.sweeps, args.docs, args.lam or experiment_lambda())
    except ValueError as err:
        parser.exit(2, f"regexp.paper.reproduce: error: {err}\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
