"""The stacked engine and ``hydra/launcher=batched`` against sequential reference runs.

Every reference is the ordinary sequential path (``regexp.train.loop.prepare`` + ``fit``, or
``regexp train -m`` with Hydra's basic launcher), run here independently of the stack.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module
from hypothesis import given
from hypothesis import strategies as st
from omegaconf import OmegaConf

from regexp.train import loop as train
from regexp.train.loop import FitResult
from regexp.train.stacked import fit as batched
from regexp.train.stacked.model import StackedMLP

SMALL = ["model.hidden=[16,8]", "trainer.batch_size=64"]
REGS = ["none", "l1", "l2", "elastic_net", "group_lasso", "sgl", "norm"]


def configs(jobs: list[list[str]]) -> list[dict]:
    with initialize_config_module("regexp.conf", version_base="1.3"):
        return [OmegaConf.to_container(compose("config", o), resolve=True) for o in jobs]


def every_regularizer(base: list[str]) -> list[list[str]]:
    """Every regularizer in both modes, weight decay, dropout, and three learning rates."""
    jobs = [
        [*base, f"regularizer={r}", f"regularizer.mode={m}", f"lambda={3e-3 * (1 + i)}"]
        for i, r in enumerate(REGS)
        for m in ("penalty", "proximal")
    ]
    jobs.append([*base, "regularizer=weight_decay", "lambda=1e-2"])
    jobs.append([*base, "regularizer=l1", "model.dropout=0.3", "optimizer.lr=3e-3"])
    jobs.append([*base, "regularizer=sgl", "regularizer.mode=proximal", "model.dropout=0.2"])
    jobs.append([*base, "regularizer=norm", "regularizer.p=1", "regularizer.mode=proximal"])
    return [[*j, f"seed={k}", f"optimizer.lr={1e-3 * (1 + k % 3)}"] for k, j in enumerate(jobs)]


def sequential(cfg: dict) -> tuple[torch.nn.Module, FitResult]:
    """The reference run: ``prepare``, then autograd ``fit`` with the torch.optim optimizer."""
    s = train.prepare(cfg)
    tr = cfg["trainer"]
    result = train.fit(
        s.model,
        s.data,
        s.reg,
        s.mode,
        s.optimizer,
        tr["epochs"],
        tr["batch_size"],
        cfg["seed"],
        s.patience,
        prox_metric=s.prox_metric,
        drop_last=s.drop_last,
    )
    return s.model, result


def stacked(
    cfgs: list[dict], layout_n: int | None = None
) -> tuple[list[batched.Member], list[FitResult]]:
    members, data = [], None
    for cfg in cfgs:
        s = train.prepare(cfg, data)
        data = s.data
        members.append(batched.Member.from_setup(cfg, s, torch.get_rng_state()))
    tr = cfgs[0]["trainer"]
    results = batched.fit_stacked(
        members,
        data,
        cfgs[0]["model"]["activation"],
        cfgs[0]["optimizer"],
        tr["epochs"],
        tr["batch_size"],
        tr["early_stopping_patience"],
        layout_n=layout_n,
    )
    return members, results


def test_initial_weights_are_those_of_the_sequential_runs():
    cfgs = configs([["model.init=glorot_normal", f"seed={s}"] for s in (0, 1, 7)])
    members, data = [], None
    for cfg in cfgs:
        s = train.prepare(cfg, data)
        data = s.data
        members.append(s.model)
    stack = StackedMLP(members, "relu")
    sizes = [64, *cfgs[0]["model"]["hidden"], 10]
    for n, cfg in enumerate(cfgs):
        # Lasagne's recipe by hand, from torch primitives: seed; the layers are created in
        # order (each draws torch's default init); then each weight is redrawn from
        # N(0, 2 / (fan_in + fan_out)) in layer order, and the biases are zero.
        torch.manual_seed(cfg["seed"])
        for a, b in itertools.pairwise(sizes):
            torch.nn.Linear(a, b)
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            expected = torch.empty(b, a).normal_(0, math.sqrt(2 / (a + b)))
            assert torch.equal(stack.weights[i][n], expected)
            assert not stack.biases[i][n].any()
    assert not torch.equal(stack.weights[0][0], stack.weights[0][1])


@pytest.mark.slow
def test_padded_and_per_layer_layouts_train_the_same_models():
    # A small stack keeps all its layers in one zero-padded block (one penalty, prox and
    # optimizer call per step instead of one per layer); a large one keeps a block per
    # layer. Both must train the same models (up to float reordering), every regularizer in
    # both modes, and the padding must stay exactly 0.
    cfgs = configs(every_regularizer([*SMALL, "trainer.epochs=3"]))
    out = {}
    for layout_n in (1, 10**6):
        members, data = [], None
        for cfg in cfgs:
            s = train.prepare(cfg, data)
            data = s.data
            members.append(batched.Member.from_setup(cfg, s, torch.get_rng_state()))
        step = batched.FastStep(members, data, "relu", cfgs[0]["optimizer"], layout_n)
        assert len(step.stack.blocks) == (1 if layout_n == 1 else 3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(20):
            idx = torch.randint(len(data.y_train), (len(members), 64), generator=gen)
            step.step(idx)
        out[layout_n] = [[w[n].clone() for w in step.stack.weights] for n in range(len(members))]
        if layout_n == 1:
            (blk,) = step.stack.blocks
            sizes = [(w.shape[1], w.shape[2]) for w in step.stack.weights]
            for k, (o, i) in enumerate(sizes):
                pad = blk.w[:, k].clone()
                pad[:, :o, :i] = 0
                assert not pad.any(), k  # nothing but zeros outside the layer's corner
    for padded, per_layer in zip(out[1], out[10**6], strict=True):
        for a, b in zip(padded, per_layer, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("layout_n", [1, 10**6], ids=["padded", "per-layer"])
def test_a_stack_mixing_regularizer_params_trains_each_model_as_its_sequential_run(layout_n):
    # regularizer.params picks which nn.Linear weights a model regularizes; in a stack each
    # model keeps its own choice (a coefficient of 0 on the other layers), in penalty mode
    # and in proximal mode in both metrics, in both memory layouts. The reference is the
    # autograd run, whose regularizer touches only the selected parameters.
    lam = ["lambda=1e-2"]
    chosen = ["[0.weight]", "[2.weight,4.weight]", "['*.weight']", "[4.weight]"]
    modes = [
        ["regularizer.mode=penalty"],
        ["regularizer.mode=proximal", "regularizer.prox_metric=identity"],
        ["regularizer.mode=proximal", "regularizer.prox_metric=adaptive"],
    ]
    jobs = [
        [
            *SMALL,
            "trainer.epochs=1",
            f"regularizer={r}",
            f"+regularizer.params={p}",
            *m,
            *lam,
            f"seed={k}",
        ]
        for k, (r, p, m) in enumerate(
            itertools.product(["l1", "group_lasso", "sgl", "elastic_net", "norm"], chosen, modes)
        )
    ]
    jobs.append([*SMALL, "trainer.epochs=1", "regularizer=sgl", "lambda=1e-2"])  # every layer
    cfgs = configs(jobs)
    members, results = stacked(cfgs, layout_n)
    for cfg, member, result in zip(cfgs, members, results, strict=True):
        model, ref = sequential(cfg)
        for p, q in zip(model.parameters(), member.model.parameters(), strict=True):
            torch.testing.assert_close(q, p, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            torch.tensor(result.history["penalty"].to_numpy()),
            torch.tensor(ref.history["penalty"].to_numpy()),
            atol=1e-6,
            rtol=1e-5,
        )


def test_the_fast_engine_refuses_params_beyond_linear_weights():
    (cfg,) = configs([[*SMALL, "regularizer=l1", "+regularizer.params=[0.weight,0.bias]"]])
    s = train.prepare(cfg)
    assert batched.unsupported(s) == "regularizer.params selects 0.bias, not only nn.Linear weights"
    with pytest.raises(ValueError, match=r"selects 0\.bias"):
        batched.regularized_layers(s.model, s.reg)
    s.reg.params = ("0.weight", "4.weight")  # what the engine then applies
    assert batched.regularized_layers(s.model, s.reg) == [True, False, True]


@pytest.mark.slow
@pytest.mark.parametrize(
    "base",
    [
        ["dataset=digits", "optimizer=adam"],
        ["dataset=digits", "optimizer=sgd", "optimizer.momentum=0.9"],
        ["dataset=diabetes", "optimizer=adamw"],
    ],
    ids=["digits-adam", "digits-sgd-momentum", "diabetes-adamw"],
)
def test_one_epoch_matches_sequential_fit_for_every_regularizer(base):
    cfgs = configs(every_regularizer([*base, *SMALL, "trainer.epochs=1"]))
    members, results = stacked(cfgs)
    for cfg, member, result in zip(cfgs, members, results, strict=True):
        model, ref = sequential(cfg)
        for p, q in zip(model.parameters(), member.model.parameters(), strict=True):
            torch.testing.assert_close(q, p, atol=1e-5, rtol=0)
        cols = [c for c in ref.history.columns if c != "epoch"]
        torch.testing.assert_close(
            torch.tensor(result.history[cols].to_numpy()),
            torch.tensor(ref.history[cols].to_numpy()),
            atol=1e-5,
            rtol=1e-5,
        )
        assert result.status == ref.status == "ok"


@pytest.mark.slow
def test_divergence_and_early_stopping_are_per_model():
    sgd = ["optimizer=sgd", "optimizer.lr=0.05", "regularizer=l2", *SMALL, "trainer.epochs=4"]
    adam = ["regularizer=l2", "lambda=1e-4", *SMALL, "trainer.epochs=12"]
    adam.append("trainer.early_stopping_patience=2")  # a stack-wide setting
    stacks = [
        configs(
            [
                [*sgd, "lambda=1e3", "seed=0"],  # w ← (1 − 2·λ·lr)·w − …, |1 − 100| > 1
                [*sgd, "seed=1"],
            ]
        ),
        configs(
            [
                [*adam, f"optimizer.lr={lr}", f"seed={s}"]
                for lr, s in [(1e-2, 0), (1e-2, 2), (3e-3, 1)]
            ]
        ),
    ]
    runs = []
    for cfgs in stacks:
        members, results = stacked(cfgs)
        for cfg, member, result in zip(cfgs, members, results, strict=True):
            model, ref = sequential(cfg)
            runs.append((ref.status, len(ref.history)))
            assert (result.status, len(result.history)) == runs[-1]
            assert result.notes == ref.notes
            if ref.status == "diverged":  # its weights are inf/nan by then
                continue
            for p, q in zip(model.parameters(), member.model.parameters(), strict=True):
                torch.testing.assert_close(q, p, atol=1e-5, rtol=0)
    statuses = [status for status, _ in runs]
    assert statuses == ["diverged", "ok", "ok", "ok", "ok"]
    epochs = [n for _, n in runs[2:]]
    assert epochs[0] < 12 and epochs[1] < 12 and epochs[0] != epochs[1] and epochs[2] == 12


def regexp_train(*args: str, cwd: Path) -> str:
    """Run ``regexp train -m ARGS``; return its log (stdout and stderr)."""
    env = {**os.environ, "REGEXP_DEBUG": ""}
    cmd = [sys.executable, "-m", "regexp.cli", "train", "-m", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr


def metrics(sweep: Path) -> pd.DataFrame:
    rows = [
        pd.read_csv(d / "metrics.csv")
        for d in sorted(sweep.iterdir())
        if d.is_dir() and d.name != ".regexp"
    ]
    return pd.concat(rows, ignore_index=True).drop(columns="train_seconds", errors="ignore")


@pytest.mark.slow
def test_batched_sweep_writes_the_sequential_sweeps_runs(tmp_path):
    sweep = [
        "regularizer=l1,sgl",
        "lambda=1e-3,-1,1e-2",
        "seed=0",
        "trainer.epochs=15",
        "model.hidden=[16,8]",
    ]
    regexp_train(*sweep, f"hydra.sweep.dir={tmp_path / 'seq'}", cwd=tmp_path)
    out = regexp_train(
        "hydra/launcher=batched", *sweep, f"hydra.sweep.dir={tmp_path / 'bat'}", cwd=tmp_path
    )
    assert "training 4 jobs (#0, #2-3, #5) as one stacked model" in out  # #1, #4: λ=-1
    assert out.count("trained 4 jobs (#0, #2-3, #5) in one stack: 4 ok") == 1  # once a stack
    for job in (0, 2, 3, 5):  # each job's own log says what its sequential run would say
        log = (tmp_path / "bat" / str(job) / "train.log").read_text()
        assert "dataset digits: 64 features, 10 classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), " in log
        assert "train/val/test = 1077/360/360 rows" in log and "metrics: status=ok" in log
        assert "in a stack of jobs #0, #2-3, #5" in log
    assert "job #1 runs alone: its config is invalid" in out
    seq, bat = metrics(tmp_path / "seq"), metrics(tmp_path / "bat")
    assert list(seq.columns) == list(bat.columns) and len(bat) == 6
    ok = seq["status"] == "ok"
    assert (bat["status"] == seq["status"]).all() and ok.sum() == 4
    failed = seq.loc[~ok].drop(columns=[c for c in seq if seq[c].isna().all()])
    pd.testing.assert_frame_equal(bat.loc[~ok, failed.columns], failed)
    assert (bat.loc[ok, "test_accuracy"] - seq.loc[ok, "test_accuracy"]).abs().max() <= 0.01
    files = {p.relative_to(tmp_path / "seq") for p in (tmp_path / "seq").rglob("*")}
    assert files == {p.relative_to(tmp_path / "bat") for p in (tmp_path / "bat").rglob("*")}
    assert {"model.pt", "history.csv", "sparsity.csv", "metrics.csv"} <= {
        p.name for p in (tmp_path / "bat" / "0").iterdir()
    }

    # Again, with the configs loaded and the outputs written in 2 worker processes.
    again = tmp_path / "again"
    workers = ["hydra.launcher.n_jobs=2", "hydra.launcher.parallel_from=2"]
    out = regexp_train(
        "hydra/launcher=batched", *sweep, *workers, f"hydra.sweep.dir={again}", cwd=tmp_path
    )
    assert "configs and outputs in 2 processes" in out
    assert "worker processes failed" not in out  # written by the workers, not the fallback
    pd.testing.assert_frame_equal(metrics(again), bat)  # deterministic, wherever written
    assert files == {p.relative_to(again) for p in again.rglob("*")}
    for name in ("history.csv", "sparsity.csv"):
        for job in ("0", "3"):
            assert (again / job / name).read_bytes() == (tmp_path / "bat" / job / name).read_bytes()
    out = regexp_train(
        "hydra/launcher=batched", *sweep, "resume=true", f"hydra.sweep.dir={again}", cwd=tmp_path
    )
    assert out.count("is complete, skipping") == 4
    assert "stacked model" not in out


def test_launcher_goes_on_in_process_when_the_workers_fail(caplog):
    import operator
    import threading

    from joblib import Parallel
    from omegaconf import OmegaConf

    from hydra_plugins.regexp_launcher.batched_launcher import BatchedLauncher

    launcher = BatchedLauncher(n_jobs=2)
    launcher.config = OmegaConf.create({"hydra": {"hydra_logging": None, "verbose": False}})
    launcher.parallel = Parallel(n_jobs=2, backend="loky")
    lock = threading.Lock()  # does not pickle: the task cannot reach a worker
    assert launcher._in_workers(operator.is_, [(None,), (lock,)]) == [True, False]
    assert "worker processes failed (PicklingError" in caplog.text
    assert launcher.parallel is None  # the rest of the sweep stays in this process


def test_launcher_rejects_a_bad_worker_count():
    from hydra_plugins.regexp_launcher.batched_launcher import BatchedLauncher

    with pytest.raises(ValueError, match=re.escape("n_jobs must be -1 or >= 1, got 0")):
        BatchedLauncher(n_jobs=0)


@pytest.mark.slow
def test_stacked_training_is_bit_identical_at_one_and_two_threads():
    # The launcher gives a stack its share of the cores; that must not change its numbers.
    # Wide layers, so that the stack's tensors are large enough for torch to split them.
    base = ["model.hidden=[128,64]", "trainer.batch_size=256", "trainer.epochs=1"]
    cfgs = configs(every_regularizer(base))
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            members, results = stacked(cfgs)
            params = [torch.cat([p.flatten() for p in m.model.parameters()]) for m in members]
            runs.append((params, [r.history for r in results]))
    finally:
        torch.set_num_threads(threads)
    (p1, h1), (p2, h2) = runs
    assert all(torch.equal(a, b) for a, b in zip(p1, p2, strict=True))
    for a, b in zip(h1, h2, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_stack_threads_share_the_launchers_cores_only_with_large_models():
    from regexp.hydra_app.launcher import stack_threads
    from regexp.hydra_app.stack_plan import THREADS_FROM_MACS

    big = THREADS_FROM_MACS
    assert stack_threads(cores=2, trainings=1, workers=2, macs=big) == 2  # a stack by itself
    assert stack_threads(cores=2, trainings=1, workers=1, macs=big) == 2
    assert stack_threads(cores=2, trainings=4, workers=1, macs=big) == 2  # one after another
    assert stack_threads(cores=2, trainings=4, workers=2, macs=big) == 1  # two at a time
    assert stack_threads(cores=16, trainings=3, workers=16, macs=big) == 5  # 3 side by side
    assert stack_threads(cores=16, trainings=40, workers=16, macs=big) == 1
    assert stack_threads(cores=1, trainings=5, workers=1, macs=big) == 1
    # Small models: processes, never threads, whatever the cores.
    assert stack_threads(cores=16, trainings=1, workers=1, macs=big - 1) == 1
    assert stack_threads(cores=2, trainings=1, workers=2, macs=big - 1) == 1


def test_step_macs_is_the_forward_passs_multiply_adds(tmp_path):
    from regexp.hydra_app import stack_plan as stacks

    cfgs = configs([["model.hidden=[40,20]", "trainer.batch_size=32", f"seed={s}"] for s in (0, 1)])
    groups, _ = stacks.plan([stacks.StackJob(i, c, tmp_path) for i, c in enumerate(cfgs)])
    # digits: 64 inputs, 10 classes; by hand: 32 · (64·40 + 40·20 + 20·10)
    assert stacks.step_macs(groups[0][0]) == 32 * (2560 + 800 + 200) == 113920


@pytest.mark.slow
def test_split_cuts_stacks_at_multiples_of_16_models_in_the_engines_order(tmp_path):
    from regexp.hydra_app.stack_plan import StackJob, plan, split

    # 40 l1 jobs, then 32 jobs alternating l1 and sgl (the engine stacks l1 before sgl).
    l1 = configs([[*SMALL, "regularizer=l1", f"seed={s}"] for s in range(40)])
    mixed = configs([[*SMALL, f"regularizer={('l1', 'sgl')[s % 2]}", "model.hidden=[8]",
                      f"seed={s}"] for s in range(32)])  # fmt: skip
    jobs = [StackJob(i, c, tmp_path / str(i)) for i, c in enumerate(l1 + mixed)]
    groups, alone = plan(jobs)
    assert [len(g) for g in groups] == [40, 32] and not alone

    def idx(parts: list[list[StackJob]]) -> list[list[int]]:
        return [[j.idx for j in part] for part in parts]

    # 40 for 2 workers: parts of 20 wanted, cut at 16 (the multiple of 16 nearest 20).
    assert idx(split(groups[:1], workers=2)) == [list(range(16, 40)), list(range(16))]
    assert idx(split(groups[:1], workers=1)) == [list(range(40))]
    assert idx(split(groups[:1], workers=40)) == [list(range(16)), list(range(16, 32)),
                                                  list(range(32, 40))]  # fmt: skip
    # The engine's order puts the 16 l1 jobs first: they make one part, the sgl jobs the other.
    assert idx(split(groups[1:], workers=2)) == [list(range(40, 72, 2)), list(range(41, 72, 2))]
    # A stack of 16 or fewer stays whole; 72 jobs and 8 alone for 4 workers: parts of 20.
    assert idx(split([groups[0][:16]], workers=16)) == [list(range(16))]
    parts = split(groups, workers=4, alone=8)
    assert [len(p) for p in parts] == [24, 16, 16, 16]
    assert sorted(j.idx for part in parts for j in part) == list(range(72))


@pytest.mark.slow
def test_a_stack_split_into_parts_trains_each_job_bit_for_bit_as_the_whole_stack(tmp_path):
    # The launcher trains parts of a stack in separate processes at one thread each: each
    # job's weights and history must be those of the whole stack, to the last bit.
    from regexp.hydra_app import stack_plan as stacks

    # 36 jobs of every regularizer and mode (a partial last minibatch each epoch), cut at
    # 16 and 32 in the engine's order: terms of the stack straddle the cuts.
    base = [*SMALL, "trainer.epochs=3"]
    cfgs = configs(every_regularizer(base) + every_regularizer([*base, "threshold=1e-2"]))

    def trained(workers: int) -> dict[int, tuple[torch.Tensor, pd.DataFrame, str]]:
        jobs = [stacks.StackJob(i, c, tmp_path) for i, c in enumerate(cfgs)]
        groups, alone = stacks.plan(jobs)
        assert len(groups) == 1 and not alone  # every regularizer, mode, lr in one stack
        parts = stacks.split(groups, workers)
        assert len(parts) == (1 if workers == 1 else 3)
        out = {}
        for part in parts:
            assert stacks.train(part)
            for job in part:
                params = torch.cat([p.flatten() for p in job.setup.model.parameters()])
                out[job.idx] = (params, job.result.history, job.result.status)
        return out

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as in the launcher's workers
        whole, split = trained(workers=1), trained(workers=3)
    finally:
        torch.set_num_threads(threads)
    assert sorted(whole) == sorted(split) == list(range(len(cfgs)))
    for idx, (params, history, status) in whole.items():
        assert torch.equal(split[idx][0], params), idx
        # Since the one training engine (merged 2026-12-04), the logged penalty value (and
        # so train_loss = data_loss + penalty) of a part can differ from the whole stack's
        # in float32's last bits (measured: at most 8.7e-8 relative); the weights, the
        # data loss and every validation number stay bit for bit.
        exact = ["epoch", "data_loss", "val_loss", "val_accuracy"]
        pd.testing.assert_frame_equal(split[idx][1][exact], history[exact], check_exact=True)
        pd.testing.assert_frame_equal(split[idx][1], history, check_exact=False, rtol=1e-6)
        assert split[idx][2] == status == "ok"


@given(cores=st.integers(1, 256), trainings=st.integers(1, 500), workers=st.integers(1, 256))
def test_stack_threads_share_the_launchers_cores(cores, trainings, workers):
    """The spec, not the formula: for models large enough for threads, the trainings that
    run at once (at most one per worker) share the cores without oversubscribing them,
    leave fewer idle cores than there are trainings, and each gets at least one thread;
    smaller models get one thread."""
    from regexp.hydra_app.launcher import stack_threads
    from regexp.hydra_app.stack_plan import THREADS_FROM_MACS

    small = stack_threads(cores, trainings, workers, macs=THREADS_FROM_MACS - 1)
    assert small == 1
    threads = stack_threads(
        cores=cores, trainings=trainings, workers=workers, macs=THREADS_FROM_MACS
    )
    at_once = min(workers, trainings)
    assert threads >= 1
    if at_once <= cores:
        assert threads * at_once <= cores  # no core oversubscribed
        assert cores - threads * at_once < at_once  # no thread left that one more could use
    else:
        assert threads == 1
    if at_once == 1:
        assert threads == cores  # a stack by itself, or one after another: every core


def test_a_stack_that_fails_to_train_hands_its_jobs_back(tmp_path, monkeypatch, caplog):
    from regexp.hydra_app import stack_plan as stacks
    from regexp.hydra_app.launcher import _train_stack

    monkeypatch.delenv("REGEXP_DEBUG", raising=False)
    cfgs = configs([[*SMALL, "trainer.epochs=1", f"seed={s}"] for s in (0, 1)])
    groups, alone = stacks.plan([stacks.StackJob(i, c, tmp_path) for i, c in enumerate(cfgs)])
    assert len(groups) == 1 and not alone
    groups[0][1].setup.model = torch.nn.Sequential(torch.nn.Linear(64, 10))  # cannot stack
    assert _train_stack(groups[0], torch.get_num_threads(), False) is None
    assert "stacked training failed (RuntimeError" in caplog.text  # the launcher runs them alone


def job_metrics(sweep: Path) -> pd.DataFrame:
    """:func:`metrics` indexed by job directory name."""
    out = metrics(sweep)
    out.index = sorted(d.name for d in sweep.iterdir() if d.is_dir() and d.name != ".regexp")
    return out


def _messages(log: Path, run_dir: Path) -> list[str]:
    """A job's log lines less their timestamps, run directory, training time and sweep
    progress line."""
    lines = [re.sub(r"^\[[^]]*\]", "", x) for x in log.read_text().splitlines()]
    lines = [re.sub(r"train_seconds=[^;,]*", "", x) for x in lines]
    return [x.replace(str(run_dir), "RUN") for x in lines if "regexp.hydra_app.lifecycle" not in x]


@pytest.mark.slow
def test_batched_sweep_trains_stacks_of_two_shapes_and_lone_jobs_side_by_side(tmp_path):
    # Per model.hidden: adam with prox_metric identity and adaptive stack; sgd identity is
    # the only job of its settings (it runs alone); sgd adaptive is invalid (it fails).
    sweep = [
        "model.hidden=[16,8],[8]",
        "optimizer=adam,sgd",
        "regularizer=l1",
        "regularizer.mode=proximal",
        "regularizer.prox_metric=identity,adaptive",
        "trainer.epochs=5",
    ]
    stacked_jobs, alone_jobs, failed_jobs = ["0", "1", "4", "5"], ["2", "6"], ["3", "7"]
    seq, side, here = tmp_path / "seq", tmp_path / "side", tmp_path / "here"
    regexp_train(*sweep, f"hydra.sweep.dir={seq}", cwd=tmp_path)  # the basic launcher
    workers = ["hydra.launcher.n_jobs=2", "hydra.launcher.parallel_from=2"]
    out = regexp_train(
        "hydra/launcher=batched", *sweep, *workers, f"hydra.sweep.dir={side}", cwd=tmp_path
    )
    assert "2 stacks (2 parts) and 2 jobs alone train side by side in 2 processes" in out
    assert "training 2 jobs (#0-1) as one stacked model, 1 torch thread(s)" in out
    assert "training 2 jobs (#4-5) as one stacked model, 1 torch thread(s)" in out
    assert "job #2 runs alone: no other job shares" in out
    assert "worker processes failed" not in out  # the lone jobs ran in the workers
    # The same sweep in this process, one training after another (small models: 1 thread).
    out = regexp_train("hydra/launcher=batched", *sweep, f"hydra.sweep.dir={here}", cwd=tmp_path)
    assert "training 2 jobs (#4-5) as one stacked model, 1 torch thread(s)" in out
    assert "side by side" not in out

    files = {p.relative_to(seq) for p in seq.rglob("*")}
    assert files == {p.relative_to(side) for p in side.rglob("*")}
    assert files == {p.relative_to(here) for p in here.rglob("*")}
    for job in stacked_jobs + alone_jobs + failed_jobs:
        for name in (".hydra/config.yaml", ".hydra/overrides.yaml"):
            assert (side / job / name).read_bytes() == (seq / job / name).read_bytes()
    # Jobs alone: their sequential runs, to the last bit, with the same log.
    m_seq, m_side, m_here = job_metrics(seq), job_metrics(side), job_metrics(here)
    pd.testing.assert_frame_equal(
        m_side.loc[alone_jobs + failed_jobs], m_seq.loc[alone_jobs + failed_jobs]
    )
    assert (m_seq.loc[failed_jobs, "status"] == "failed").all()
    assert (m_seq.loc[alone_jobs, "status"] == "ok").all()
    for job in alone_jobs:
        for name in ("history.csv", "sparsity.csv"):
            assert (side / job / name).read_bytes() == (seq / job / name).read_bytes(), name
        a, b = (torch.load(d / job / "model.pt", weights_only=True) for d in (side, seq))
        assert a.keys() == b.keys() and a["config"] == b["config"]
        for k, w in a["state_dict"].items():
            assert torch.equal(w, b["state_dict"][k])
    for job in alone_jobs + failed_jobs:
        assert _messages(side / job / "train.log", side / job) == _messages(
            seq / job / "train.log", seq / job
        )
    # Stacks trained side by side in workers: what one after another in this process gives.
    pd.testing.assert_frame_equal(m_side, m_here)
    for job in stacked_jobs:
        for name in ("history.csv", "sparsity.csv"):
            assert (side / job / name).read_bytes() == (here / job / name).read_bytes(), name
    ok = m_seq.loc[stacked_jobs, "test_accuracy"]
    assert (m_side.loc[stacked_jobs, "test_accuracy"] - ok).abs().max() <= 0.01


BLOCK_HOOK = '''
import os, threading
from pathlib import Path
from hydra.experimental.callback import Callback

class Block(Callback):
    """Lets job `free` through; every other job marks `<num>.<pid>` in `marks` and blocks."""

    def __init__(self, marks, free=0):
        self.marks, self.free = marks, free

    def on_job_start(self, config, **kwargs):
        if config.hydra.job.num != self.free:
            Path(self.marks, f"{config.hydra.job.num}.{os.getpid()}").write_text("")
            threading.Event().wait()
'''


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (its workers, loky's resource tracker), from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        out |= set(kids)
        todo += kids
    return out


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an exited child not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
@pytest.mark.slow
def test_workers_stop_when_the_sweep_is_terminated_or_killed(tmp_path, sig):
    import signal
    import time

    (tmp_path / "blockhook.py").write_text(BLOCK_HOOK)
    marks, sweep = tmp_path / "marks", tmp_path / "sweep"
    marks.mkdir()
    env = {**os.environ, "REGEXP_DEBUG": ""}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "regexp.cli", "train", "-m", "hydra/launcher=batched"]
    cmd += ["seed=0,1,2,3", "trainer.epochs=2", *SMALL, f"hydra.sweep.dir={sweep}"]
    cmd += ["hydra.launcher.n_jobs=2", "hydra.launcher.parallel_from=2"]
    cmd += [
        "+hydra.callbacks.block._target_=blockhook.Block",
        f"+hydra.callbacks.block.marks={marks}",
    ]
    below: set[int] = set()
    with (tmp_path / "err.txt").open("wb") as err_file:  # not a pipe: orphans would hold it
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err_file
        )
    try:
        deadline = time.monotonic() + 600
        while not any(marks.iterdir()):  # job #0 written, job #1 blocks in a worker
            assert proc.poll() is None, (tmp_path / "err.txt").read_text()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        worker = int(next(marks.iterdir()).name.split(".")[1])
        below = _descendants(proc.pid)
        assert worker in below
        proc.send_signal(getattr(signal, sig))
        proc.wait(timeout=120)
        deadline = time.monotonic() + 60  # the workers notice within a fraction of a second
        while any(_running(p) for p in below) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in below if _running(p)]
    finally:  # a failure leaves no process behind
        for pid in [proc.pid, *below]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    err = (tmp_path / "err.txt").read_text()
    assert (sweep / "0" / "metrics.csv").is_file()  # what finished is kept
    assert pd.read_csv(sweep / "0" / "metrics.csv")["status"].tolist() == ["ok"]
    assert not (sweep / "1" / "metrics.csv").exists()
    if sig == "SIGTERM":
        assert proc.returncode == 143
        lines = err.strip().splitlines()
        assert "Traceback" not in err
        assert lines[-1] == (
            f"regexp: terminated (SIGTERM); finished runs are kept in {sweep}. To continue a "
            "sweep, run the same command with resume=true"
        )
    else:
        assert proc.returncode == -signal.SIGKILL


def test_job_line_eta_counts_a_stacks_jobs_when_the_stack_ends():
    from regexp.runs.console import eta, job_line

    # 108 jobs, one stack of 54 trained in 50 s, its first job written: by hand, 50 s for
    # 54 jobs leaves 54 more at that pace (the old count, 1 job in 50 s: 107 · 50 s).
    assert eta(50.0, 54, 108) == 50.0
    assert eta(50.0, 108, 108) == 0.0
    assert eta(0.0, 0, 10) == 0.0
    row = {"regularizer": "l1", "lambda": 1e-3, "seed": 0, "status": "ok", "val_accuracy": 0.9}
    line = job_line(Path("7"), row, 1, 108, 50.0, trained=54)
    assert line.startswith("[....................] 1/108 0:50 ETA 0:50 | job 7: ")
    assert "ETA 1:29:10" in job_line(Path("7"), row, 1, 108, 50.0)  # a job trained alone
    assert "ETA 0:00" in job_line(Path("7"), row, 2, 108, 51.0, trained=108)


def test_a_stacks_jobs_count_as_trained_once_each(tmp_path):
    from regexp.runs import sweep_dir

    sweep_dir.start(tmp_path, resume=False)
    runs = [tmp_path / str(i) for i in range(4)]
    assert sweep_dir.job_trained(tmp_path, runs[:3]) == 3  # a stack of 3 ends
    assert sweep_dir.job_trained(tmp_path, [runs[1]]) == 3  # its job #1 is written
    assert sweep_dir.job_trained(tmp_path, [runs[3]]) == 4  # a job alone ends
    sweep_dir.start(tmp_path, resume=True)  # a new sweep counts from 0
    assert sweep_dir.job_trained(tmp_path, [runs[0]]) == 1
