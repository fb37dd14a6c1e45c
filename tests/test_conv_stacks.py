"""Conv-net stacks of the batched launcher (``regexp.hydra_app.stack_plan``): trained by
the vmap engine, each job must give the numbers of the same job trained alone by the
autograd reference (its own ``nn.Module``, ``torch.optim``, ``loss.backward()``).

The reference is independent of the stack: :func:`alone` trains one job with
``trainer.engine=autograd`` through :func:`regexp.train.loop.fit_setup`.
"""

from __future__ import annotations

import logging

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from regexp.hydra_app import stack_plan as stacks
from regexp.train import loop
from regexp.train.evaluate import evaluate

# digits as 1×8×8 images, the default conv net (8 and 16 channels, a linear head); batch
# 64: 17 steps an epoch, the last one partial (1077 training rows).
CONV = ["model=cnn", "dataset=digits_images", "trainer.batch_size=64"]
REGS = ("l1", "l2", "elastic_net", "group_lasso", "sgl", "norm")
KINDS = [
    pytest.param(["regularizer.mode=penalty"], id="penalty"),
    pytest.param(
        ["regularizer.mode=proximal", "regularizer.prox_metric=identity"], id="proximal-identity"
    ),
    pytest.param(
        ["regularizer.mode=proximal", "regularizer.prox_metric=adaptive"], id="proximal-adam"
    ),
]


def configs(jobs: list[list[str]]) -> list[dict]:
    with initialize_config_module("regexp.conf", version_base="1.3"):
        return [OmegaConf.to_container(compose("config", o), resolve=True) for o in jobs]


def alone(cfg: dict) -> tuple[torch.nn.Module, loop.FitResult, loop.Setup]:
    """The reference: the job trained by itself with the autograd engine."""
    cfg = {**cfg, "trainer": {**cfg["trainer"], "engine": "autograd"}}
    s = loop.prepare(cfg)
    result = loop.fit_setup(cfg, s)
    assert result.engine == "autograd"
    return s.model, result, s


def stacked(cfgs: list[dict], tmp_path) -> list[stacks.StackJob]:
    """The jobs planned and trained as the batched launcher does: one stack, vmap."""
    jobs = [stacks.StackJob(i, c, tmp_path / str(i)) for i, c in enumerate(cfgs)]
    groups, lone = stacks.plan(jobs)
    assert len(groups) == 1 and not lone and len(groups[0]) == len(cfgs)
    assert {j.engine for j in groups[0]} == {"vmap"}
    assert stacks.train(groups[0])
    assert {j.result.engine for j in jobs} == {"vmap"}
    return jobs


def assert_same_run(ref: tuple, job: stacks.StackJob, atol: float) -> None:
    model, result, _ = ref
    for (name, p), q in zip(model.named_parameters(), job.setup.model.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=atol, rtol=0, msg=f"job #{job.idx} {name}")
    got = job.result.history
    assert list(got.columns) == list(result.history.columns)
    torch.testing.assert_close(
        torch.tensor(got.to_numpy()), torch.tensor(result.history.to_numpy()), atol=atol, rtol=0
    )
    assert (job.result.status, job.result.notes) == (result.status, result.notes)


@pytest.mark.parametrize("kind", KINDS)
def test_one_epoch_of_a_conv_stack_is_within_1e5_of_each_job_alone(kind, tmp_path):
    # Every regularizer twice: different λ, learning rate and seed in one stack.
    jobs = [
        [*CONV, *kind, f"regularizer={r}", f"lambda={lam}", f"optimizer.lr={lr}", f"seed={k}"]
        for k, (r, lam, lr) in enumerate(
            [(r, 3e-3, 0.01) for r in REGS] + [(r, 2e-2, 0.02) for r in REGS]
        )
    ]
    cfgs = configs([[*j, "trainer.epochs=1"] for j in jobs])
    refs = [alone(c) for c in cfgs]
    for ref, job in zip(refs, stacked(cfgs, tmp_path), strict=True):
        assert_same_run(ref, job, 1e-5)
    if "regularizer.mode=proximal" in kind:  # the proximal steps zero whole channels' weights
        assert sum(int((p == 0).sum()) for m, _, _ in refs for p in m.parameters()) > 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_twenty_epochs_of_a_conv_stack_give_each_jobs_test_accuracy(kind, tmp_path):
    cfgs = configs(
        [[*CONV, *kind, f"regularizer={r}", "lambda=3e-3", "trainer.epochs=20"] for r in REGS]
    )
    refs = [alone(c) for c in cfgs]
    for (model, result, s), job in zip(refs, stacked(cfgs, tmp_path), strict=True):
        ref_acc = evaluate(model, s.data, "test")["accuracy"]
        acc = evaluate(job.setup.model, job.setup.data, "test")["accuracy"]
        assert abs(acc - ref_acc) <= 0.01, job.cfg["regularizer"]
        assert len(job.result.history) == len(result.history) == 20
        assert ref_acc > 0.5  # trained: ten classes, chance is 0.1


