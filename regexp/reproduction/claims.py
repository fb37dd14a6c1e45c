"""The paper's claims made testable, and the verdicts on paired differences over seeds.

Scardapane et al. 2017 claim that sparse group Lasso (SGL) removes far more neurons and
input features than L1 or L2 with equal or slightly lower accuracy. The vague words get
stated thresholds (:data:`ACCURACY_TOLERANCE`, :data:`FAR_MORE`), and each verdict rests
on the 95% t interval of a paired difference over seeds
(:class:`regexp.reproduction.matched.Interval`), so that a difference within noise is called so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from regexp.reproduction.matched import Interval

log = logging.getLogger(__name__)

METHODS = {
    "none": "none",
    "l2": "L2",
    "l1": "L1",
    "group_lasso": "group Lasso (GL)",
    "sgl": "sparse group Lasso (SGL)",
}
# The paper's words made testable: "slightly lower" accuracy = at most this far below
# (0.01 = 1 point); "far more" removed units = at least this many times as many.
ACCURACY_TOLERANCE = 0.01
FAR_MORE = 2.0
VERDICTS = ("agrees", "partly agrees", "within noise", "undecided", "disagrees")


def lam_label(lam: float) -> str:
    """``10^-3.5`` for whole and half decades, else ``%.3g``."""
    e = math.log10(lam) if lam > 0 else math.nan
    half = math.isfinite(e) and abs(2 * e - round(2 * e)) < 1e-9
    return f"10^{round(2 * e) / 2:g}" if half else f"{lam:.3g}"


@dataclass(frozen=True)
class Check:
    """One part of a claim, its verdict (one of :data:`VERDICTS`) and the numbers."""

    claim: str
    verdict: str
    detail: str

    def line(self) -> str:
        return f"- **{self.verdict}**: {self.claim}: {self.detail}."


def accuracy_check(
    claim: str, d: Interval, a: float, b: float, tol: float = ACCURACY_TOLERANCE
) -> Check:
    """ "``a``'s accuracy is equal to or at most ``tol`` below ``b``'s", on ``d`` = the paired
    interval of ``a − b`` (fractions).

    agrees: ``d.low ≥ −tol``; disagrees: ``d.high < −tol``; undecided: the interval holds
    ``−tol`` (or there is no interval). The detail says whether ``d`` is within noise
    (its interval holds 0).
    """
    if not (math.isfinite(d.low) and math.isfinite(d.high)):
        verdict = "undecided"
    elif d.low >= -tol:
        verdict = "agrees"
    elif d.high < -tol:
        verdict = "disagrees"
    else:
        verdict = "undecided"
    if not math.isfinite(d.low):
        noise = "no interval"
    elif d.contains(0):
        noise = "within noise: the interval holds 0"
    else:
        noise = "higher beyond noise" if d.low > 0 else "lower beyond noise"
    detail = (
        f"{100 * a:.2f}% against {100 * b:.2f}%, paired difference "
        f"{d.text(100, 2)} points ({noise})"
    )
    return _logged(Check(claim, verdict, detail))


def removal_check(
    claim: str, d: Interval, removed_a: float, removed_b: float, of: str, far: float = FAR_MORE
) -> Check:
    """ "``a`` removes far more than ``b``", on ``d`` = the paired interval of ``removed_a −
    removed_b`` (units; removed counts are means over seeds).

    agrees: ``d.low > 0`` and ``removed_a ≥ far · removed_b``; partly agrees: ``d.low > 0``
    only (more, not far more); within noise: the interval holds 0; disagrees: ``d.high < 0``.
    """
    if not (math.isfinite(d.low) and math.isfinite(d.high)):
        verdict = "undecided"
    elif d.low > 0:
        verdict = "agrees" if removed_a >= far * removed_b else "partly agrees"
    elif d.high < 0:
        verdict = "disagrees"
    else:
        verdict = "within noise"
    ratio = f", {removed_a / removed_b:.2f}×" if removed_b > 0 else ""
    detail = (
        f"{removed_a:.1f} against {removed_b:.1f} {of} removed{ratio}; paired difference "
        f"{d.text(1, 1)}"
    )
    return _logged(Check(claim, verdict, detail))


def _logged(check: Check) -> Check:
    if check.verdict in ("disagrees", "within noise", "undecided"):
        log.warning("claim %s: %s (%s)", check.verdict, check.claim, check.detail)
    return check


def tally(checks: Sequence[Check]) -> str:
    """``"3 agrees, 1 within noise"``: the count of each verdict that occurs."""
    verdicts = [c.verdict for c in checks]
    return ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS if v in verdicts)
