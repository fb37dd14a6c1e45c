"""Proximal operators of regexp.regularizers vs numpy by hand and scikit-learn solvers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import ElasticNet as SkElasticNet
from sklearn.linear_model import Lasso, MultiTaskLasso
from torch import nn

from regexp.core.regularizers import (
    L1,
    L2,
    ElasticNet,
    GroupLasso,
    Norm,
    Regularizer,
    SparseGroupLasso,
    penalty,
    prox_,
)

# the same small net as in test_regularizers.py; W1[:, 2] is a zero column
W1 = np.array([[0.5, -1.0, 0.0, 2.0], [-0.3, 0.0, 0.0, 1.5], [0.2, 0.4, 0.0, -0.1]])
B1 = np.array([1.0, -2.0, 3.0])
W2 = np.array([[1.0, -2.0, 0.5], [0.0, 0.3, -0.7]])


def make_net() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    with torch.no_grad():
        for p, v in zip(net.parameters(), (W1, B1, W2, np.array([-4.0, 5.0])), strict=True):
            p.copy_(torch.from_numpy(v))
    return net


def soft(w: np.ndarray, t: float) -> np.ndarray:
    return np.sign(w) * np.maximum(np.abs(w) - t, 0.0)


def group_shrink(w: np.ndarray, t: float) -> np.ndarray:
    out = w.copy()
    for j in range(w.shape[1]):  # a loop is fine in a reference
        n = np.linalg.norm(w[:, j])
        out[:, j] = 0.0 if n == 0 else w[:, j] * max(0.0, 1 - t * math.sqrt(w.shape[0]) / n)
    return out


def fro_shrink(w: np.ndarray, t: float) -> np.ndarray:
    n = np.linalg.norm(w)
    return w * max(0.0, 1 - t / n) if n > 0 else w


LR, LAM = 0.5, 0.8
PROXES = [
    (L1(LAM), lambda w: soft(w, LR * LAM)),
    (L2(LAM), lambda w: w / (1 + 2 * LR * LAM)),
    (ElasticNet(LAM, 0.3), lambda w: soft(w, LR * LAM * 0.3) / (1 + LR * LAM * 0.7)),
    (GroupLasso(LAM), lambda w: group_shrink(w, LR * LAM)),
    (SparseGroupLasso(LAM), lambda w: group_shrink(soft(w, LR * LAM), LR * LAM)),
    (Norm(LAM, p=1), lambda w: soft(w, LR * LAM)),
    (Norm(LAM, p=2), lambda w: fro_shrink(w, LR * LAM)),
]


@pytest.mark.parametrize(("reg", "expected"), PROXES, ids=repr)
def test_prox_matches_numpy_and_leaves_biases(reg: Regularizer, expected) -> None:
    net = make_net()
    reg.prox_(net, LR)
    np.testing.assert_allclose(net[0].weight.detach().numpy(), expected(W1), rtol=1e-12, atol=0)
    np.testing.assert_allclose(net[2].weight.detach().numpy(), expected(W2), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(net[0].bias.detach().numpy(), B1)


def test_prox_zeroes_small_columns_exactly() -> None:
    net = make_net()
    GroupLasso(2.0).prox_(net, 0.5)  # threshold √3 ≈ 1.73 on W1: columns 0, 2 (and 1) die
    assert (net[0].weight[:, [0, 1, 2]] == 0).all() and (net[0].weight[:, 3] != 0).all()


def test_prox_on_1d_parameter_via_params() -> None:
    net = make_net()
    L1(1.5, params=["0.bias"]).prox_(net, 1.0)
    np.testing.assert_array_equal(net[0].bias.detach().numpy(), soft(B1, 1.5))


def test_norm_prox_rejects_p3_but_penalty_works() -> None:
    reg = Norm(0.1, p=3)
    assert torch.isfinite(reg(make_net()))
    with pytest.raises(ValueError, match=r"p=1 or p=2 only, got p=3\.0"):
        reg.prox_(make_net(), 0.1)


def test_combined_prox_is_the_minimizer() -> None:
    """x = prox_{t·g}(v) must beat every nearby point on t·g(x) + ½‖x − v‖² (convex)."""
    rng = np.random.default_rng(1)
    v = rng.normal(size=(3, 5))
    v[:, 1] *= 0.1
    kw = {"l1": 0.3, "l2": 0.4, "group": 0.25, "norm": 0.2, "p": 2.0}
    t = 0.7

    def objective(x: np.ndarray) -> np.ndarray:  # x: [k, 3, 5]
        g = penalty(torch.from_numpy(x), **kw).numpy()
        return t * g + 0.5 * ((x - v) ** 2).sum(axis=(-2, -1))

    x = prox_(torch.from_numpy(v.copy()), t, **kw).numpy()
    assert (x[:, 1] == 0).all()  # the weak column is removed
    for scale in (1e-2, 1e-4):
        trials = x + scale * rng.normal(size=(2000, 3, 5))
        trials[:1000, :, 1] = 0.0  # also probe inside the zero group
        assert objective(trials).min() >= objective(x[None])[0] - 1e-13


def test_batched_prox_matches_per_model_numpy() -> None:
    rng = np.random.default_rng(2)
    ws = rng.normal(size=(3, 2, 4))
    lam = np.array([0.0, 0.4, 1.5])
    lr = np.array([0.5, 1.0, 0.2])
    got = torch.from_numpy(ws.copy())
    prox_(got, torch.from_numpy(lr), l1=torch.from_numpy(lam), group=0.3, l2=torch.from_numpy(lam))
    for k in range(3):
        ref = group_shrink(soft(ws[k], lr[k] * lam[k]), lr[k] * 0.3) / (1 + 2 * lr[k] * lam[k])
        np.testing.assert_allclose(got[k].numpy(), ref, rtol=1e-12, atol=0)
    got = torch.from_numpy(ws.copy())
    prox_(got, 0.5, norm=torch.from_numpy(lam), p=2.0)
    for k in range(3):
        np.testing.assert_allclose(got[k].numpy(), fro_shrink(ws[k], 0.5 * lam[k]), rtol=1e-12)


# -- full-batch proximal gradient (ISTA, step 1/L) against scikit-learn ----------------------
# data loss f(W) = 1/(2n)·‖Y − X·Wᵀ‖²_F for nn.Linear(d, T, bias=False), L = λ_max(XᵀX)/n.


def make_problem(tasks: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 8))
    coef = np.zeros((8, tasks))
    coef[:3] = rng.normal(size=(3, tasks)) * 2  # features 3.. are pure noise
    return x, x @ coef + 0.5 * rng.normal(size=(60, tasks))


def ista(reg: Regularizer, x: np.ndarray, y: np.ndarray, iters: int = 400) -> np.ndarray:
    n, d = x.shape
    model = nn.Linear(d, y.shape[1], bias=False).double()
    nn.init.zeros_(model.weight)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    lr = n / np.linalg.eigvalsh(x.T @ x).max()
    for _ in range(iters):
        model.zero_grad()
        loss = ((yt - model(xt)) ** 2).sum() / (2 * n)
        loss.backward()
        with torch.no_grad():
            model.weight -= lr * model.weight.grad
        reg.prox_(model, lr)
    return model.weight.detach().numpy()


def assert_same_solution(ours: np.ndarray, ref: np.ndarray) -> None:
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours == 0, ref == 0)
    assert 0 < (ref == 0).sum() < ref.size  # the test must exercise exact zeros


def test_l1_prox_gradient_matches_sklearn_lasso() -> None:
    x, y = make_problem(1)
    alpha = 0.3  # sklearn: 1/(2n)‖y − Xw‖² + α‖w‖₁  ↔  L1(λ = α)
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(x, y[:, 0])
    assert_same_solution(ista(L1(alpha), x, y)[0], ref.coef_)


def test_elastic_net_prox_gradient_matches_sklearn_elastic_net() -> None:
    x, y = make_problem(1, seed=3)
    alpha, rho = 0.4, 0.7  # sklearn: α·ρ‖w‖₁ + α(1 − ρ)/2‖w‖²  ↔  ElasticNet(λ = α, ρ)
    ref = SkElasticNet(alpha=alpha, l1_ratio=rho, fit_intercept=False, tol=1e-14, max_iter=100_000)
    ref.fit(x, y[:, 0])
    assert_same_solution(ista(ElasticNet(alpha, l1_ratio=rho), x, y)[0], ref.coef_)


def test_group_lasso_prox_gradient_matches_multitask_lasso() -> None:
    x, y = make_problem(3, seed=5)
    # sklearn: 1/(2n)‖Y − XW‖²_F + α·Σ_j ‖coef_[:, j]‖₂ (feature j across tasks); our groups
    # are the columns of the [T, d] weight with √T scaling, so λ = α/√T.
    alpha, tasks = 0.5, y.shape[1]
    ref = MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(x, y)
    ours = ista(GroupLasso(alpha / math.sqrt(tasks)), x, y)
    assert_same_solution(ours, ref.coef_)
    np.testing.assert_array_equal(np.linalg.norm(ours, axis=0) == 0, (ref.coef_ == 0).all(0))
