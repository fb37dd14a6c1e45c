"""What a job returns to a Hydra sweeper (Optuna's objectives): values from its metrics row."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

OBJECTIVES = ("val_metric", "params_kept")


def validate_objectives(names: Sequence[str]) -> list[str]:
    """Check ``objectives`` from the config: a non-empty list of ``OBJECTIVES``."""
    if isinstance(names, str) or not names or any(n not in OBJECTIVES for n in names):
        raise ValueError(
            f"objectives must be a non-empty list of: {', '.join(OBJECTIVES)}; got {names!r}"
        )
    return list(names)


def objective(row: Mapping) -> float:
    """The validation metric a sweeper maximizes: accuracy, or R² for regression."""
    value = row.get("val_accuracy", row.get("val_r2", float("nan")))
    return float(value) if row.get("status") == "ok" else float("nan")


def objective_values(row: Mapping[str, Any], names: Sequence[str]) -> float | list[float] | None:
    """The values a job returns to the sweeper: one float, or a list for several objectives.

    ``val_metric`` is the validation accuracy (R² for regression) after thresholding,
    ``params_kept`` the parameters left (:func:`regexp.core.sparsity.params_kept`). A job
    whose status is not ``ok`` returns ``None``: Optuna records a failed trial and goes on
    (a NaN would stop the study), and the basic sweeper ignores return values.
    """
    if row.get("status") != "ok":
        return None
    values = [objective(row) if n == "val_metric" else float(row[n]) for n in names]
    if any(math.isnan(v) for v in values):
        return None
    return values[0] if len(values) == 1 else values
