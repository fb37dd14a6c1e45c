"""Conv nets and compression, measured through the CLI (part of ``make bench``). Not a test.

- :func:`compress_default`: the default ``regexp train`` (SGL MLP on digits), then
  ``regexp compress``: parameters, file size and latency before and after.
- :func:`conv_sweep`: a 27-job conv-net sweep (``model=cnn dataset=digits_images``,
  l1, group_lasso, sgl × 3 λ × 3 seeds) with the batched launcher (its jobs stacked and
  trained by the vmap engine, in worker processes) against Hydra's basic one (one job
  after another, each by autograd), each timed as a whole command: wall and CPU seconds,
  the load average before it, and the engines that ``results.csv`` records.
- :func:`channel_study`: ``model=cnn dataset=digits_images`` with SGL over a λ grid and
  without a regularizer, 5 seeds each: test accuracy and channels removed per layer.

``python benchmarks/conv.py [--epochs N] [--sweep-epochs N] [--parts compress,sweep,channels]
[--append FILE]`` prints the Markdown section of the parts asked for (all by default);
``make bench`` appends it to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

CONV = ["model=cnn", "dataset=digits_images"]
SWEEP = ["regularizer=l1,group_lasso,sgl", "lambda=1e-4,1e-3,1e-2", "seed=0,1,2"]
CHANNEL_LAMBDAS = "1e-4,3e-4,1e-3,2e-3,3e-3,5e-3,1e-2"
SEEDS = "0,1,2,3,4"
PARTS = ("compress", "sweep", "channels")
ROOT = Path(__file__).resolve().parent.parent  # the regexp checkout this file belongs to


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def regexp(*args: str, cwd: Path) -> float:
    """Run ``regexp ARGS`` of this checkout in ``cwd`` (one torch thread per process is the
    launchers' business); returns its wall-clock seconds. Raises on failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "regexp.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"regexp {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def compress_default(tmp: Path) -> dict:
    """The default run compressed: ``compression.csv`` and the run's ``params_kept``."""
    run = tmp / "default"
    regexp("train", f"hydra.run.dir={run}", cwd=tmp)
    regexp("compress", str(run), cwd=tmp)
    table = pd.read_csv(run / "compression.csv").set_index("model")
    metrics = pd.read_csv(run / "metrics.csv").iloc[0]
    return {"table": table, "params_kept": int(metrics["params_kept"])}


def conv_sweep(tmp: Path, epochs: int) -> dict[str, dict]:
    """The 27-job conv sweep under each launcher: wall and CPU seconds (the command and
    its workers), the 1-minute load average before it, and the engines of its jobs."""
    out = {}
    for launcher in ("batched", "basic"):
        where = tmp / f"conv_{launcher}"
        load, cpu = os.getloadavg()[0], children_cpu()
        wall = regexp(
            "train",
            "-m",
            *CONV,
            *SWEEP,
            f"trainer.epochs={epochs}",
            f"hydra/launcher={launcher}",
            f"hydra.sweep.dir={where}",
            cwd=tmp,
        )
        results = pd.read_csv(where / "results.csv")
        engines = results["engine"].value_counts().to_dict()
        out[launcher] = {
            "wall": wall,
            "cpu": children_cpu() - cpu,
            "load": load,
            "jobs": len(results),
            "ok": int((results["status"] == "ok").sum()),
            "engines": ", ".join(f"{n} {e}" for e, n in sorted(engines.items())),
        }
    return out


def sweep_lines(sweep: dict[str, dict], epochs: int) -> list[str]:
    """The Markdown lines of the conv sweep, batched against basic."""
    b, s = sweep["basic"], sweep["batched"]
    lines = [
        "## A conv-net sweep, stacked",
        "",
        f"{s['jobs']} jobs (`model=cnn dataset=digits_images {' '.join(SWEEP)}`, {epochs} "
        f"epochs), each launcher timed as a whole command, {os.cpu_count()} cores, "
        f"{datetime.now():%Y-%m-%d %H:%M}:",
        "",
        "| launcher | wall s | CPU s | jobs ok | engines | load average before |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, r in (("batched", s), ("basic", b)):
        lines.append(
            f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['ok']}/{r['jobs']} | "
            f"{r['engines']} | {r['load']:.2f} |"
        )
    lines += [
        "",
        f"Stacked: {b['wall'] / s['wall']:.1f}× faster in wall time, "
        f"{b['cpu'] / s['cpu']:.1f}× less CPU time (the batched launcher trains the stack's "
        "parts in worker processes, one per core; basic trains one job after another).",
        "",
    ]
    return lines


def channel_study(tmp: Path, epochs: int) -> pd.DataFrame:
    """Mean ± std over 5 seeds per λ (``lambda`` 0: no regularizer) of test accuracy and
    the fraction of channels removed at each layer's input."""
    frames = []
    for name, extra in (("none", ["regularizer=none"]), ("sgl", ["regularizer=sgl"])):
        where = tmp / f"channels_{name}"
        lambdas = "0" if name == "none" else CHANNEL_LAMBDAS
        regexp(
            "train",
            "-m",
            *CONV,
            *extra,
            f"lambda={lambdas}",
            f"seed={SEEDS}",
            f"trainer.epochs={epochs}",
            "hydra/launcher=batched",
            f"hydra.sweep.dir={where}",
            cwd=tmp,
        )
        frames.append(pd.read_csv(where / "results.csv"))
    results = pd.concat(frames, ignore_index=True)
    results = results[results["status"] == "ok"]
    removed = [c for c in results.columns if c.startswith("neuron_sparsity_")]
    summary = results.groupby(["regularizer", "lambda"])[["test_accuracy", *removed]].agg(
        ["mean", "std", "count"]
    )
    return summary


def section(epochs: int = 200, sweep_epochs: int = 50, parts: tuple[str, ...] = PARTS) -> list[str]:
    """The Markdown lines of BENCHMARKS.md's section on conv nets and compression, for
    the ``parts`` asked for (of :data:`PARTS`)."""
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        os.environ.setdefault("REGEXP_CACHE_DIR", str(tmp / "cache"))
        if "compress" in parts:
            lines += compress_lines(compress_default(tmp))
        if "sweep" in parts:
            lines += sweep_lines(conv_sweep(tmp, sweep_epochs), sweep_epochs)
        if "channels" in parts:
            lines += channel_lines(channel_study(tmp, epochs), epochs)
    return lines


def compress_lines(comp: dict) -> list[str]:
    """The Markdown lines of the default run's compression."""
    t = comp["table"]
    lines = [
        "## Compression of the default run",
        "",
        "`regexp train` (SGL, λ = 1e-3, the 64-40-20-10 MLP on digits), then `regexp compress`:",
        "",
        "| model | parameters | file (bytes) | latency, batch 1 (µs) | latency, batch 256 (µs) |",
        "|---|---|---|---|---|",
    ]
    for label in ("thresholded", "compressed"):
        r = t.loc[label]
        lines.append(
            f"| {label} | {int(r['params'])} | {int(r['file_bytes'])} | "
            f"{r['latency_b1_us']:.1f} | {r['latency_b256_us']:.1f} |"
        )
    lines += [
        "",
        f"The compressed network's parameters equal the run's `params_kept` "
        f"({comp['params_kept']}); its outputs differ by at most "
        f"{t.loc['compressed', 'max_abs_diff']:.2g} on the test rows. Latency: median of "
        "`torch.utils.benchmark` timings, one thread.",
        "",
    ]
    return lines


def channel_lines(study: pd.DataFrame, epochs: int) -> list[str]:
    """The Markdown lines of the SGL channel study."""
    lines = [
        "## Channels removed by SGL in a conv net",
        "",
        f"`model=cnn dataset=digits_images` (1×8×8 → 8 → 16 channels → 10), {epochs} epochs, "
        "5 seeds; mean ± std of the test accuracy and of the fraction of channels removed per "
        "layer (`input`: the image's one channel; `conv1`: conv1's 8 output channels, read "
        "by conv2; `conv2`: conv2's 16, read by the linear head). λ = 0: no regularizer.",
        "",
    ]
    layers = [c for c, s in study.columns if s == "mean" and c.startswith("neuron_sparsity_")]
    head = "| regularizer | λ | n | test accuracy | " + " | ".join(
        c.removeprefix("neuron_sparsity_") for c in layers
    )
    lines += [head + " |", "|---|---|---|---|" + "---|" * len(layers)]
    for (reg, lam), row in study.iterrows():
        cells = [f"{row[(c, 'mean')]:.2f} ± {row[(c, 'std')]:.2f}" for c in layers]
        lines.append(
            f"| {reg} | {lam:g} | {int(row[('test_accuracy', 'count')])} | "
            f"{row[('test_accuracy', 'mean')]:.4f} ± {row[('test_accuracy', 'std')]:.4f} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", verdict(study, layers), ""]
    return lines


def verdict(study: pd.DataFrame, layers: list[str]) -> str:
    """Whether some λ removes at least a quarter of some layer's channels while the mean
    test accuracy stays within 1 point of the unregularized conv net's."""
    base = study.loc[("none", 0.0), ("test_accuracy", "mean")]
    good = []
    for (reg, lam), row in study.iterrows():
        if reg == "none":
            continue
        most = max(row[(c, "mean")] for c in layers)
        if row[("test_accuracy", "mean")] >= base - 0.01 and most >= 0.25:
            good.append((most, lam, row[("test_accuracy", "mean")]))
    if not good:
        return (
            f"No λ of the grid removes a quarter of any layer's channels within 1 point of "
            f"the unregularized net's mean test accuracy ({base:.4f})."
        )
    most, lam, acc = max(good)
    return (
        f"At λ = {lam:g}, SGL removes {most:.0%} of a layer's channels (mean over 5 seeds) "
        f"at a mean test accuracy of {acc:.4f}, against {base:.4f} without a regularizer "
        "(within 1 point)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--sweep-epochs", type=int, default=50)
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}"
    )
    parser.add_argument("--append", type=Path, help="also append the section to this file")
    args = parser.parse_args()
    parts = tuple(args.parts.split(","))
    bad = [p for p in parts if p not in PARTS]
    if bad:
        parser.error(f"--parts: unknown {', '.join(bad)}; choose from {', '.join(PARTS)}")
    text = "\n".join(section(args.epochs, args.sweep_epochs, parts)) + "\n"
    print(text)
    if args.append:
        with args.append.open("a") as file:
            file.write("\n" + text)


if __name__ == "__main__":
    main()
