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


RULES = ("accuracy", "removal", "equal")


def verdict(
    rule: str,
    d: Interval,
    *,
    tol: float = ACCURACY_TOLERANCE,
    ratio: float = math.nan,
    far: float = FAR_MORE,
    seeds: int | None = None,
) -> str:
    """The one rule that turns a paired interval ``d`` of ``a − b`` into a verdict.

    - ``accuracy`` ("a's accuracy is equal to or at most ``tol`` below b's"): agrees when
      ``d.low ≥ −tol``; disagrees when ``d.high < −tol``; else undecided.
    - ``removal`` ("a removes far more than b", ``d`` of removed counts, ``ratio`` = the
      mean removed by a over the mean removed by b): agrees when ``d.low > 0`` and
      ``ratio ≥ far``; partly agrees when ``d.low > 0`` only; disagrees when ``d.high < 0``;
      else within noise.
    - ``equal`` ("a is within ``tol`` of b"): agrees when ``−tol ≤ d.low`` and ``d.high ≤
      tol``; disagrees when ``d.high < −tol`` or ``d.low > tol``; else undecided.

    No interval (``n < 2`` or a bound not finite): undecided. ``seeds``: the number of seeds
    the comparison should have; a seed left out of ``d`` (a front that does not reach the
    target) counts as a failure of the claim, so a verdict that would agree (or partly
    agree) with ``d.n < seeds`` is undecided.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if not (math.isfinite(d.low) and math.isfinite(d.high)):
        return "undecided"
    if rule == "accuracy":
        out = "agrees" if d.low >= -tol else "disagrees" if d.high < -tol else "undecided"
    elif rule == "equal":
        if -tol <= d.low and d.high <= tol:
            out = "agrees"
        elif d.high < -tol or d.low > tol:
            out = "disagrees"
        else:
            out = "undecided"
    elif d.low > 0:
        out = "agrees" if ratio >= far else "partly agrees"
    else:
        out = "disagrees" if d.high < 0 else "within noise"
    if seeds is not None and d.n < seeds and out in ("agrees", "partly agrees"):
        return "undecided"
    return out


@dataclass(frozen=True)
class Check:
    """One part of a claim, its verdict (one of :data:`VERDICTS`) on the seeds that reach
    the target, ``strict``: the verdict with the seeds left out counted as failures, and the
    numbers."""

    claim: str
    verdict: str
    detail: str
    strict: str = ""
    row: str = ""  # the table row that holds the numbers

    def line(self) -> str:
        strict = (
            f" (**{self.strict}** with the seeds left out counted as failures)"
            if self.strict and self.strict != self.verdict
            else ""
        )
        where = f" [{self.row}]" if self.row else ""
        return f"- **{self.verdict}**{strict}: {self.claim}: {self.detail}.{where}"


def accuracy_check(
    claim: str,
    d: Interval,
    a: float,
    b: float,
    tol: float = ACCURACY_TOLERANCE,
    seeds: int | None = None,
    row: str = "",
    pair: str = "",
) -> Check:
    """ "``a``'s accuracy is equal to or at most ``tol`` below ``b``'s", on ``d`` = the paired
    interval of ``a − b`` (fractions): :func:`verdict` ``accuracy``. The detail says whether
    ``d`` is within noise (its interval holds 0); ``pair`` (e.g. ``SGL − L1``) names the
    difference there."""
    if not math.isfinite(d.low):
        noise = "no interval"
    elif d.contains(0):
        noise = "within noise: the interval holds 0"
    else:
        noise = "higher beyond noise" if d.low > 0 else "lower beyond noise"
    detail = (
        f"{100 * a:.2f}% against {100 * b:.2f}%, paired difference"
        f"{f' ({pair})' if pair else ''} {d.text(100, 2)} points ({noise})"
    )
    return _logged(
        Check(
            claim,
            verdict("accuracy", d, tol=tol),
            detail,
            verdict("accuracy", d, tol=tol, seeds=seeds),
            row,
        )
    )


def removal_check(
    claim: str,
    d: Interval,
    removed_a: float,
    removed_b: float,
    of: str,
    far: float = FAR_MORE,
    seeds: int | None = None,
    row: str = "",
    pair: str = "",
) -> Check:
    """ "``a`` removes far more than ``b``", on ``d`` = the paired interval of ``removed_a −
    removed_b`` (units; removed counts are means over the paired seeds): :func:`verdict`
    ``removal``; ``pair`` names the difference in the detail."""
    ratio = removed_a / removed_b if removed_b > 0 else math.inf if removed_a > 0 else math.nan
    text = f", {ratio:.2f}×" if removed_b > 0 else ""
    detail = (
        f"{removed_a:.1f} against {removed_b:.1f} {of} removed{text}; paired difference"
        f"{f' ({pair})' if pair else ''} {d.text(1, 1)}"
    )
    return _logged(
        Check(
            claim,
            verdict("removal", d, ratio=ratio, far=far),
            detail,
            verdict("removal", d, ratio=ratio, far=far, seeds=seeds),
            row,
        )
    )


def _logged(check: Check) -> Check:
    if check.verdict in ("disagrees", "within noise", "undecided"):
        log.info("claim %s: %s (%s)", check.verdict, check.claim, check.detail)
    return check


def tally(checks: Sequence[Check], strict: bool = False) -> str:
    """``"3 agrees, 1 within noise"``: the count of each verdict that occurs (``strict``:
    of the verdicts with the seeds left out counted as failures)."""
    verdicts = [(c.strict or c.verdict) if strict else c.verdict for c in checks]
    return ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS if v in verdicts)
