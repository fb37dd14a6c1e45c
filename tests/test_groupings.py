"""Groupings (Linear columns, conv input channels) and penalties over them, vs numpy by hand;
sparsity of a CNN counted by hand; the "add a regularizer" example of docs/regularizers.md."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from regexp.core.groupings import (
    ChannelBlocks,
    Columns,
    Entries,
    InputChannels,
    apply_grouped_,
    grouping_of,
)
from regexp.core.metric_prox import optimizer_metric
from regexp.core.metrics import data_loss
from regexp.core.regularizers import (
    L1,
    L2,
    REGULARIZERS,
    GroupLasso,
    Norm,
    SparseGroupLasso,
    make_regularizer,
    selected_groupings,
)
from regexp.core.sparsity import (
    LayerSparsity,
    count_params_kept,
    dead_groups,
    neuron_sparsity,
    params_kept,
    params_total,
    weight_sparsity,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "regularizers.md"
RNG = np.random.default_rng(0)


def np_channels(w: np.ndarray) -> np.ndarray:
    """Conv weight [out, in, kh, kw] → [out·kh·kw, in], column c = W[:, c].ravel()."""
    return np.stack([w[:, c].ravel() for c in range(w.shape[1])], axis=1)


def np_blocks(w: np.ndarray, m: int) -> np.ndarray:
    """Linear weight [out, C·m] → [out·m, C], column c = W[:, c·m:(c+1)·m].ravel()."""
    return np.stack([w[:, c * m : (c + 1) * m].ravel() for c in range(w.shape[1] // m)], axis=1)


def np_gl(g: np.ndarray) -> float:
    return math.sqrt(g.shape[0]) * np.linalg.norm(g, axis=0).sum()


def cnn(zero_channels: dict[int, list[int]] | None = None) -> nn.Sequential:
    """conv(1→4) → conv(4→3) → flatten (3·4·4) → Linear(48→2), float64, on 8×8 inputs."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(3 * 4 * 4, 2),
    ).double()  # fmt: skip
    with torch.no_grad():
        for layer, channels in (zero_channels or {}).items():
            for c in channels:
                net[layer].weight[:, c] = 0.0
    return net


def test_input_channels_view_holds_each_channels_weights_and_inverts() -> None:
    w = torch.from_numpy(RNG.normal(size=(5, 3, 2, 4)))
    g = InputChannels(4).groups(w)
    np.testing.assert_array_equal(g.numpy(), np_channels(w.numpy()))
    assert torch.equal(InputChannels(4).ungroup(g, w), w)
    stacked = torch.from_numpy(RNG.normal(size=(2, 5, 3, 2, 4)))  # a stack of two models
    gs = InputChannels(4).groups(stacked)
    for n in range(2):
        np.testing.assert_array_equal(gs[n].numpy(), np_channels(stacked[n].numpy()))
    assert torch.equal(InputChannels(4).ungroup(gs, stacked), stacked)
    assert InputChannels(4).n_groups((5, 3, 2, 4)) == 3
    assert InputChannels(4).group_size((5, 3, 2, 4)) == 40


def test_channel_blocks_view_holds_each_channels_columns_and_inverts() -> None:
    w = torch.from_numpy(RNG.normal(size=(2, 3, 12)))  # a stack of 2: out 3, 4 channels × 3
    g = ChannelBlocks(positions=3).groups(w)
    for n in range(2):
        np.testing.assert_array_equal(g[n].numpy(), np_blocks(w[n].numpy(), 3))
    assert torch.equal(ChannelBlocks(positions=3).ungroup(g, w), w)
    assert ChannelBlocks(positions=3).n_groups((3, 12)) == 4
    assert ChannelBlocks(positions=3).group_size((3, 12)) == 9


def test_columns_view_is_the_weight_and_entries_one_row() -> None:
    w = torch.ones(3, 4)
    assert Columns().groups(w) is w
    b = torch.arange(6.0)
    assert Entries(1).groups(b).shape == (1, 6)
    assert Entries(1).groups(torch.zeros(7, 6)).shape == (7, 1, 6)  # a stack of 7 biases


def test_grouping_of_each_layer() -> None:
    net = cnn()
    kinds = [(n, type(g).__name__) for n, _, g in selected_groupings(net, ["*"])]
    assert kinds == [
        ("0.weight", "InputChannels"),
        ("0.bias", "Entries"),
        ("2.weight", "InputChannels"),
        ("2.bias", "Entries"),
        ("5.weight", "ChannelBlocks"),  # after conv 2: 3 channels × 16 positions
        ("5.bias", "Entries"),
    ]
    assert selected_groupings(net)[2][2] == ChannelBlocks(positions=16)
    mlp = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    assert {type(g) for _, _, g in selected_groupings(mlp)} == {Columns}
    pooled = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)
    )
    assert selected_groupings(pooled)[1][2] == Columns()  # one position per channel
    depthwise = nn.Conv2d(4, 4, 3, groups=4)
    assert isinstance(grouping_of(depthwise, "weight", depthwise.weight), Entries)


