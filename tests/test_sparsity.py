"""Sparsity measures of regexp.sparsity on hand-built weights with hand-counted answers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regexp.core.sparsity import (
    LayerSparsity,
    count_params_kept,
    count_params_total,
    dead_units,
    layer_names,
    layer_sparsity,
    linear_weights,
    neuron_sparsity,
    params_kept,
    params_total,
    threshold_,
    weight_sparsity,
    zero_fraction,
)

W0 = [[0.0, 0.5, 0.0, -0.0005], [0.0, -0.7, 0.0, 0.2], [0.0, -0.0002, 0.0, 0.0009]]
W1 = [[0.0, 1.0, 0.0], [0.0, -2.0, 0.0]]  # hidden1 units 0 and 2 feed nothing
W2 = [[0.3, -0.0]]  # hidden2 unit 1 feeds nothing (-0.0 is exactly zero)
W0_THRESHOLDED = [[0.0, 0.5, 0.0, 0.0], [0.0, -0.7, 0.0, 0.2], [0.0, 0.0, 0.0, 0.0]]


def make_mlp(bias: bool = True) -> nn.Sequential:
    net = nn.Sequential(
        nn.Linear(4, 3, bias=bias), nn.ReLU(), nn.Linear(3, 2, bias=bias), nn.ReLU(),
        nn.Linear(2, 1, bias=bias),
    ).double()  # fmt: skip
    with torch.no_grad():
        for w, v in zip(linear_weights(net), (W0, W1, W2), strict=True):
            w.copy_(torch.tensor(v, dtype=torch.float64))
        if bias:
            for m in net.modules():
                if isinstance(m, nn.Linear):
                    m.bias.fill_(1e-5)  # tiny biases must survive threshold_
    return net


def test_linear_weights_in_registration_order() -> None:
    assert [tuple(w.shape) for w in linear_weights(make_mlp())] == [(3, 4), (2, 3), (1, 2)]


def test_threshold_uses_absolute_value_and_counts_changed_entries() -> None:
    net = make_mlp()
    assert threshold_(net, eps=1e-3) == 3  # -0.0005, -0.0002, 0.0009; -0.7 survives
    assert net[0].weight.tolist() == W0_THRESHOLDED
    assert net[2].weight.tolist() == W1 and net[4].weight.tolist() == W2
    assert (net[0].bias == 1e-5).all()
    assert threshold_(net, eps=1e-3) == 0  # idempotent: nothing left to zero


def test_threshold_rejects_negative_eps_and_eps_zero_is_noop() -> None:
    with pytest.raises(ValueError, match=r"eps must be a finite number >= 0, got -0\.1"):
        threshold_(make_mlp(), eps=-0.1)
    net = make_mlp()
    assert threshold_(net, eps=0.0) == 0
    assert net[0].weight.tolist() == W0


def test_dead_units_are_all_zero_columns() -> None:
    net = make_mlp()
    threshold_(net)
    dead = dead_units(linear_weights(net))
    assert [d.tolist() for d in dead] == [
        [True, False, True, False],
        [True, False, True],
        [False, True],
    ]


def test_layer_names() -> None:
    assert layer_names(1) == ["input"]
    assert layer_names(3) == ["input", "hidden1", "hidden2"]


def test_neuron_sparsity_counts_removed_units_per_layer() -> None:
    net = make_mlp()
    threshold_(net)
    assert neuron_sparsity(net) == [
        LayerSparsity("input", 4, 2, 0.5),
        LayerSparsity("hidden1", 3, 2, 2 / 3),
        LayerSparsity("hidden2", 2, 1, 0.5),
    ]
    with pytest.raises(ValueError, match="2-D"):
        layer_sparsity([torch.zeros(2, 3, 4)])


def test_weight_sparsity_is_zero_fraction_of_weights_only() -> None:
    net = make_mlp()
    assert weight_sparsity(net) == pytest.approx(11 / 20)  # before: 6 + 4 + 1 zeros
    threshold_(net)
    assert weight_sparsity(net) == pytest.approx(14 / 20)  # zeros: 9 + 4 + 1 of 12 + 6 + 2


def test_params_total_and_kept_by_hand() -> None:
    net = make_mlp()
    threshold_(net)
    assert params_total(net) == (12 + 3) + (6 + 2) + (2 + 1)
    # alive: input 2, hidden1 1, hidden2 1, output 1 → (1·2 + 1) + (1·1 + 1) + (1·1 + 1)
    assert params_kept(net) == 7
    net = make_mlp(bias=False)
    threshold_(net)
    assert params_total(net) == 20
    assert params_kept(net) == 1 * 2 + 1 * 1 + 1 * 1


def test_batched_counts_are_per_model() -> None:
    net = make_mlp()
    threshold_(net)
    dense = [torch.full_like(w, 0.5) for w in linear_weights(net)]
    stack = [torch.stack([w.detach(), d]) for w, d in zip(linear_weights(net), dense, strict=True)]
    assert [tuple(d.shape) for d in dead_units(stack)] == [(2, 4), (2, 3), (2, 2)]
    assert count_params_kept(stack).tolist() == [7, 26]
    assert count_params_total(stack) == 26
    assert zero_fraction(stack).tolist() == pytest.approx([0.7, 0.0])
    assert [d.sum(-1).tolist() for d in dead_units(stack)] == [[2, 0], [2, 0], [1, 0]]


def test_kept_params_rejects_mismatched_layers() -> None:
    with pytest.raises(ValueError, match="layer 0 has 3 outputs but layer 1 has 4 inputs"):
        count_params_kept([torch.ones(3, 2), torch.ones(1, 4)])
