"""Benchmark of the stacked engine (``make bench``): writes BENCHMARKS.md. Not a test.

The sweep is the 108-job digits sweep: regularizers l1, l2, group_lasso, sgl × 9 values of
λ × 3 seeds, 200 epochs, batch 32, the default 64-40-20-10 MLP and Adam. Each stacked
measurement runs in a fresh process (so that its peak RSS is its own), at one torch thread.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from regexp import batched, train

REGS = ["l1", "l2", "group_lasso", "sgl"]
LAMBDAS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
ROOT = Path(__file__).resolve().parents[1]


def sweep(n: int, epochs: int = 200, regs: list[str] = REGS) -> list[dict]:
    """The first ``n`` jobs of regs × λ × seeds 0, 1, 2, ... (seed-major: 108 = 3 seeds)."""
    jobs = [
        [f"regularizer={r}", f"lambda={lam}", f"seed={s}", f"trainer.epochs={epochs}"]
        for s in range(-(-n // 36))
        for r in regs
        for lam in LAMBDAS
    ][:n]
    with initialize_config_module("regexp.conf", version_base="1.3"):
        return [OmegaConf.to_container(compose("config", o), resolve=True) for o in jobs]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(n: int, threads: int = 1, plain: bool = False) -> dict:
    """Train the first ``n`` jobs as one stack; time, CPU time and peak RSS.

    ``plain``: the same stack with ``regularizer=none`` (no penalty), to time the rest.
    """
    cfgs = sweep(n, regs=["none"] * 4 if plain else REGS)
    members, data = [], None
    for cfg in cfgs:
        s = train.prepare(cfg, data)
        data = s.data
        members.append(batched.Member.from_setup(cfg, s, torch.get_rng_state()))
    torch.set_num_threads(threads)
    before = rss_mib()
    t, c = time.perf_counter(), time.process_time()
    results = batched.fit_stacked(members, data, "relu", cfgs[0]["optimizer"], 200, 32, None, False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    acc = [train.evaluate(m.model, data, "test")["accuracy"] for m in members]
    return {
        "n": n,
        "wall": wall,
        "cpu": cpu,
        "rss_before": before,
        "rss_peak": rss_mib(),
        "ok": sum(r.status == "ok" for r in results),
        "best_acc": max(acc),
    }


def sequential(epochs: int) -> dict:
    """Per-epoch time of sequential ``fit`` for one job per regularizer (λ=1e-3, seed 0)."""
    per_epoch = {}
    for reg in REGS:
        with initialize_config_module("regexp.conf", version_base="1.3"):
            over = [f"regularizer={reg}", f"trainer.epochs={epochs}"]
            cfg = OmegaConf.to_container(compose("config", over), resolve=True)
        s = train.prepare(cfg)
        t = time.perf_counter()
        train.fit(s.model, s.data, s.reg, s.mode, s.optimizer, epochs, 32, 0, None, False)
        per_epoch[reg] = (time.perf_counter() - t) / epochs
    return per_epoch


def default_run() -> dict:
    """One default run (``regexp train``: sgl, λ=1e-3, 200 epochs): fit, then finish."""
    with initialize_config_module("regexp.conf", version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config"), resolve=True)
    s = train.prepare(cfg)
    t = time.perf_counter()
    result = train.fit_setup(cfg, s)
    fit_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        train.finish(cfg, Path(tmp), s.model, s.data, result)
        finish_s = time.perf_counter() - t
    return {
        "fit": fit_s,
        "finish": finish_s,
        "n_train": len(s.data.y_train),
        "n_val": len(s.data.y_val),
    }


def peak_gflops(threads: int, size: int = 2048, reps: int = 10) -> float:
    """Best of ``reps`` float32 ``size³`` ``torch.mm`` at ``threads`` threads, GFLOP/s."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(reps + 1):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    torch.set_num_threads(1)
    return 2 * size**3 / best / 1e9


