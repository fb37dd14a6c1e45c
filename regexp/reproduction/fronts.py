"""The fronts section of ``reproduction.md``: accuracy against kept inputs and parameters
over λ (penalty, proximal, baselines; figures) and the λ tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from regexp.reproduction import analysis, figures, matched
from regexp.reproduction import runs as runlib
from regexp.reproduction.claims import lam_label
from regexp.reproduction.sections import BEYOND
from regexp.reproduction.study import ORDER, REFERENCE, Study, label, ordered
from regexp.results import aggregate

# The baselines drawn against SGL (the others are in Table 5): one line each.
FIGURE_BASELINES = (
    "prune-inputs-std",
    "prune-inputs-std+ft",
    "prune-all-std+ft",
    "sgl+ft",
    "lassonet",
    "lassonet-refit",
    "sgl/input",
)

PENALTY_FIGURE = ("l1", "group_lasso", "sgl")
PROXIMAL_FIGURE = (
    "sgl",
    "l1/prox-adaptive",
    "group_lasso/prox-adaptive",
    "sgl/prox-adaptive",
    "sgl/prox-identity",
    "sgl/prox-sgd",
)
# One colour per method in every front figure: the methods drawn, in study.ORDER, take the
# colours of this list in turn (tab10 without its grey, the colour of the dotted line, then
# darker or brighter ones a reader can still tell apart; none black, the reference markers').
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#000080",
    "#b8860b",
    "#008080",
    "#ff1493",
    "#6b8e23",
    "#a0522d",
)
COLORS = dict(
    zip(
        (m for m in ORDER if m in {*PENALTY_FIGURE, *PROXIMAL_FIGURE, *FIGURE_BASELINES}),
        PALETTE,
        strict=False,
    )
)


def fronts(s: Study, figs) -> list[str]:
    """Front figures (penalty, proximal, baselines) and the penalty and proximal λ tables."""
    t, pts = s.targets, s.points
    run_methods = [m for m in s.fronts() if m not in analysis.BASELINES]
    front = analysis.mean_front(pts[pts["method"].isin(run_methods)])
    front = front.assign(method=front["method"].map(label))
    total = int(s.runs["params_total"].max())
    axes = {
        "kept_input": f"input features kept (of {s.units()})",
        "params_kept": f"parameters kept (of {total})",
    }
    vlines = {
        "kept_input": (t["inputs"], f"SGL at λ = {lam_label(s.lam)}"),
        "params_kept": (t["params"], f"SGL at λ = {lam_label(s.lam)}"),
    }
    main = s.main
    refs = aggregate.summarize(main[main["method"].isin(["none", "l2"])], ["method"])
    refs = refs.assign(
        method=[
            "none (no penalty)" if m == "none" else f"{label(m)} (λ = {lam_label(s.lam)})"
            for m in refs["method"]
        ]
    )
    floor = math.floor(100 * t["level"] - 6)
    off = [
        f"{r['method']} at λ = {lam_label(r['lambda'])} ({100 * r['test_accuracy_mean']:.1f}%)"
        for r in front[100 * front["test_accuracy_mean"] < floor].to_dict("records")
    ]
    out = ["## Accuracy–sparsity fronts", ""]
    groups = {
        "front.png": (PENALTY_FIGURE, "Penalty mode over λ"),
        "front_proximal.png": (PROXIMAL_FIGURE, "Proximal mode over λ, against penalty SGL"),
    }
    colors = {label(m): c for m, c in COLORS.items()}
    for name, (methods, title) in groups.items():
        sel = front[front["method"].isin([label(m) for m in methods])]
        if sel.empty:
            continue
        names = [label(m) for m in methods if label(m) in set(sel["method"])]
        sel = sel.set_index("method").loc[names].reset_index()
        figures.plot_front(
            sel,
            refs,
            axes,
            figs / name,
            f"{title} (mean ± std over seeds)",
            (floor, 100),
            vlines,
            colors,
            matched.GAP,
        )
        out += [f"![{title}](figures/{name})", ""]
    base = [m for m in FIGURE_BASELINES if m in set(pts["method"])]
    if base:
        rows = [front[front["method"] == label(REFERENCE)]]
        for m in base:
            if m.startswith("lassonet"):
                grid = np.arange(2, s.units() + 1, 2)
                rows.append(
                    analysis.interpolated_front(pts, m, "kept_input", grid).assign(method=label(m))
                )
            elif m in analysis.BASELINES:
                f = analysis.mean_front(analysis.restrict(pts[pts["method"] == m]))
                rows.append(f.assign(method=label(m)))
            else:
                f = analysis.mean_front(pts[pts["method"] == m])
                rows.append(f.assign(method=label(m)))
        figures.plot_front(
            pd.concat(rows, ignore_index=True),
            refs,
            axes,
            figs / "front_baselines.png",
            "Baselines against penalty SGL (mean ± std over seeds)",
            (floor, 100),
            vlines,
            colors,
            matched.GAP,
        )
        out += ["![Baselines](figures/front_baselines.png)", ""]
    out += [
        "Each point is one λ (pruning: one fraction q; LassoNet: its path interpolated at each "
        "even number of inputs), joined in λ order; a thin dashed segment joins two "
        f"points whose mean accuracies differ by more than {100 * matched.GAP:g} points "
        "(nothing was measured along it: the front falls off there). Each method has one "
        "colour in every chart; the black markers are the unpenalized network and L2. "
        "The dotted line marks what SGL keeps at the demo's λ. Points "
        f"below {floor}% accuracy are left off the charts"
        + (": " + ", ".join(off) if off else "")
        + (", and the baselines' points below it" if base else "")
        + ".",
        "",
    ]
    for mode, title in (("penalty", "Penalty mode over λ"), ("proximal", "Proximal mode over λ")):
        grid = s.runs[(s.runs["mode"] == mode) & s.runs["method"].isin(run_methods)]
        if grid.empty:
            continue
        table = aggregate.summarize(grid, ["method", "lambda"])
        table["order"] = table["method"].map(ordered(table["method"]).index)
        table = table.sort_values(["order", "lambda"])
        out += [
            f"{title}:",
            "",
            runlib.markdown_table(table, grid, {"method": label, "lambda": lam_label}, BEYOND),
            "",
        ]
    return out
