"""Conv nets and compression, measured through the CLI (part of ``make bench``). Not a test.

- :func:`compress_default`: the default ``regexp train`` (SGL MLP on digits), then
  ``regexp compress``: parameters, file size and latency before and after.
- :func:`conv_sweep`: a 27-job conv-net sweep (``model=cnn dataset=digits_images``,
  l1, group_lasso, sgl × 3 λ × 3 seeds) with the batched launcher against Hydra's basic
  one, each timed as a whole command.
- :func:`channel_study`: ``model=cnn dataset=digits_images`` with SGL over a λ grid and
  without a regularizer, 5 seeds each: test accuracy and channels removed per layer.

``python benchmarks/conv.py [--epochs N]`` prints the Markdown section that ``make bench``
puts into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

CONV = ["model=cnn", "dataset=digits_images"]
SWEEP = ["regularizer=l1,group_lasso,sgl", "lambda=1e-4,1e-3,1e-2", "seed=0,1,2"]
CHANNEL_LAMBDAS = "1e-4,3e-4,1e-3,2e-3,3e-3,5e-3,1e-2"
SEEDS = "0,1,2,3,4"


def regexp(*args: str, cwd: Path) -> float:
    """Run ``regexp ARGS`` in ``cwd`` (one torch thread per process is the launchers'
    business); returns its wall-clock seconds. Raises on failure."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "regexp.cli", *args], cwd=cwd, capture_output=True, text=True
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


def conv_sweep(tmp: Path, epochs: int) -> dict[str, float]:
    """Seconds of the 27-job conv sweep under each launcher."""
    out = {}
    for launcher in ("batched", "basic"):
        out[launcher] = regexp(
            "train",
            "-m",
            *CONV,
            *SWEEP,
            f"trainer.epochs={epochs}",
            f"hydra/launcher={launcher}",
            f"hydra.sweep.dir={tmp / f'conv_{launcher}'}",
            cwd=tmp,
        )
    return out


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


def section(epochs: int = 200, sweep_epochs: int = 50) -> list[str]:
    """The Markdown lines of BENCHMARKS.md's section on conv nets and compression."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        os.environ.setdefault("REGEXP_CACHE_DIR", str(tmp / "cache"))
        comp = compress_default(tmp)
        sweep = conv_sweep(tmp, sweep_epochs)
        study = channel_study(tmp, epochs)
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
        "## A conv-net sweep, stacked",
        "",
        f"27 jobs (`model=cnn dataset=digits_images`, {' '.join(SWEEP)}, "
        f"{sweep_epochs} epochs), each launcher timed as a whole command: batched "
        f"{sweep['batched']:.1f} s, basic {sweep['basic']:.1f} s "
        f"({sweep['basic'] / sweep['batched']:.1f}× faster stacked).",
        "",
        "## Channels removed by SGL in a conv net",
        "",
        f"`model=cnn dataset=digits_images` (1×8×8 → 8 → 16 channels → 10), {epochs} epochs, "
        "5 seeds; mean ± std of the test accuracy and of the fraction of channels removed at "
        "each layer's input (hidden1: conv1's 8 channels, hidden2: conv2's 16 channels, "
        "read by the linear head). λ = 0: no regularizer.",
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
    lines += ["", verdict(study, layers)]
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
    args = parser.parse_args()
    print("\n".join(section(args.epochs, args.sweep_epochs)))


if __name__ == "__main__":
    main()
