"""The Scardapane et al. 2017 reproduction: finished runs → ``reproduction.md`` + figures.

``python -m regexp.reproduce [SWEEPS] [DOCS]`` reads every run under ``SWEEPS`` (default
``outputs/reproduce``, see :mod:`regexp.runs`) and each run's ``model.pt``, and writes
``DOCS/reproduction.md`` and ``DOCS/figures/``. Runs are selected by their config columns,
not by directory: the main table is every penalty-mode run at the λ of
``conf/experiment/scardapane2017.yaml``, the penalty/proximal table every run at that λ of
a method that also ran in proximal mode, the front every penalty-mode L1/GL/SGL run. Every
number in the document comes from the runs; the verdicts on the paper's claim are computed
by :func:`paper_checks`, and each one that fails is also logged as a warning.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from regexp import aggregate, report, sparsity
from regexp import runs as runlib
from regexp.data import load_dataset
from regexp.models import load_checkpoint

log = logging.getLogger(__name__)

EXPERIMENT = "scardapane2017"
METHODS = {
    "none": "none",
    "l2": "L2",
    "l1": "L1",
    "group_lasso": "group Lasso (GL)",
    "sgl": "sparse group Lasso (SGL)",
}
SHORT = {"none": "none", "l2": "L2", "l1": "L1", "group_lasso": "GL", "sgl": "SGL"}
FRONT_METHODS = ("l1", "group_lasso", "sgl")
# The front's figure leaves out points below this fraction of the best accuracy (collapsed
# networks, which would flatten the rest); the document names them under the figure.
FRONT_FLOOR = 0.8
# The paper's words made testable: "slightly lower" accuracy = at most this far below
# (0.01 = 1 point); "far more" removed units = at least this many times as many.
ACCURACY_TOLERANCE = 0.01
FAR_MORE = 2.0


def experiment_lambda(name: str = EXPERIMENT) -> float:
    """λ of ``conf/experiment/<name>.yaml``, composed by Hydra as ``regexp train`` does."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("regexp.conf", version_base="1.3"):
        return float(compose("config", overrides=[f"experiment={name}"])["lambda"])


def lam_label(lam: float) -> str:
    """``10^-3.5`` for whole and half decades, else ``%.3g``."""
    e = math.log10(lam) if lam > 0 else math.nan
    half = math.isfinite(e) and abs(2 * e - round(2 * e)) < 1e-9
    return f"10^{round(2 * e) / 2:g}" if half else f"{lam:.3g}"


def _order(col: pd.Series) -> pd.Series:
    """Sort key: methods in :data:`METHODS` order, other columns as they are."""
    return col.map(list(METHODS).index) if col.name == "regularizer" else col


@dataclass(frozen=True)
class Check:
    """One part of the paper's claim against our numbers: ``holds`` and the numbers.

    ``partly``: the direction holds but not the size (more removed, not far more).
    """

    claim: str
    holds: bool
    detail: str
    partly: bool = False

    @property
    def verdict(self) -> str:
        return "agrees" if self.holds else "partly agrees" if self.partly else "disagrees"


def paper_checks(summary: pd.DataFrame, runs: pd.DataFrame) -> list[Check]:
    """SGL against L1 and L2 in a :func:`regexp.aggregate.summarize` frame by ``regularizer``.

    With removed = units − mean kept: "far more removed" holds when ``removed_SGL >
    removed_ref`` and ``removed_SGL >= FAR_MORE · removed_ref``, and partly when only the
    first holds; "equal or slightly lower accuracy" holds when ``acc_SGL >= acc_ref −
    ACCURACY_TOLERANCE`` (means over seeds).
    """
    s = summary.set_index("regularizer")
    hidden = [c for c in runs if c.startswith("units_hidden")]
    units = {
        "input features": ("kept_input_mean", int(runs["units_input"].max())),
        "hidden neurons": ("kept_hidden_mean", int(runs[hidden].max().sum())),
    }
    checks = []
    for ref in [r for r in ("l1", "l2") if {"sgl", r} <= set(s.index)]:
        for what, (col, n) in units.items():
            a, b = n - s.at["sgl", col], n - s.at[ref, col]
            checks.append(
                Check(
                    f"SGL removes far more {what} than {METHODS[ref]}",
                    bool(a > b and a >= FAR_MORE * b),
                    f"{a:.1f} against {b:.1f} of {n} removed on average"
                    + (f", {a / b:.2f}×" if b > 0 else ""),
                    partly=bool(a > b),
                )
            )
        a, b = s.at["sgl", "test_accuracy_mean"], s.at[ref, "test_accuracy_mean"]
        std = max(s.at["sgl", "test_accuracy_std"], s.at[ref, "test_accuracy_std"])
        within = "within" if abs(a - b) <= std else "beyond"
        checks.append(
            Check(
                f"SGL's accuracy is equal to or slightly below {METHODS[ref]}'s",
                bool(a >= b - ACCURACY_TOLERANCE),
                f"{100 * a:.2f}% against {100 * b:.2f}% ({100 * (a - b):+.2f} points, "
                f"{within} one seed-to-seed std of {100 * std:.2f})",
            )
        )
    for c in checks:
        if not c.holds:
            log.warning("paper claim %s: %s (%s)", c.verdict, c.claim, c.detail)
    return checks


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


