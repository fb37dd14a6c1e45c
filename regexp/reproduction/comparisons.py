"""The sections of ``reproduction.md`` that compare methods at matched sparsity: the
paper's claim (verdicts), penalty against proximal mode, and the baselines."""

from __future__ import annotations

import math

from regexp.data.prepare import load_dataset
from regexp.reproduction import analysis
from regexp.reproduction import runs as runlib
from regexp.reproduction.claims import (
    ACCURACY_TOLERANCE,
    FAR_MORE,
    accuracy_check,
    lam_label,
    removal_check,
    tally,
)
from regexp.reproduction.matched import Interval
from regexp.reproduction.sections import BEYOND, diff_line, noise, paired_at_lambda
from regexp.reproduction.study import REFERENCE, Study, label, ordered
from regexp.results import aggregate

PROX_TARGET = 0.2  # proximal SGL should remove at least this fraction of the inputs


def matched_table(s: Study, methods: list[str]) -> str:
    """Accuracy at ``P*`` and ``I*``, and units kept at accuracy ``A*``, per method."""
    t = s.targets
    head = [
        "method",
        f"accuracy (%) at {t['params']:.0f} parameters",
        f"accuracy (%) at {t['inputs']:.1f} inputs",
        f"inputs kept at {100 * t['level']:.2f}%",
        f"hidden neurons kept at {100 * t['level']:.2f}%",
        f"parameters kept at {100 * t['level']:.2f}%",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    mt = s.matched
    for m in methods:
        cells = [
            label(m),
            mt.cell("x", "params_kept", m, t["params"], 100),
            mt.cell("x", "kept_input", m, t["inputs"], 100),
            *(mt.cell("level", axis, m, t["level"]) for axis in analysis.AXES),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid_table(s: Study, methods: list[str], axis: str) -> str:
    """Accuracy (%) of each method at each grid value of ``axis`` kept."""
    grid = s.matched.x_targets[axis][1:]
    head = ["method", *(f"{g:g}" for g in grid)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells = [label(m), *(s.matched.cell("x", axis, m, g, 100) for g in grid)]
        if any(c not in ("–", "not reached") for c in cells[1:]):
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claim(s: Study) -> list[str]:
    """The paper's claim, tested at matched sparsity and accuracy: the verdicts."""
    t, mt = s.targets, s.matched
    methods = s.fronts()
    lam = lam_label(s.lam)
    const = float(s.runs.loc[s.runs["status"] == "ok", "constant_inputs"].mean())
    units_in, units_h = s.units(), s.hidden_units()
    checks = []
    for ref in [r for r in ("l1", "group_lasso") if r in methods and REFERENCE in methods]:
        name = label(ref)
        d, a, b = mt.accuracy("params_kept", REFERENCE, ref, t["params"])
        checks.append(
            accuracy_check(
                f"at equal parameters kept ({t['params']:.0f}), SGL's accuracy is equal to or "
                f"at most {100 * ACCURACY_TOLERANCE:g} point below {name}'s",
                d,
                a,
                b,
            )
        )
        d, a, b = mt.accuracy("kept_input", REFERENCE, ref, t["inputs"])
        checks.append(
            accuracy_check(
                f"at equal inputs kept ({t['inputs']:.1f}), SGL's accuracy is equal to or at "
                f"most {100 * ACCURACY_TOLERANCE:g} point below {name}'s",
                d,
                a,
                b,
            )
        )
        d, a, b = mt.kept("kept_input", REFERENCE, ref, t["level"])
        checks.append(
            removal_check(
                f"at equal accuracy ({100 * t['level']:.2f}%), SGL removes far more input "
                f"features than {name}",
                d,
                units_in - const - a,
                units_in - const - b,
                f"of the {units_in - const:.1f} non-constant inputs",
            )
        )
        d, a, b = mt.kept("kept_hidden", REFERENCE, ref, t["level"])
        checks.append(
            removal_check(
                f"at equal accuracy ({100 * t['level']:.2f}%), SGL removes far more hidden "
                f"neurons than {name}",
                d,
                units_h - a,
                units_h - b,
                f"of {units_h} hidden neurons",
            )
        )
    dense = (
        f"the unregularized network's mean accuracy ({100 * t['dense']:.2f}%) minus "
        f"{100 * ACCURACY_TOLERANCE:g} point"
        if math.isfinite(t["dense"])
        else f"SGL's mean accuracy at λ = {lam} minus {100 * ACCURACY_TOLERANCE:g} point"
    )
    out = [
        "## The paper's claim at matched sparsity",
        "",
        "Scardapane et al. 2017: sparse group Lasso removes far more neurons and input "
        "features than L1 or L2, with equal or slightly lower accuracy. Methods are compared "
        "where they are equally sparse or equally accurate, each read off its own λ front "
        "(penalty-mode runs over λ; the fronts of proximal mode and of the baselines below "
        "too): for each seed, accuracy is interpolated linearly along the front at a number of "
        "parameters or inputs kept, and the units kept at an accuracy are those of the "
        "sparsest point of the interpolated front that reaches it; nothing is extrapolated "
        "(a seed whose front does not reach a target is left out: n < seeds). The targets: "
        f"{t['params']:.0f} parameters and {t['inputs']:.1f} inputs, what SGL keeps on average "
        f"at the demo's λ = {lam}; accuracy {100 * t['level']:.2f}%, {dense}.",
        "",
        f'"Slightly lower" reads as at most {100 * ACCURACY_TOLERANCE:g} point below and "far '
        f'more" as at least {FAR_MORE:g}× as many removed. An accuracy claim agrees when the '
        f"whole interval of the paired difference lies above −{100 * ACCURACY_TOLERANCE:g} "
        "point, and is undecided when the interval straddles it; a removal claim agrees when "
        f"the interval lies above 0 and the means differ {FAR_MORE:g}×, partly agrees when "
        "only the first holds, and is within noise when the interval holds 0. Input "
        "features are counted beyond the constant ones. L2 puts no weights at exact zeros "
        "beyond the threshold, so it has no front here; it is compared at the same λ above.",
        "",
        matched_table(s, methods),
        "",
        "Mean ± std over seeds; `not reached`: no seed's front reaches the target; `–`: "
        "the method has no front on that axis.",
        "",
        *[c.line() for c in checks],
        "",
        f"Of the {len(checks)} parts of the claim at matched sparsity: {tally(checks)}.",
        "",
        "Test accuracy (%) at equal parameters kept:",
        "",
        grid_table(s, methods, "params_kept"),
        "",
        "Test accuracy (%) at equal inputs kept:",
        "",
        grid_table(s, methods, "kept_input"),
        "",
    ]
    return out


def proximal(s: Study) -> list[str]:
    """Penalty against proximal mode (Adam metric and identity), at λ* and along fronts."""
    runs = s.runs
    prox = runs[runs["mode"] == "proximal"]
    if prox.empty:
        return []
    lam = lam_label(s.lam)
    regs = set(prox["regularizer"])
    both = runs[s.at_lam & runs["regularizer"].isin(regs)]
    table = aggregate.summarize(both, ["method"])
    table = table.set_index("method").loc[ordered(table["method"])].reset_index()
    out = [
        "## Penalty against proximal mode",
        "",
        "Penalty: the penalty's (sub)gradient is added to the data loss's, and Adam steps on "
        "the sum. Proximal: Adam steps on the data loss, then the proximal step of lr·λ·R; in "
        "Adam's metric D = √v̂ + ε (`regularizer.prox_metric=adaptive`: w⁺ = argmin_x "
        "(x − z)ᵀD(x − z)/(2·lr) + λR(x), z the Adam step) or in the identity metric "
        "(`identity`: w⁺ = prox_{lr·λR}(z)). Both put weights at exact zeros.",
        "",
        f"At λ = {lam}:",
        "",
        runlib.markdown_table(table, both, {"method": label}, BEYOND),
        "",
    ]
    key = f"{REFERENCE}/prox-adaptive"
    if key in set(both["method"]) and REFERENCE in set(both["method"]):
        sel = both[(both["method"] == key) & (both["status"] == "ok")]
        removed = s.units() - sel["kept_input"].mean()
        acc = paired_at_lambda(both, key, REFERENCE, "test_accuracy")
        a, b = (
            float(both.loc[both["method"] == m, "test_accuracy"].mean()) for m in (key, REFERENCE)
        )
        met = removed / s.units() >= PROX_TARGET and abs(a - b) <= ACCURACY_TOLERANCE
        out += [
            f"Proximal SGL in Adam's metric at λ = {lam} removes {removed:.1f} of the "
            f"{s.units()} input pixels ({100 * removed / s.units():.0f}%; "
            f"{sel['removed_input_beyond'].mean():.1f} beyond the constant ones), at test "
            f"accuracy {100 * a:.2f}% against {100 * b:.2f}% for penalty SGL: paired "
            f"difference {acc.text(100, 2)} points, {noise(acc)}. Target (at least "
            f"{100 * PROX_TARGET:g}% of the inputs removed, accuracy within "
            f"{100 * ACCURACY_TOLERANCE:g} point of penalty SGL): {'met' if met else 'not met'}.",
            "",
        ]
    out += _matched_lines(s, [f"{REFERENCE}/prox-adaptive", f"{REFERENCE}/prox-identity"])
    out += _metric_note(s)
    return out


def _matched_lines(s: Study, methods: list[str], ref: str = REFERENCE) -> list[str]:
    """Paired differences of each method against ``ref`` at ``P*``, ``I*`` and ``A*``."""
    t, mt = s.targets, s.matched
    fronts = s.fronts()
    out = []
    for m in [m for m in methods if m in fronts and ref in fronts]:
        names = (label(m), f"{label(ref)} in penalty mode")
        out += [f"{names[0]} against {names[1]}, at matched sparsity and accuracy:", ""]
        if m not in analysis.BASELINE_AXES:
            d, a, b = mt.accuracy("params_kept", m, ref, t["params"])
            what = f"accuracy (%) at {t['params']:.0f} parameters"
            out.append(diff_line(what, d, a, b, 100, 2, names))
        d, a, b = mt.accuracy("kept_input", m, ref, t["inputs"])
        out.append(diff_line(f"accuracy (%) at {t['inputs']:.1f} inputs", d, a, b, 100, 2, names))
        axes = analysis.BASELINE_AXES.get(m, tuple(analysis.AXES))
        for axis in axes:
            d, a, b = mt.kept(axis, m, ref, t["level"])
            # kept() gives how many more m removes: report kept counts, difference m − ref
            flipped = Interval(-d.mean, -d.high, -d.low, d.n)
            out.append(
                diff_line(
                    f"{analysis.AXES[axis]} at {100 * t['level']:.2f}% accuracy",
                    flipped,
                    a,
                    b,
                    names=names,
                )
            )
        out.append("")
    return out


def _metric_note(s: Study) -> list[str]:
    """Why the metric matters, with the numbers of these runs."""
    t, cfg = s.targets, s.cfg
    lr = float(cfg["optimizer"]["lr"])
    tr = cfg["trainer"]
    data_rows = len(load_dataset(**cfg["dataset"]).y_train)
    per_epoch = (
        data_rows // tr["batch_size"]
        if tr.get("drop_last")
        else math.ceil(data_rows / tr["batch_size"])
    )
    steps = per_epoch * tr["epochs"]
    fan = [int(x) for x in str(s.runs["architecture"].iloc[0]).split("-")[:2]]
    lam_id = analysis.lambda_at(s.points, f"{REFERENCE}/prox-identity", "params_kept", t["params"])
    lam_ad = analysis.lambda_at(s.points, f"{REFERENCE}/prox-adaptive", "params_kept", t["params"])
    out = [
        "Why the metric matters: Adam moves each weight by about lr per step whatever the "
        "gradient's scale, because it divides by D = √v̂ + ε. In penalty mode the penalty's "
        "gradient goes through that division too, so a weight whose data gradient is small "
        "is pulled to 0 by up to lr per step. The identity proximal step does not divide: "
        f"its L1 part moves a weight by lr·λ = {lr * s.lam:.2g} per step at λ = "
        f"{lam_label(s.lam)}, at most {steps * lr * s.lam:.2g} over all {steps} steps, little "
        f"next to the first layer's Glorot scale (std {math.sqrt(2 / sum(fan)):.2g}). The "
        "adaptive step thresholds each weight at lr·λ/D instead, the same scale as the "
        "penalty's pull.",
    ]
    if math.isfinite(lam_id):
        out[-1] += (
            f" Along the fronts, the identity step needs λ ≈ {lam_id:.2g} "
            f"({lam_id / s.lam:.0f}× the demo's λ) to keep as few parameters as penalty SGL at "
            f"λ = {lam_label(s.lam)} ({t['params']:.0f})"
            + (f"; the adaptive step needs λ ≈ {lam_ad:.2g}." if math.isfinite(lam_ad) else ".")
        )
    return [*out, ""]


def baselines(s: Study) -> list[str]:
    """Magnitude pruning (with and without fine-tuning) and LassoNet at matched sparsity."""
    out = ["## Baselines at matched sparsity", ""]
    if s.prune is None and s.lasso is None:
        return [
            *out,
            "The baselines did not run "
            f"(`python -m regexp.reproduction.baselines {s.root}` writes them).",
            "",
        ]
    if s.prune is not None:
        ft = int(s.prune["finetune_epochs"].max())
        fr = sorted(s.prune["fraction"].unique())
        out += [
            "Magnitude pruning of the unregularized networks (`none`, one per seed) after "
            "training: in each layer, the units whose outgoing weights have the largest L2 "
            "norm are kept and the others' outgoing weights set to 0 (`torch.nn.utils.prune."
            "ln_structured` with n = 2 over columns). *All layers* keeps the fraction q of the "
            "inputs and of each hidden layer, *inputs only* prunes the input features alone; "
            f"q in {', '.join(f'{q:g}' for q in fr)}. *Fine-tuned*: then {ft} epochs of Adam "
            "on the data loss (the run's lr, batch and seed) with the pruned weights held at 0.",
            "",
        ]
    if s.lasso is not None:
        secs = s.lasso.groupby("seed")["path_seconds"].first()
        out += [
            "LassoNet (the `lassonet` package, `LassoNetClassifier`): hidden layers "
            f"{tuple(s.cfg['model']['hidden'])} (its own ReLU network and linear skip layer), "
            "its default optimizers and early stopping on this protocol's validation rows, "
            "seeded with the run's seed on the same split; every point of its λ path "
            f"(path multiplier {_lassonet_multiplier()}) is scored on the test rows: "
            f"{s.lasso.groupby('seed').size().mean():.0f} points and {secs.mean():.0f} s per "
            "seed on one CPU thread.",
            "",
        ]
    else:
        out += [
            "LassoNet did not run: the `lassonet` package is not installed (`pip install "
            "lassonet`, or `pip install -e .[paper]`).",
            "",
        ]
    out += _matched_lines(s, list(analysis.BASELINES))
    return out


def _lassonet_multiplier() -> str:
    from regexp.reproduction.baselines import LASSONET_PATH_MULTIPLIER

    return f"{LASSONET_PATH_MULTIPLIER:g}"
