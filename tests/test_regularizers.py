"""Penalties, gradients, validation and registry of regexp.regularizers vs numpy by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from regexp.core.regularizers import (
    L1,
    L2,
    REGULARIZERS,
    Coefficients,
    ElasticNet,
    GroupLasso,
    NoRegularizer,
    Norm,
    Regularizer,
    SparseGroupLasso,
    WeightDecay,
    group_norms,
    make_regularizer,
    penalty,
    selected_parameters,
)

W1 = np.array([[0.5, -1.0, 0.0, 2.0], [-0.3, 0.0, 0.0, 1.5], [0.2, 0.4, 0.0, -0.1]])
B1 = np.array([1.0, -2.0, 3.0])
W2 = np.array([[1.0, -2.0, 0.5], [0.0, 0.3, -0.7]])
B2 = np.array([-4.0, 5.0])


def make_net(w1: np.ndarray = W1, w2: np.ndarray = W2) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    with torch.no_grad():
        for p, v in zip(net.parameters(), (w1, B1, w2, B2), strict=True):
            p.copy_(torch.from_numpy(v))
    return net


def np_gl(w: np.ndarray) -> float:
    return math.sqrt(w.shape[0]) * np.linalg.norm(w, axis=0).sum()


def np_pnorm(w: np.ndarray, p: float) -> float:
    return (np.abs(w) ** p).sum() ** (1 / p)


def per_layer(f):  # sum of a numpy per-matrix formula over the two weights
    return lambda: f(W1) + f(W2)


PENALTIES = [
    (L1(0.1), per_layer(lambda w: 0.1 * np.abs(w).sum())),
    (L2(0.1), per_layer(lambda w: 0.1 * (w**2).sum())),
    (
        ElasticNet(0.1, l1_ratio=0.3),
        per_layer(lambda w: 0.1 * (0.3 * np.abs(w).sum() + 0.7 / 2 * (w**2).sum())),
    ),
    (GroupLasso(0.1), per_layer(lambda w: 0.1 * np_gl(w))),
    (SparseGroupLasso(0.1), per_layer(lambda w: 0.1 * (np_gl(w) + np.abs(w).sum()))),
    (Norm(0.1), per_layer(lambda w: 0.1 * np.sqrt((w**2).sum()))),
    (Norm(0.1, p=1), per_layer(lambda w: 0.1 * np.abs(w).sum())),
    (Norm(0.1, p=3), per_layer(lambda w: 0.1 * np_pnorm(w, 3))),
    (NoRegularizer(), lambda: 0.0),
    (WeightDecay(0.1), lambda: 0.0),
]


@pytest.mark.parametrize(("reg", "expected"), PENALTIES, ids=repr)
def test_penalty_matches_numpy_on_linear_weights_only(reg: Regularizer, expected) -> None:
    value = reg(make_net())
    assert value.dim() == 0
    np.testing.assert_allclose(value.item(), expected(), rtol=1e-12)


def test_norm_penalty_equals_torch_norm_unsquared() -> None:
    net = make_net()
    ref = sum(torch.norm(w, 3) for w in (net[0].weight, net[2].weight))
    torch.testing.assert_close(Norm(1.0, p=3)(net), ref, rtol=1e-12, atol=0)


def test_params_patterns_select_named_parameters_including_biases() -> None:
    net = make_net()
    got = L1(1.0, params=["0.*"])(net).item()
    np.testing.assert_allclose(got, np.abs(W1).sum() + np.abs(B1).sum(), rtol=1e-12)
    got = L2(1.0, params=["*.bias", "2.weight"])(net).item()
    np.testing.assert_allclose(got, (B1**2).sum() + (B2**2).sum() + (W2**2).sum(), rtol=1e-12)
    names = [n for n, _ in selected_parameters(net)]
    assert names == ["0.weight", "2.weight"]


def test_default_selection_skips_norm_layers_and_biases() -> None:
    net = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1))
    assert [n for n, _ in selected_parameters(net)] == ["0.weight", "2.weight"]


def test_unknown_params_pattern_raises_naming_it() -> None:
    with pytest.raises(ValueError, match=r"'nope\.\*' matches no parameter"):
        L1(0.1, params=["0.weight", "nope.*"])(make_net())


def test_group_penalty_rejects_non_2d_parameter() -> None:
    with pytest.raises(ValueError, match=r"2-D weights.*'0\.bias'"):
        GroupLasso(0.1, params=["0.bias"])(make_net())


W_DENSE = np.array([[0.5, -1.0, 0.7, 2.0], [-0.3, 0.2, -0.4, 1.5], [0.2, 0.4, 0.9, -0.1]])
GRADS = [
    (L1(0.2), lambda w: 0.2 * np.sign(w)),
    (L2(0.2), lambda w: 0.2 * 2 * w),
    (ElasticNet(0.2, 0.6), lambda w: 0.2 * (0.6 * np.sign(w) + 0.4 * w)),
    (GroupLasso(0.2), lambda w: 0.2 * math.sqrt(w.shape[0]) * w / np.linalg.norm(w, axis=0)),
    (
        SparseGroupLasso(0.2),
        lambda w: 0.2 * (math.sqrt(w.shape[0]) * w / np.linalg.norm(w, axis=0) + np.sign(w)),
    ),
    (Norm(0.2), lambda w: 0.2 * w / np.linalg.norm(w)),
    (Norm(0.2, p=3), lambda w: 0.2 * np.sign(w) * w**2 / np_pnorm(w, 3) ** 2),
]


@pytest.mark.parametrize(("reg", "grad"), GRADS, ids=repr)
def test_penalty_gradient_matches_numpy_analytic(reg: Regularizer, grad) -> None:
    net = make_net(W_DENSE)
    reg(net).backward()
    for w in (net[0].weight, net[2].weight):
        np.testing.assert_allclose(w.grad.numpy(), grad(w.detach().numpy()), rtol=1e-12)
    assert net[0].bias.grad is None


def test_penalty_gradient_matches_autograd_of_inline_formula() -> None:
    net, ref = make_net(W_DENSE), make_net(W_DENSE)
    SparseGroupLasso(0.3)(net).backward()
    loss = sum(
        0.3 * (w.shape[0] ** 0.5 * w.pow(2).sum(0).sqrt().sum() + w.abs().sum())
        for w in (ref[0].weight, ref[2].weight)
    )
    loss.backward()
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize("reg", [GroupLasso(0.1), SparseGroupLasso(0.1), Norm(0.1), Norm(0.1, p=3)])
@pytest.mark.parametrize("zero", ["column", "all"])
def test_no_nan_gradient_at_zero_weights(reg: Regularizer, zero: str) -> None:
    w1 = W1.copy() if zero == "column" else np.zeros_like(W1)  # W1[:, 2] == 0
    net = make_net(w1)
    reg(net).backward()
    g = net[0].weight.grad
    assert torch.isfinite(g).all()
    assert (g[:, 2] == 0).all()  # the 0 subgradient of the zero group


def test_group_norms_exact_with_zero_and_tiny_columns() -> None:
    w = torch.tensor([[3.0, 0.0, 3e-150], [4.0, 0.0, 4e-150]], dtype=torch.float64)
    got = group_norms(w)
    assert got[1].item() == 0.0  # no epsilon bias
    np.testing.assert_allclose(got.numpy(), [5.0, 0.0, 5e-150], rtol=1e-15, atol=0)


def test_batched_penalty_matches_per_model_numpy() -> None:
    rng = np.random.default_rng(0)
    ws = rng.normal(size=(3, 2, 4))
    ws[1, :, 0] = 0.0
    lam = np.array([0.1, 0.0, 2.0])
    got = penalty(
        torch.from_numpy(ws), l1=torch.from_numpy(lam), l2=0.5, group=torch.from_numpy(lam / 2),
        norm=torch.from_numpy(lam[::-1].copy()), p=3.0,
    )  # fmt: skip
    assert got.shape == (3,)
    for k, w in enumerate(ws):
        ref = lam[k] * np.abs(w).sum() + 0.5 * (w**2).sum()
        ref += lam[k] / 2 * np_gl(w) + lam[::-1][k] * np_pnorm(w, 3)
        np.testing.assert_allclose(got[k].item(), ref, rtol=1e-12)


def test_sgd_weight_decay_equals_l2_half() -> None:
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    b = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    lr, wd = 0.1, 0.03
    opt_a = torch.optim.SGD(a.parameters(), lr=lr, weight_decay=wd)
    opt_b = torch.optim.SGD(b.parameters(), lr=lr)
    reg = L2(wd / 2, params=["*"])
    for _ in range(5):
        for net, opt, extra in ((a, opt_a, None), (b, opt_b, reg)):
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(x), y)
            (loss + extra(net) if extra else loss).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)


def test_weight_decay_and_none_are_zero_penalty_noop_prox() -> None:
    net = make_net()
    wd = make_regularizer("weight_decay", 0.01)
    assert isinstance(wd, WeightDecay) and wd.weight_decay == 0.01
    x, y = torch.ones(1, 4, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    net.zero_grad()
    nn.functional.mse_loss(net(x), y).backward()
    data_grads = [q.grad.clone() for q in net.parameters()]
    for reg in (wd, make_regularizer("none")):
        value = reg(net)
        assert value.dim() == 0 and value.item() == 0.0
        net.zero_grad()
        (nn.functional.mse_loss(net(x), y) + value).backward()
        for q, g in zip(net.parameters(), data_grads, strict=True):
            assert torch.equal(q.grad, g)  # the zero penalty adds no gradient
        reg.prox_(net, 0.5)
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), W1)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "0.1", None, True])
def test_invalid_strength_raises(bad) -> None:
    with pytest.raises(ValueError, match=r"^strength must be a finite number >= 0, got "):
        L1(bad)


def test_validation_messages_name_argument_and_value() -> None:
    with pytest.raises(ValueError, match=r"^strength must be a finite number >= 0, got -1\.0$"):
        GroupLasso(-1.0)
    with pytest.raises(ValueError, match=r"^l1_ratio must be in \[0, 1\], got 1\.5$"):
        ElasticNet(0.1, l1_ratio=1.5)
    for p in (0.5, float("inf")):
        with pytest.raises(ValueError, match=r"^p must be a finite number >= 1"):
            Norm(0.1, p=p)
    with pytest.raises(
        ValueError, match=r"^unknown regularizer 'foo'; choose one of: elastic_net, "
    ):
        make_regularizer("foo")


def test_registry_names_and_factory() -> None:
    assert set(REGULARIZERS) == {
        "none", "l1", "l2", "elastic_net", "group_lasso", "sgl", "norm", "weight_decay"
    }  # fmt: skip
    reg = make_regularizer("elastic_net", 0.2, l1_ratio=0.25)
    assert reg.coefficients() == Coefficients(l1=0.05, l2=0.2 * 0.75 / 2)
    assert make_regularizer("sgl", 0.3).coefficients() == Coefficients(l1=0.3, group=0.3)


def test_repr_and_config_round_trip() -> None:
    assert repr(L1(0.001)) == "L1(strength=0.001)"
    assert repr(ElasticNet(0.01, 0.2)) == "ElasticNet(strength=0.01, l1_ratio=0.2)"
    assert repr(Norm(1, p=3, params=["0.*"])) == "Norm(strength=1.0, p=3.0, params=['0.*'])"
    for reg in (ElasticNet(0.5, 0.1, params=["*"]), Norm(0.2, p=1), SparseGroupLasso(0.3)):
        again = type(reg).from_config(reg.get_config())
        assert again.get_config() == reg.get_config()


def test_proximal_mode_is_refused_where_undefined_with_one_line() -> None:
    from regexp.config import regularizer_options
    from regexp.train.build import build_regularizer

    with pytest.raises(
        ValueError,
        match=r"^regularizer\.mode=proximal is not defined for regularizer=norm: its proximal "
        r"step has a closed form for p = 1 or 2 only, got p=3; use regularizer\.mode=penalty$",
    ):
        regularizer_options(
            {"lambda": 0.1, "regularizer": {"name": "norm", "mode": "proximal", "p": 3}}
        )
    assert Norm(0.1, p=1).proximal_error() is None and L1(0.1).proximal_error() is None
    assert build_regularizer({"name": "norm", "mode": "proximal", "p": 2}, 0.1)[1] == "proximal"
