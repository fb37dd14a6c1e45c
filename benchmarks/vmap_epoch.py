"""Milliseconds per model-epoch of the vmap engine against the stacked (fast) engine. Not a test.

    python benchmarks/vmap_epoch.py [--n 108] [--epochs 3] [--reps 2]

The stack: the first ``n`` jobs of the 108-job sweep of BENCHMARKS.md (l1, l2,
group_lasso, sgl × 9 λ × seeds 0, 1, 2; the default MLP 64-40-20-10 on digits, Adam,
batch 32, penalty mode), one thread. Each engine trains the same initial weights for
``epochs`` epochs with per-epoch validation, ``reps`` times alternately; the best wall
time of each is divided by ``n · epochs``. Also prints the largest parameter difference
between the two engines' results (float reordering only).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from regexp.train import loop as train
from regexp.train.stacked import fit as batched
from regexp.train.vmap import VmapStep

REGS = ["l1", "l2", "group_lasso", "sgl"]
LAMBDAS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BATCH = 32


def configs(n: int, epochs: int) -> list[dict]:
    jobs = [
        [f"regularizer={r}", f"lambda={lam}", f"seed={s}", f"trainer.epochs={epochs}"]
        for s in range(-(-n // 36))
        for r in REGS
        for lam in LAMBDAS
    ][:n]
    with initialize_config_module("regexp.conf", version_base="1.3"):
        return [OmegaConf.to_container(compose("config", o), resolve=True) for o in jobs]


def vmap_fit(members: list, data, opt_cfg: dict, epochs: int) -> None:
    """The epochs of :func:`regexp.train.loop.fit` (order, steps, penalty, validation)."""
    step = VmapStep(members, data, opt_cfg)
    n = len(data.y_train)
    gens = [torch.Generator().manual_seed(m.seed) for m in members]
    for _ in range(epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in gens])
        total = None
        for i in range(0, n, BATCH):
            loss = step.step(order[:, i : i + BATCH])
            total = loss if total is None else total + loss
        total.tolist()
        step.penalty().tolist()
        step.scores("val")
    step.finish()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=108)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfgs = configs(args.n, args.epochs)
    members, data = [], None
    for cfg in cfgs:
        s = train.prepare(cfg, data)
        data = s.data
        members.append(batched.Member.from_setup(cfg, s, torch.get_rng_state()))
    start = [copy.deepcopy(m.model) for m in members]
    times: dict[str, list[float]] = {"stacked": [], "vmap": []}
    finals: dict[str, list] = {}
    for _ in range(args.reps):
        for engine in ("stacked", "vmap"):
            for m, s0 in zip(members, start, strict=True):
                m.model.load_state_dict(s0.state_dict())
            t = time.perf_counter()
            if engine == "stacked":
                batched.fit_stacked(members, data, "relu", cfgs[0]["optimizer"], args.epochs, BATCH)
            else:
                vmap_fit(members, data, cfgs[0]["optimizer"], args.epochs)
            times[engine].append(time.perf_counter() - t)
            finals[engine] = [copy.deepcopy(m.model) for m in members]
    per = {k: min(v) / (args.n * args.epochs) * 1e3 for k, v in times.items()}
    diff = max(
        (p - q).abs().max().item()
        for a, b in zip(finals["stacked"], finals["vmap"], strict=True)
        for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )
    print(f"N={args.n}, {args.epochs} epochs, best of {args.reps}, 1 thread")
    for k, v in per.items():
        walls = ", ".join(f"{t:.2f}" for t in times[k])
        print(f"{k:8s} {v:.2f} ms per model-epoch (walls: {walls} s)")
    print(f"vmap / stacked: {per['vmap'] / per['stacked']:.2f}x; max |Δparam| {diff:.2e}")


if __name__ == "__main__":
    main()
