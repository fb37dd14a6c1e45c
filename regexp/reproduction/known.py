"""The sections on the other data sets: a synthetic problem whose informative inputs are
known (precision and recall of the inputs each method keeps), and a real tabular one.

Synthetic (``conf/dataset/synthetic.yaml``): columns ``0 … n_informative − 1`` are the
informative features, the next ``n_redundant`` their linear combinations, the rest noise
(``make_classification`` with ``shuffle=False``). For a set ``K`` of kept inputs and the
informative set ``I``: precision ``|K ∩ I| / |K|``, recall ``|K ∩ I| / |I|``; the same
against the useful set ``U`` (informative or redundant). Two readings per method and seed:
the inputs its operating point keeps (chosen on validation, as for digits); and its
``k`` inputs of largest first-layer norm ‖W_j‖ (weights before thresholding) at that
point, for ``k = |I|`` and ``k = |U|``: equal sparsity for every method. Means with 95%
t intervals over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from regexp.data.sources import SYNTHETIC
from regexp.reproduction import comparisons
from regexp.reproduction.matched import paired_interval
from regexp.reproduction.study import Study, label

INFORMATIVE = np.arange(SYNTHETIC["n_informative"])
USEFUL = np.arange(SYNTHETIC["n_informative"] + SYNTHETIC["n_redundant"])


def precision_recall(kept: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """``(|K ∩ T| / |K|, |K ∩ T| / |T|)`` for index arrays ``kept`` and ``truth`` (precision
    NaN for an empty ``kept``)."""
    hits = len(np.intersect1d(kept, truth))
    return (hits / len(kept) if len(kept) else math.nan), hits / len(truth)


def top_inputs(run_dir: Path, k: int) -> np.ndarray:
    """The ``k`` inputs of largest ‖W[:, j]‖₂ in the first layer before thresholding."""
    ckpt = torch.load(Path(run_dir) / "model.pt", map_location="cpu", weights_only=True)
    state = ckpt.get("raw_state_dict") or ckpt["state_dict"]
    first = next(v for key, v in state.items() if key.endswith("weight"))
    norms = first.double().norm(dim=0).numpy()
    return np.sort(np.argsort(-norms, kind="stable")[:k])


def _interval_text(values: list[float], scale: float = 100) -> str:
    v = pd.Series(values, dtype=float).dropna()
    if v.empty:
        return "–"
    d = paired_interval(v, v * 0)
    if not math.isfinite(d.low):
        return f"{scale * d.mean:.0f} (n = {d.n})"
    return f"{scale * d.mean:.0f} [{scale * d.low:.0f}, {scale * d.high:.0f}] (n = {d.n})"


def synthetic(s: Study) -> list[str]:
    """Table 6: precision and recall of the kept inputs on the synthetic data set."""
    st = s.other("synthetic", s.lam)
    if st is None:
        return []
    drop = 0.01
    ops = comparisons.validation_points(st, drop)
    runs = st.runs[st.runs["status"] == "ok"]
    methods = [m for m in st.fronts() if m in ("l1", "group_lasso", "sgl") or "inputs" in m]
    head = [
        "method",
        "seeds",
        "inputs kept",
        "precision, informative (%)",
        "recall, informative (%)",
        "precision, useful (%)",
        "recall, useful (%)",
        f"informative among the top {len(INFORMATIVE)} by ‖W_j‖ (%)",
        f"useful among the top {len(USEFUL)} by ‖W_j‖ (%)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        g = ops[(ops["method"] == m)].dropna(subset=["test_accuracy"])
        cols: dict[str, list[float]] = {h: [] for h in head[2:]}
        for r in g.to_dict("records"):
            kept, top_i, top_u = _kept_sets(st, runs, m, r)
            if kept is None:
                continue
            pi, ri = precision_recall(kept, INFORMATIVE)
            pu, ru = precision_recall(kept, USEFUL)
            vals = [len(kept) / 100, pi, ri, pu, ru]
            vals += [precision_recall(top_i, INFORMATIVE)[0] if top_i is not None else math.nan]
            vals += [precision_recall(top_u, USEFUL)[0] if top_u is not None else math.nan]
            for h, v in zip(head[2:], vals, strict=True):
                cols[h].append(v)
        cells = [label(m), f"{len(g)} of {st.seeds}"]
        cells += [_interval_text(cols[h]) for h in head[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    n_all = SYNTHETIC["n_features"]
    cfg = st.cfg
    return [
        "## A data set with known answers: synthetic (Table 6)",
        "",
        f"`make_classification` with {n_all} features, of which {len(INFORMATIVE)} "
        f"informative (columns 0–{len(INFORMATIVE) - 1}), {len(USEFUL) - len(INFORMATIVE)} "
        f"redundant (linear combinations of those, columns {len(INFORMATIVE)}–"
        f"{len(USEFUL) - 1}) and {n_all - len(USEFUL)} noise; {SYNTHETIC['n_samples']} rows "
        f"(`conf/dataset/synthetic.yaml`, `shuffle=False`, `random_state="
        f"{SYNTHETIC['random_state']}`), the same network and optimizer as for digits, "
        f"{cfg['trainer']['epochs']} epochs, threshold {st.threshold:g}. *Useful* = "
        "informative or redundant. Operating points chosen on validation as for digits "
        f"(dense − {100 * drop:g} point); the top-k columns rank the inputs of the same "
        "network by ‖W_j‖ before thresholding (pruning: its own ranking of the dense "
        "network), so every method is read at equal sparsity there. Mean [95% t interval] "
        "(n seeds).",
        "",
        "**Table 6.** Inputs kept on the synthetic data set (the inputs kept column is in "
        "units of 1, not %).",
        "",
        "\n".join(lines),
        "",
        "**Table 6a.** Operating points on validation, reported on test:",
        "",
        comparisons.validation_table(st, drop, st.fronts()),
        "",
    ]


def _kept_sets(st: Study, runs: pd.DataFrame, method: str, r: dict):
    """The kept inputs of an operating point, and its top-|I| and top-|U| inputs."""
    if method.startswith("prune-"):
        rows = st.prune
        if rows is None:
            return None, None, None
        kept = _pruned(st, method, r)
        return (
            kept,
            _pruned_at(st, method, r["seed"], len(INFORMATIVE)),
            _pruned_at(st, method, r["seed"], len(USEFUL)),
        )
    sel = runs[
        (runs["method"] == method)
        & (runs["seed"] == r["seed"])
        & np.isclose(runs["lambda"].astype(float), float(r["lambda"]))
    ]
    if sel.empty:
        return None, None, None
    run = sel.iloc[0]
    kept = np.flatnonzero(run["alive"])
    return (
        kept,
        top_inputs(run["run_dir"], len(INFORMATIVE)),
        top_inputs(run["run_dir"], len(USEFUL)),
    )


def _pruned(st: Study, method: str, r: dict) -> np.ndarray:
    rows = _prune_rows(st, method)
    hit = rows[(rows["seed"] == r["seed"]) & np.isclose(rows["fraction"], float(r["lambda"]))]
    return _indices(hit["inputs"].iloc[0]) if len(hit) else np.array([], int)


def _pruned_at(st: Study, method: str, seed: int, k: int) -> np.ndarray | None:
    rows = _prune_rows(st, method)
    hit = rows[(rows["seed"] == seed) & (rows["kept_input"] == k)]
    return _indices(hit["inputs"].iloc[0]) if len(hit) else None


def _prune_rows(st: Study, method: str) -> pd.DataFrame:
    p = st.prune
    std = np.where(p["criterion"] == "norm·std", "-std", "")
    ft = np.where(p["finetune_epochs"] > 0, "+ft", "")
    return p[("prune-" + p["schedule"] + std + ft) == method]


def _indices(text) -> np.ndarray:
    return (
        np.array([int(i) for i in str(text).split()], int)
        if isinstance(text, str)
        else (np.array([], int))
    )


def breast_cancer(s: Study) -> list[str]:
    """Table 7: accuracy against inputs kept on breast_cancer, operating points on
    validation, and the verdicts there."""
    st = s.other("breast_cancer", s.lam)
    if st is None:
        return []
    drop = 0.01
    checks = comparisons.validation_checks(st, drop, "Table 7")
    return [
        "## A real tabular data set: breast_cancer (Table 7)",
        "",
        f"scikit-learn's breast_cancer ({st.units()} features, 2 classes), the same network "
        f"and optimizer, {st.cfg['trainer']['epochs']} epochs of minibatches of "
        f"{st.cfg['trainer']['batch_size']}, threshold {st.threshold:g}; operating points "
        f"on validation (dense − {100 * drop:g} point), reported on test.",
        "",
        "**Table 7.** Operating points on breast_cancer:",
        "",
        comparisons.validation_table(st, drop, st.fronts()),
        "",
        *[c.line() for c in checks],
        "",
    ]
