"""Hand-written backpropagation (regexp.train.backprop) against the autograd loop.

Every reference is :func:`regexp.train.loop.fit`: autograd, ``torch.optim``'s own
optimizer and the regularizer's own penalty and prox on ``nn.Module`` parameters.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from regexp.core.regularizers import L1
from regexp.hydra_app.task import run_task as run
from regexp.runs.run_files import finish_run as finish
from regexp.train import backprop
from regexp.train import loop as train

SMALL = ["model.hidden=[16,8]", "trainer.batch_size=64"]


def config(*overrides: str) -> dict:
    with initialize_config_module("regexp.conf", version_base="1.3"):
        return OmegaConf.to_container(compose("config", list(overrides)), resolve=True)


def autograd(cfg: dict) -> tuple[torch.nn.Module, train.FitResult, train.Setup]:
    """The reference: ``prepare`` then the autograd loop with the ``torch.optim`` optimizer."""
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
    )
    return s.model, result, s


def closed_form(cfg: dict) -> tuple[torch.nn.Module, train.FitResult, train.Setup]:
    s = train.prepare(cfg)
    assert backprop.unsupported(s.model, s.reg, s.mode, s.opt_cfg) is None
    return s.model, train.fit_setup(cfg, s), s


CASES = [
    [f"regularizer={r}", f"regularizer.mode={m}", "lambda=3e-3"]
    for r in ("none", "l1", "l2", "elastic_net", "group_lasso", "sgl", "norm")
    for m in ("penalty", "proximal")
] + [
    ["regularizer=norm", "regularizer.p=3", "lambda=1e-2"],
    ["regularizer=norm", "regularizer.p=1", "regularizer.mode=proximal"],
    ["regularizer=weight_decay", "lambda=1e-2"],
    ["regularizer=weight_decay", "lambda=1e-2", "optimizer=adamw"],
    ["regularizer=l2", "optimizer=sgd", "optimizer.momentum=0.9", "optimizer.lr=0.05"],
    ["regularizer=weight_decay", "optimizer=sgd", "optimizer.lr=0.05", "lambda=1e-2"],
    ["regularizer=l1", "model.dropout=0.3", "seed=4"],
    ["regularizer=sgl", "regularizer.mode=proximal", "model.dropout=0.2"],
    ["model.activation=tanh", "model.init=glorot_normal"],
    ["model.activation=sigmoid"],
    ["model.activation=leaky_relu", "regularizer=group_lasso"],
    ["model.activation=elu", "model.dropout=0.1"],
    ["dataset=diabetes", "regularizer=sgl"],
    ["dataset=diabetes", "optimizer=adamw", "model.dropout=0.2"],
    ["model.hidden=[12]", "trainer.batch_size=50"],
    ["model.hidden=[20,12,6]", "regularizer=group_lasso", "regularizer.mode=proximal"],
]


@pytest.mark.slow
@pytest.mark.parametrize("overrides", CASES, ids=[" ".join(c) for c in CASES])
def test_one_epoch_matches_the_autograd_loop(overrides):
    # The single-run engine takes proximal steps in the identity metric; Adam's metric
    # (prox_metric=auto with Adam) trains with the autograd loop.
    cfg = config(*SMALL, "trainer.epochs=1", *overrides, "++regularizer.prox_metric=identity")
    ref_model, ref, _ = autograd(cfg)
    model, result, s = closed_form(cfg)
    for p, q in zip(ref_model.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=0)
        assert q.is_contiguous()  # the layers own their tensors again
    torch.testing.assert_close(
        torch.tensor(result.history.to_numpy()),
        torch.tensor(ref.history.to_numpy()),
        atol=1e-5,
        rtol=1e-5,
    )
    assert list(result.history.columns) == list(ref.history.columns)
    assert result.status == ref.status == "ok"
    assert s._optimizer is None  # no torch.optim optimizer was built


@pytest.mark.slow
def test_twenty_epochs_of_a_default_run_give_the_autograd_runs_metrics(tmp_path):
    cfg = config("trainer.epochs=20")
    row = run(cfg, tmp_path / "new", summary=False)
    model, result, s = autograd(cfg)
    ref = finish(cfg, tmp_path / "old", model, s.data, result)
    assert row["status"] == ref["status"] == "ok"
    assert abs(row["test_accuracy"] - ref["test_accuracy"]) <= 0.01
    assert abs(row["val_accuracy"] - ref["val_accuracy"]) <= 0.01
    new = pd.read_csv(tmp_path / "new" / "history.csv")
    old = pd.read_csv(tmp_path / "old" / "history.csv")
    assert len(new) == len(old) == 20
    torch.testing.assert_close(
        torch.tensor(new.to_numpy()), torch.tensor(old.to_numpy()), atol=1e-3, rtol=1e-3
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        # w ← (1 − 2·λ·lr)·w − …, |1 − 100| > 1: diverges within a few epochs
        ["optimizer=sgd", "optimizer.lr=0.05", "regularizer=l2", "lambda=1e3"],
        ["regularizer=l2", "lambda=1e-4", "optimizer.lr=1e-2", "trainer.early_stopping_patience=2"],
    ],
    ids=["diverges", "stops-early"],
)
def test_divergence_and_early_stopping_as_in_the_autograd_loop(overrides):
    cfg = config(*SMALL, "trainer.epochs=12", *overrides)
    ref_model, ref, _ = autograd(cfg)
    model, result, _ = closed_form(cfg)
    assert (result.status, len(result.history), result.notes) == (
        ref.status,
        len(ref.history),
        ref.notes,
    )
    assert len(ref.history) < 12
    if ref.status == "ok":  # early stopping restored the best epoch's weights
        for p, q in zip(ref_model.parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(q, p, atol=1e-5, rtol=0)
    else:
        assert ref.status == "diverged"


@pytest.mark.slow
def test_what_it_cannot_train_goes_to_the_autograd_loop():
    cfg = config(*SMALL, "trainer.epochs=1", "regularizer=l1")
    s = train.prepare(cfg)
    s.reg = L1(1e-3, params=["0.weight"])  # a library user's choice; no config key
    assert "regularizer.params" in backprop.unsupported(s.model, s.reg, s.mode, s.opt_cfg)
    result = train.fit_setup(cfg, s)
    assert result.status == "ok" and s._optimizer is not None
    odd = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.ReLU())
    assert "not an MLP" in backprop.unsupported(odd, s.reg, "penalty", cfg["optimizer"])
