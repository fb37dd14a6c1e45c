"""Benchmark of the stacked engine (``make bench``): writes BENCHMARKS.md. Not a test.

The sweep is the 108-job digits sweep: regularizers l1, l2, group_lasso, sgl × 9 values of
λ × 3 seeds, 200 epochs, batch 32, the default 64-40-20-10 MLP and Adam. Each stacked
measurement runs in a fresh process (so that its peak RSS is its own), at one torch thread.
It times the training engine alone (sequential ``fit`` against ``fit_stacked``), splits the
stacked time into its parts, and times the whole sweep through the CLI
(``regexp train -m``) with the batched launcher and, estimated, with Hydra's basic one.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from regexp.engine import train
from regexp.engine.evaluation import evaluate
from regexp.engine.stacked import fit as batched
from regexp.engine.stacked.model import StackedMLP
from regexp.engine.stacked.optim import StackedOptimizer
from regexp.launcher import keep_freed_memory
from regexp.outputs import run as results

REGS = ["l1", "l2", "group_lasso", "sgl"]
LAMBDAS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
SIZES = (64, 40, 20, 10)  # the default MLP on digits
EPOCHS, BATCH = 200, 32
ROOT = Path(__file__).resolve().parents[1]


def sweep(n: int, epochs: int = EPOCHS, regs: list[str] = REGS) -> list[dict]:
    """The first ``n`` jobs of regs × λ × seeds 0, 1, 2, ... (seed-major: 108 = 3 seeds)."""
    jobs = [
        [f"regularizer={r}", f"lambda={lam}", f"seed={s}", f"trainer.epochs={epochs}"]
        for s in range(-(-n // 36))
        for r in regs
        for lam in LAMBDAS
    ][:n]
    with initialize_config_module("regexp.conf", version_base="1.3"):
        return [OmegaConf.to_container(compose("config", o), resolve=True) for o in jobs]


def run_flops(n_train: int, n_val: int, epochs: int = EPOCHS) -> dict[str, float]:
    """Matmul FLOPs of one run of the default MLP, training and per-epoch validation.

    Per training sample and step: the forward pass ``2·Σ in·out``, the weight gradients
    ``2·Σ in·out`` and the input gradients of every layer but the first (the data needs
    none) ``2·Σ_{l>1} in·out``. Per epoch, the validation forward pass ``2·Σ in·out`` per
    validation sample. Elementwise work (activations, loss, penalties, optimizer) is not
    counted: the limit is what the matmuls alone would take at peak.
    """
    macs = [i * o for i, o in itertools.pairwise(SIZES)]
    per_sample = 2 * sum(macs) + 2 * sum(macs) + 2 * sum(macs[1:])
    return {
        "per_sample": per_sample,
        "train": per_sample * n_train * epochs,
        "val": 2 * sum(macs) * n_val * epochs,
    }


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def members_of(cfgs: list[dict]) -> tuple[list[batched.Member], object]:
    members, data = [], None
    for cfg in cfgs:
        s = train.prepare(cfg, data)
        data = s.data
        members.append(batched.Member.from_setup(cfg, s, torch.get_rng_state()))
    return members, data


def worker(n: int, threads: int = 1, plain: bool = False) -> dict:
    """Train the first ``n`` jobs as one stack; time, CPU time and peak RSS.

    ``plain``: the same stack with ``regularizer=none`` (no penalty), to time the rest.
    """
    cfgs = sweep(n, regs=["none"] * 4 if plain else REGS)
    members, data = members_of(cfgs)
    torch.set_num_threads(threads)
    keep_freed_memory()  # as the launcher process does
    before = rss_mib()
    t, c = time.perf_counter(), time.process_time()
    fits = batched.fit_stacked(
        members, data, "relu", cfgs[0]["optimizer"], EPOCHS, BATCH, None, None
    )
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    acc = [evaluate(m.model, data, "test")["accuracy"] for m in members]
    return {
        "n": n,
        "wall": wall,
        "cpu": cpu,
        "rss_before": before,
        "rss_peak": rss_mib(),
        "ok": sum(r.status == "ok" for r in fits),
        "best_acc": max(acc),
    }


def parts(n: int = 108, reps: int = 5) -> dict:
    """Seconds that two parts of an ``n``-model stack take on their own, for the sweep.

    ``matmuls``: the stack's bmm calls alone (the forward pass of every minibatch, the
    weight and input gradients of the backward pass, and the per-epoch validation forward
    pass), at its shapes and layouts, timed over ``reps`` epochs and scaled to 200.
    ``adam``: the stacked optimizer's step (torch's fused Adam kernel) alone, once per
    minibatch, scaled the same way.
    """
    torch.set_num_threads(1)
    cfgs = sweep(n)
    members, data = members_of(cfgs)
    n_train, n_val = len(data.y_train), len(data.y_val)
    ws = [torch.randn(n, o, i) for i, o in itertools.pairwise(SIZES)]
    x = torch.randn(n, BATCH, SIZES[0])
    x_val = torch.randn(n_val, SIZES[0])
    batches = [min(BATCH, n_train - i) for i in range(0, n_train, BATCH)]

    def epoch_of_matmuls() -> None:
        for b in batches:
            hs = [x[:, :b].transpose(1, 2)]  # activations [N, units, B], as in the stack
            for w in ws:
                hs.append(torch.bmm(w, hs[-1]))
            dz = hs[-1]
            for layer in reversed(range(len(ws))):
                torch.bmm(dz, hs[layer].transpose(1, 2))  # weight gradient
                if layer > 0:
                    dz = torch.bmm(ws[layer].transpose(1, 2), dz)  # input gradient
        h = x_val.T.expand(n, *x_val.T.shape)
        for w in ws:
            h = torch.bmm(w, h)

    stack = StackedMLP([m.model for m in members], "relu")
    for p in stack.parameters:
        p.grad = torch.randn_like(p) * 1e-3
    lr = torch.full((n,), 1e-3, dtype=torch.float64)
    opt = StackedOptimizer(
        stack.parameters, [True] * 3 + [False] * 3, cfgs[0]["optimizer"], lr, lr * 0
    )

    def epoch_of_adam() -> None:
        for _ in batches:
            opt.step()

    out = {}
    for name, fn in (("matmuls", epoch_of_matmuls), ("adam", epoch_of_adam)):
        fn()  # warm up
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        out[name] = (time.perf_counter() - t) / reps * EPOCHS
    return out


def sequential() -> dict[str, float]:
    """Seconds of one full sequential ``fit`` per regularizer (λ=1e-3, seed 0, 200 epochs)."""
    seconds = {}
    for reg in REGS:
        with initialize_config_module("regexp.conf", version_base="1.3"):
            cfg = OmegaConf.to_container(compose("config", [f"regularizer={reg}"]), resolve=True)
        s = train.prepare(cfg)
        t = time.perf_counter()
        train.fit(s.model, s.data, s.reg, s.mode, s.optimizer, EPOCHS, BATCH, 0, None, None)
        seconds[reg] = time.perf_counter() - t
    return seconds


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
        results.finish(cfg, Path(tmp), s.model, s.data, result)
        finish_s = time.perf_counter() - t
    return {
        "fit": fit_s,
        "finish": finish_s,
        "n_train": len(s.data.y_train),
        "n_val": len(s.data.y_val),
    }


def cli_sweep(launcher: str, regs: list[str], lambdas: list[float], seeds: list[int]) -> float:
    """Wall seconds of ``regexp train -m`` over regs × λ × seeds (outputs in a temp dir)."""
    exe = shutil.which("regexp", path=str(Path(sys.executable).parent)) or "regexp"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            exe,
            "train",
            "-m",
            f"hydra/launcher={launcher}",
            f"regularizer={','.join(regs)}",
            f"lambda={','.join(map(str, lambdas))}",
            f"seed={','.join(map(str, seeds))}",
            f"hydra.sweep.dir={tmp}/sweep",
        ]
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=tmp)
        return time.perf_counter() - t


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


def run_worker(*args: str) -> dict:
    cmd = [sys.executable, __file__, *args]
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
    # Sequential and stacked training, measured in turn 3 times: the machine is shared, so
    # the ratio of one pair is less noisy than either time; the median pair is reported.
    pairs = [(sequential(), run_worker("--worker", "108")) for _ in range(3)]
    ratios = [27 * sum(seq.values()) / b["wall"] for seq, b in pairs]
    seq, b108 = pairs[sorted(range(3), key=ratios.__getitem__)[1]]
    default = default_run()
    stacks = {n: run_worker("--worker", str(n)) for n in (8, 27, 432)}
    stacks = {8: stacks[8], 27: stacks[27], 108: b108, 432: stacks[432]}
    all_threads = run_worker("--worker", "108", "--threads", str(cores))
    plain = run_worker("--worker", "108", "--plain")
    part = run_worker("--parts")
    cli_batched = cli_sweep("batched", REGS, LAMBDAS, [0, 1, 2])
    cli_4 = cli_sweep("basic", REGS, [1e-3], [0])
    cli_8 = cli_sweep("basic", REGS, [1e-3], [0, 1])

    f = run_flops(default["n_train"], default["n_val"])
    run_total = f["train"] + f["val"]
    sweep_flops = 108 * run_total
    limit_1 = sweep_flops / (gf1 * 1e9)
    limit_all = sweep_flops / (gf_all * 1e9)
    run_limit = run_total / (gf1 * 1e9)
    seq_sweep = 27 * sum(seq.values())
    wall = b108["wall"]
    # Basic launcher: 8 jobs minus 4 jobs is 4 jobs without the start-up; 108 = 27 × 4.
    four_jobs = cli_8 - cli_4
    startup = max(cli_4 - four_jobs, 0.0)  # noise can make the difference exceed cli_4
    cli_seq = startup + 27 * four_jobs
    speedup = seq_sweep / wall
    rest = plain["wall"] - part["matmuls"] - part["adam"]
    lines = [
        "# Benchmarks: stacked training of a sweep (`hydra/launcher=batched`)",
        "",
        "Written by `make bench` (`benchmarks/bench.py`); do not edit by hand.",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {cpu_model()}, {cores} cores; load average at start {' '.join(load)}"
        " (the machine is shared: timings are noisy)",
        f"- torch {torch.__version__}, Python {platform.python_version()}, one torch thread "
        "for every engine timing unless a row says otherwise; the CLI sweeps' threads are "
        "the launchers' (basic: `trainer.num_threads` = 1; batched: its one stack on every "
        "core)",
        f"- peak matmul (float32 2048³ `torch.mm`, best of 10): {gf1:.1f} GFLOP/s at 1 "
        f"thread, {gf_all:.1f} GFLOP/s at {cores} threads",
        "",
        "## The 108-job digits sweep (4 regularizers × 9 λ × 3 seeds, 200 epochs, batch 32)",
        "",
        "Training only (the engines, no outputs written; sequential and stacked measured in "
        "turn 3 times, the pair with the median speed-up shown):",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| sequential `fit`, estimated | {seq_sweep:.0f} |",
        f"| stacked `fit_stacked`, N=108, measured | {wall:.1f} |",
        f"| speed-up | **{speedup:.1f}×** |",
        "| speed-up of each of the 3 measured pairs | "
        + ", ".join(f"{r:.1f}×" for r in ratios)
        + " |",
        f"| compute limit at 1 thread (the sweep's matmul FLOPs / {gf1:.1f} GFLOP/s) | "
        f"{limit_1:.1f} |",
        f"| stacked time / compute limit | **{wall / limit_1:.1f}×** |",
        f"| stacked, N=108, at {cores} threads, measured | {all_threads['wall']:.1f} |",
        f"| its ratio to the {cores}-thread compute limit ({limit_all:.1f} s) | "
        f"{all_threads['wall'] / limit_all:.1f}× |",
        "",
        "The whole sweep through the CLI (`regexp train -m ...`: Hydra's config loading, "
        "training, every job's run directory with its CSVs, checkpoint and three figures, "
        "the sweep's results.csv and plots):",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| `hydra/launcher=basic` (one job after another), estimated | {cli_seq:.0f} |",
        f"| `hydra/launcher=batched`, measured | {cli_batched:.1f} |",
        f"| speed-up | **{cli_seq / cli_batched:.1f}×** |",
        "",
        f"Targets (issue #6): at least 30× faster than sequential: "
        f"{'met' if speedup >= 30 else 'NOT met'} for training ({speedup:.1f}×), "
        f"{'met' if cli_seq / cli_batched >= 30 else 'NOT met'} for the whole CLI sweep "
        f"({cli_seq / cli_batched:.1f}×); within 3× of the compute limit: "
        f"{'met' if wall / limit_1 <= 3 else 'NOT met'} ({wall / limit_1:.1f}×).",
        "",
        "How the estimates are made. Sequential training: one full 200-epoch `fit` per "
        "regularizer (λ=1e-3, seed 0) × 27 jobs each (the time per step does not depend on λ "
        "or the seed): "
        + ", ".join(f"{r} {t:.2f} s" for r, t in seq.items())
        + f". CLI with the basic launcher: the 4 jobs λ=1e-3, seed 0 took {cli_4:.1f} s and "
        f"the 8 jobs of seeds 0 and 1 {cli_8:.1f} s, so 4 jobs take {four_jobs:.1f} s and "
        f"start-up {startup:.1f} s; 108 jobs: start-up + 27 × {four_jobs:.1f} s.",
        "",
        f"Compute limit. Matmul FLOPs per training sample and step: forward 2·Σ in·out, "
        f"weight gradients 2·Σ in·out, input gradients of the layers after the first "
        f"2·Σ in·out: {f['per_sample']} FLOP, × {default['n_train']} samples × 200 epochs "
        f"= {f['train'] / 1e9:.2f} GFLOP per job; plus the per-epoch validation forward "
        f"pass on {default['n_val']} samples, {f['val'] / 1e9:.2f} GFLOP per job. × 108 jobs "
        f"= {sweep_flops / 1e12:.3f} TFLOP. Elementwise work (activations, loss, penalties, "
        "optimizer) is not counted. Both engines run at one thread, so the limit uses the "
        "1-thread peak.",
        "",
        "### Where the stacked time goes (N=108, one thread)",
        "",
        "| part | seconds | × compute limit |",
        "|---|---:|---:|",
        f"| the matmuls alone (the stack's bmm calls at its shapes) | {part['matmuls']:.1f} | "
        f"{part['matmuls'] / limit_1:.2f} |",
        f"| the fused Adam kernel alone (one step per minibatch) | {part['adam']:.1f} | "
        f"{part['adam'] / limit_1:.2f} |",
        f"| penalties: gradients, and values once per epoch (the stack minus the same stack "
        f"with `regularizer=none`) | "
        f"{wall - plain['wall']:.1f} | {(wall - plain['wall']) / limit_1:.2f} |",
        f"| the rest: autograd, biases, activations, loss, minibatch gathers, validation "
        f"metrics, history | {rest:.1f} | {rest / limit_1:.2f} |",
        f"| total | {wall:.1f} | {wall / limit_1:.2f} |",
        "",
        "The matmuls alone (per-model matrices of 10 to 64 rows) run at "
        f"{limit_1 / part['matmuls'] * 100:.0f}% of the big-matmul peak, and the fused Adam "
        f"kernel adds {part['adam'] / limit_1:.2f}× the limit on its own: these two, which "
        f"any exact Adam training of these models needs, take "
        f"{(part['matmuls'] + part['adam']) / limit_1:.1f}× the limit before the penalties "
        "and the per-step overhead of the other elementwise operations.",
        "",
        f"Peak RSS of the N=108 process: {b108['rss_peak']:.0f} MiB "
        f"({b108['rss_before']:.0f} MiB before training: Python, torch, data, models).",
        "",
        "Writing one job's outputs (`regexp.outputs.run.finish`: metrics, checkpoint, three "
        f"plots) takes {default['finish']:.2f} s in one process; the batched launcher writes "
        "a large sweep's jobs in one worker process per core.",
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
    parser.add_argument("--parts", action="store_true", help="internal: time matmuls, Adam")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads, args.plain)))
    elif args.parts:
        print(json.dumps(parts()))
    else:
        main()
