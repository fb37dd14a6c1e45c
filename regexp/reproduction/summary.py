"""The summary at the top of ``reproduction.md``: what reproduces and what does not, under
which reading and threshold, and what a simple baseline achieves; each claim cites the
table row it rests on. Every sentence is built from the checks and tables of the
sections below (nothing here is typed in by hand), and the abbreviations are defined."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from regexp.reproduction.claims import Check, lam_label
from regexp.reproduction.sections import paired_at_lambda
from regexp.reproduction.study import REFERENCE, Study, label

ABBREVIATIONS = [
    "L1, L2: penalties on the sum of absolute values / of squares of the weights",
    "GL: group Lasso (the sum over units of the L2 norm of each unit's outgoing weights)",
    "SGL: sparse group Lasso (L1 + GL)",
    "prox: proximal step (w⁺ = argmin_x ‖x − z‖²/(2·lr) + λR(x), in a given metric)",
    "SGD: stochastic gradient descent; Adam: the Adam optimizer",
    "λ: the regularization strength; t: the threshold below which a weight is set to 0",
    "‖W_j‖: the L2 norm of unit j's outgoing weights; std(x_j): input j's standard "
    "deviation over the training rows",
    "95% interval: two-sided t interval of the mean paired difference over seeds; n: "
    "the number of seeds it rests on",
]


def short(c: Check) -> str:
    """A check's part of the claim in a few words: ``inputs removed vs L1``."""
    text = c.claim
    ref = text.rsplit(" ", 1)[-1].removesuffix("'s")
    if "equal parameters" in text:
        what = "accuracy at equal parameters"
    elif "equal inputs" in text:
        what = "accuracy at equal inputs"
    elif "input features" in text:
        what = "inputs removed"
    elif "hidden neurons" in text:
        what = "hidden neurons removed"
    else:
        what = "accuracy"
    return f"{what} vs {ref}"


def _word(checks: Sequence[Check]) -> str:
    """``inputs removed vs L1: within noise; …`` with the strict verdicts."""
    return "; ".join(f"{short(c)}: {c.strict or c.verdict}" for c in checks)


def _parts(checks: Sequence[Check], kind: str) -> list[Check]:
    return [c for c in checks if kind in c.claim]


def summary(
    s: Study,
    vchecks: Sequence[Check],
    mchecks: Sequence[Check],
    per_threshold: dict,
    seconds: float | None = None,
) -> list[str]:
    """The summary lines (a list of Markdown bullets under a heading)."""
    lam = lam_label(s.lam)
    main = s.main
    out = ["## Summary", ""]
    # same λ: the paper's own protocol
    same, holds = [], []
    for ref in ("l1", "group_lasso", "l2"):
        if ref not in set(main["method"]):
            continue
        beyond = paired_at_lambda(main, REFERENCE, ref, "removed_input_beyond")
        hid = paired_at_lambda(main, ref, REFERENCE, "kept_hidden")
        acc = paired_at_lambda(main, REFERENCE, ref, "test_accuracy")
        more = beyond.low > 0 and hid.low > 0
        holds.append((label(ref), more and acc.low >= -0.01))
        same.append(
            f"{label(ref)}: {beyond.mean:+.1f} inputs removed "
            f"({'beyond noise' if beyond.low > 0 or beyond.high < 0 else 'within noise'}), "
            f"{hid.mean:+.1f} hidden neurons removed "
            f"({'beyond noise' if hid.low > 0 or hid.high < 0 else 'within noise'}), "
            f"accuracy {100 * acc.mean:+.2f} points "
            f"({'beyond noise' if acc.low > 0 or acc.high < 0 else 'within noise'})"
        )
    out.append(
        f"- **At the paper's protocol (same λ = {lam}, threshold {s.threshold:g})**, SGL "
        "against each method, paired over seeds: "
        + "; ".join(same)
        + ". Qualitatively (SGL removes more inputs and more hidden neurons beyond noise, "
        "and its accuracy interval lies above −1 point), the claim "
        + "; ".join(f"{'holds' if ok else 'does not hold'} against {name}" for name, ok in holds)
        + ". At one λ SGL applies a stronger penalty than L1 or GL alone, so this is not a "
        "like-for-like comparison. [Table 1, rows SGL, L1, GL, L2]"
    )
    acc_v, rem_v = _parts(vchecks, "accuracy"), _parts(vchecks, "removes")
    out.append(
        "- **At operating points chosen on validation (dense − 1 point), reported on test "
        f"(the reading to trust)**: accuracy parts: {_word(acc_v)}; removal parts: "
        f"{_word(rem_v)} (strict verdicts, the seeds that do not reach the level counted as "
        "failures). [Table 2, rows SGL, L1, GL]"
    )
    acc_m, rem_m = _parts(mchecks, "accuracy is"), _parts(mchecks, "removes")
    out.append(
        "- **At matched sparsity on the test fronts**: accuracy parts: "
        f"{_word(acc_m)}; removal parts: {_word(rem_m)} (strict). So the accuracy half of "
        "the claim and the removal half are to be read separately: "
        + (
            "no removal part agrees at matched accuracy. "
            if not any((c.strict or c.verdict) == "agrees" for c in rem_m)
            else "some removal parts agree at matched accuracy. "
        )
        + "[Table 3, rows SGL, L1, GL]"
    )
    from regexp.reproduction.sensitivity import surviving

    same_t = surviving(per_threshold)
    ts = ", ".join(f"{t:g}" for t in per_threshold)
    out.append(
        f"- **Thresholds {ts}**: {len(same_t)} of {len(next(iter(per_threshold.values())))} "
        "parts keep the same strict verdict at every threshold"
        + (
            ": "
            + "; ".join(
                f"{'validation' if 'validation' in c else 'matched'}, {short(Check(c, v, ''))}: {v}"
                for c, v in same_t
            )
            if same_t
            else ""
        )
        + "; the others depend on the threshold. [Table 4b]"
    )
    out += _baseline_lines(s)
    if seconds is not None and math.isfinite(seconds):
        out.append(
            f"- Measured run time: {seconds / 60:.1f} minutes of wall time from the first "
            "sweep to this report (`--seconds`), on the machine and under the load it ran on "
            "(see Runs and times)."
        )
    out += [
        "",
        "Abbreviations: " + "; ".join(ABBREVIATIONS) + ".",
        "",
    ]
    return out


