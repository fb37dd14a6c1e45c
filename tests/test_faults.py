"""regexp.errors.fault_point: faults injected at a named point, by REGEXP_FAULT."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

from regexp import errors


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(errors, "FAULT_HITS", {})
    return monkeypatch


def test_unset_or_another_point_does_nothing(fresh):
    fresh.delenv(errors.FAULT_ENV, raising=False)
    assert errors.fault_point("run_written") is None
    fresh.setenv(errors.FAULT_ENV, "elsewhere:enospc")
    assert errors.fault_point("run_written") is None
    assert errors.FAULT_HITS == {}  # neither pass counted towards a fault


def test_interrupt_acts_at_the_nth_pass_only(fresh):
    fresh.setenv(errors.FAULT_ENV, "run_written@3")
    errors.fault_point("run_written")
    errors.fault_point("run_written")
    with pytest.raises(KeyboardInterrupt):
        errors.fault_point("run_written")
    errors.fault_point("run_written")  # the 4th: past it


def test_enospc_is_a_full_disk(fresh):
    fresh.setenv(errors.FAULT_ENV, "run_written:enospc")
    with pytest.raises(OSError) as err:
        errors.fault_point("run_written")
    assert err.value.errno == errno.ENOSPC


def test_an_unknown_action_names_the_allowed_ones(fresh):
    fresh.setenv(errors.FAULT_ENV, "run_written:explode")
    with pytest.raises(
        ValueError, match="kind must be one of interrupt, enospc, kill, sigint, got 'explode'"
    ):
        errors.fault_point("run_written")


@pytest.mark.parametrize(("action", "code"), [("kill", -signal.SIGKILL), ("sigint", 130)])
def test_kill_and_sigint_end_the_process_as_the_signal_does(action, code):
    program = (
        "import sys\n"
        "from regexp import errors\n"
        "try:\n"
        "    errors.fault_point('p')\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n"
        "print('not reached')\n"
    )
    env = os.environ | {errors.FAULT_ENV: f"p:{action}"}
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert done.returncode == code
    assert "not reached" not in done.stdout