def test_default_selection_is_linear_and_conv_weights() -> None:
    assert [n for n, _, _ in selected_groupings(cnn())] == ["0.weight", "2.weight", "5.weight"]


def weights_np(net: nn.Sequential) -> list[np.ndarray]:
    return [net[i].weight.detach().numpy() for i in (0, 2, 5)]


def grouped_np(net: nn.Sequential) -> list[np.ndarray]:
    w0, w2, w5 = weights_np(net)
    return [np_channels(w0), np_channels(w2), np_blocks(w5, 16)]


VALUES = [
    (L1(0.1), lambda g: 0.1 * np.abs(g).sum()),
    (L2(0.1), lambda g: 0.1 * (g**2).sum()),
    (GroupLasso(0.1), lambda g: 0.1 * np_gl(g)),
    (SparseGroupLasso(0.1), lambda g: 0.1 * (np_gl(g) + np.abs(g).sum())),
    (Norm(0.1), lambda g: 0.1 * np.sqrt((g**2).sum())),
]


@pytest.mark.parametrize(("reg", "per_layer"), VALUES, ids=repr)
def test_penalty_of_a_cnn_sums_channel_groups_and_linear_columns(reg, per_layer) -> None:
    net = cnn()
    expected = sum(per_layer(g) for g in grouped_np(net))
    np.testing.assert_allclose(reg(net).item(), expected, rtol=1e-12)


def test_conv_group_lasso_is_channel_norms_times_sqrt_group_size() -> None:
    w = cnn()[2].weight.detach().numpy()  # [3, 4, 3, 3]: groups of size 27
    norms = [np.sqrt((w[:, c] ** 2).sum()) for c in range(4)]
    expected = 0.1 * math.sqrt(27) * sum(norms)
    np.testing.assert_allclose(GroupLasso(0.1, params=["2.weight"])(cnn()).item(), expected)


@pytest.mark.parametrize("reg", [L1(0.1), GroupLasso(0.1), SparseGroupLasso(0.1)], ids=repr)
def test_closed_form_gradient_on_conv_groups_equals_autograd(reg) -> None:
    net = cnn(zero_channels={2: [1]})  # a zero channel: the group gradient is 0 there
    reg(net).backward()
    for _, q, g in selected_groupings(net):
        grad = torch.zeros_like(q)
        w = q.detach()
        apply_grouped_(grad, g, lambda gg, w=w, g=g: reg.add_grad_(g.groups(w), gg, 0.1))
        torch.testing.assert_close(grad, q.grad, rtol=1e-12, atol=1e-15)


def test_conv_group_gradient_matches_numpy() -> None:
    net = cnn(zero_channels={2: [1]})
    GroupLasso(0.1, params=["2.weight"])(net).backward()
    w = net[2].weight.detach().numpy()
    for c in range(4):
        n = np.sqrt((w[:, c] ** 2).sum())
        expected = np.zeros_like(w[:, c]) if n == 0 else 0.1 * math.sqrt(27) * w[:, c] / n
        np.testing.assert_allclose(net[2].weight.grad[:, c].numpy(), expected, atol=1e-15)


def np_group_prox(w: np.ndarray, thr: float) -> np.ndarray:
    """Per input channel: W[:, c] · max(0, 1 − thr·√size/‖W[:, c]‖)."""
    out = w.copy()
    size = w[:, 0].size
    for c in range(w.shape[1]):
        n = np.sqrt((w[:, c] ** 2).sum())
        out[:, c] = 0 if n == 0 else w[:, c] * max(0.0, 1 - thr * math.sqrt(size) / n)
    return out


def test_group_lasso_prox_removes_whole_conv_channels() -> None:
    net = cnn()
    w = net[2].weight.detach().numpy().copy()
    norms = np.sqrt((w**2).sum(axis=(0, 2, 3)))
    lr = 0.5
    lam = float(np.sort(norms)[1]) / math.sqrt(27) / lr * 1.001  # removes the 2 smallest
    GroupLasso(lam, params=["2.weight"]).prox_(net, lr)
    after = net[2].weight.detach().numpy()
    np.testing.assert_allclose(after, np_group_prox(w, lr * lam), rtol=1e-12, atol=1e-15)
    assert (np.abs(after).sum(axis=(0, 2, 3)) == 0).sum() == 2


