"""When each part of one ``regexp train`` command ends, for ``make bench``. Not a test.

    python benchmarks/run_parts.py OUT.json train [OVERRIDES...]

Runs regexp's command line in this process, as the ``regexp`` console script does, and
writes to OUT.json the wall-clock time (``time.time()``) and this process's CPU time
(``time.process_time()``, counted from the process's start) at which each part ended. The
caller notes when it started the process and when the process exited. Functions are
wrapped as their modules are first imported (an import hook), so every import still
happens where the command does it and counts in the part that triggers it.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
import time
from collections.abc import Callable
from types import ModuleType

STAMPS: dict[str, tuple[float, float]] = {"wrapper": (time.time(), time.process_time())}


def stamp(name: str) -> None:
    STAMPS.setdefault(name, (time.time(), time.process_time()))


def around(module: ModuleType, attr: str, before: str | None, after: str | None) -> None:
    """Wrap ``module.attr`` so that calling it stamps ``before`` and returning ``after``."""
    fn = getattr(module, attr)

    def wrapped(*args, **kwargs):
        if before:
            stamp(before)
        out = fn(*args, **kwargs)
        if after:
            stamp(after)
        return out

    setattr(module, attr, wrapped)


def _hydra(module: ModuleType) -> None:
    run_job = module.run_job

    def wrapped(*args, **kwargs):
        stamp("config")  # Hydra has composed the config and built its callbacks
        task = kwargs["task_function"]

        def timed_task(cfg):
            stamp("job_setup")  # the run directory, .hydra files and logging are set up
            out = task(cfg)
            stamp("task")
            return out

        kwargs["task_function"] = timed_task
        return run_job(*args, **kwargs)

    module.run_job = wrapped


PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "hydra._internal.hydra": _hydra,
    "regexp.hydra_app.task": lambda m: (
        around(m, "run_task", "job_imports", None),
        around(m, "fit_setup", "model", "fit"),
    ),
    "regexp.train.setup": lambda m: around(m, "load_dataset", None, "data"),
    "regexp.runs.run_files": lambda m: (
        around(m, "measure", None, "evaluation"),
        around(m, "write", None, "writing"),
    ),
}


class Hook(importlib.abc.MetaPathFinder):
    """Patch the modules of :data:`PATCHES` right after they execute."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        else:
            return None
        exec_module = spec.loader.exec_module

        def run(module: ModuleType) -> None:
            exec_module(module)
            PATCHES[name](module)

        spec.loader.exec_module = run
        return spec


def main() -> None:
    out, argv = sys.argv[1], sys.argv[2:]
    sys.meta_path.insert(0, Hook())
    import regexp.cli

    stamp("cli_imports")
    try:
        regexp.cli.main(argv)
    finally:
        stamp("main")
        with open(out, "w") as f:
            json.dump(STAMPS, f)


if __name__ == "__main__":
    main()
