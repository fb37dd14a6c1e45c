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

from regexp.data.prepare import load_dataset
from regexp.data.sources import SYNTHETIC
from regexp.reproduction import comparisons
from regexp.reproduction import runs as runlib
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


def interval_text(
    values: list[float],
    scale: float = 100,
    bounds: tuple[float, float] = (0.0, 1.0),
    seeds: int | None = None,
) -> str:
    """``mean [low, high] (n = k)``: the mean of ``values`` times ``scale`` and its 95% t
    interval, clipped to the possible range ``bounds`` (a share lies in [0, 1]); the
    ``(n = k)`` is left out when ``k`` is ``seeds``."""
    v = pd.Series(values, dtype=float).dropna()
    if v.empty:
        return "–"
    d = paired_interval(v, v * 0)
    n = "" if d.n == seeds else f" (n = {d.n})"
    if not math.isfinite(d.low):
        return f"{scale * d.mean:.0f}{n}"
    low, high = max(d.low, bounds[0]), min(d.high, bounds[1])
    return f"{scale * d.mean:.0f} [{scale * low:.0f}, {scale * high:.0f}]{n}"


TOP_I = f"informative among the top {len(INFORMATIVE)} (%)"
TOP_U = f"useful among the top {len(USEFUL)} (%)"
SYNTHETIC_COLUMNS = [
    "inputs kept",
    "precision, informative (%)",
    "recall, informative (%)",
    "precision, useful (%)",
    "recall, useful (%)",
    TOP_I,
    TOP_U,
]


def synthetic_values(st: Study, drop: float = 0.01) -> dict[str, tuple[int, dict]]:
    """Per method of the synthetic study ``st``: the seeds whose operating point (chosen
    on validation at dense − ``drop``) it has, and per :data:`SYNTHETIC_COLUMNS` the
    values of those seeds (fractions; inputs kept / 100)."""
    ops = comparisons.validation_points(st, drop)
    runs = st.runs[st.runs["status"] == "ok"]
    methods = [
        m
        for m in st.fronts()
        if m in ("l1", "group_lasso", "sgl")
        or m.startswith("prune-")
        or m.endswith("/input")
        or m.startswith("lassonet")
    ]
    out = {}
    for m in methods:
        g = ops[(ops["method"] == m)].dropna(subset=["test_accuracy"])
        cols: dict[str, list[float]] = {h: [] for h in SYNTHETIC_COLUMNS}
        for r in g.to_dict("records"):
            kept, top_i, top_u = _kept_sets(st, runs, m, r)
            if kept is None:
                continue
            pi, ri = precision_recall(kept, INFORMATIVE)
            pu, ru = precision_recall(kept, USEFUL)
            vals = [len(kept) / 100, pi, ri, pu, ru]
            vals += [precision_recall(top_i, INFORMATIVE)[0] if top_i is not None else math.nan]
            vals += [precision_recall(top_u, USEFUL)[0] if top_u is not None else math.nan]
            for h, v in zip(SYNTHETIC_COLUMNS, vals, strict=True):
                cols[h].append(v)
        out[m] = (len(g), cols)
    return out


def synthetic(s: Study) -> list[str]:
    """Table 6: precision and recall of the kept inputs on the synthetic data set."""
    st = s.other("synthetic", s.lam)
    if st is None:
        return []
    drop = 0.01
    head = ["method", "seeds", *SYNTHETIC_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, (reached, cols) in synthetic_values(st, drop).items():
        cells = [label(m), f"{reached} of {st.seeds}"]
        n_in = SYNTHETIC["n_features"] / 100  # inputs kept are stored / 100
        cells += [
            interval_text(cols[h], bounds=(0.0, n_in if h == "inputs kept" else 1.0))
            for h in SYNTHETIC_COLUMNS
        ]
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
        f"{cfg['trainer']['epochs']} epochs, threshold {st.threshold:g}; "
        + split_and_dense(st)
        + " *Useful* = informative or redundant; keeping inputs at random gives a precision "
        f"of {100 * len(INFORMATIVE) / n_all:.0f}% (informative) and "
        f"{100 * len(USEFUL) / n_all:.0f}% (useful). Operating points chosen on validation as "
        "for digits "
        f"(dense − {100 * drop:g} point). The top-k columns read every method at equal "
        "sparsity: the k inputs it ranks first, by its own ranking: ‖W_j‖ before "
        "thresholding for the regularized networks (at their operating point), the pruning "
        "score of the dense network for pruning, and for LassoNet how long each input stays "
        "on its λ path (LassoNet's own feature importance). Mean [95% t interval, clipped to "
        "the possible range] (n seeds)."
        + (
            " With standard scaling every input has standard deviation 1 over the training "
            "rows, so pruning by ‖W_j‖·std(x_j) keeps the same inputs as pruning by ‖W_j‖."
            if st.cfg["dataset"].get("scaler") == "standard"
            else ""
        ),
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
        *[c.line() for c in comparisons.validation_checks(st, drop, "Table 6a")],
        "",
    ]


