"""Everything the reproduction document is computed from, gathered once: :class:`Study`.

:func:`load_study` reads the runs under a folder (deduplicated, with the details of
:func:`regexp.reproduction.protocol.add_details`), the baselines if they ran, and fixes the
matched targets: ``P*`` and ``I*``, the parameters and inputs that sparse group Lasso keeps
on average at the paper's λ (penalty mode), and ``A*``, the dense network's mean accuracy
minus :data:`regexp.reproduction.claims.ACCURACY_TOLERANCE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from regexp.model.mlp import load_checkpoint
from regexp.reproduction import analysis, protocol, thresholds
from regexp.reproduction import runs as runlib
from regexp.reproduction.claims import ACCURACY_TOLERANCE

REFERENCE = "sgl"  # the method the targets are read from, and every comparison is against
PARAMS_GRID = (3000, 2500, 2000, 1500, 1000, 500)
INPUTS_GRID = (60, 56, 52, 48, 44, 40, 36)
# Methods in the order of the document's tables; others follow in first-seen order.
ORDER = (
    "none",
    "l2",
    "l1",
    "group_lasso",
    "sgl",
    "l2/prox-adaptive",
    "l1/prox-adaptive",
    "group_lasso/prox-adaptive",
    "sgl/prox-adaptive",
    "l2/prox-identity",
    "l1/prox-identity",
    "group_lasso/prox-identity",
    "sgl/prox-identity",
    "sgl/prox-sgd",
    "group_lasso/input",
    "sgl/input",
    *analysis.BASELINES,
)


def label(method: str) -> str:
    """A method key of :func:`protocol.method_key` or :data:`analysis.BASELINES` in words."""
    return analysis.BASELINES.get(method) or protocol.method_label(method)


def ordered(methods) -> list[str]:
    """``methods`` (unique) in :data:`ORDER`."""
    seen = list(dict.fromkeys(methods))
    return sorted(seen, key=lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), seen.index(m)))


@dataclass
class Study:
    """Runs, baselines and matched comparisons of one reproduction (one data set, one
    threshold)."""

    root: Path
    everything: pd.DataFrame  # every run read (every data set), before deduplication
    runs: pd.DataFrame  # deduplicated, with protocol details, of this data set
    twins: int
    differ: int
    lam: float
    cfg: dict  # the resolved config of the first main run
    points: pd.DataFrame  # runs and baselines: analysis.COLUMNS
    prune: pd.DataFrame | None
    lasso: pd.DataFrame | None
    targets: dict  # params, inputs, level (P*, I*, A*), dense accuracy
    matched: analysis.Matched
    threshold: float
    base_rows: pd.DataFrame
    others: pd.DataFrame  # the runs of the other data sets

    @property
    def at_lam(self) -> pd.Series:
        return pd.Series(
            np.isclose(self.runs["lambda"].astype(float), self.lam, rtol=1e-9, atol=0),
            index=self.runs.index,
        )

    @property
    def main(self) -> pd.DataFrame:
        """Penalty-mode runs (Adam, every layer) at the paper's λ, and the unregularized
        runs."""
        r = self.runs
        core = r["method"].isin(["l2", "l1", "group_lasso", "sgl"])
        return r[(self.at_lam & core) | (r["regularizer"] == "none")]

    @property
    def seeds(self) -> int:
        return int(self.runs["seed"].nunique())

    def fronts(self) -> list[str]:
        """Methods with points at two or more λ (or pruning levels), in :data:`ORDER`."""
        n = self.points.groupby("method")["lambda"].nunique()
        return ordered(m for m in self.points["method"] if n.get(m, 0) >= 2)

    def units(self, layer: str = "input") -> int:
        return int(self.runs[f"units_{layer}"].max())

    def hidden_units(self) -> int:
        return int(sum(self.runs[c].max() for c in self.runs if c.startswith("units_hidden")))

    def other(self, dataset: str, lam: float) -> Study | None:
        """The study of another data set's runs (read with this one), ``None`` without an
        ok run of the reference method at ``lam`` there."""
        runs = self.others[self.others["dataset"] == dataset].reset_index(drop=True)
        at = np.isclose(runs["lambda"].astype(float), lam, rtol=1e-9, atol=0)
        ok = runs[(runs["status"] == "ok") & (runs["method"] == REFERENCE)]
        if ok.empty:
            return None
        ref = ok[at[ok.index]] if at[ok.index].any() else ok
        _, cfg = load_checkpoint(Path(ref["run_dir"].iloc[0]) / "model.pt")
        base_rows, prune, lasso = analysis.read_baselines(self.root / "baselines", dataset)
        return build(
            self.root,
            self.everything.iloc[0:0],
            runs,
            0,
            0,
            lam,
            cfg,
            base_rows,
            prune,
            lasso,
            float(cfg["threshold"]),
            self.others.iloc[0:0],
        )

    def at(self, threshold: float, hold: bool = False) -> Study:
        """This study with every run re-measured at ``threshold`` (from the weights before
        thresholding; the baselines as they are). With ``hold``, the matched targets
        (parameters and inputs SGL keeps at the demo's λ, the accuracy level) stay this
        study's, so that every threshold is read at the same counts and level."""
        runs = thresholds.at_threshold(self.runs, threshold)
        return build(
            self.root,
            self.everything,
            runs,
            self.twins,
            self.differ,
            self.lam,
            self.cfg,
            self.base_rows,
            self.prune,
            self.lasso,
            threshold,
            self.others,
            self.targets if hold else None,
        )


def load_study(
    root: Path, lam: float, baselines: Path | None = None, dataset: str = "digits"
) -> Study:
    """Read the runs of ``dataset`` under ``root`` and the baselines in ``baselines``
    (default ``root/baselines``).

    Raises
    ------
    ValueError
        If no run is under ``root``, or no penalty-mode run of the reference method at
        ``lam``.
    """
    everything = runlib.read_runs(root)
    runs, twins, differ = runlib.dedupe(everything)
    runs = protocol.add_details(runs)
    others = runs[runs["dataset"] != dataset].reset_index(drop=True)
    runs = runs[runs["dataset"] == dataset].reset_index(drop=True)
    at = np.isclose(runs["lambda"].astype(float), lam, rtol=1e-9, atol=0)
    ref = runs[at & (runs["method"] == REFERENCE) & (runs["status"] == "ok")]
    if ref.empty:
        raise ValueError(
            f"no finished penalty-mode {REFERENCE} run at lambda={lam:g} under '{root}'"
        )
    _, cfg = load_checkpoint(Path(ref["run_dir"].iloc[0]) / "model.pt")
    base_rows, prune, lasso = analysis.read_baselines(baselines or Path(root) / "baselines")
    return build(
        Path(root),
        everything,
        runs,
        twins,
        differ,
        lam,
        cfg,
        base_rows,
        prune,
        lasso,
        float(cfg["threshold"]),
        others,
    )


def build(
    root: Path,
    everything: pd.DataFrame,
    runs: pd.DataFrame,
    twins: int,
    differ: int,
    lam: float,
    cfg: dict,
    base_rows: pd.DataFrame,
    prune: pd.DataFrame | None,
    lasso: pd.DataFrame | None,
    threshold: float,
    others: pd.DataFrame,
    held: dict | None = None,
) -> Study:
    """The :class:`Study` of ``runs``: points, targets and matched readings; ``held``:
    the targets ``params``, ``inputs`` and ``level`` to read at instead of those of ``runs``
    (the dense accuracy is always that of ``runs``)."""
    at = np.isclose(runs["lambda"].astype(float), lam, rtol=1e-9, atol=0)
    ref = runs[at & (runs["method"] == REFERENCE) & (runs["status"] == "ok")]
    points = pd.concat(
        [analysis.run_points(runs), base_rows.drop(columns="inputs", errors="ignore")],
        ignore_index=True,
    )
    dense = runs[(runs["regularizer"] == "none") & (runs["status"] == "ok")]
    dense_acc = float(dense["test_accuracy"].mean()) if len(dense) else math.nan
    reference_acc = dense_acc if math.isfinite(dense_acc) else float(ref["test_accuracy"].mean())
    targets = {
        "params": float(ref["params_kept"].mean()),
        "inputs": float(ref["kept_input"].mean()),
        "level": reference_acc - ACCURACY_TOLERANCE,
        "dense": dense_acc,
    }
    if held is not None:
        targets.update({k: float(held[k]) for k in ("params", "inputs", "level")})
    total = int(runs["params_total"].max())
    x_targets = {
        "params_kept": [targets["params"], *(p for p in PARAMS_GRID if p < total)],
        "kept_input": [targets["inputs"], *INPUTS_GRID],
    }
    levels = [targets["level"] + d for d in (0.0, 0.005, -0.01)]
    return Study(
        root,
        everything,
        runs,
        twins,
        differ,
        lam,
        cfg,
        points,
        prune,
        lasso,
        targets,
        analysis.Matched(points, x_targets, levels),
        threshold,
        base_rows,
        others,
    )
