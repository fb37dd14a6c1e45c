"""Argument checks shared by the library and the config validation.

Each returns the value when it is allowed and otherwise raises ``ValueError`` with one line
that names the argument, what is allowed and the value, e.g.
``lambda must be a finite number >= 0, got -1`` (scikit-learn's style).
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_real(
    key: str,
    value: Any,
    low: float,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as float if it is a finite real in the interval, else ``ValueError``.

    The interval is ``[low, high]``; ``open_low``/``open_high`` exclude an end, and
    ``high=None`` means unbounded above. Booleans are not numbers here.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low)
    ok = ok and (high is None or (value < high if open_high else value <= high))
    if not ok:
        if high is None:
            what = f"a finite number {'>' if open_low else '>='} {low:g}"
        else:
            what = f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ValueError(f"{key} must be {what}, got {value!r}")
    return float(value)


def check_int(key: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` if it is an int in ``[low, high)`` (bools are not ints here), else raise."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if ok and (high is None or value < high):
        return value
    if high is None:
        raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
    bound = "2**32" if high == 2**32 else str(high)
    raise ValueError(f"{key} must be an integer in [{low}, {bound}), got {value!r}")


def check_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_rule(key: str, value: Any) -> tuple[str, float]:
    """A model-selection rule (:func:`regexp.results.selection.best`) as ``(name, TOL)``:
    ``"best"`` → ``("best", 0.0)``, ``"1se"`` → ``("1se", 0.0)``, ``"within:0.01"`` →
    ``("within", 0.01)`` (TOL a finite number >= 0); anything else raises ``ValueError``."""
    name, _, tol = str(value).partition(":")
    if isinstance(value, str) and name in ("best", "1se") and not tol:
        return name, 0.0
    if isinstance(value, str) and name == "within":
        try:
            number = float(tol)
        except ValueError:
            number = math.nan
        if math.isfinite(number) and number >= 0:
            return name, number
    raise ValueError(
        f"{key} must be one of best, 1se, within:TOL (TOL a number >= 0 in the metric's "
        f"units, e.g. within:0.01), got {value!r}"
    )