def _kept_sets(st: Study, runs: pd.DataFrame, method: str, r: dict):
    """The kept inputs of an operating point, and its top-|I| and top-|U| inputs."""
    if method.startswith("lassonet"):
        return _lassonet_sets(st, method, r)
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


def path_ranking(selections, n: int) -> np.ndarray:
    """Inputs ``0 … n − 1`` ranked by how many points of a λ path keep them (``selections``:
    each point's kept inputs, space-separated), most first; equal counts: the lower index
    first. On LassoNet's path, whose selections shrink, that is the order in which inputs
    leave it, the last to leave first."""
    stays = np.zeros(n, int)
    for text in selections:
        stays[_indices(text)] += 1
    return np.argsort(-stays, kind="stable")


def _lassonet_sets(st: Study, method: str, r: dict):
    """LassoNet's kept inputs at an operating point (its path's network, or the refit of
    that selection), and its top-|I| and top-|U| inputs: LassoNet's own ranking, the
    inputs that stay longest on the seed's λ path (equal stays: the lower index first)."""
    if st.lasso is None:
        return None, None, None
    lasso = st.lasso[st.lasso["seed"] == r["seed"]]
    reading = "refit" if method == "lassonet-refit" else "path"
    hit = lasso[(lasso["reading"] == reading) & np.isclose(lasso["lambda"], float(r["lambda"]))]
    if hit.empty:
        return None, None, None
    ranked = path_ranking(lasso.loc[lasso["reading"] == "path", "inputs"], st.units())
    return (
        _indices(hit["inputs"].iloc[0]),
        np.sort(ranked[: len(INFORMATIVE)]),
        np.sort(ranked[: len(USEFUL)]),
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


def split_and_dense(st: Study) -> str:
    """The rows of each split, the scaler, and the unregularized network's accuracy."""
    data = load_dataset(**st.cfg["dataset"])
    n = len(data.y_train), len(data.y_val), len(data.y_test)
    dense = st.runs[(st.runs["regularizer"] == "none") & (st.runs["status"] == "ok")]
    dense = dense.drop_duplicates("seed")
    val, test = (dense[c].astype(float) for c in ("val_accuracy", "test_accuracy"))
    one_row = 100 / n[1]
    return (
        f"{n[0]}/{n[1]}/{n[2]} train/validation/test rows per seed "
        f"({st.cfg['dataset'].get('scaler')} scaling fitted on the training rows; one "
        f"validation row is {one_row:.2f} points, and with {n[1]} rows one seed's validation "
        f"accuracy near {100 * val.mean():.0f}% has a standard error of about "
        f"{100 * (val.mean() * (1 - val.mean()) / n[1]) ** 0.5:.1f} points). The "
        "unregularized network (dense): validation "
        f"{runlib.mean_std(val.mean(), val.std(), 100, 2)}%, test "
        f"{runlib.mean_std(test.mean(), test.std(), 100, 2)}% over {len(dense)} seeds."
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
        f"on validation (dense − {100 * drop:g} point), reported on test. " + split_and_dense(st),
        "",
        "**Table 7.** Operating points on breast_cancer:",
        "",
        comparisons.validation_table(st, drop, st.fronts()),
        "",
        *[c.line() for c in checks],
        "",
    ]
