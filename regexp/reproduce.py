"""The Scardapane et al. 2017 reproduction report: sweep directories → ``reproduction.md``.

``python -m regexp.reproduce [SWEEPS] [DOCS]`` reads every run under ``SWEEPS`` (each run
directory's ``metrics.csv``, ``sparsity.csv`` and ``model.pt``; no sweep-level file is
needed) and writes ``DOCS/reproduction.md`` and ``DOCS/figures/*.png``. Runs are matched by
their config columns, not by directory: the paper's table is every penalty-mode run at the
experiment's λ, the front every penalty-mode run, the comparison every proximal-mode run.
Every number of the document comes from the runs; the verdicts on the paper's claims are
computed (:func:`paper_checks`) and each one that fails is also logged as a warning.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from regexp import report, sparsity
from regexp.data import load_dataset
from regexp.models import load_checkpoint

log = logging.getLogger(__name__)

EXPERIMENT = "scardapane2017"
METHODS = {
    "none": "none",
    "l2": "L2",
    "l1": "L1",
    "group_lasso": "group Lasso",
    "sgl": "sparse group Lasso",
}
KEYS = [
    "dataset",
    "regularizer",
    "mode",
    "lambda",
    "seed",
    "architecture",
    "activation",
    "optimizer",
    "lr",
    "epochs",
    "batch_size",
    "threshold",
]
# "Slightly lower" accuracy: at most this much below (a fraction; 0.01 = 1 point).
ACCURACY_TOLERANCE = 0.01
# "Far more" removed units: at least this many times as many.
FAR_MORE = 2.0


def experiment_lambda(name: str = EXPERIMENT) -> float:
    """λ of ``conf/experiment/<name>.yaml``, composed by Hydra as ``regexp train`` does."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("regexp.conf", version_base="1.3"):
        return float(compose("config", overrides=[f"+experiment={name}"])["lambda"])


def load_runs(root: Path) -> pd.DataFrame:
    """One row per run under ``root``: its ``metrics.csv`` row, ``run_dir``, ``sweep``
    (first directory below ``root``), and per layer of ``sparsity.csv``
    ``kept_<layer> = units − removed`` and ``units_<layer>``; ``kept_hidden`` sums the
    hidden layers. A run seen in two sweeps (same config columns) is kept once; differing
    metrics between such twins are logged as non-determinism.
    """
    rows = []
    for path in sorted(root.rglob("metrics.csv")):
        row = pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"]).iloc[0]
        row = row.to_dict() | {"run_dir": path.parent, "sweep": path.relative_to(root).parts[0]}
        if (path.parent / "sparsity.csv").is_file():
            for layer in pd.read_csv(path.parent / "sparsity.csv").itertuples():
                row[f"kept_{layer.layer}"] = layer.units - layer.removed
                row[f"units_{layer.layer}"] = layer.units
        rows.append(row)
    if not rows:
        raise ValueError(f"no metrics.csv under '{root}'; run `make reproduce-runs` first")
    runs = pd.DataFrame(rows)
    hidden = [c for c in runs if c.startswith("kept_hidden")]
    runs["kept_hidden"] = runs[hidden].sum(axis=1, min_count=1)
    keys = [k for k in KEYS if k in runs]
    metrics = ["status", "test_accuracy", "params_kept", *hidden]
    twins = runs[runs.duplicated(keys, keep=False)].groupby(keys, dropna=False)
    differ = sum(len(g[metrics].drop_duplicates()) > 1 for _, g in twins)
    if differ:
        log.warning("%d configurations give different metrics in different sweeps", differ)
    runs.attrs["twins"], runs.attrs["twins_differ"] = twins.ngroups, differ
    return runs.drop_duplicates(keys).reset_index(drop=True)


