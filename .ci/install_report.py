"""Summarize ``pip install --dry-run --report`` files: what a fresh machine downloads.

    python .ci/install_report.py report-runtime.json report-dev.json

For each report: the number of packages, torch's build (its version's local label: ``+cpu``
or none, the CUDA build on Linux x86), the ``nvidia-*`` packages, and the packages the
later report adds to the first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def packages(report: Path) -> dict[str, str]:
    """``{name: version}`` of the packages that pip's report would install."""
    items = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in items}


def main(paths: list[str]) -> None:
    first: dict[str, str] | None = None
    for path in paths:
        pkgs = packages(Path(path))
        nvidia = sorted(p for p in pkgs if p.startswith("nvidia-"))
        print(f"{path}: {len(pkgs)} packages; torch {pkgs.get('torch', 'absent')}", end="")
        print(f"; {len(nvidia)} nvidia-* packages" if nvidia else "; no nvidia-* package")
        if first is None:
            print("  " + " ".join(f"{k}=={v}" for k, v in sorted(pkgs.items())))
            first = pkgs
        else:
            added = sorted(set(pkgs) - set(first))
            print(f"  adds {len(added)}: " + " ".join(added))


if __name__ == "__main__":
    main(sys.argv[1:])
