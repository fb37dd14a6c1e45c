import itertools

import pytest
import torch

from regexp.core.penalties import add_penalty_grad_, penalty

TERMS = ("l1", "l2", "group", "norm")


def stacked_weights() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    w[0, :, 1] = 0  # an all-zero column (group)
    w[1, 2, 3] = 0  # a single zero weight (l1 subgradient 0)
    w[2] = 0  # an all-zero model (norm)
    return w


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("n_terms", [1, 2, 4])
def test_closed_form_gradient_matches_autograd_of_the_penalty(p, n_terms):
    coefs = torch.tensor([0.3, 1.7, 0.9], dtype=torch.float64)
    for combo in itertools.combinations(TERMS, n_terms):
        kwargs = {t: coefs * (i + 1) for i, t in enumerate(combo)}
        w = stacked_weights().requires_grad_()
        (expected_grad,) = torch.autograd.grad(penalty(w, p=p, **kwargs).sum(), w)
        grad = torch.full_like(w, 0.25)  # accumulates into what is already there
        add_penalty_grad_(w.detach(), grad, p=p, **kwargs)
        torch.testing.assert_close(grad - 0.25, expected_grad, rtol=1e-10, atol=1e-12)
        assert not grad.isnan().any()


def test_closed_form_gradient_takes_python_float_coefficients():
    w = stacked_weights()
    grad = torch.zeros_like(w)
    add_penalty_grad_(w, grad, l1=0.5)
    torch.testing.assert_close(grad, 0.5 * w.sign())


@pytest.mark.parametrize(
    "coef",
    [0.7, torch.tensor(0.7), torch.tensor([0.7]), torch.tensor(0.7, dtype=torch.float32)],
    ids=["float", "0-dim", "shape-1", "float32"],
)
def test_closed_form_gradient_of_one_matrix_takes_any_scalar_coefficient(coef):
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    w[:, 2] = 0
    kwargs = {"l1": coef, "l2": coef, "group": coef, "norm": coef}
    for p in (1.0, 2.0, 3.0):
        x = w.clone().requires_grad_()
        (expected,) = torch.autograd.grad(penalty(x, p=p, **kwargs).sum(), x)
        grad = torch.zeros_like(w)
        add_penalty_grad_(w, grad, p=p, **kwargs)
        torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-7)
