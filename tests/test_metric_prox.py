"""Proximal steps in Adam's metric (regexp.metric_prox) against independent solvers.

The reference for ``argmin_x Σ d(x − z)²/(2·lr) + R(x)`` is written here in numpy without
the code under test: an accelerated proximal gradient method (Euclidean prox of the
nonsmooth terms, the smooth part's gradient includes the l2 term), optimality checked by
the subgradient (KKT) conditions, and objective values against scipy's derivative-free
minimizer from many starting points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from regexp import config
from regexp.core.metric_prox import adam_metric, optimizer_metric, prox_metric_
from regexp.core.penalties import prox_
from regexp.core.regularizers import L1, SparseGroupLasso
from regexp.train import build
from regexp.train import loop as train
from regexp.train.stacked import fit as batched

# ---------------------------------------------------------------- numpy references


def soft(v: np.ndarray, t) -> np.ndarray:
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


def euclid_prox(v: np.ndarray, s: float, a: float, c: float, n: float) -> np.ndarray:
    """Euclidean prox of ``s·(a·Σ|x| + c·Σ_j‖x_j‖ + n·‖x‖_F)`` (c and n not both > 0)."""
    u = soft(v, s * a)
    if c > 0:
        norms = np.linalg.norm(u, axis=0)
        u = u * np.where(norms > 0, np.maximum(0.0, 1 - s * c / np.where(norms > 0, norms, 1)), 0)
    if n > 0:
        f = np.linalg.norm(u)
        u = u * (max(0.0, 1 - s * n / f) if f > 0 else 0.0)
    return u


def objective(x, z, d, lr, a, b, c, n) -> float:
    return float(
        (d * (x - z) ** 2).sum() / (2 * lr)
        + a * np.abs(x).sum()
        + b * (x**2).sum()
        + c * np.linalg.norm(x, axis=0).sum()
        + n * np.linalg.norm(x)
    )


def reference_prox(z, d, lr, a, b, c, n, iters: int = 20000) -> np.ndarray:
    """Accelerated proximal gradient (constant momentum for strongly convex problems)."""
    big, small = d.max() / lr + 2 * b, d.min() / lr + 2 * b
    beta = (math.sqrt(big) - math.sqrt(small)) / (math.sqrt(big) + math.sqrt(small))

    def step(y: np.ndarray) -> np.ndarray:  # the proximal gradient map, fixed point = answer
        return euclid_prox(y - (d * (y - z) / lr + 2 * b * y) / big, 1 / big, a, c, n)

    x = x_prev = z.copy()
    for _ in range(iters):
        x_prev, x = x, step(x + beta * (x - x_prev))
        if np.abs(step(x) - x).max() < 1e-15 * max(1.0, np.abs(z).max()):
            break
    else:
        raise AssertionError("the reference solver did not converge")
    return x


def kkt_violation(x, z, d, lr, a, b, c, n) -> float:
    """Largest violation of ``0 ∈ D(x − z)/lr + 2b·x + ∂(a‖·‖₁ + c·Σ‖x_j‖ + n‖x‖_F)(x)``."""
    grad = d * (x - z) / lr + 2 * b * x
    if n > 0:  # one group: the whole matrix
        x, grad, c = x.reshape(-1, 1), grad.reshape(-1, 1), n
    worst = 0.0
    for j in range(x.shape[1]):
        xj, gj = x[:, j], grad[:, j]
        nrm = np.linalg.norm(xj)
        if c > 0 and nrm == 0:  # ∃ s ∈ [-1, 1]^out: ‖−g − a·s‖ ≤ c
            worst = max(worst, np.linalg.norm(soft(-gj, a)) - c)
            continue
        on = xj != 0
        group = c * xj / nrm if nrm > 0 else 0.0
        worst = max(worst, np.abs((gj + a * np.sign(xj) + group)[on]).max(initial=0))
        worst = max(worst, (np.abs(gj[~on]) - a).max(initial=0))  # s ∈ [-1, 1] there
    return worst


# ---------------------------------------------------------------- random instances

# (l1, l2, group, norm, p): which coefficients an instance has
COMBOS = {
    "l1": (1, 0, 0, 0, 2),
    "l2": (0, 1, 0, 0, 2),
    "elastic_net": (1, 1, 0, 0, 2),
    "group": (0, 0, 1, 0, 2),
    "sgl": (1, 0, 1, 0, 2),
    "group_l2": (0, 1, 1, 0, 2),
    "sgl_l2": (1, 1, 1, 0, 2),
    "norm2": (0, 0, 0, 1, 2),
    "norm2_l1_l2": (1, 1, 0, 1, 2),
    "norm1": (0, 0, 0, 1, 1),
}


def instance(seed: int, combo: str, near: float | None):
    """``z``, ``d``, ``lr`` and coefficients; ``near``: put the group threshold of column 0
    at ``‖D·soft(z, lr·l1/d)‖ / (lr·(1 + near))`` (column 0 is dropped iff near <= 0)."""
    rng = np.random.default_rng(seed)
    out, inp = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    z = rng.normal(size=(out, inp)) * rng.choice([0.1, 1.0, 3.0])
    z[rng.random(z.shape) < 0.15] = 0.0
    d = np.exp(rng.uniform(math.log(0.1), math.log(10.0), size=(out, inp)))
    lr = float(np.exp(rng.uniform(math.log(0.01), math.log(1.0))))
    mask = COMBOS[combo]
    coef = [m * float(np.exp(rng.uniform(math.log(0.01), math.log(3.0)))) for m in mask[:4]]
    l1, l2, group, norm = coef
    if near is not None and group > 0:
        col = np.linalg.norm(d[:, 0] * soft(z[:, 0], lr * l1 / d[:, 0]))
        if col > 0:
            group = col / (lr * (1 + near)) / math.sqrt(out)
    return z, d, lr, dict(l1=l1, l2=l2, group=group, norm=norm, p=float(mask[4]))


def reference_args(lr: float, kw: dict, out: int) -> tuple:
    """``(a, b, c, n)`` of the numpy references: the p = 1 norm is l1, c = group·√out."""
    a = kw["l1"] + (kw["norm"] if kw["p"] == 1 else 0.0)
    n = kw["norm"] if kw["p"] == 2 else 0.0
    return a, kw["l2"], kw["group"] * math.sqrt(out), n


def ours(z, d, lr, kw) -> np.ndarray:
    w = torch.from_numpy(z.copy())
    prox_metric_(w, lr, torch.from_numpy(d), **kw)
    return w.numpy()


NEAR = st.sampled_from([None, None, -1e-3, -1e-9, 1e-6, 1e-3, 0.3])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(COMBOS)), NEAR)
@pytest.mark.slow
def test_weighted_prox_is_the_minimizer(seed, combo, near):
    z, d, lr, kw = instance(seed, combo, near)
    x = ours(z, d, lr, kw)
    args = reference_args(lr, kw, z.shape[0])
    ref = reference_prox(z, d, lr, *args)
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-6 * max(1.0, np.abs(z).max()))
    assert kkt_violation(x, z, d, lr, *args) <= 1e-8
    # No worse than the reference minimizer, up to float64 rounding of the objective's sum
    # (1e-12 relative: about 4500 ulps; an absolute 1e-12 is below one ulp at 4e4).
    best = objective(ref, z, d, lr, *args)
    assert objective(x, z, d, lr, *args) <= best + 1e-12 * max(1.0, abs(best))
    # exact zeros where the reference's optimality conditions put them
    if args[2] > 0:
        cols = np.linalg.norm(d * soft(z, lr * args[0] / d), axis=0) / lr  # ‖D·soft‖/lr
        decided = np.abs(cols / args[2] - 1) > 1e-9
        np.testing.assert_array_equal((np.abs(x).sum(0) == 0)[decided], (cols <= args[2])[decided])
    if args[0] > 0:
        assert np.all(x[np.abs(z) * d <= lr * args[0]] == 0)  # below every l1 threshold


@pytest.mark.parametrize("combo", ["sgl", "sgl_l2", "group_l2", "norm2_l1_l2"])
def test_objective_is_at_most_scipys_from_many_starts(combo):
    for seed in range(3):
        z, d, lr, kw = instance(100 + seed, combo, None)
        args = reference_args(lr, kw, z.shape[0])
        x = ours(z, d, lr, kw)
        f = objective(x, z, d, lr, *args)
        rng = np.random.default_rng(seed)
        for start in [z, np.zeros_like(z), *(rng.normal(size=z.shape) for _ in range(4))]:
            res = minimize(
                lambda v: objective(v.reshape(z.shape), z, d, lr, *args),  # noqa: B023
                start.ravel(),
                method="Powell",
                options={"xtol": 1e-12, "ftol": 1e-14, "maxfev": 40000},
            )
            assert f <= res.fun + 1e-10


@pytest.mark.parametrize("side", [-1e-12, 1e-9])
@pytest.mark.parametrize("l1", [0.0, 0.4])
def test_a_column_is_zero_exactly_when_its_weighted_norm_is_at_most_the_threshold(side, l1):
    z = np.array([[0.8, -0.3], [-1.2, 0.9], [0.5, 0.0]])
    d = np.array([[0.2, 1.0], [3.0, 0.5], [1.5, 2.0]])
    lr = 0.3
    for j in range(2):
        col = np.linalg.norm(d[:, j] * soft(z[:, j], lr * l1 / d[:, j]))
        c = col / lr * (1 - side)  # ‖D_g u_g‖ = lr·c·(1 + side) to first order
        x = ours(z, d, lr, dict(l1=l1, group=c / math.sqrt(3)))
        assert (np.abs(x[:, j]).sum() == 0) == (side < 0)
        assert kkt_violation(x, z, d, lr, l1, 0.0, c, 0.0) <= 1e-9


# ---------------------------------------------------------------- against penalties.prox_


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(COMBOS)))
def test_identity_metric_is_penalties_prox(seed, combo):
    z, _, lr, kw = instance(seed, combo, None)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        w = torch.from_numpy(z).to(dtype)
        expected = prox_(w.clone(), lr, **kw)
        got = prox_metric_(w.clone(), lr, torch.ones(()), **kw)
        torch.testing.assert_close(got, expected, rtol=tol, atol=tol)
        assert torch.equal(got == 0, expected == 0) or dtype == torch.float32
        assert torch.equal(prox_metric_(w.clone(), lr, None, **kw), expected)  # d=None: exact


def test_stacked_models_with_per_model_coefficients_equal_per_model_calls():
    gen = torch.Generator().manual_seed(3)
    n = 6
    w = torch.randn(n, 5, 4, generator=gen, dtype=torch.float64)
    w[1, :, 2] = 0
    d = torch.rand(n, 5, 4, generator=gen, dtype=torch.float64) * 3 + 0.05
    lr = torch.tensor([0.1, 0.5, 0.2, 0.3, 0.7, 0.4], dtype=torch.float64)
    coefs = {  # models 2 and 5 carry the p=2 norm (and no group), model 4 nothing
        "l1": torch.tensor([0.3, 0.0, 0.5, 1.0, 0.0, 0.2]),
        "l2": torch.tensor([0.0, 0.4, 0.3, 0.0, 0.0, 0.1]),
        "group": torch.tensor([0.6, 0.9, 0.0, 0.7, 0.0, 0.0]),
        "norm": torch.tensor([0.0, 0.0, 1.5, 0.0, 0.0, 2.0]),
    }
    got = prox_metric_(w.clone(), lr, d, **coefs)
    assert (got == 0).all(-2).any()  # some dropped columns
    for k in range(n):
        one = {t: float(v[k]) for t, v in coefs.items()}
        expected = prox_metric_(w[k].clone(), float(lr[k]), d[k], **one)
        torch.testing.assert_close(got[k], expected, rtol=1e-13, atol=1e-15)
    # the float32 stack: same solution, written back in float32
    got32 = prox_metric_(w.float(), lr, d.float(), **coefs)
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), got, rtol=1e-5, atol=1e-6)


def test_unsupported_combinations_raise_up_front():
    w, d = torch.randn(2, 3, 4), torch.ones(2, 3, 4)
    with pytest.raises(ValueError, match="supports p=1 or p=2 only, got p=3"):
        prox_metric_(w, 0.1, d, norm=0.5, p=3.0)
    with pytest.raises(ValueError, match="group and the p=2 norm terms on one model"):
        prox_metric_(w, 0.1, d, group=torch.tensor([0.0, 1.0]), norm=torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="positive, finite metric"):
        prox_metric_(w, 0.1, torch.zeros(2, 3, 4), l1=0.1)
    before = w.clone()
    prox_metric_(w, 0.1, d, group=torch.tensor([0.0, 1.0]), norm=torch.tensor([1.0, 0.0]))
    assert not torch.equal(w, before)  # group and norm on different models is fine


# ---------------------------------------------------------------- Adam's metric


@pytest.mark.parametrize(
    "kind,kwargs",
    [
        (torch.optim.Adam, {"fused": True}),
        (torch.optim.Adam, {"foreach": False}),
        (torch.optim.AdamW, {"fused": True, "weight_decay": 0.0}),
        (torch.optim.Adam, {"amsgrad": True}),
    ],
    ids=["adam-fused", "adam-single", "adamw-fused", "adam-amsgrad"],
)
def test_adam_metric_is_what_torch_adam_divides_by(kind, kwargs):
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4, 3, generator=gen))
    lr, betas, eps = 1e-2, (0.8, 0.95), 1e-6
    opt = kind([p], lr=lr, betas=betas, eps=eps, **kwargs)
    for t in range(1, 5):
        p.grad = torch.randn(4, 3, generator=gen) * 10**-t  # v spans orders of magnitude
        w_old = p.detach().clone()
        opt.step()
        m = opt.state[p]["exp_avg"]
        d = optimizer_metric(opt, p)
        expected = w_old - lr / (1 - betas[0] ** t) * m / d
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-7)
        v = opt.state[p]["max_exp_avg_sq" if kwargs.get("amsgrad") else "exp_avg_sq"]
        torch.testing.assert_close(adam_metric(v, t, betas[1], eps), d, rtol=1e-6, atol=0)


def test_optimizer_metric_is_none_for_sgd_and_refuses_the_rest():
    p = torch.nn.Parameter(torch.randn(3, 2))
    assert optimizer_metric(torch.optim.SGD([p], lr=0.1), p) is None
    with pytest.raises(ValueError, match="needs Adam, AdamW or SGD, got RMSprop"):
        optimizer_metric(torch.optim.RMSprop([p], lr=0.1), p)
    with pytest.raises(ValueError, match="take an optimizer step first"):
        optimizer_metric(torch.optim.Adam([p], lr=0.1), p)
    with pytest.raises(ValueError, match="step >= 1"):
        adam_metric(torch.ones(3), 0, 0.999, 1e-8)


# ---------------------------------------------------------------- config and training

SMALL = ["model.hidden=[16,8]", "trainer.batch_size=64", "trainer.epochs=1"]


def test_prox_metric_config_key(make_config):
    cfg = make_config("regularizer=sgl", "regularizer.prox_metric=foo")
    with pytest.raises(ValueError) as err:
        config.validate(cfg)
    assert str(err.value) == (
        "regularizer.prox_metric must be one of auto, identity, adaptive, got 'foo'"
    )
    cfg = make_config("optimizer=sgd", "regularizer.prox_metric=adaptive")
    with pytest.raises(ValueError, match="prox_metric=adaptive needs optimizer adam or adamw"):
        config.validate(cfg)
    resolve = build.resolve_prox_metric
    assert resolve({"prox_metric": "auto"}, "adam") == "adaptive"
    assert resolve({"prox_metric": "auto"}, "adamw") == "adaptive"
    assert resolve({"prox_metric": "auto"}, "sgd") == "identity"
    assert resolve({"prox_metric": "identity"}, "adam") == "identity"
    assert resolve({}, "adam") == "identity"  # a config from before the key existed
    reg, mode = build.build_regularizer({"name": "l1", "prox_metric": "adaptive"}, 0.1)
    assert isinstance(reg, L1) and mode == "penalty"


def fitted(cfg: dict) -> torch.nn.Module:
    s = train.prepare(cfg)
    train.fit_setup(cfg, s)
    return s.model


def test_identity_metric_is_todays_proximal_step(make_config):
    base = [*SMALL, "regularizer=sgl", "regularizer.mode=proximal", "lambda=3e-3"]
    cfg = make_config(*base, "regularizer.prox_metric=identity")
    old = make_config(*base)
    del old["regularizer"]["prox_metric"]  # the config before the key existed
    s = train.prepare(old)
    assert s.prox_metric == "identity"
    model = fitted(cfg)
    train.fit_setup(old, s)
    for p, q in zip(model.parameters(), s.model.parameters(), strict=True):
        assert torch.equal(p, q)
    adaptive = fitted(make_config(*base, "regularizer.prox_metric=adaptive"))
    w, w_id = adaptive[0].weight, model[0].weight
    assert (w == 0).all(0).sum() > (w_id == 0).all(0).sum()  # more inputs dropped


def test_regularizer_prox_metric_on_a_model_matches_the_function():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net(torch.randn(8, 5)).square().sum().backward()
    opt.step()
    expected = [
        prox_metric_(lin.weight.detach().clone(), 0.1, optimizer_metric(opt, lin.weight), l1=0.2)
        for lin in (net[0], net[2])
    ]
    bias = net[0].bias.detach().clone()
    L1(0.2).prox_metric_(net, 0.1, lambda q: optimizer_metric(opt, q))
    assert torch.equal(net[0].weight, expected[0]) and torch.equal(net[2].weight, expected[1])
    assert torch.equal(net[0].bias, bias)  # biases are not regularized
    before = [p.detach().clone() for p in net.parameters()]
    SparseGroupLasso(0.2).prox_metric_(net, 0.1, lambda q: None)  # identity metric
    for p, b, lin in zip(net.parameters(), before, [net[0]] * 2 + [net[2]] * 2, strict=True):
        if p is lin.weight:
            assert torch.equal(p, prox_(b, 0.1, l1=0.2, group=0.2))


@pytest.mark.parametrize("opt", ["optimizer=adam", "optimizer=adamw"])
@pytest.mark.slow
def test_stacked_adaptive_proximal_training_matches_sequential(make_config, opt):
    jobs = [
        ["regularizer=sgl", "lambda=3e-3", "regularizer.prox_metric=adaptive"],
        ["regularizer=l1", "lambda=2e-3", "regularizer.prox_metric=adaptive"],
        ["regularizer=sgl", "lambda=3e-3", "regularizer.prox_metric=identity"],
        ["regularizer=elastic_net", "lambda=5e-3"],  # auto: adaptive
        ["regularizer=group_lasso", "lambda=4e-3", "model.dropout=0.2"],
        ["regularizer=norm", "lambda=1e-2"],
        ["regularizer=norm", "regularizer.p=1", "lambda=1e-3"],
        ["regularizer=l1", "lambda=2e-3", "regularizer.mode=penalty"],
    ]
    cfgs = [
        make_config(
            opt,
            *SMALL,
            *j,
            *([] if "regularizer.mode=penalty" in j else ["regularizer.mode=proximal"]),
            f"seed={k}",
            f"optimizer.lr={1e-3 * (1 + k % 3)}",
        )
        for k, j in enumerate(jobs)
    ]
    members, data = [], None
    for cfg in cfgs:
        s = train.prepare(cfg, data)
        data = s.data
        members.append(batched.Member.from_setup(cfg, s, torch.get_rng_state()))
    assert [m.prox_metric for m in members][:4] == ["adaptive", "adaptive", "identity", "adaptive"]
    tr = cfgs[0]["trainer"]
    results = batched.fit_stacked(members, data, "relu", cfgs[0]["optimizer"], 1, tr["batch_size"])
    for cfg, member, result in zip(cfgs, members, results, strict=True):
        ref = train.prepare(cfg)
        ref_result = train.fit_setup(cfg, ref)
        for p, q in zip(ref.model.parameters(), member.model.parameters(), strict=True):
            torch.testing.assert_close(q, p, atol=1e-5, rtol=0)
        assert result.status == ref_result.status == "ok"
    first = members[0].model[0].weight
    assert (first == 0).any()  # the adaptive SGL step put exact zeros