def test_divergence_and_early_stopping_in_a_conv_stack_as_each_job_alone(tmp_path):
    # SGD, w ← (1 − 2·λ·lr)·w − …: λ = 1e3 at lr 0.05 diverges within a few epochs, and
    # must not touch the other models of its stack; patience 1 stops the others early.
    base = [*CONV, "optimizer=sgd", "trainer.epochs=12", "trainer.early_stopping_patience=1"]
    cfgs = configs(
        [
            [*base, "regularizer=l2", "lambda=1e3", "optimizer.lr=0.05"],
            # lr 0.5 here put the best epoch on a knife edge: float reordering (1 or 2
            # threads) moved it, and the restored weights with it (measured: 0.41 apart).
            [*base, "regularizer=l1", "lambda=1e-4", "optimizer.lr=0.2", "seed=1"],
            [*base, "regularizer=sgl", "lambda=1e-3", "optimizer.lr=0.1", "seed=2"],
            [*base, "regularizer=group_lasso", "lambda=1e-3", "optimizer.lr=0.4", "seed=3"],
        ]
    )
    refs = [alone(c) for c in cfgs]
    jobs = stacked(cfgs, tmp_path)
    assert refs[0][1].status == "diverged" and len(refs[0][1].history) < 12
    stopped = [r for _, r, _ in refs[1:] if 0 < r.notes["best_epoch"] < len(r.history) < 12]
    assert stopped  # some job stopped early and got its best epoch's weights back
    assert (jobs[0].result.status, len(jobs[0].result.history)) == (
        "diverged",
        len(refs[0][1].history),
    )
    for ref, job in zip(refs[1:], jobs[1:], strict=True):
        assert_same_run(ref, job, 1e-5)


def test_a_conv_stack_split_into_parts_trains_each_job_bit_for_bit(tmp_path):
    # The launcher trains a part of a stack per worker process: 24 jobs for 2 workers are
    # cut at 16; each job's weights and history must be the whole stack's, to the last bit.
    cfgs = configs(
        [
            [*CONV, f"regularizer={r}", f"lambda={lam}", f"seed={s}", "trainer.epochs=2"]
            for r in ("l1", "group_lasso", "sgl", "l2")
            for lam in (1e-4, 1e-2)
            for s in range(3)
        ]
    )

    def trained(workers: int) -> dict[int, tuple]:
        jobs = [stacks.StackJob(i, c, tmp_path) for i, c in enumerate(cfgs)]
        groups, _ = stacks.plan(jobs)
        parts = stacks.split(groups, workers)
        assert [len(p) for p in parts] == ([24] if workers == 1 else [16, 8])
        for part in parts:
            assert stacks.train(part)
        return {
            j.idx: (torch.cat([p.flatten() for p in j.setup.model.parameters()]), j.result)
            for j in jobs
        }

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as in the launcher's workers
        whole, parts = trained(1), trained(2)
    finally:
        torch.set_num_threads(threads)
    for idx, (params, result) in whole.items():
        assert torch.equal(parts[idx][0], params), idx
        assert parts[idx][1].history.equals(result.history), idx


