"""Benchmark of the stacked engine (``make bench``): writes BENCHMARKS.md. Not a test.

The sweep is the 108-job digits sweep: regularizers l1, l2, group_lasso, sgl × 9 values of
λ × 3 seeds, 200 epochs, batch 32, the default 64-40-20-10 MLP and Adam. Each stacked
measurement runs in a fresh process (so that its peak RSS is its own), at one torch thread.
It times the training engine alone (sequential ``fit`` against ``fit_stacked``), splits the
stacked time into its parts, and times the whole sweep through the CLI
(``regexp train -m``) with the batched launcher and with Hydra's basic one, each as a whole
process; then one default ``regexp train``, part by part from process start to exit, next
to a plain PyTorch loop (``benchmarks/plain_loop.py``), and the per-job work of a sweep
that is not training (config loading, writing the run directory).
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

from regexp.data.prepare import load_dataset
from regexp.hydra_app.launcher import keep_freed_memory
from regexp.runs import run_files as results
from regexp.train import loop as train
from regexp.train.evaluate import evaluate
from regexp.train.stacked import fit as batched
from regexp.train.stacked.model import StackedMLP
from regexp.train.stacked.optim import StackedOptimizer

REGS = ["l1", "l2", "group_lasso", "sgl"]
LAMBDAS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
SIZES = (64, 40, 20, 10)  # the default MLP on digits
EPOCHS, BATCH = 200, 32
ADAM = {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8}  # conf/optimizer/adam.yaml
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
    for g in stack.grads:
        g.copy_(torch.randn_like(g) * 1e-3)
    lr = torch.full((n,), 1e-3, dtype=torch.float64)
    opt = StackedOptimizer(
        stack.parameters, stack.grads, stack.decays, cfgs[0]["optimizer"], lr, lr * 0
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


def sequential() -> dict[str, dict[str, float]]:
    """Seconds of one full sequential run per regularizer (λ=1e-3, seed 0, 200 epochs).

    ``autograd``: :func:`regexp.train.loop.fit`, the autograd engine with the
    ``torch.optim`` optimizer (the sequential path before issue 15, and every engine's
    reference); ``closed_form``: :func:`regexp.train.loop.fit_setup`, what a single
    ``regexp train`` runs now (the fast engine: hand-written backpropagation, N = 1).
    """
    seconds: dict[str, dict[str, float]] = {"autograd": {}, "closed_form": {}}
    for reg in REGS:
        with initialize_config_module("regexp.conf", version_base="1.3"):
            cfg = OmegaConf.to_container(compose("config", [f"regularizer={reg}"]), resolve=True)
        s = train.prepare(cfg)
        opt = s.optimizer  # built outside the timing (its first build imports torch._dynamo)
        t = time.perf_counter()
        train.fit(s.model, s.data, s.reg, s.mode, opt, EPOCHS, BATCH, 0, None, None)
        seconds["autograd"][reg] = time.perf_counter() - t
        s = train.prepare(cfg)
        t = time.perf_counter()
        train.fit_setup(cfg, s)
        seconds["closed_form"][reg] = time.perf_counter() - t
    return seconds


def engines(epochs: int = 40, sizes: tuple[int, ...] = (1, 12, 108)) -> dict:
    """Issue 19's engine targets, each over ``epochs`` epochs at one thread.

    ``modes``: seconds of ``fit_setup`` for the default config (sgl, λ=1e-3) per engine
    (``trainer.engine``), in penalty mode and in proximal mode under Adam
    (``prox_metric=auto``, Adam's metric), with their ratio proximal/penalty.
    ``per_n``: milliseconds per model-epoch of the fast engine on the first N jobs of the
    sweep trained as one stack (N = 1 is a single run).
    """
    torch.set_num_threads(1)
    modes: dict[str, dict[str, float]] = {}
    for engine in ("fast", "autograd"):
        for mode in ("penalty", "proximal"):
            overrides = [f"trainer.engine={engine}", f"regularizer.mode={mode}"]
            with initialize_config_module("regexp.conf", version_base="1.3"):
                cfg = compose("config", [*overrides, f"trainer.epochs={epochs}"])
                cfg = OmegaConf.to_container(cfg, resolve=True)
            s = train.prepare(cfg)
            if engine == "autograd":
                s.optimizer  # noqa: B018 built outside the timing (imports torch._dynamo)
            t = time.perf_counter()
            train.fit_setup(cfg, s)
            modes.setdefault(engine, {})[mode] = time.perf_counter() - t
        modes[engine]["ratio"] = modes[engine]["proximal"] / modes[engine]["penalty"]
    per_n = {}
    for n in sizes:
        members, data = members_of(sweep(n, epochs))
        t = time.perf_counter()
        batched.fit_stacked(members, data, "relu", {"name": "adam", **ADAM}, epochs, BATCH)
        per_n[n] = (time.perf_counter() - t) / n / epochs * 1e3
    return {"epochs": epochs, "modes": modes, "per_n": per_n}


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
        results.finish_run(cfg, Path(tmp), s.model, s.data, result)
        finish_s = time.perf_counter() - t
    return {
        "fit": fit_s,
        "finish": finish_s,
        "n_train": len(s.data.y_train),
        "n_val": len(s.data.y_val),
    }


def cli_sweep(
    launcher: str, regs: list[str], lambdas: list[float], seeds: list[int]
) -> dict[str, float]:
    """Seconds of ``regexp train -m`` over regs × λ × seeds (outputs in a temp dir), from
    starting the process to its exit: ``wall``, and ``cpu`` of it and its workers."""
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
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=tmp)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(after, k) - getattr(before, k) for k in ("ru_utime", "ru_stime"))
    return {"wall": wall, "cpu": cpu}


# The parts of one `regexp train`, in order, as benchmarks/run_parts.py stamps their ends.
PARTS = {
    "cli_imports": "Python start-up and `import regexp.cli` (Hydra, OmegaConf)",
    "config": "Hydra: compose the config (twice: once to read `hydra.mode`), build the "
    "callbacks, whose imports load torch, pandas and matplotlib",
    "job_setup": "Hydra: the run directory, `.hydra` files, logging",
    "job_imports": "the task's own imports, validation",
    "data": "data: load, split, scale",
    "model": "model and optimizer settings",
    "fit": "**fit** (200 epochs)",
    "evaluation": "evaluation: metrics before and after thresholding, sparsity",
    "writing": "writing: CSVs, checkpoint, three figures, summary table",
    "main": "Hydra's end of the run",
}


def command_parts(cold: bool = False) -> dict:
    """One default ``regexp train`` in a fresh process, part by part: wall and CPU seconds.

    ``benchmarks/run_parts.py`` runs the CLI and stamps when each part ends; the start is
    when this process starts it, the end when it has exited (``exit``: the interpreter's
    shutdown; its CPU time from the child's resource usage). ``cold``: with an empty data
    cache (the first run of a data setting).
    """
    script = Path(__file__).with_name("run_parts.py")
    with tempfile.TemporaryDirectory() as tmp:
        stamps_file = Path(tmp) / "stamps.json"
        env = {**os.environ, "REGEXP_CACHE_DIR": f"{tmp}/cache"} if cold else None
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.time()
        subprocess.run(
            [sys.executable, str(script), str(stamps_file), "train", f"hydra.run.dir={tmp}/run"],
            capture_output=True,
            check=True,
            cwd=tmp,
            env=env,
        )
        end = time.time()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        stamps = json.loads(stamps_file.read_text())
    cpu_total = sum(getattr(after, k) - getattr(before, k) for k in ("ru_utime", "ru_stime"))
    wall, cpu, prev = {}, {}, (start, 0.0)
    for name in PARTS:
        wall[name], cpu[name] = stamps[name][0] - prev[0], stamps[name][1] - prev[1]
        prev = stamps[name]
    wall["exit"], cpu["exit"] = end - prev[0], cpu_total - prev[1]
    wall["total"], cpu["total"] = end - start, cpu_total
    return {"wall": wall, "cpu": cpu}


def plain_loop() -> dict[str, float]:
    """Training seconds, wall and CPU, of ``benchmarks/plain_loop.py`` (a fresh process)."""
    script = Path(__file__).with_name("plain_loop.py")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall": res["seconds"], "cpu": res["cpu"]}


def import_times() -> dict[str, float]:
    """Import seconds of one default ``regexp train`` (``python -X importtime``), in all
    and by package (self time, summed over each top-level package's modules)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-X", "importtime", "-m", "regexp.cli", "train"]
        proc = subprocess.run(
            [*cmd, f"hydra.run.dir={tmp}/run"], capture_output=True, text=True, check=True, cwd=tmp
        )
    by_package: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (x.strip() for x in line[len("import time:") :].split("|"))
        top = name.split(".")[0]
        by_package[top] = by_package.get(top, 0.0) + int(self_us) / 1e6
    return by_package


def config_loading(n: int = 108) -> dict[str, float]:
    """Seconds per job of loading the 108-job sweep's configs (median of 3 passes).

    ``hydra``: ``config_loader.load_sweep_config`` (Hydra's basic sweeper validates every
    job with it, and Hydra's basic launcher, and the batched launcher before issue 15,
    load every job with it: twice per job); ``cache``: :class:`regexp.hydra_app.sweeper.ConfigCache`
    on a fresh cache (one composition per regularizer, then copies), and
    ``cache_again``: the launcher's second load of each job from the same cache.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    import hydra_plugins.regexp_launcher.batched_launcher  # noqa: F401  (hydra/launcher=batched)
    from regexp.hydra_app.sweeper import ConfigCache, basic_sweeper_class

    args = [
        f"regularizer={','.join(REGS)}",
        f"lambda={','.join(map(str, LAMBDAS))}",
        "seed=0,1,2",
        "hydra/launcher=batched",
        "hydra.mode=MULTIRUN",
    ]
    out: dict[str, list[float]] = {"hydra": [], "cache": [], "cache_again": []}
    with initialize_config_module("regexp.conf", version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        master = hydra.compose_config("config", args, run_mode=RunMode.MULTIRUN)
        loader = hydra.config_loader
        parser = OverridesParser.create(config_loader=loader)
        task = OmegaConf.to_container(master.hydra.overrides.task, resolve=False)
        jobs = basic_sweeper_class().split_arguments(parser.parse_overrides(task), None)[0][:n]
        for _ in range(3):
            t = time.perf_counter()
            for job in jobs:
                loader.load_sweep_config(master, list(job))
            out["hydra"].append((time.perf_counter() - t) / len(jobs))
            cache = ConfigCache(loader, master)
            for key in ("cache", "cache_again"):
                t = time.perf_counter()
                for job in jobs:
                    cache.load(job)
                out[key].append((time.perf_counter() - t) / len(jobs))
    return {k: sorted(v)[1] for k, v in out.items()}


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


# The same benchmark before issue 15 (BENCHMARKS.md of commit 1212230, 2026-11-25, same
# machine): whole-sweep seconds with each launcher, and the training part of each.
BEFORE = {"commit": "1212230", "basic": 551, "basic_train": 502, "batched": 50.5, "stacked": 16.5}


def median_pair(pairs: list, ratio) -> tuple[int, list[float]]:
    """Index of the pair with the median ratio, and every pair's ratio."""
    ratios = [ratio(p) for p in pairs]
    return sorted(range(len(pairs)), key=ratios.__getitem__)[len(pairs) // 2], ratios


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    # Prepared data sets (regexp.data.cache) in a folder of this benchmark: the first
    # load prepares them, every later one (in this process and its children) reads them.
    cache = tempfile.TemporaryDirectory()
    os.environ["REGEXP_CACHE_DIR"] = cache.name
    with initialize_config_module("regexp.conf", version_base="1.3"):
        load_dataset(**OmegaConf.to_container(compose("config").dataset))  # fills the cache
    load = Path("/proc/loadavg").read_text().split()[:3]
    cores = os.cpu_count() or 1
    gf1, gf_all = peak_gflops(1), peak_gflops(cores)
    # Sequential and stacked training, measured in turn 3 times: the machine is shared, so
    # the ratio of one pair is less noisy than either time; the median pair is reported.
    pairs = [(sequential(), run_worker("--worker", "108")) for _ in range(3)]
    k, ratios = median_pair(pairs, lambda p: 27 * sum(p[0]["autograd"].values()) / p[1]["wall"])
    seqs, b108 = pairs[k]
    seq, single = seqs["autograd"], seqs["closed_form"]
    default = default_run()
    stacks = {n: run_worker("--worker", str(n)) for n in (8, 27, 432)}
    stacks = {8: stacks[8], 27: stacks[27], 108: b108, 432: stacks[432]}
    all_threads = run_worker("--worker", "108", "--threads", str(cores))
    plain = run_worker("--worker", "108", "--plain")
    part = run_worker("--parts")
    configs = run_worker("--configs")
    engine = run_worker("--engines")
    batched_run = cli_sweep("batched", REGS, LAMBDAS, [0, 1, 2])
    basic_run = cli_sweep("basic", REGS, LAMBDAS, [0, 1, 2])
    cli_batched, cli_basic = batched_run["wall"], basic_run["wall"]
    # One default run, part by part, and the plain loop, in turn 3 times.
    runs = [(command_parts(), plain_loop()) for _ in range(3)]
    k, run_ratios = median_pair(runs, lambda r: r[0]["wall"]["fit"] / r[1]["wall"])
    cmd, loop = runs[k]
    cold = command_parts(cold=True)
    imports = import_times()

    f = run_flops(default["n_train"], default["n_val"])
    run_total = f["train"] + f["val"]
    sweep_flops = 108 * run_total
    limit_1 = sweep_flops / (gf1 * 1e9)
    limit_all = sweep_flops / (gf_all * 1e9)
    run_limit = run_total / (gf1 * 1e9)
    seq_sweep = 27 * sum(seq.values())
    single_sweep = 27 * sum(single.values())
    wall = b108["wall"]
    speedup = seq_sweep / wall
    cli_speedup = cli_basic / cli_batched
    rest = plain["wall"] - part["matmuls"] - part["adam"]
    per_job = {
        "basic_before": (BEFORE["basic"] - BEFORE["basic_train"]) / 108,
        "batched_before": (BEFORE["batched"] - BEFORE["stacked"]) / 108,
        "basic": (cli_basic - single_sweep) / 108,
        "batched": (cli_batched - wall) / 108,
    }
    outside = {k: cmd[k]["total"] - cmd[k]["fit"] for k in ("wall", "cpu")}
    fit_ratio = {k: cmd[k]["fit"] / loop[k] for k in ("wall", "cpu")}
    groups = {
        "torch": ["torch", "torchgen", "functorch"],
        "scikit-learn and SciPy": ["sklearn", "scipy", "joblib", "threadpoolctl", "narwhals"],
        "pandas": ["pandas", "pytz", "dateutil"],
        "matplotlib": ["matplotlib", "PIL", "pyparsing", "kiwisolver", "fontTools", "cycler"],
        "Hydra, OmegaConf": ["hydra", "omegaconf", "antlr4", "yaml"],
        "NumPy": ["numpy"],
    }
    import_parts = {g: sum(imports.get(m, 0.0) for m in ms) for g, ms in groups.items()}
    import_parts["everything else"] = sum(imports.values()) - sum(import_parts.values())
    lines = [
        "# Benchmarks: a sweep's stacked training, a single run, and the whole commands",
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
        f"| sequential, autograd `fit` (the stacked engine's reference), estimated | "
        f"{seq_sweep:.0f} |",
        f"| sequential, a single run's engine (`fit_setup`: hand-written backpropagation), "
        f"estimated | {single_sweep:.0f} |",
        f"| stacked `fit_stacked`, N=108, measured | {wall:.1f} |",
        f"| speed-up over autograd `fit` | **{speedup:.1f}×** |",
        f"| speed-up over the single-run engine | **{single_sweep / wall:.1f}×** |",
        "| speed-up over autograd `fit` of each of the 3 measured pairs | "
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
        "the sweep's results.csv and plots), each measured as one whole process, from its "
        "start to its exit:",
        "",
        "| | wall s | CPU s (the process and its workers) |",
        "|---|---:|---:|",
        f"| `hydra/launcher=basic` (one job after another) | {cli_basic:.0f} | "
        f"{basic_run['cpu']:.0f} |",
        f"| `hydra/launcher=batched` | {cli_batched:.1f} | {batched_run['cpu']:.1f} |",
        f"| speed-up | **{cli_speedup:.1f}×** | |",
        "",
        "Per job, the time that is not training (the whole sweep's seconds less its "
        "training, / 108):",
        "",
        f"| | before issue 15 (commit {BEFORE['commit']}) | now |",
        "|---|---:|---:|",
        f"| `basic`: (sweep − sequential training) / 108 | {per_job['basic_before']:.2f} s | "
        f"{per_job['basic']:.2f} s |",
        f"| `batched`: (sweep − stacked training) / 108 | {per_job['batched_before']:.2f} s | "
        f"{per_job['batched']:.2f} s |",
        "",
        f"(Before: the sweeps of that commit's BENCHMARKS.md, {BEFORE['basic']} s and "
        f"{BEFORE['batched']} s, with training {BEFORE['basic_train']} s and "
        f"{BEFORE['stacked']} s; its `basic` sweep was estimated from 4 and 8 jobs.) What a "
        "job's non-training time is made of, measured here in one process:",
        "",
        "| per job | seconds |",
        "|---|---:|",
        f"| config loading, Hydra's (`load_sweep_config`, which Hydra's basic sweeper and "
        f"launcher each call: twice per job) | 2 × {configs['hydra']:.3f} |",
        f"| config loading, regexp's sweeper and launcher "
        f"(`regexp.hydra_app.sweeper.ConfigCache`: one "
        f"composition per regularizer, then copies) | {configs['cache']:.3f} + "
        f"{configs['cache_again']:.3f} |",
        "| writing the run directory (`regexp.runs.run_files.finish_run`: metrics, checkpoint, "
        f"three figures) | {default['finish']:.2f} |",
        "",
        "With `basic` each job also pays one Hydra config load (the launcher's); the "
        "batched launcher writes a large sweep's jobs in one worker process per core.",
        "",
        f"Targets (issue #6): at least 30× faster than sequential: "
        f"{'met' if speedup >= 30 else 'NOT met'} for training against autograd `fit` "
        f"({speedup:.1f}×; {single_sweep / wall:.1f}× against the single-run engine), "
        f"{'met' if cli_speedup >= 30 else 'NOT met'} for the whole CLI sweep "
        f"({cli_speedup:.1f}×); within 3× of the compute limit: "
        f"{'met' if wall / limit_1 <= 3 else 'NOT met'} ({wall / limit_1:.1f}×).",
        "",
        "How the estimates are made. Sequential training: one full 200-epoch run per "
        "regularizer (λ=1e-3, seed 0) × 27 jobs each (the time per step does not depend on λ "
        "or the seed); autograd `fit`: "
        + ", ".join(f"{r} {t:.2f} s" for r, t in seq.items())
        + "; `fit_setup`: "
        + ", ".join(f"{r} {t:.2f} s" for r, t in single.items())
        + ".",
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
        "## One default run (`regexp train`: sgl, λ=1e-3, 200 epochs)",
        "",
        "The whole command as one process, from its start to its exit "
        "(`benchmarks/run_parts.py` stamps the end of each part), and a plain PyTorch loop "
        "on the same training rows (`benchmarks/plain_loop.py`: the same MLP, "
        "`torch.optim.Adam`, `F.cross_entropy`, batch 32, 200 epochs, no penalty, no "
        "validation, one thread), each run 3 times in turn; the pair with the median "
        "fit / loop ratio shown:",
        "",
        "| part | wall s | CPU s |",
        "|---|---:|---:|",
    ]
    for name, label in PARTS.items():
        lines.append(f"| {label} | {cmd['wall'][name]:.2f} | {cmd['cpu'][name]:.2f} |")
    w, c = cmd["wall"], cmd["cpu"]
    lines += [
        f"| the interpreter's exit | {w['exit']:.2f} | {c['exit']:.2f} |",
        f"| **whole command** | **{w['total']:.2f}** | **{c['total']:.2f}** |",
        f"| **outside fit** | **{outside['wall']:.2f}** | **{outside['cpu']:.2f}** |",
        f"| outside fit, the first run of a data setting (an empty data cache: data "
        f"{cold['wall']['data']:.2f} s, with scikit-learn's import) | "
        f"{cold['wall']['total'] - cold['wall']['fit']:.2f} | "
        f"{cold['cpu']['total'] - cold['cpu']['fit']:.2f} |",
        f"| plain PyTorch loop, training only | {loop['wall']:.2f} | {loop['cpu']:.2f} |",
        f"| **fit / plain loop** | **{fit_ratio['wall']:.2f}×** | **{fit_ratio['cpu']:.2f}×** |",
        "| fit / plain loop (wall) of each of the 3 pairs | "
        + ", ".join(f"{r:.2f}×" for r in run_ratios)
        + " | |",
        "",
        f"Targets (issue #15): fit at most 0.5× the plain loop: "
        f"{'met' if fit_ratio['wall'] <= 0.5 else 'NOT met'} ({fit_ratio['wall']:.2f}×); at "
        f"most 2.5 s of the whole command outside fit: "
        f"{'met' if outside['wall'] <= 2.5 else 'NOT met'} ({outside['wall']:.2f} s wall, "
        f"{outside['cpu']:.2f} s CPU). On a loaded machine wall time exceeds CPU time: the "
        "process waits for a core.",
        "",
        f"Imports, from `python -X importtime` on the same command (a separate run; "
        f"importtime adds its own overhead): {sum(imports.values()):.2f} s in all, "
        + ", ".join(f"{g} {t:.2f} s" for g, t in import_parts.items())
        + ".",
        "",
        f"In-process, `fit_setup` took {default['fit']:.2f} s; the run's compute limit at 1 "
        f"thread is {run_limit:.2f} s, a ratio of {default['fit'] / run_limit:.0f}×: with one "
        "small model per step the time goes to per-operation overhead, not arithmetic.",
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
        f"## Engines (issue 19; {engine['epochs']} epochs each, one thread)",
        "",
        "| engine | penalty mode s | proximal mode (Adam's metric) s | proximal / penalty |",
        "|---|---:|---:|---:|",
        *(
            f"| {e} | {m['penalty']:.2f} | {m['proximal']:.2f} | {m['ratio']:.2f}× |"
            for e, m in engine["modes"].items()
        ),
        "",
        f"Target: proximal mode under Adam ≤ 1.5× penalty mode with the default engine: "
        f"{'met' if engine['modes']['fast']['ratio'] <= 1.5 else 'NOT met'}.",
        "",
        "| N (fast engine, one stack) | ms per model-epoch |",
        "|---:|---:|",
        *(f"| {n} | {ms:.2f} |" for n, ms in engine["per_n"].items()),
        "",
        "## GPU",
        "",
        "Not measured: no GPU was available to this run. The engine is device-agnostic "
        "(`trainer.device=cuda`) but was not checked on CUDA.",
        "",
        f"Benchmark wall time: {time.perf_counter() - start:.0f} s.",
        "",
    ]
    cache.cleanup()
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", type=int, help="internal: train N stacked models")
    parser.add_argument("--threads", type=int, default=1, help="internal: torch threads")
    parser.add_argument("--plain", action="store_true", help="internal: regularizer=none")
    parser.add_argument("--parts", action="store_true", help="internal: time matmuls, Adam")
    parser.add_argument("--configs", action="store_true", help="internal: time config loading")
    parser.add_argument(
        "--engines", action="store_true", help="only the engine targets (issue 19), as JSON"
    )
    args = parser.parse_args()
    if args.engines:
        print(json.dumps(engines()))
    elif args.worker:
        print(json.dumps(worker(args.worker, args.threads, args.plain)))
    elif args.parts:
        print(json.dumps(parts()))
    elif args.configs:
        print(json.dumps(config_loading()))
    else:
        main()