def summarize(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and sample std (n − 1) over the ``status == "ok"`` runs of each ``by`` group.

    Columns: ``runs`` and ``<metric>_mean``, ``<metric>_std`` for test accuracy, kept units
    per layer, kept hidden units and kept parameters.
    """
    ok = runs[runs["status"] == "ok"]
    cols = ["test_accuracy", *[c for c in ok if c.startswith("kept_")], "params_kept"]
    stats = ok.groupby(by, sort=False)[cols].agg(["mean", "std"])
    stats.columns = [f"{c}_{s}" for c, s in stats.columns]
    stats.insert(0, "runs", ok.groupby(by, sort=False).size())
    return stats.reset_index()


def lam_label(lam: float) -> str:
    """``10^-3.5`` for half-decade values, else ``%.3g``."""
    e = math.log10(lam) if lam > 0 else math.nan
    return f"10^{e:g}" if math.isfinite(e) and abs(2 * e - round(2 * e)) < 1e-9 else f"{lam:.3g}"


def _cell(mean: float, std: float, percent: bool) -> str:
    k, d = (100, 2) if percent else (1, 1)
    return f"{k * mean:.{d}f} ± {k * std:.{d}f}" if np.isfinite(std) else f"{k * mean:.{d}f}"


def markdown_table(summary: pd.DataFrame, runs: pd.DataFrame, labels: list[str]) -> str:
    """The summary as a Markdown table: ``labels`` columns, then mean ± std cells."""
    layers = [c[len("units_") :] for c in runs if c.startswith("units_")]
    head = [*labels, "runs", "test accuracy (%)"]
    head += [f"{layer} kept (of {int(runs[f'units_{layer}'].max())})" for layer in layers]
    head.append(f"parameters kept (of {int(runs['params_total'].max())})")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.to_dict("records"):
        cells = [
            METHODS.get(r[c], r[c])
            if c == "regularizer"
            else lam_label(r[c])
            if c == "lambda"
            else str(r[c])
            for c in labels
        ]
        cells += [str(r["runs"]), _cell(r["test_accuracy_mean"], r["test_accuracy_std"], True)]
        cells += [
            _cell(r[f"{m}_mean"], r[f"{m}_std"], False)
            for m in [*(f"kept_{layer}" for layer in layers), "params_kept"]
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Check:
    """One claim of the paper against our numbers: ``holds`` and the numbers behind it."""

    claim: str
    holds: bool
    detail: str


def paper_checks(summary: pd.DataFrame, runs: pd.DataFrame) -> list[Check]:
    """The paper's claim, SGL against L1 and L2 at the same λ (penalty mode).

    Removed units = units − mean kept. "Far more" removed: ``removed_SGL >=
    FAR_MORE · removed_ref`` and ``removed_SGL > removed_ref``; "equal or slightly lower"
    accuracy: ``acc_SGL >= acc_ref − ACCURACY_TOLERANCE`` (means over seeds).
    """
    s = summary.set_index("regularizer")
    units = {
        "input features": int(runs["units_input"].max()),
        "hidden neurons": int(sum(runs[c].max() for c in runs if c.startswith("units_h"))),
    }
    cols = {"input features": "kept_input_mean", "hidden neurons": "kept_hidden_mean"}
    checks = []
    for ref in ("l1", "l2"):
        if "sgl" not in s.index or ref not in s.index:
            continue
        for what, col in cols.items():
            sgl, other = units[what] - s.at["sgl", col], units[what] - s.at[ref, col]
            checks.append(
                Check(
                    f"SGL removes far more {what} than {METHODS[ref]}",
                    bool(sgl > other and sgl >= FAR_MORE * other),
                    f"{sgl:.1f} against {other:.1f} of {units[what]} removed on average",
                )
            )
        a, b = s.at["sgl", "test_accuracy_mean"], s.at[ref, "test_accuracy_mean"]
        checks.append(
            Check(
                f"SGL's accuracy is equal to or slightly below {METHODS[ref]}'s",
                bool(a >= b - ACCURACY_TOLERANCE),
                f"{100 * a:.2f}% against {100 * b:.2f}% ({100 * (a - b):+.2f} points)",
            )
        )
    for c in checks:
        if not c.holds:
            log.warning("paper claim not reproduced: %s (%s)", c.claim, c.detail)
    return checks


def pixel_keep_fraction(run_dirs: list[Path]) -> np.ndarray:
    """Per input feature, the fraction of runs whose ``model.pt`` keeps it (not dead)."""
    alive = []
    for d in run_dirs:
        model, cfg = load_checkpoint(d / "model.pt")
        sparsity.threshold_(model, cfg["threshold"])  # idempotent: saved after thresholding
        alive.append((~sparsity.dead_units(sparsity.linear_weights(model))[0]).numpy())
    return np.mean(alive, axis=0)


def pixel_maps(runs: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """``{(mode, method label): keep fraction per input}`` over the ok runs of each pair."""
    ok = runs[runs["status"] == "ok"]
    out = {}
    for mode in [m for m in ("penalty", "proximal") if m in set(ok["mode"])]:
        for method, label in METHODS.items():
            sel = ok[(ok["mode"] == mode) & (ok["regularizer"] == method)]
            if not sel.empty:
                out[mode, label] = pixel_keep_fraction(list(sel["run_dir"]))
    return out


def _setup(runs: pd.DataFrame) -> tuple[list[str], tuple[int, int] | None]:
    """Protocol lines read from the first run's saved config, and the image shape."""
    _, cfg = load_checkpoint(runs["run_dir"].iloc[0] / "model.pt")
    data = load_dataset(**cfg["dataset"])
    d, m, o, t = cfg["dataset"], cfg["model"], cfg["optimizer"], cfg["trainer"]
    n_train, n_val, n_test = len(data.y_train), len(data.y_val), len(data.y_test)
    lines = [
        f"- data: {d['name']}, {d['scaler']} scaling fitted on the training rows; "
        f"{n_train}/{n_val}/{n_test} train/validation/test rows (test_size {d['test_size']}, "
        f"val_size {d['val_size']}, split seed {d['split_seed']})",
        f"- net: {runs['architecture'].iloc[0]}, {m['activation']}, {m['init']} weights "
        f"(zero biases), dropout {m['dropout']:g}",
        f"- training: {o['name']} lr {o['lr']:g}, batch {t['batch_size']}, {t['epochs']} epochs"
        f", no early stopping; seeds {sorted(runs['seed'].unique().tolist())}",
        f"- sparsity: weights with |w| < {cfg['threshold']:g} set to 0 after training (what "
        "rounding to 3 decimals zeroes); a unit is removed when all its outgoing weights are 0",
    ]
    deviation = (
        f"The paper has no validation split: it trains on all {n_train + n_val} non-test rows. "
        f"Here {n_val} of them monitor training only (no early stopping, no model selection), "
        f"so each network trains on {n_train} rows; the test quarter is the same."
    )
    return [*lines, "", deviation], data.image_shape


def _times(runs: pd.DataFrame) -> str:
    lines = [
        "| sweep | runs | ok | diverged or failed | training time (s) | per run (s) |",
        "|---|---|---|---|---|---|",
    ]
    for sweep, g in runs.groupby("sweep", sort=True):
        ok = int((g["status"] == "ok").sum())
        sec = g["train_seconds"].sum()
        lines.append(
            f"| {sweep} | {len(g)} | {ok} | {len(g) - ok} | {sec:.0f} | "
            f"{g['train_seconds'].mean():.1f} |"
        )
    return "\n".join(lines)


def _mode_notes(both: pd.DataFrame) -> list[str]:
    s = both.set_index(["regularizer", "mode"])
    out = []
    for method in [m for m in METHODS if (m, "proximal") in s.index and (m, "penalty") in s.index]:
        p, q = s.loc[(method, "penalty")], s.loc[(method, "proximal")]
        out.append(
            f"- {METHODS[method]}: proximal keeps {q['kept_input_mean']:.1f} input features, "
            f"{q['kept_hidden_mean']:.1f} hidden neurons and {q['params_kept_mean']:.0f} "
            f"parameters against {p['kept_input_mean']:.1f}, {p['kept_hidden_mean']:.1f} and "
            f"{p['params_kept_mean']:.0f} with the penalty, at "
            f"{100 * (q['test_accuracy_mean'] - p['test_accuracy_mean']):+.2f} points of "
            "test accuracy."
        )
    return out


def write_report(root: Path, out: Path, lam: float) -> Path:
    """Write ``out/reproduction.md`` and ``out/figures/`` from the runs under ``root``."""
    runs = load_runs(root)
    at_lam = np.isclose(runs["lambda"], lam, rtol=1e-9, atol=0)
    penalty = runs[at_lam & (runs["mode"] == "penalty")]
    if penalty.empty:
        raise ValueError(f"no penalty-mode run at lambda={lam:g} under '{root}'")
    order = {m: i for i, m in enumerate(METHODS)}
    main = summarize(penalty, ["regularizer"]).sort_values(
        "regularizer", key=lambda c: c.map(order)
    )
    setup, shape = _setup(penalty)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    lam_s = lam_label(lam)
    doc = [
        "# Reproducing Scardapane et al. 2017 on digits",
        "",
        "_Generated by `make reproduce` (`python -m regexp.reproduce`) from the runs under "
        f"`{root}`; every number below comes from those runs. Do not edit by hand._",
        "",
        "Protocol of the authors' Lasagne demo, as run here "
        "(`conf/experiment/scardapane2017.yaml`):",
        "",
        *setup,
        "",
        f"## Each method at λ = {lam_s} (penalty mode)",
        "",
        "Mean ± std (n − 1) over seeds of the runs with status ok; kept = not removed.",
        "",
        markdown_table(main, penalty, ["regularizer"]),
        "",
    ]
    if shape is not None:
        report.plot_feature_maps(pixel_maps(runs[at_lam]), shape, figures / "pixel_maps.png")
        doc += [
            "![Input pixels kept per method](figures/pixel_maps.png)",
            "",
            "Fraction of seeds in which each input pixel keeps a nonzero outgoing weight "
            "(white: kept by every seed).",
            "",
        ]
    checks = paper_checks(main, penalty)
    agree = sum(c.holds for c in checks)
    doc += [
        "## The paper's claim",
        "",
        "The paper: sparse group Lasso (SGL) removes far more neurons and input features than "
        "L1 or L2, with equal or slightly lower accuracy. Its digits numbers are not restated "
        f'here; the claim is tested on our runs at λ = {lam_s}, with "far more" = at least '
        f'{FAR_MORE:g}× as many removed and "slightly lower" = at most '
        f"{100 * ACCURACY_TOLERANCE:g} point below (means over seeds).",
        "",
        *[
            f"- {'**agrees**' if c.holds else '**disagrees**'}: {c.claim}: {c.detail}."
            for c in checks
        ],
        "",
        f"{agree} of {len(checks)} parts of the claim hold on these runs."
        + ("" if agree == len(checks) else " The ones marked **disagrees** do not."),
        "",
    ]
    prox = runs[at_lam & (runs["mode"] == "proximal")]
    if not prox.empty:
        both = runs[at_lam & runs["regularizer"].isin(set(prox["regularizer"]))]
        table = summarize(both, ["regularizer", "mode"]).sort_values(
            ["regularizer", "mode"], key=lambda c: c.map(order) if c.name == "regularizer" else c
        )
        doc += [
            f"## Penalty against proximal mode at λ = {lam_s}",
            "",
            "Penalty: the penalty's (sub)gradient joins the loss. Proximal: Adam steps on "
            "the data loss, then W ← prox_{lr·λ·R}(W), which sets weights to exact zeros.",
            "",
            markdown_table(table, both, ["regularizer", "mode"]),
            "",
            *_mode_notes(table),
            "",
        ]
    grid = runs[
        (runs["mode"] == "penalty") & runs["regularizer"].isin(["l1", "group_lasso", "sgl"])
    ]
    if grid["lambda"].nunique() > 1:
        front = summarize(grid, ["regularizer", "lambda"]).sort_values(
            ["regularizer", "lambda"], key=lambda c: c.map(order) if c.name == "regularizer" else c
        )
        front["method"] = front["regularizer"].map(METHODS)
        front["point"] = front["lambda"].map(lam_label)
        ref = main[main["regularizer"].isin(["none", "l2"])]
        ref = ref.assign(method=ref["regularizer"].map(METHODS) + f" (λ = {lam_s})")
        axes = {"kept_input": "input features kept", "params_kept": "parameters kept"}
        title = "Accuracy–sparsity front over λ (mean ± std over seeds; labels: λ)"
        report.plot_front(front, ref, axes, figures / "front.png", title)
        doc += [
            "## Accuracy–sparsity front over λ",
            "",
            "![Accuracy against kept inputs and parameters](figures/front.png)",
            "",
            markdown_table(front, grid, ["regularizer", "lambda"]),
            "",
        ]
    twins = runs.attrs.get("twins", 0)
    doc += [
        "## Runs and times",
        "",
        "Training seconds (the training loop only) per sweep, one job after another on one "
        "CPU thread:",
        "",
        _times(runs),
        "",
    ]
    if twins:
        doc += [
            f"{twins} configurations ran in two sweeps; "
            f"{twins - runs.attrs['twins_differ']} of them gave identical metrics.",
            "",
        ]
    path = out / "reproduction.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(doc))
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m regexp.reproduce [SWEEPS] [DOCS] [--lambda L]``."""
    parser = argparse.ArgumentParser(prog="python -m regexp.reproduce", description=__doc__)
    parser.add_argument("sweeps", nargs="?", default="outputs/reproduce", type=Path)
    parser.add_argument("docs", nargs="?", default="docs", type=Path)
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
    lam = experiment_lambda() if args.lam is None else args.lam
    try:
        path = write_report(args.sweeps, args.docs, lam)
    except ValueError as err:
        parser.exit(2, f"regexp.reproduce: error: {err}\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
