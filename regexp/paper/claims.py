"""The paper's claims, tested on summaries of runs, and the sentences that report them.

Scardapane et al. 2017 claim that sparse group Lasso (SGL) removes far more neurons and
input features than L1 or L2 with equal or slightly lower accuracy. :func:`paper_checks`
turns the vague words into stated thresholds; the ``*_notes`` functions write sentences
whose numbers all come from the summaries (frames of :func:`regexp.outputs.aggregate.summarize`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import pandas as pd

log = logging.getLogger(__name__)

METHODS = {
    "none": "none",
    "l2": "L2",
    "l1": "L1",
    "group_lasso": "group Lasso (GL)",
    "sgl": "sparse group Lasso (SGL)",
}
SHORT = {"none": "none", "l2": "L2", "l1": "L1", "group_lasso": "GL", "sgl": "SGL"}
# The paper's words made testable: "slightly lower" accuracy = at most this far below
# (0.01 = 1 point); "far more" removed units = at least this many times as many.
ACCURACY_TOLERANCE = 0.01
FAR_MORE = 2.0


def lam_label(lam: float) -> str:
    """``10^-3.5`` for whole and half decades, else ``%.3g``."""
    e = math.log10(lam) if lam > 0 else math.nan
    half = math.isfinite(e) and abs(2 * e - round(2 * e)) < 1e-9
    return f"10^{round(2 * e) / 2:g}" if half else f"{lam:.3g}"


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
    """SGL against L1 and L2, in a summary by regularizer (see ``summarize``).

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


def ranking_note(summary: pd.DataFrame) -> list[str]:
    """Which method keeps the fewest inputs, hidden neurons and parameters (means)."""
    s = summary.set_index("regularizer")
    what = {
        "kept_input_mean": "input features",
        "kept_hidden_mean": "hidden neurons",
        "params_kept_mean": "parameters",
    }
    parts = []
    for col, name in what.items():
        best = s[col].min()
        winners = [METHODS.get(m, m) for m in s.index[s[col] == best]]
        parts.append(f"{name}: {' and '.join(winners)} ({best:.1f})")
    return [f"Fewest kept on average, of the {len(s)} methods: " + "; ".join(parts) + ".", ""]