def test_sgl_prox_on_conv_is_soft_threshold_then_channel_shrink() -> None:
    net = cnn()
    w = net[0].weight.detach().numpy().copy()
    lr, lam = 0.1, 0.4
    SparseGroupLasso(lam, params=["0.weight"]).prox_(net, lr)
    soft = np.sign(w) * np.maximum(np.abs(w) - lr * lam, 0)
    np.testing.assert_allclose(net[0].weight.detach().numpy(), np_group_prox(soft, lr * lam))


def test_metric_prox_on_conv_channels_satisfies_the_optimality_conditions() -> None:
    """x = argmin (1/2lr)Σd(x−z)² + λ√s·Σ_c‖x_c‖: zero channel iff ‖d·z_c‖ ≤ lr·λ√s, else
    d(x−z)/lr + λ√s·x/‖x‖ = 0 (numpy)."""
    net = cnn()
    z = net[2].weight.detach().numpy().copy()
    d = np.random.default_rng(1).uniform(0.5, 3.0, size=z.shape)
    lr = 0.2
    dz = np.sort([np.sqrt(((d[:, c] * z[:, c]) ** 2).sum()) for c in range(4)])
    lam = (dz[0] + dz[1]) / 2 / (lr * math.sqrt(27))  # between the two smallest: one removed
    GroupLasso(lam, params=["2.weight"]).prox_metric_(net, lr, lambda q: torch.from_numpy(d))
    x = net[2].weight.detach().numpy()
    c_thr = lam * math.sqrt(27)
    zeroed = 0
    for c in range(4):
        if np.sqrt(((d[:, c] * z[:, c]) ** 2).sum()) <= lr * c_thr:
            assert (x[:, c] == 0).all()
            zeroed += 1
        else:
            xn = np.sqrt((x[:, c] ** 2).sum())
            kkt = d[:, c] * (x[:, c] - z[:, c]) / lr + c_thr * x[:, c] / xn
            np.testing.assert_allclose(kkt, 0, atol=1e-9)
    assert zeroed == 1


def test_group_penalty_refuses_a_parameter_without_grouping() -> None:
    with pytest.raises(ValueError, match=r"GroupLasso needs 2-D weights or conv.*'0\.bias'"):
        GroupLasso(0.1, params=["0.bias"])(cnn())
    net = cnn()
    expected = 0.1 * np.abs(net[0].bias.detach().numpy()).sum()
    assert L1(0.1, params=["0.bias"])(net).item() == pytest.approx(expected)


# --- sparsity of a CNN ------------------------------------------------------------------


def test_cnn_sparsity_counts_channels_removed_and_params_kept_by_hand() -> None:
    # conv2 input channels 1, 3 dead; the Linear's columns of conv2's output channel 2
    # (positions 32..47) all dead; one column of the live channel 0 is zero (kept: a live
    # channel keeps all of its columns, as its group penalty groups them).
    net = cnn(zero_channels={2: [1, 3]})
    with torch.no_grad():
        net[5].weight[:, 32:48] = 0.0
        net[5].weight[:, 5] = 0.0
    layers = neuron_sparsity(net)
    assert layers == [
        LayerSparsity("input", 1, 0, 0.0, "channel"),
        LayerSparsity("conv1", 4, 2, 0.5, "channel"),
        LayerSparsity("conv2", 3, 1, 1 / 3, "channel"),
    ]
    # by hand: conv0 keeps output channels 0, 2 (1, 3 are dead inputs of conv2): 2·1·9 + 2
    # conv2 keeps output channels 0, 1 (channel 2 feeds no Linear input), inputs 0, 2:
    # 2·2·9 + 2; the Linear keeps 2 channels × 16 columns for 2 outputs: 2·32 + 2
    assert params_kept(net) == (2 * 1 * 9 + 2) + (2 * 2 * 9 + 2) + (2 * 32 + 2)
    assert params_total(net) == (4 * 9 + 4) + (3 * 4 * 9 + 3) + (2 * 48 + 2)
    zeros = 2 * 3 * 9 + 2 * 16 + 2
    assert weight_sparsity(net) == pytest.approx(zeros / (36 + 108 + 96))


def test_params_kept_of_the_shipped_cnn_is_what_compress_keeps() -> None:
    from regexp.model.cnn import cnn as shipped_cnn
    from regexp.model.compress import compress_model

    torch.manual_seed(0)
    model = shipped_cnn((1, 8, 8), [4, 6], 3).eval()
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    head = next(m for m in model if isinstance(m, nn.Linear))
    with torch.no_grad():
        convs[0].weight[:, 0, 0, 0] = 0  # one zero weight: nothing removed
        convs[1].weight[:, 1] = 0
        convs[1].weight[:, 3] = 0
        head.weight[:, 2 * 4 : 3 * 4] = 0  # conv2's channel 2: all of its columns
        head.weight[:, 5 * 4 + 1] = 0  # one column of the live channel 5
    small = compress_model(model)
    assert params_kept(model) == sum(p.numel() for p in small.parameters())
    assert [s.removed for s in neuron_sparsity(model)] == [0, 2, 1]


