"""How regexp ends on an error: one line on stderr, or the traceback when debugging.

Bad input ends with ``regexp: error: <message>`` and exit code 2; set ``REGEXP_DEBUG=1``
to see the full traceback instead.
"""

from __future__ import annotations

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
FAULT_ACTIONS = ("raise", "kill", "sigint")
_fault_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """A named point where a test injects a fault, deterministically.

    ``REGEXP_FAULT=<name>[:<action>[:<n>]]`` acts at the ``n``-th time (default 1) this
    process reaches point ``name``: ``raise`` (the default) raises ``RuntimeError``,
    ``kill`` ends the process with SIGKILL (nothing runs after it: a power cut), ``sigint``
    sends the process SIGINT (a Ctrl-C, handled as one). Unset, or another name: nothing
    happens. The points: ``run_written`` (a run's files are complete, in
    :func:`regexp.hydra_app.task.run_task`).
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec or spec.split(":")[0] != name:
        return
    parts = spec.split(":")
    action = parts[1] if len(parts) > 1 and parts[1] else "raise"
    nth = int(parts[2]) if len(parts) > 2 else 1
    if action not in FAULT_ACTIONS:
        raise ValueError(
            f"{FAULT_ENV} action must be one of {', '.join(FAULT_ACTIONS)}, got {action!r}"
        )
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] != nth:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
        return
    raise RuntimeError(f"fault injected at {name} ({FAULT_ENV}={spec})")
