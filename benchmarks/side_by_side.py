"""Wall time of one ``hydra/launcher=batched`` sweep under two checkouts of regexp. Not a test.

    python benchmarks/side_by_side.py --before /path/to/older/checkout [--epochs 100]

The sweep: 2 stack shapes (``model.hidden=[40,20]`` and ``[20]``, each l1, l2, group_lasso,
sgl × λ 1e-4, 1e-3: two stacks of 8) and 3 jobs with their own ``model.hidden`` (64, 30,
50-25), which run alone: 19 jobs, so the launcher starts its worker processes. The jobs
are a list (``+case=...``, one config file each, written to a temporary search path), not
a grid. Each checkout runs the same sweep once, this one second; prints both times and
their ratio. An older checkout needs its ``regexp/conf`` link to ``../conf``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_cases(conf: Path, epochs: int) -> list[str]:
    """One config file per job under ``conf/case/``; returns their names in order."""
    cases = [
        (f"s{hidden.replace(',', '_')}_{reg}_{lam}", reg, lam, hidden)
        for hidden in ("40,20", "20")
        for reg in ("l1", "l2", "group_lasso", "sgl")
        for lam in ("1e-4", "1e-3")
    ]
    cases += [(f"u{h.replace(',', '_')}", "sgl", "1e-3", h) for h in ("64", "30", "50,25")]
    (conf / "case").mkdir(parents=True)
    for name, reg, lam, hidden in cases:
        (conf / "case" / f"{name}.yaml").write_text(
            "# @package _global_\n"
            f"defaults:\n  - override /regularizer: {reg}\n"
            f"lambda: {lam}\nmodel:\n  hidden: [{hidden}]\ntrainer:\n  epochs: {epochs}\n"
        )
    return [c[0] for c in cases]


def sweep(root: Path, epochs: int) -> float:
    """Wall seconds of the sweep with ``root`` first on ``PYTHONPATH``."""
    with tempfile.TemporaryDirectory() as tmp:
        names = write_cases(Path(tmp) / "conf", epochs)
        cmd = [
            sys.executable,
            "-m",
            "regexp.cli",
            "train",
            "-m",
            "hydra/launcher=batched",
            f"hydra.searchpath=[file://{tmp}/conf]",
            f"+case={','.join(names)}",
            f"hydra.sweep.dir={tmp}/sweep",
        ]
        start = time.perf_counter()
        env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
        subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, check=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="the older checkout")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3]
    before = sweep(args.before.resolve(), args.epochs)
    after = sweep(ROOT, args.epochs)
    print(
        f"19 jobs, {args.epochs} epochs: {args.before} {before:.1f} s, {ROOT} {after:.1f} s, "
        f"ratio {before / after:.2f}; load average at start {' '.join(load)}"
    )


if __name__ == "__main__":
    main()