def test_conv_jobs_with_dropout_stack_and_draw_each_jobs_own_masks(tmp_path):
    # model.dropout differs per job (it is a per-model key): each model's masks must be
    # the ones its own run draws from the global RNG after its init.
    cfgs = configs(
        [
            [*CONV, f"model.dropout={p}", f"regularizer={r}", f"seed={k}", "trainer.epochs=1"]
            for k, (p, r) in enumerate([(0.2, "l1"), (0.5, "sgl"), (0.1, "group_lasso")])
        ]
        + [[*CONV, "model.dropout=0.3", "seed=0", "trainer.epochs=1"]]  # seed 0 again
    )
    refs = [alone(c) for c in cfgs]
    for ref, job in zip(refs, stacked(cfgs, tmp_path), strict=True):
        assert_same_run(ref, job, 1e-5)
    # Without its masks a job would train elsewhere: the check can fail.
    (plain,) = configs([[*CONV, "regularizer=l1", "seed=0", "trainer.epochs=1"]])
    model = alone(plain)[0]
    pairs = zip(model.parameters(), refs[0][0].parameters(), strict=True)
    diff = max((p - q).abs().max() for p, q in pairs)
    assert diff > 1e-3


def test_jobs_no_engine_stacks_run_alone_and_say_why(tmp_path, caplog):
    cfgs = configs(
        [[*CONV, "model.dropout=0.2", "seed=0"]]  # alone: its architecture is the only one
        + [[*CONV, "trainer.engine=autograd", f"seed={s}"] for s in (0, 1)]
    )
    jobs = [stacks.StackJob(i, c, tmp_path / str(i)) for i, c in enumerate(cfgs)]
    with caplog.at_level(logging.INFO, logger="regexp.hydra_app.stack_plan"):
        groups, lone = stacks.plan(jobs)
    assert not groups and [j.idx for j in lone] == [1, 2, 0]
    plan_log = [r for r in caplog.records if r.name == "regexp.hydra_app.stack_plan"]
    assert [r.getMessage() for r in plan_log] == [
        "job #1 runs alone: engine autograd: trainer.engine=autograd (the reference)",
        "job #2 runs alone: engine autograd: trainer.engine=autograd (the reference)",
        "job #0 runs alone: no other job shares its engine (vmap), data, model, optimizer "
        "and trainer settings",
    ]


def test_what_vmap_cannot_train_runs_alone_by_autograd(tmp_path):
    (cfg,) = configs([[*CONV, "trainer.epochs=1"]])
    s = loop.prepare(cfg)
    s.model.insert(3, torch.nn.Dropout2d(0.2))  # a layer whose masks vmap does not replay
    engine, why = loop.choose_engine(cfg, s, n_models=4)
    assert (engine, why) == (
        "autograd",
        "trainer.engine=auto, and neither the fast engine (the model is not an MLP of "
        "regexp.model.mlp.mlp) nor the vmap engine (Dropout2d (3): only nn.Dropout's masks "
        "are replayed) can train it",
    )


def test_auto_takes_vmap_for_a_conv_stack_and_autograd_for_a_single_conv_run():
    (cfg,) = configs([[*CONV, "trainer.epochs=1"]])
    s = loop.prepare(cfg)
    assert loop.choose_engine(cfg, s) == (
        "autograd",
        "trainer.engine=auto, and the fast engine cannot train it: the model is not an MLP "
        "of regexp.model.mlp.mlp (a single run of another module trains faster by autograd "
        "than by vmap)",
    )
    assert loop.choose_engine(cfg, s, n_models=27) == (
        "vmap",
        "trainer.engine=auto, a stack of 27 models that the fast engine cannot train (the "
        "model is not an MLP of regexp.model.mlp.mlp): torch.func over the stacked copies",
    )
    (mlp,) = configs([["trainer.epochs=1"]])
    assert loop.choose_engine(mlp, loop.prepare(mlp), n_models=27)[0] == "fast"


def test_step_macs_counts_a_conv_nets_multiply_adds_by_hand(tmp_path):
    cfgs = configs([[*CONV, "trainer.batch_size=32", f"seed={s}"] for s in (0, 1)])
    groups, _ = stacks.plan([stacks.StackJob(i, c, tmp_path) for i, c in enumerate(cfgs)])
    # 1×8×8 → conv1 (same padding): 8 channels × 8·8 positions, each 1·3·3 multiply-adds;
    # pool → 8×4×4 → conv2: 16 × 4·4 outputs of 8·3·3; pool → 16×2×2 = 64 → 10 outputs.
    by_hand = 8 * 64 * 9 + 16 * 16 * 72 + 10 * 64
    assert stacks.step_macs(groups[0][0]) == 32 * by_hand == 32 * 23680
