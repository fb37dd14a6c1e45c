"""The vmap engine against N independent autograd trainings (one model each, torch.optim)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from regexp.core.metric_prox import optimizer_metric
from regexp.core.metrics import data_loss
from regexp.core.regularizers import L1, GroupLasso, Regularizer, SparseGroupLasso
from regexp.data.prepare import Dataset
from regexp.train.vmap import VmapStep, unsupported

N_ROWS, BATCH = 60, 16  # a partial last minibatch of 12 rows
OPT = {"name": "adam", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8}


@dataclass
class Member:
    model: nn.Module
    reg: Regularizer
    mode: str
    lr: float
    prox_metric: str
    seed: int


def digits(image: bool) -> Dataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N_ROWS, 1, 8, 8, generator=gen)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 0.5).long()
    x = x if image else x.flatten(1)
    names = [f"px{i}" for i in range(64)]
    return Dataset("toy", "classification", names, x, y, x[:20], y[:20], x[:20], y[:20], 3)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 3))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(3 * 4 * 4, 3),
    )  # fmt: skip


def reference(m: Member, data: Dataset, opt_cfg: dict) -> nn.Module:
    """One epoch of model ``m`` alone: autograd, torch.optim.Adam, the regularizer's prox."""
    model = copy.deepcopy(m.model)
    opt = torch.optim.Adam(model.parameters(), lr=m.lr, betas=tuple(opt_cfg["betas"]))
    order = torch.randperm(N_ROWS, generator=torch.Generator().manual_seed(m.seed))
    for i in range(0, N_ROWS, BATCH):
        idx = order[i : i + BATCH]
        loss = data_loss(model(data.x_train[idx]), data.y_train[idx], data.task)
        if m.mode == "penalty":
            loss = loss + m.reg(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if m.mode == "proximal" and m.prox_metric == "adaptive":
            m.reg.prox_metric_(model, m.lr, lambda q: optimizer_metric(opt, q))
        elif m.mode == "proximal":
            m.reg.prox_(model, m.lr)
    return model


def vmap_epoch(members: list[Member], data: Dataset) -> None:
    step = VmapStep(members, data, OPT)
    gens = [torch.Generator().manual_seed(m.seed) for m in members]
    order = torch.stack([torch.randperm(N_ROWS, generator=g) for g in gens])
    for i in range(0, N_ROWS, BATCH):
        step.step(order[:, i : i + BATCH])
    step.finish()


REGS = [L1(0.01), GroupLasso(0.02), SparseGroupLasso(0.01)]


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize(
    ("mode", "metric"),
    [("penalty", "identity"), ("proximal", "identity"), ("proximal", "adaptive")],
)
def test_one_epoch_within_1e5_of_independent_autograd_runs(arch, mode, metric) -> None:
    data = digits(image=arch == "cnn")
    members = []
    for k, reg in enumerate(REGS * 2):  # the same regularizer at two λ and lr: two runs
        torch.manual_seed(k)
        scale = 1 + k // len(REGS)
        reg = type(reg)(reg.strength * scale)
        model = mlp() if arch == "mlp" else cnn()
        members.append(Member(model, reg, mode, 0.01 * scale, metric, seed=10 + k))
    refs = [reference(m, data, OPT) for m in members]
    vmap_epoch(members, data)
    zeros = 0
    for m, ref in zip(members, refs, strict=True):
        for (name, p), q in zip(m.model.named_parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-5, msg=name)
            zeros += int((q == 0).sum())
    if mode == "proximal":
        assert zeros > 0  # the proximal steps put weights at exact zeros


def test_penalty_and_scores_are_each_models_own() -> None:
    data = digits(image=True)
    members = []
    for k, reg in enumerate(REGS):
        torch.manual_seed(k)
        members.append(Member(cnn(), reg, "penalty", 0.01, "identity", seed=k))
    step = VmapStep(members, data, OPT)
    pen, val = step.penalty(), step.scores("val")
    for k, m in enumerate(members):
        assert pen[k].item() == pytest.approx(m.reg(m.model).item(), rel=1e-6)
        out = m.model(data.x_val)
        loss = torch.nn.functional.cross_entropy(out, data.y_val).item()
        acc = (out.argmax(-1) == data.y_val).double().mean().item()
        assert val["loss"][k].item() == pytest.approx(loss, rel=1e-6)
        assert val["accuracy"][k].item() == acc


def test_keep_and_restore_are_per_model() -> None:
    data = digits(image=False)
    members = [Member(mlp(), L1(0.01), "penalty", 0.01, "identity", seed=k) for k in range(3)]
    start = [copy.deepcopy(m.model) for m in members]
    step = VmapStep(members, data, OPT)
    step.keep("best", torch.tensor([True, False, True]))
    step.step(torch.arange(2 * BATCH).view(2, BATCH).repeat(2, 1)[:3])
    step.restore("best", torch.tensor([True, False, False]))
    step.finish()
    assert torch.equal(members[0].model[0].weight, start[0][0].weight)
    assert not torch.equal(members[1].model[0].weight, start[1][0].weight)
    assert not torch.equal(members[2].model[0].weight, start[2][0].weight)


def test_refuses_what_it_cannot_replay_and_mixed_architectures() -> None:
    data = digits(image=False)

    class Net(nn.Module):  # dropout outside an nn.Sequential: its draw order is unknown
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.drop = nn.Linear(64, 3), nn.Dropout(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(self.drop(x))

    assert unsupported(nn.Sequential(nn.Linear(64, 4), nn.Dropout(0.5))) is None
    assert "only nn.Dropout's masks" in unsupported(nn.Sequential(nn.Dropout1d(0.5)))
    with pytest.raises(ValueError, match=r"cannot train this model: dropout \(drop: p=0\.5\) in"):
        VmapStep([Member(Net(), L1(0.1), "penalty", 0.1, "identity", 0)], data, OPT)
    pair = [Member(mlp(), L1(0.1), "penalty", 0.1, "identity", 0)] * 2
    pair[1] = Member(nn.Sequential(nn.Linear(64, 3)), L1(0.1), "penalty", 0.1, "identity", 0)
    with pytest.raises(ValueError, match="one architecture"):
        VmapStep(pair, data, OPT)


def test_one_stack_of_mixed_regularizers_modes_and_metrics() -> None:
    """Interleaved kinds (the engine regroups them internally) give each model its own run."""
    data = digits(image=True)
    kinds = [("penalty", "identity"), ("proximal", "identity"), ("proximal", "adaptive")]
    members = []
    for k in range(9):
        torch.manual_seed(100 + k)
        mode, metric = kinds[k % 3]
        reg = REGS[(k // 3) % 3]
        members.append(Member(cnn(), type(reg)(reg.strength * (1 + k)), mode, 0.01, metric, k))
    refs = [reference(m, data, OPT) for m in members]
    vmap_epoch(members, data)
    for m, ref in zip(members, refs, strict=True):
        for p, q in zip(m.model.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-5)
