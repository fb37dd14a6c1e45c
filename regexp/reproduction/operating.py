"""Operating points chosen on the validation rows, reported on the test rows.

For each method and seed, the *operating point* is the sparsest point of the method's
front (one λ, pruning fraction or LassoNet path point) whose **validation** accuracy is at
least the unregularized network's validation accuracy on that seed minus ``drop``:
:func:`operating_points`. "Sparsest" is along the method's own axis (parameters kept; the
inputs kept for methods that only select inputs); ties go to the higher validation
accuracy, then to the smaller λ. Its test accuracy and kept counts are then read as they
were measured: no interpolation, and the test rows play no part in the choice. A seed
whose front never reaches the level on validation has no operating point (its row is NaN:
a failure of that method on that seed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from regexp.reproduction.analysis import BASELINE_AXES

DROPS = (0.005, 0.01, 0.02)  # validation accuracy levels: dense minus 0.5, 1 and 2 points
FIELDS = ["lambda", "val_accuracy", "test_accuracy", "kept_input", "kept_hidden", "params_kept"]


def axis_of(method: str) -> str:
    """The kept count a method is made sparse along: inputs for input selectors."""
    return BASELINE_AXES.get(method, ("params_kept",))[0]


def operating_points(
    points: pd.DataFrame, dense_val: Mapping[int, float], drop: float
) -> pd.DataFrame:
    """Per method and seed of ``points`` (:data:`regexp.reproduction.analysis.COLUMNS`),
    the sparsest point with ``val_accuracy ≥ dense_val[seed] − drop``: columns ``method``,
    ``seed``, ``drop``, ``level`` and :data:`FIELDS` (NaN where no point reaches it)."""
    rows = []
    for (method, seed), g in points.groupby(["method", "seed"], sort=False):
        level = dense_val.get(seed, math.nan) - drop
        ok = g[g["val_accuracy"] >= level - 1e-12]
        row = {"method": method, "seed": seed, "drop": drop, "level": level}
        if len(ok):
            axis = axis_of(method)
            best = ok.sort_values(
                [axis, "val_accuracy", "lambda"], ascending=[True, False, True]
            ).iloc[0]
            row |= {f: best[f] for f in FIELDS}
        else:
            row |= dict.fromkeys(FIELDS, math.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "seed", "drop", "level", *FIELDS])