def test_cnn_kept_params_of_a_stack_are_each_models() -> None:
    nets = [cnn(), cnn(zero_channels={2: [1, 3]})]
    weights = [torch.stack([n[i].weight.detach() for n in nets]) for i in (0, 2, 5)]
    groupings = [InputChannels(4), InputChannels(4), ChannelBlocks(positions=16)]
    kept = count_params_kept(weights, True, groupings)
    assert kept.tolist() == [params_kept(n) for n in nets]
    dead = dead_groups(weights, groupings)
    assert [d.sum(-1).tolist() for d in dead] == [[0, 0], [0, 2], [0, 0]]


def test_linear_after_conv_must_take_a_multiple_of_its_channels() -> None:
    with pytest.raises(ValueError, match="layer 0 has 3 outputs but layer 1 has 7 inputs"):
        count_params_kept(
            [torch.ones(3, 1, 2, 2), torch.ones(2, 7)], True, [InputChannels(), Columns()]
        )
    with pytest.raises(ValueError, match="layer 0 has 3 outputs but layer 1 has 6 inputs"):
        count_params_kept([torch.ones(3, 2), torch.ones(2, 6)])  # Linear → Linear: no positions


# --- the example of docs/regularizers.md -------------------------------------------------


@pytest.fixture
def log_penalty():
    """Run the docs' example (it registers ``log``; the registry is restored after)."""
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)]
    before = dict(REGULARIZERS)
    namespace: dict = {"__name__": "__docs__"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    yield namespace
    REGULARIZERS.clear()
    REGULARIZERS.update(before)


def np_log_prox(z: float, tau: float, eps: float) -> float:
    """Brute force: the minimizer of ½(x − z)² + τ·log(1 + |x|/ε) on a fine grid."""
    xs = np.linspace(-abs(z) - 1, abs(z) + 1, 400_001)
    f = 0.5 * (xs - z) ** 2 + tau * np.log1p(np.abs(xs) / eps)
    return float(xs[np.argmin(f)])


def test_docs_example_log_penalty_value_grad_and_prox(log_penalty) -> None:
    cls = log_penalty["LogPenalty"]
    assert make_regularizer("log", 0.2, eps=0.5).get_config() == {
        "strength": 0.2,
        "eps": 0.5,
        "params": None,
    }
    net = cnn(zero_channels={2: [1]})
    reg = cls(0.2, eps=0.5)
    expected = sum(0.2 * np.log1p(np.abs(w) / 0.5).sum() for w in weights_np(net))
    np.testing.assert_allclose(reg(net).item(), expected, rtol=1e-12)
    reg(net).backward()  # autograd of value vs the closed-form add_grad_
    for _, q, g in selected_groupings(net):
        grad = torch.zeros_like(q)
        w = q.detach()
        apply_grouped_(grad, g, lambda gg, w=w, g=g: reg.add_grad_(g.groups(w), gg, 0.2))
        torch.testing.assert_close(grad, q.grad, rtol=1e-12, atol=1e-15)
    z = torch.tensor([[-2.0, -0.3, 0.0, 0.05, 0.4, 1.0, 3.0]], dtype=torch.float64)
    for tau, d in ((0.2, None), (0.6, None), (0.2, torch.full_like(z, 0.5))):
        x = z.clone()
        reg.metric_prox_step_(x, 1.0, d, tau)
        step = tau if d is None else tau / 0.5
        expected = [np_log_prox(v, step, 0.5) for v in z[0].tolist()]
        np.testing.assert_allclose(x[0].numpy(), expected, atol=2e-5)
    assert x[0, 1] == 0 and x[0, -1] != 0  # sparse: small weights go to exact zeros


def test_docs_example_trains_a_cnn_in_proximal_mode_under_adam(log_penalty) -> None:
    reg = log_penalty["LogPenalty"](0.05, eps=0.1)
    net = cnn()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    for _ in range(5):
        opt.zero_grad()
        data_loss(net(x), y, "classification").backward()
        opt.step()
        reg.prox_metric_(net, 0.01, lambda q: optimizer_metric(opt, q))
    assert weight_sparsity(net) > 0  # exact zeros from the log prox in Adam's metric


def test_docs_example_has_no_built_in_terms(log_penalty) -> None:
    reg = log_penalty["LogPenalty"](0.1)
    assert not reg.has_terms() and GroupLasso.has_terms()
    with pytest.raises(NotImplementedError, match="LogPenalty defines its own maths"):
        reg.coefficients()
    assert reg.same_maths(log_penalty["LogPenalty"](0.5))
    assert not reg.same_maths(log_penalty["LogPenalty"](0.1, eps=0.2))
