"""The summary at the top of ``reproduction.md``: what reproduces and what does not, under
which reading and threshold, and what a simple baseline achieves; each claim cites the
table row it rests on. Every sentence is built from the checks and tables of the
sections below (nothing here is typed in by hand), and the abbreviations are defined."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import pandas as pd

from regexp.reproduction import comparisons, known
from regexp.reproduction.claims import ACCURACY_TOLERANCE, Check, lam_label, verdict
from regexp.reproduction.matched import paired_interval, paired_means
from regexp.reproduction.sections import method_means, paired_at_lambda
from regexp.reproduction.study import REFERENCE, Study, label

ABBREVIATIONS = [
    "L1, L2: penalties on the sum of absolute values / of squares of the weights",
    "GL: group Lasso (the sum over units of the L2 norm of each unit's outgoing weights)",
    "SGL: sparse group Lasso (L1 + GL)",
    "prox: proximal step (w⁺ = argmin_x ‖x − z‖²/(2·lr) + λR(x), in a given metric, R the "
    "penalty, z the weights after the optimizer's step)",
    "lr: the learning rate; SGD: stochastic gradient descent; Adam: the Adam optimizer, "
    "whose metric is D = √v̂ + ε (v̂: its bias-corrected mean of squared gradients, ε its "
    "constant 1e-8)",
    "MLP: multilayer perceptron; ReLU: rectified linear unit; hidden1, hidden2: the two "
    "hidden layers",
    "dense: the unregularized network (regularizer none) of the same seed; q: the fraction "
    "of units pruning keeps",
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
    fresh: bool = False,
) -> list[str]:
    """The summary lines (a list of Markdown bullets under a heading)."""
    lam = lam_label(s.lam)
    main = s.main
    out = ["## Summary", ""]
    # same λ: the paper's own protocol, with the verdicts of the one rule (claims.verdict)
    same, holds = [], []
    units_h = s.hidden_units()
    for ref in ("l1", "group_lasso", "l2"):
        if ref not in set(main["method"]):
            continue
        acc = paired_at_lambda(main, REFERENCE, ref, "test_accuracy")
        beyond = paired_at_lambda(main, REFERENCE, ref, "removed_input_beyond")
        hid = paired_at_lambda(main, ref, REFERENCE, "kept_hidden")  # SGL's removed − ref's
        r_in = _ratio(*method_means(main, ref, "removed_input_beyond"))
        r_h = _ratio(*(units_h - v for v in method_means(main, ref, "kept_hidden")))
        v_acc = verdict("accuracy", acc, seeds=s.seeds)
        v_in = verdict("removal", beyond, ratio=r_in, seeds=s.seeds)
        v_h = verdict("removal", hid, ratio=r_h, seeds=s.seeds)
        full = v_acc == "agrees" and v_in == v_h == "agrees"
        partly = v_acc == "agrees" and {v_in, v_h} <= {"agrees", "partly agrees"}
        worst = (
            "agrees"
            if full
            else "partly"
            if partly
            else "contradicted"
            if "disagrees" in (v_acc, v_in, v_h)
            else "not shown"
        )
        holds.append((label(ref), worst))
        same.append(
            f"{label(ref)}: accuracy {100 * acc.mean:+.2f} points ({v_acc}), "
            f"{beyond.mean:+.1f} inputs removed ({_times(r_in)}, {v_in}), "
            f"{hid.mean:+.1f} hidden neurons removed ({_times(r_h)}, {v_h})"
        )
    groups = {
        "agrees in full (every part agrees: at least 2× as many removed beyond noise, "
        "accuracy interval above −1 point)": [n for n, h in holds if h == "agrees"],
        "holds qualitatively only (more removed beyond noise but less than 2× as many, "
        "accuracy interval above −1 point)": [n for n, h in holds if h == "partly"],
        "is contradicted (a part disagrees)": [n for n, h in holds if h == "contradicted"],
        "is not shown (a part undecided or within noise, none disagreeing)": [
            n for n, h in holds if h == "not shown"
        ],
    }
    out.append(
        f"- **At the paper's protocol (same λ = {lam}, threshold {s.threshold:g})**, SGL "
        "against each method, paired over seeds (differences SGL − other), with each part's "
        "verdict: "
        + "; ".join(same)
        + ". So the claim "
        + "; ".join(f"{what} against {', '.join(names)}" for what, names in groups.items() if names)
        + ". At one λ SGL applies a stronger penalty than L1 or GL alone, so this is not a "
        "like-for-like comparison. [Table 1, rows SGL, L1, GL, L2, and the paired "
        "differences under it]"
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
    out += synthetic_summary(s)
    out += breast_cancer_summary(s)
    if seconds is not None and math.isfinite(seconds):
        out.append(
            f"- Measured run time: {seconds / 60:.1f} minutes of wall time for `make "
            "reproduce`, from its start (set-up included) to the writing of this file, "
            + (
                "starting from an empty `outputs/reproduce` (every run and baseline computed in it)"
                if fresh
                else "resuming from runs already in `outputs/reproduce` (the time of this "
                "invocation only, not of the whole reproduction)"
            )
            + f", on {os.cpu_count()} CPU cores, under the load the machine had then (see "
            "Runs and times)."
        )
    out += [
        "",
        "Abbreviations: " + "; ".join(ABBREVIATIONS) + ".",
        "",
    ]
    return out


def _validation_lines(s: Study) -> list[str]:
    """The input selectors against SGL at the operating points chosen on validation
    (Table 2): inputs kept and test accuracy, paired over seeds."""
    ops = comparisons.validation_points(s, ACCURACY_TOLERANCE)
    ops = ops.dropna(subset=["test_accuracy"]).set_index(["method", "seed"])
    methods = set(ops.index.get_level_values(0))
    if REFERENCE not in methods:
        return []
    ref = ops.loc[REFERENCE]
    out = []
    for m in ("prune-inputs-std+ft", "lassonet-refit", "sgl/input", "group_lasso/input"):
        if m not in methods:
            continue
        g = ops.loc[m]
        kin, kref = g["kept_input"].astype(float), ref["kept_input"].astype(float)
        ain, aref = g["test_accuracy"].astype(float), ref["test_accuracy"].astype(float)
        kept, acc = paired_interval(kin, kref), paired_interval(ain, aref)
        (k_m, k_ref), (a_m, a_ref) = paired_means(kin, kref), paired_means(ain, aref)
        out.append(
            f"- at the operating points chosen on validation, {label(m)} keeps {k_m:.1f} "
            f"inputs at {100 * a_m:.2f}% against SGL's {k_ref:.1f} at {100 * a_ref:.2f}% "
            f"(means over the {_seeds(kept.n)} where both reach the level); differences "
            f"({label(m)} − SGL): inputs kept {kept.text(1, 1)}, test accuracy "
            f"{acc.text(100, 2)} points. "
            f"[Table 2, rows SGL and {label(m)}]"
        )
    return out


def _at_level_lines(s: Study) -> list[str]:
    """What each input selector keeps at the accuracy level (Table 3), against SGL."""
    t, mt = s.targets, s.matched
    fronts = set(s.fronts())
    out = []
    for m in ("prune-inputs-std+ft", "lassonet-refit", "sgl/input"):
        if m not in fronts or REFERENCE not in fronts:
            continue
        d, a, b = mt.kept("kept_input", m, REFERENCE, t["level"])  # how many more m removes
        if d.n == 0:
            continue
        out.append(
            f"- at the accuracy level ({100 * t['level']:.2f}%), {label(m)} keeps {a:.1f} "
            f"inputs against SGL's {b:.1f} (means over the {_seeds(d.n)} where both have a "
            f"value), inputs removed ({label(m)} − SGL) {d.text(1, 1)}. [Table 3, rows SGL "
            f"and {label(m)}]"
        )
    return out


def _seeds(n: int) -> str:
    return "1 seed" if n == 1 else f"{n} seeds"


def _ratio(a: float, b: float) -> float:
    """How many times as many SGL removes (``a``) as the other method (``b``)."""
    if b > 0:
        return a / b
    return math.inf if a > 0 else math.nan


def _times(r: float) -> str:
    return (
        "no removal on either side"
        if math.isnan(r)
        else f"{r:.2f}×"
        if math.isfinite(r)
        else "the other removes none"
    )


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
        d, a, b = mt.accuracy(axis, m, REFERENCE, target)  # means over the paired seeds
        if d.n == 0:
            lines.append(
                f"- {label(m)}: no paired value at {target:.0f} {what} (a front does not "
                "reach it, or the reading is censored). [Table 5, row " + label(m) + "]"
            )
            continue
        lines.append(
            f"- {label(m)} at {target:.{1 if what == 'inputs' else 0}f} {what}: "
            f"{100 * a:.2f}% against SGL's {100 * b:.2f}% (means over the {_seeds(d.n)} where "
            f"both have a value), difference ({label(m)} − SGL) {d.text(100, 2)} points. "
            f"[Table 5, row {label(m)}]"
        )
    lines += _at_level_lines(s)
    lines += _validation_lines(s)
    if lines:
        lines.insert(
            0,
            "- **Simple baselines and like-for-like methods** (on the test fronts, and at "
            "the operating points chosen on validation):",
        )
        lines = [lines[0], *("  " + line for line in lines[1:])]
    return lines


SUMMARY_METHODS = ("sgl", "l1", "group_lasso", "sgl/input", "lassonet-refit", "prune-inputs-std+ft")


def synthetic_summary(s: Study) -> list[str]:
    """The summary's line on the synthetic data set: what each main method keeps at its
    operating point, and how many of its top |I| inputs are informative."""
    st = s.other("synthetic", s.lam)
    if st is None:
        return []
    values = known.synthetic_values(st)
    kept, top = [], []
    for m in SUMMARY_METHODS:
        if m not in values:
            continue
        _, cols = values[m]
        n = pd.Series(cols["inputs kept"], dtype=float).dropna()
        if n.empty:
            continue
        kept.append(
            f"{label(m)} {100 * n.mean():.0f} (precision "
            f"{known.interval_text(cols['precision, informative (%)'], seeds=st.seeds)}, "
            f"recall {known.interval_text(cols['recall, informative (%)'], seeds=st.seeds)})"
        )
        top.append(f"{label(m)} {known.interval_text(cols[known.TOP_I], seeds=st.seeds)}")
    if not kept:
        return []
    return [
        f"- **A data set with known answers** (synthetic: {len(known.INFORMATIVE)} informative "
        f"inputs of {known.SYNTHETIC['n_features']}), at operating points chosen on validation, "
        f"inputs kept with the precision and recall (%, 95% interval over {st.seeds} seeds "
        "unless n says otherwise) of the informative ones: "
        + "; ".join(kept)
        + f". At equal sparsity, the informative share (%) of each method's own top "
        f"{len(known.INFORMATIVE)}: "
        + "; ".join(top)
        + ". [Table 6, rows: "
        + "; ".join(label(m) for m in SUMMARY_METHODS if m in values)
        + "]. Keeping inputs at random gives a precision of "
        f"{100 * len(known.INFORMATIVE) / known.SYNTHETIC['n_features']:.0f}%. The claim's "
        "parts there, at the same operating points (strict verdicts): "
        + "; ".join(
            f"{short(c)}: {c.strict or c.verdict}"
            for c in comparisons.validation_checks(st, 0.01, "Table 6a")
        )
        + ". [Table 6a, rows SGL, L1, GL]"
    ]


def breast_cancer_summary(s: Study) -> list[str]:
    """The summary's line on breast_cancer: the verdicts at the operating points."""
    st = s.other("breast_cancer", s.lam)
    if st is None:
        return []
    checks = comparisons.validation_checks(st, 0.01, "Table 7")
    if not checks:
        return []
    words = "; ".join(f"{short(c)}: {c.strict or c.verdict}" for c in checks)
    return [
        "- **A real tabular data set** (breast_cancer), at operating points chosen on "
        f"validation (strict verdicts): {words}. [Table 7, rows SGL, L1, GL]"
    ]


__all__ = ["ABBREVIATIONS", "summary"]