def prox_note(table: pd.DataFrame, runs: pd.DataFrame, lam: float, steps: int) -> list[str]:
    """Why proximal steps after Adam sparsify less, when the table shows that they do."""
    s = table.set_index(["regularizer", "mode"])["params_kept_mean"]
    pairs = [m for m in METHODS if {(m, "penalty"), (m, "proximal")} <= set(s.index)]
    if not pairs or not all(s[(m, "proximal")] > s[(m, "penalty")] for m in pairs):
        return []
    lr = float(runs["lr"].iloc[0])
    fan = [int(x) for x in str(runs["architecture"].iloc[0]).split("-")[:2]]
    return [
        "In proximal mode every method keeps more parameters than with the penalty. The "
        "proximal step is the one of a plain gradient step of size lr: the L1 step moves a "
        f"weight by at most lr·λ = {lr * lam:.2g}, so all {steps} steps move it by at most "
        f"{steps * lr * lam:.2g}, little next to the Glorot scale of the first layer's "
        f"weights (std {math.sqrt(2 / sum(fan)):.2g}). Adam's own steps are about lr = "
        f"{lr:g} per weight whatever the gradient's scale; in penalty mode the penalty's "
        "(sub)gradient goes through that normalization, so a weight whose data gradient is "
        "small is pulled to 0 by up to lr per step. At the same λ, proximal steps after Adam "
        "are therefore a much weaker regularizer than the penalty.",
        "",
    ]


def mode_notes(table: pd.DataFrame) -> list[str]:
    """One line per method: proximal against penalty kept counts and accuracy."""
    s = table.set_index(["regularizer", "mode"])
    out = []
    for method in [m for m in METHODS if {(m, "penalty"), (m, "proximal")} <= set(s.index)]:
        p, q = s.loc[(method, "penalty")], s.loc[(method, "proximal")]
        out.append(
            f"- {METHODS[method]}: proximal keeps {q['kept_input_mean']:.1f} input features, "
            f"{q['kept_hidden_mean']:.1f} hidden neurons and {q['params_kept_mean']:.0f} "
            f"parameters, against {p['kept_input_mean']:.1f}, {p['kept_hidden_mean']:.1f} and "
            f"{p['params_kept_mean']:.0f} with the penalty; test accuracy "
            f"{100 * (q['test_accuracy_mean'] - p['test_accuracy_mean']):+.2f} points."
        )
    return out


def front_notes(front: pd.DataFrame) -> list[str]:
    """SGL against L1 and GL at each λ both ran: fewer kept inputs, parameters, accuracy."""
    s = front.set_index(["regularizer", "lambda"])
    out = []
    for ref in [r for r in ("l1", "group_lasso") if r in set(front["regularizer"])]:
        lams = [lam for (r, lam) in s.index if r == "sgl" and (ref, lam) in s.index]
        if not lams:
            continue
        a, b = s.loc[[("sgl", x) for x in lams]], s.loc[[(ref, x) for x in lams]]
        fewer_in = int((a["kept_input_mean"].values < b["kept_input_mean"].values).sum())
        fewer_p = int((a["params_kept_mean"].values < b["params_kept_mean"].values).sum())
        gap = a["test_accuracy_mean"].values - b["test_accuracy_mean"].values
        close = int((gap >= -ACCURACY_TOLERANCE).sum())
        out.append(
            f"- Against {METHODS[ref]} at the same λ, SGL keeps fewer input features at "
            f"{fewer_in} of {len(lams)} values of λ and fewer parameters at {fewer_p}; its "
            f"accuracy is at most {100 * ACCURACY_TOLERANCE:g} point below at {close} of "
            f"{len(lams)} (differences from {100 * gap.min():+.2f} to {100 * gap.max():+.2f} "
            "points)."
        )
    return out


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
        "_Generated by `make reproduce` (`python -m regexp.reproduce`) from the runs under "
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
        report.plot_feature_maps(maps, shape, out / "figures" / "pixel_maps.png")
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
    agree = sum(c.holds for c in checks)
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
        f"{agree} of {len(checks)} parts of the claim hold on these runs"
        + ("." if agree == len(checks) else "; the others do not, as marked."),
        "",
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
            "steps on the data loss, then W ← prox_{lr·λ·R}(W), which sets weights to "
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
        report.plot_front(shown, ref, axes, out / "figures" / "front.png", title, (low, 100))
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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(doc))
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m regexp.reproduce [SWEEPS] [DOCS] [--lambda L]``."""
    parser = argparse.ArgumentParser(prog="python -m regexp.reproduce", description=__doc__)
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
        parser.exit(2, f"regexp.reproduce: error: no such directory '{args.sweeps}'\n")
    try:
        path = write_report(args.sweeps, args.docs, args.lam or experiment_lambda())
    except ValueError as err:
        parser.exit(2, f"regexp.reproduce: error: {err}\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
