"""The engines against the autograd reference, and ``trainer.engine``.

The reference is the autograd engine (:mod:`regexp.train.autograd`): the model's own
``forward``, ``loss.backward()``, ``torch.optim``'s optimizer and the regularizer's own
penalty and proximal step on ``nn.Module`` parameters. Every other engine must give its
numbers up to float reordering: within 1e-5 after one epoch and within 0.01 test
accuracy after 20 epochs, for every regularizer in both modes and both metrics.
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from regexp.core.regularizers import L1
from regexp.hydra_app.task import run_task as run
from regexp.results.identity import config_id
from regexp.train import loop as train
from regexp.train.evaluate import evaluate

SMALL = ["model.hidden=[16,8]", "trainer.batch_size=64"]
FAST = ["fast", "vmap"]  # every engine other than the reference


def cases(engines: list[str], overrides: list[list[str]]) -> list:
    """(engine, overrides) pairs."""
    return [pytest.param(e, o, id=f"{e}: {' '.join(o)}") for e in engines for o in overrides]


def config(*overrides: str) -> dict:
    with initialize_config_module("regexp.conf", version_base="1.3"):
        return OmegaConf.to_container(compose("config", list(overrides)), resolve=True)


def trained(cfg: dict, engine: str) -> tuple[torch.nn.Module, train.FitResult, train.Setup]:
    cfg = {**cfg, "trainer": {**cfg["trainer"], "engine": engine}}
    s = train.prepare(cfg)
    result = train.fit_setup(cfg, s)
    assert result.engine == engine
    return s.model, result, s


# Every regularizer in penalty mode, and in proximal mode in both metrics (identity, and
# Adam's diagonal metric); weight decay has no proximal mode.
REGS = ("none", "l1", "l2", "elastic_net", "group_lasso", "sgl", "norm")
EVERY = (
    [[f"regularizer={r}", "lambda=3e-3"] for r in (*REGS, "weight_decay")]
    + [
        [
            f"regularizer={r}",
            "regularizer.mode=proximal",
            f"regularizer.prox_metric={m}",
            "lambda=3e-3",
        ]
        for r in REGS
        for m in ("identity", "adaptive")
    ]
    + [["regularizer=norm", "regularizer.p=1", "regularizer.mode=proximal", "lambda=3e-3"]]
)
OTHERS = [
    ["regularizer=norm", "regularizer.p=3", "lambda=1e-2"],
    ["regularizer=weight_decay", "lambda=1e-2", "optimizer=adamw"],
    ["regularizer=sgl", "optimizer=adamw", "regularizer.mode=proximal"],
    ["regularizer=l2", "optimizer=sgd", "optimizer.momentum=0.9", "optimizer.lr=0.05"],
    ["regularizer=sgl", "optimizer=sgd", "optimizer.lr=0.05", "regularizer.mode=proximal"],
    ["regularizer=weight_decay", "optimizer=sgd", "optimizer.lr=0.05", "lambda=1e-2"],
    ["regularizer=l1", "model.dropout=0.3", "seed=4"],
    ["regularizer=sgl", "regularizer.mode=proximal", "model.dropout=0.2"],
    ["model.activation=tanh", "model.init=glorot_normal"],
    ["model.activation=sigmoid"],
    ["model.activation=leaky_relu", "regularizer=group_lasso"],
    ["model.activation=elu", "model.dropout=0.1"],
    ["dataset=diabetes", "regularizer=sgl"],
    ["dataset=diabetes", "regularizer=l1", "regularizer.mode=proximal"],
    ["dataset=diabetes", "optimizer=adamw", "model.dropout=0.2"],
    ["model.hidden=[12]", "trainer.batch_size=50"],
    ["model.hidden=[20,12,6]", "regularizer=group_lasso", "regularizer.mode=proximal"],
    ["trainer.drop_last=true", "trainer.batch_size=100", "regularizer=sgl"],
    ["regularizer=sgl", "+regularizer.params=[0.weight]"],
    ["regularizer=group_lasso", "+regularizer.params=[0.weight]", "regularizer.mode=proximal"],
    ["regularizer=l1", "+regularizer.params=[2.weight,4.weight]", "lambda=1e-2"],
]


def assert_same_run(a: tuple, b: tuple, atol: float) -> None:
    (model_a, res_a, _), (model_b, res_b, _) = a, b
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=atol, rtol=0)
    assert list(res_a.history.columns) == list(res_b.history.columns)
    torch.testing.assert_close(
        torch.tensor(res_b.history.to_numpy()),
        torch.tensor(res_a.history.to_numpy()),
        atol=atol,
        rtol=atol,
    )
    assert res_a.status == res_b.status == "ok"


@pytest.mark.parametrize(("engine", "overrides"), cases(FAST, EVERY + OTHERS))
def test_one_epoch_matches_the_autograd_reference(engine, overrides):
    cfg = config(*SMALL, "trainer.epochs=1", *overrides)
    ref = trained(cfg, "autograd")
    got = trained(cfg, engine)
    assert_same_run(ref, got, 1e-5)
    assert got[2]._optimizer is None  # no torch.optim optimizer was built
    if engine == "fast":
        for p in got[0].parameters():
            assert p.is_contiguous()


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "overrides"), cases(FAST, EVERY))
def test_twenty_epochs_give_the_autograd_references_test_accuracy(engine, overrides):
    cfg = config(*SMALL, "trainer.epochs=20", *overrides)
    ref, got = trained(cfg, "autograd"), trained(cfg, engine)
    accuracy = [evaluate(m, s.data, "test")["accuracy"] for m, _, s in (ref, got)]
    assert abs(accuracy[0] - accuracy[1]) <= 0.01
    assert len(ref[1].history) == len(got[1].history) == 20


@pytest.mark.slow
def test_twenty_epochs_of_a_default_run_give_the_autograd_runs_metrics(tmp_path):
    cfg = config("trainer.epochs=20")
    rows = {
        e: run({**cfg, "trainer": {**cfg["trainer"], "engine": e}}, tmp_path / e, summary=False)
        for e in ("autograd", "fast")
    }
    ref, row = rows["autograd"], rows["fast"]
    assert (row["engine"], ref["engine"]) == ("fast", "autograd")
    assert row["status"] == ref["status"] == "ok"
    assert abs(row["test_accuracy"] - ref["test_accuracy"]) <= 0.01
    assert abs(row["val_accuracy"] - ref["val_accuracy"]) <= 0.01
    new = pd.read_csv(tmp_path / "fast" / "history.csv")
    old = pd.read_csv(tmp_path / "autograd" / "history.csv")
    assert len(new) == len(old) == 20
    torch.testing.assert_close(
        torch.tensor(new.to_numpy()), torch.tensor(old.to_numpy()), atol=1e-3, rtol=1e-3
    )
    # The engine is recorded, and is not part of the run's identity.
    metrics = {e: pd.read_csv(tmp_path / e / "metrics.csv").iloc[0] for e in rows}
    assert metrics["fast"]["engine"] == "fast" and metrics["autograd"]["engine"] == "autograd"
    assert metrics["fast"]["config_id"] == metrics["autograd"]["config_id"] == config_id(cfg)


@pytest.mark.parametrize("engine", FAST)
@pytest.mark.parametrize(
    "overrides",
    [
        # w ← (1 − 2·λ·lr)·w − …, |1 − 100| > 1: diverges within a few epochs
        ["optimizer=sgd", "optimizer.lr=0.05", "regularizer=l2", "lambda=1e3"],
        ["regularizer=l2", "lambda=1e-4", "optimizer.lr=1e-2", "trainer.early_stopping_patience=2"],
    ],
    ids=["diverges", "stops-early"],
)
def test_divergence_and_early_stopping_as_in_the_autograd_reference(overrides, engine):
    cfg = config(*SMALL, "trainer.epochs=12", *overrides)
    ref_model, ref, _ = trained(cfg, "autograd")
    model, result, _ = trained(cfg, engine)
    assert (result.status, len(result.history), result.notes) == (
        ref.status,
        len(ref.history),
        ref.notes,
    )
    assert len(ref.history) < 12
    if ref.status == "ok":  # early stopping restored the best epoch's weights
        assert ref.notes["best_epoch"] < len(ref.history)
        for p, q in zip(ref_model.parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(q, p, atol=1e-5, rtol=0)
    else:
        assert ref.status == "diverged"


def test_auto_picks_the_fast_engine_and_says_why(caplog):
    cfg = config(*SMALL, "trainer.epochs=1")
    assert cfg["trainer"]["engine"] == "auto"
    s = train.prepare(cfg)
    with caplog.at_level(logging.INFO, logger="regexp.train.loop"):
        result = train.fit_setup(cfg, s)
    assert result.engine == "fast"
    lines = [r.getMessage() for r in caplog.records if r.name == "regexp.train.loop"]
    assert lines == ["engine fast: trainer.engine=auto: an MLP, hand-written backpropagation"]


def test_what_the_fast_engine_cannot_train_goes_to_autograd_or_is_refused(caplog):
    cfg = config(*SMALL, "trainer.epochs=1", "regularizer=l1")
    s = train.prepare(cfg)
    s.reg = L1(1e-3, params=["0.weight", "0.bias"])  # the fast engine regularizes weights
    with caplog.at_level(logging.INFO, logger="regexp.train.loop"):
        result = train.fit_setup(cfg, s)
    assert result.engine == "autograd" and s._optimizer is not None
    assert "the fast engine cannot train it: regularizer.params" in caplog.text
    fast = {**cfg, "trainer": {**cfg["trainer"], "engine": "fast"}}
    with pytest.raises(ValueError) as err:
        train.fit_setup(fast, s)
    assert str(err.value) == (
        "trainer.engine=fast cannot train this configuration: regularizer.params selects "
        "0.bias, not only nn.Linear weights; use trainer.engine=auto or autograd"
    )
    s = train.prepare(cfg)
    s.model = torch.nn.Sequential(torch.nn.Linear(64, 10), torch.nn.ReLU(), torch.nn.ReLU())
    assert train.choose_engine(cfg, s)[0] == "autograd"


def test_engine_is_checked_and_not_part_of_the_identity(make_config):
    from regexp import config as validation

    with pytest.raises(ValueError) as err:
        validation.validate(make_config("trainer.engine=jax"))
    assert str(err.value) == ("trainer.engine must be one of auto, fast, autograd, vmap, got 'jax'")
    ids = {config_id(make_config(f"trainer.engine={e}")) for e in ("auto", "fast", "autograd")}
    assert len(ids) == 1
    assert config_id(make_config("seed=1")) not in ids


def test_pruning_fine_tuning_runs_the_one_loop_and_keeps_pruned_columns_at_zero():
    from regexp.core.metrics import data_loss
    from regexp.reproduction.baselines import fine_tune_

    cfg = config(*SMALL, "regularizer=none", "trainer.batch_size=50")
    a, b = train.prepare(cfg), train.prepare(cfg)  # the same initial weights
    masks = [torch.ones(w.shape[1]) for w in (a.model[0].weight, a.model[2].weight)]
    masks += [torch.ones(a.model[4].weight.shape[1])]
    masks[0][::3] = 0  # prune every third input
    opt_cfg = cfg["optimizer"]
    fine_tune_(a.model, masks, a.data, 2, opt_cfg, 50, 7, False)
    # The reference, from torch primitives: Adam, a seeded permutation per epoch, masks.
    opt = torch.optim.Adam(b.model.parameters(), lr=opt_cfg["lr"])
    gen, n = torch.Generator().manual_seed(7), len(b.data.y_train)
    weights = [b.model[0].weight, b.model[2].weight, b.model[4].weight]
    for _ in range(2):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, 50):
            idx = order[i : i + 50]
            loss = data_loss(b.model(b.data.x_train[idx]), b.data.y_train[idx], "classification")
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for w, m in zip(weights, masks, strict=True):
                    w.mul_(m)
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    assert (a.model[0].weight[:, ::3] == 0).all()
    assert not a.model.training
