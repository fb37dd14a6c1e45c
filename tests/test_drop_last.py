"""``trainer.drop_last``: the partial last minibatch of each epoch is skipped, in both engines.

The reference is a training loop written here from torch primitives (the permutation of
``regexp.train.loop.fit``'s seeded generator, full minibatches only); the fast engine
(one run, and a stack) is checked against the autograd one with the option on.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from regexp import config
from regexp.core.metrics import data_loss
from regexp.hydra_app.task import run_task as run
from regexp.train import loop as train
from regexp.train.stacked import fit as batched

SMALL = ["model.hidden=[16,8]", "trainer.batch_size=100", "trainer.drop_last=true"]


@pytest.mark.parametrize("engine", ["autograd", "fast"])
def test_drop_last_trains_on_full_minibatches_only(make_config, engine):
    cfg = make_config(
        *SMALL, "regularizer=l1", "trainer.epochs=2", "seed=3", f"trainer.engine={engine}"
    )
    s = train.prepare(cfg)
    n, b = len(s.data.y_train), cfg["trainer"]["batch_size"]
    assert n % b != 0  # there is a partial minibatch to drop
    ref = train.prepare(cfg)  # the same initial weights
    opt = torch.optim.Adam(ref.model.parameters(), lr=cfg["optimizer"]["lr"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    for _ in range(2):
        order = torch.randperm(n, generator=gen)
        for k in range(n // b):  # full minibatches only
            idx = order[k * b : (k + 1) * b]
            x, y = s.data.x_train[idx], s.data.y_train[idx]
            loss = data_loss(ref.model(x), y, "classification") + ref.reg(ref.model)
            opt.zero_grad()
            loss.backward()
            opt.step()
    result = train.fit_setup(cfg, s)
    for p, q in zip(s.model.parameters(), ref.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    if engine == "autograd":
        state = next(iter(s.optimizer.state.values()))
        assert int(state["step"]) == 2 * (n // b)
    assert len(result.history) == 2
    assert result.engine == engine


def test_stacked_engine_agrees_with_the_autograd_engine_with_drop_last(make_config):
    jobs = [
        ["regularizer=sgl", "lambda=3e-3"],
        ["regularizer=l1", "lambda=2e-3", "regularizer.mode=proximal"],
        ["regularizer=group_lasso", "lambda=4e-3", "regularizer.mode=proximal"],
        ["regularizer=sgl", "regularizer.mode=proximal", "regularizer.prox_metric=identity"],
    ]
    cfgs = [make_config(*SMALL, "trainer.epochs=2", *j, f"seed={k}") for k, j in enumerate(jobs)]
    members, data = [], None
    for cfg in cfgs:
        s = train.prepare(cfg, data)
        data = s.data
        members.append(batched.Member.from_setup(cfg, s, torch.get_rng_state()))
    tr = cfgs[0]["trainer"]
    results = batched.fit_stacked(
        members, data, "relu", cfgs[0]["optimizer"], 2, tr["batch_size"], drop_last=True
    )
    for cfg, member, result in zip(cfgs, members, results, strict=True):
        cfg = {**cfg, "trainer": {**cfg["trainer"], "engine": "autograd"}}
        ref = train.prepare(cfg)
        ref_result = train.fit_setup(cfg, ref)
        assert ref_result.engine == "autograd"
        for p, q in zip(ref.model.parameters(), member.model.parameters(), strict=True):
            torch.testing.assert_close(q, p, atol=1e-5, rtol=0)
        pd.testing.assert_frame_equal(result.history, ref_result.history, atol=1e-5, rtol=1e-5)


def test_drop_last_is_checked(make_config, tmp_path):
    cfg = make_config("trainer.drop_last=yes")
    with pytest.raises(ValueError) as err:
        config.validate(cfg)
    assert str(err.value) == "trainer.drop_last must be true or false, got 'yes'"
    cfg = make_config("trainer.drop_last=true", "trainer.batch_size=5000", "trainer.epochs=1")
    s = train.prepare(cfg)
    with pytest.raises(ValueError, match=f"batch_size 5000 > {len(s.data.y_train)} training rows"):
        train.fit_setup(cfg, s)


@pytest.mark.slow
def test_metrics_csv_records_drop_last(make_config, tmp_path):
    cfg = make_config(*SMALL, "trainer.epochs=1")
    row = run(cfg, tmp_path / "run")
    assert row["drop_last"] is True
    assert bool(pd.read_csv(tmp_path / "run" / "metrics.csv")["drop_last"].iloc[0]) is True