def run_worker(n: int, threads: int = 1, plain: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(n), "--threads", str(threads)]
    cmd += ["--plain"] if plain else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    load = Path("/proc/loadavg").read_text().split()[:3]
    cores = os.cpu_count() or 1
    gf1, gf_all = peak_gflops(1), peak_gflops(cores)
    seq_epochs = 10
    seq = sequential(seq_epochs)
    default = default_run()
    stacks = {n: run_worker(n) for n in (8, 27, 108, 432)}
    all_threads = run_worker(108, cores)
    plain = run_worker(108, plain=True)

    macs = 64 * 40 + 40 * 20 + 20 * 10  # Σ in·out of 64-40-20-10
    n_train, n_val = default["n_train"], default["n_val"]
    run_flops = 6 * macs * n_train * 200  # forward + backward ≈ 3 × 2·Σ in·out per sample
    eval_flops = 2 * macs * n_val * 200
    sweep_flops = 108 * run_flops
    limit_1 = sweep_flops / (gf1 * 1e9)
    run_limit = run_flops / (gf1 * 1e9)
    limit_all = sweep_flops / (gf_all * 1e9)
    seq_sweep = sum(27 * 200 * t for t in seq.values())
    b108 = stacks[108]
    lines = [
        "# Benchmarks: stacked training of a sweep (`hydra/launcher=batched`)",
        "",
        "Written by `make bench` (`benchmarks/bench.py`); do not edit by hand.",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {cpu_model()}, {cores} cores; load average at start {' '.join(load)}"
        " (the machine is shared: timings are noisy)",
        f"- torch {torch.__version__}, Python {platform.python_version()}, one torch thread "
        "for every training run",
        f"- peak matmul (float32 {2048}³ `torch.mm`, best of 10): {gf1:.1f} GFLOP/s at 1 "
        f"thread, {gf_all:.1f} GFLOP/s at {cores} threads",
        "",
        "## The 108-job digits sweep (4 regularizers × 9 λ × 3 seeds, 200 epochs, batch 32)",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| sequential `fit`, estimated | {seq_sweep:.0f} |",
        f"| stacked `fit_stacked`, N=108, measured | {b108['wall']:.1f} |",
        f"| speed-up | **{seq_sweep / b108['wall']:.1f}×** |",
        f"| compute limit at 1 thread (training FLOPs / {gf1:.1f} GFLOP/s) | {limit_1:.1f} |",
        f"| stacked time / compute limit | **{b108['wall'] / limit_1:.1f}×** |",
        f"| stacked, N=108, at {cores} threads, measured | {all_threads['wall']:.1f} |",
        f"| its ratio to the {cores}-thread compute limit ({limit_all:.1f} s) | "
        f"{all_threads['wall'] / limit_all:.1f}× |",
        "",
        f"Targets (issue #6): at least 30× faster than sequential: "
        f"{'met' if seq_sweep / b108['wall'] >= 30 else 'NOT met'}; within 3× of the compute "
        f"limit: {'met' if b108['wall'] / limit_1 <= 3 else 'NOT met'}. What the stacked time "
        f"is made of: the same N=108 stack without any penalty (`regularizer=none`) takes "
        f"{plain['wall']:.1f} s, so the penalties' gradients (closed form, elementwise passes "
        f"over the stacked weights) cost {b108['wall'] - plain['wall']:.1f} s; "
        f"the rest is the batched matmuls of tiny per-model matrices (far from the big-matmul "
        f"peak), the optimizer, minibatch gathering and the per-epoch validation pass. The "
        f"sequential baseline already uses torch's fused optimizers.",
        "",
        f"Sequential estimate: one job per regularizer (λ=1e-3, seed 0) trained for "
        f"{seq_epochs} epochs with `regexp.train.fit`; its time per epoch × 200 epochs × 27 "
        "jobs, summed over the 4 regularizers (the time per step does not depend on λ or "
        "the seed). Measured per epoch: "
        + ", ".join(f"{r} {t * 1e3:.0f} ms" for r, t in seq.items())
        + ".",
        "",
        f"Training FLOPs: 6·Σ in·out = {6 * macs} FLOP per sample and step (forward + "
        f"backward matmuls) × {n_train} samples × 200 epochs × 108 = "
        f"{sweep_flops / 1e12:.3f} TFLOP. Not counted: the per-epoch validation forward pass "
        f"({108 * eval_flops / 1e12:.3f} TFLOP), penalties, optimizer. Both engines run at one "
        "thread, so the limit uses the 1-thread peak.",
        "",
        f"Peak RSS of the N=108 process: {b108['rss_peak']:.0f} MiB "
        f"({b108['rss_before']:.0f} MiB before training: Python, torch, data, models).",
        "",
        "Writing each job's outputs (`regexp.train.finish`: metrics, checkpoint, three plots) "
        f"takes {default['finish']:.2f} s per job with either launcher, "
        f"{108 * default['finish']:.0f} s for 108 jobs; it is not part of the times above.",
        "",
        "## One default run (`regexp train`: sgl, λ=1e-3, 200 epochs)",
        "",
        f"`fit` took {default['fit']:.1f} s; its compute limit at 1 thread is "
        f"{run_limit:.2f} s, a ratio of {default['fit'] / run_limit:.0f}×: with one small "
        "model per step the time goes to Python and per-operation overhead, not arithmetic.",
        "",
        "## Time against the number of stacked models N (200 epochs each)",
        "",
        "| N | wall s | CPU s | s per model | peak RSS MiB | models ok |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in stacks.items():
        lines.append(
            f"| {n} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['wall'] / n:.2f} | "
            f"{r['rss_peak']:.0f} | {r['ok']}/{n} |"
        )
    lines += [
        "",
        "N = 8, 27, 432 are the first N jobs of the sweep extended by seeds (seed-major order).",
        "",
        "## GPU",
        "",
        "Not measured: no GPU was available to this run. The engine is device-agnostic "
        "(`trainer.device=cuda`) but was not checked on CUDA.",
        "",
        f"Benchmark wall time: {time.perf_counter() - start:.0f} s.",
        "",
    ]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", type=int, help="internal: train N stacked models")
    parser.add_argument("--threads", type=int, default=1, help="internal: torch threads")
    parser.add_argument("--plain", action="store_true", help="internal: regularizer=none")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads, args.plain)))
    else:
        main()