def _paired_means(table, method: str, target: float) -> tuple[float, float]:
    """Means of ``method`` and the reference at ``target`` over the seeds where both have a
    value (those of the paired difference)."""
    at = table[np.isclose(table["target"], target)]
    a = at[at["method"] == method].set_index("seed")["value"]
    b = at[at["method"] == REFERENCE].set_index("seed")["value"]
    both = pd.concat([a, b], axis=1, keys=["a", "b"]).dropna()
    if both.empty:
        return math.nan, math.nan
    return float(both["a"].mean()), float(both["b"].mean())


def _baseline_lines(s: Study) -> list[str]:
    """What simple baselines reach against SGL at SGL's inputs and parameters."""
    t, mt = s.targets, s.matched
    fronts = s.fronts()
    lines = []
    picks = [
        ("prune-inputs-std", "kept_input", t["inputs"], "inputs"),
        ("prune-inputs-std+ft", "kept_input", t["inputs"], "inputs"),
        ("prune-all-std+ft", "params_kept", t["params"], "parameters"),
        ("prune-all+ft", "params_kept", t["params"], "parameters"),
        ("sgl+ft", "params_kept", t["params"], "parameters"),
        ("lassonet-refit", "kept_input", t["inputs"], "inputs"),
        ("lassonet", "kept_input", t["inputs"], "inputs"),
        ("group_lasso/input", "kept_input", t["inputs"], "inputs"),
        ("sgl/input", "kept_input", t["inputs"], "inputs"),
        ("sgl/prox-sgd", "params_kept", t["params"], "parameters"),
    ]
    for m, axis, target, what in picks:
        if m not in fronts or REFERENCE not in fronts:
            continue
        d, _, _ = mt.accuracy(axis, m, REFERENCE, target)
        a, b = _paired_means(mt.at_x[axis], m, target)
        if not (math.isfinite(a) and math.isfinite(b)):
            lines.append(
                f"- {label(m)}: no paired value at {target:.0f} {what} (a front does not "
                "reach it, or the reading is censored). [Table 5, row " + label(m) + "]"
            )
            continue
        lines.append(
            f"- {label(m)} at {target:.0f} {what}: {100 * a:.2f}% against SGL's "
            f"{100 * b:.2f}% on the same seeds, difference {d.text(100, 2)} points. "
            f"[Table 5, row {label(m)}]"
        )
    if lines:
        lines.insert(0, "- **Simple baselines and like-for-like methods** (test fronts):")
        lines = [lines[0], *("  " + line for line in lines[1:])]
    return lines


__all__ = ["ABBREVIATIONS", "summary"]
