"""A sweep's whole command, batched against basic, on a quiet and on a busy machine. Not a test.

    python benchmarks/busy.py [--seeds 0] [--epochs 200] [--out FILE] [--append FILE]

The sweep: ``regexp train -m regularizer=l1,l2,group_lasso,sgl lambda=<9 values>
seed=<seeds>`` (``--seeds 0``: 36 jobs; ``--seeds 0,1,2``: 108). Each launcher runs it as
one whole process, from its start to its exit, first on the machine as it is ("quiet"),
then with one competing CPU-bound process at normal priority
(``python -c "while True: pass"``, as another user's job or a notebook would be), in the
order batched, basic, batched, basic. Prints a Markdown table (``--out`` writes it to a
file, ``--append`` adds it as a section to one: ``make bench`` appends the 108-job sweep's
to BENCHMARKS.md):
wall and CPU seconds (the process and its workers), and for ``batched`` the non-training
time per job: the wall time less the span from the first stack's ``training ...`` log line
to the last stack's ``trained ...`` line, divided by the jobs. Ratios compare runs of the
same invocation; the load average before each run says how shared the machine was.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGS = "l1,l2,group_lasso,sgl"
LAMBDAS = "1e-5,3e-5,1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,1e-1"
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def training_span(log: str) -> float | None:
    """Seconds from the first ``training N jobs ... as one stacked model`` line to the last
    ``trained N jobs ... in one stack`` line of a batched sweep's log."""
    starts, ends = [], []
    for line in log.splitlines():
        m = STAMP.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if "as one stacked model" in line:
            starts.append(t)
        elif "in one stack:" in line:
            ends.append(t)
    return max(ends) - min(starts) if starts and ends else None


def sweep(launcher: str, seeds: str, epochs: int, tmp: Path) -> dict:
    """One whole ``regexp train -m`` command: wall and CPU seconds, its training span."""
    out = tmp / f"{launcher}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "regexp.cli", "train", "-m", f"hydra/launcher={launcher}"]
    cmd += [f"regularizer={REGS}", f"lambda={LAMBDAS}", f"seed={seeds}"]
    cmd += [f"trainer.epochs={epochs}", f"hydra.sweep.dir={out}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before, cpu, start = load(), children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "cpu": children_cpu() - cpu,
        "train": training_span(proc.stdout + proc.stderr),
        "load": before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="0", help="e.g. 0 (36 jobs) or 0,1,2 (108 jobs)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--append", type=Path, help="also append it, as a section, here")
    args = parser.parse_args()
    jobs = 36 * len(args.seeds.split(","))
    runs: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for machine in ("quiet", "busy"):
            spinner = None
            if machine == "busy":
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                for launcher in ("batched", "basic"):
                    runs[machine, launcher] = sweep(launcher, args.seeds, args.epochs, Path(tmp))
                    print(machine, launcher, runs[machine, launcher], flush=True)
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    lines = [
        f"{jobs}-job sweep (`regularizer={REGS} lambda=<9 values> seed={args.seeds}`, "
        f"{args.epochs} epochs), {os.cpu_count()} cores, {datetime.now():%Y-%m-%d %H:%M}:",
        "",
        "| machine | launcher | wall s | CPU s | training s | non-training s per job "
        "| load average before |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for (machine, launcher), r in runs.items():
        train = r["train"]
        per_job = "" if train is None else f"{(r['wall'] - train) / jobs:.3f}"
        train_s = "" if train is None else f"{train:.1f}"
        lines.append(
            f"| {machine} | {launcher} | {r['wall']:.1f} | {r['cpu']:.1f} | {train_s} "
            f"| {per_job} | {r['load']} |"
        )
    q, b = runs["quiet", "batched"]["wall"], runs["busy", "batched"]["wall"]
    lines += [
        "",
        f"- batched over basic, quiet: {runs['quiet', 'basic']['wall'] / q:.1f}x faster; "
        f"with the competing process: {runs['busy', 'basic']['wall'] / b:.1f}x faster",
        f"- batched with the competing process / batched quiet: {b / q:.2f}x",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.append:
        with args.append.open("a") as file:
            file.write(f"\n## A sweep on a quiet and on a busy machine\n\n{text}")


if __name__ == "__main__":
    main()
