"""How regexp ends on an error: one line on stderr, or the traceback when debugging.

Bad input ends with ``regexp: error: <message>`` and exit code 2; set ``REGEXP_DEBUG=1``
to see the full traceback instead.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import NoReturn

DEBUG_ENV = "REGEXP_DEBUG"


def debug() -> bool:
    """Whether ``REGEXP_DEBUG`` asks for full tracebacks (set and not ``0``)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def fail(message: str, code: int = 2) -> NoReturn:
    """Exit with ``regexp: error: <message>`` on stderr and exit code ``code``."""
    print(f"regexp: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def one_line(err: BaseException) -> str:
    """An exception's message on one line (Hydra's and OmegaConf's span several)."""
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip())


FAULT_ENV = "REGEXP_FAULT"
# Passes through each fault point so far, per REGEXP_FAULT spec (see fault_point).
FAULT_HITS: dict[str, int] = {}
FAULT_KINDS = ("interrupt", "enospc", "kill", "sigint")


def fault_point(name: str) -> None:
    """A place where tests inject a fault: nothing unless ``REGEXP_FAULT`` names it.

    ``REGEXP_FAULT=<name>[@<n>][:<kind>]`` acts at the ``n``-th pass (default the first)
    through ``fault_point(<name>)`` in this process: ``interrupt`` (the default) raises
    :class:`KeyboardInterrupt`, ``enospc`` raises ``OSError(ENOSPC)`` (a full disk),
    ``sigint`` sends the process SIGINT (a Ctrl-C through the signal handler), ``kill``
    sends it SIGKILL (nothing runs after it: a power cut). The points include
    ``run_written`` (a run's files are complete, in :func:`regexp.hydra_app.task.run_task`).
    """
    spec = os.environ.get(FAULT_ENV, "")
    point, _, kind = spec.partition(":")
    point, _, nth = point.partition("@")
    if point != name:
        return
    kind = kind or "interrupt"
    if kind not in FAULT_KINDS:
        raise ValueError(f"{FAULT_ENV} kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    FAULT_HITS[spec] = FAULT_HITS.get(spec, 0) + 1
    if FAULT_HITS[spec] != int(nth or 1):
        return
    if kind == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"<fault point {name}>")
    if kind in ("kill", "sigint"):
        os.kill(os.getpid(), signal.SIGKILL if kind == "kill" else signal.SIGINT)
        return
    raise KeyboardInterrupt
