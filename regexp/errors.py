"""How regexp ends on an error: one line on stderr, or the traceback when debugging.

Bad input ends with ``regexp: error: <message>`` and exit code 2; set ``REGEXP_DEBUG=1``
to see the full traceback instead.
"""

from __future__ import annotations

import os
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
