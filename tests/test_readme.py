"""The README's Python examples run as written, and print what numpy recomputes."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run_block(marker: str, capsys) -> tuple[dict, str]:
    """Execute the README block containing ``marker``; its namespace and printed text."""
    (code,) = [b for b in BLOCKS if marker in b]
    namespace = {"__name__": "__readme__"}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace, capsys.readouterr().out


def test_readme_training_loop_prints_the_dead_units_numpy_counts(capsys):
    ns, out = run_block("SparseGroupLasso(1e-2)", capsys)
    weights = [m.weight.detach().numpy() for m in ns["model"] if isinstance(m, torch.nn.Linear)]
    small = [np.abs(w[(w != 0)]).min() for w in weights if (w != 0).any()]
    assert min(small) >= 1e-3  # threshold_ left no weight below eps
    expected = [
        f"{name} {int((w == 0).all(axis=0).sum())}/{w.shape[1]} units removed"
        for name, w in zip(["input", "hidden1"], weights, strict=True)
    ]
    assert out.strip().splitlines() == expected
    assert int((weights[0] == 0).all(axis=0).sum()) > 0  # λ = 1e-2 does remove inputs


def test_readme_stacked_example_prints_each_models_validation_accuracy(capsys):
    ns, out = run_block("fit_stacked(", capsys)
    data = ns["data"]
    y = data.y_val.numpy()
    recomputed = []
    for member in ns["members"]:
        model = member.model.eval()
        with torch.no_grad():
            logits = model(data.x_val).numpy()
        recomputed.append(float((logits.argmax(1) == y).mean()))
    printed = [float(v) for v in re.findall(r"\d+\.\d+", out)]
    np.testing.assert_allclose(printed, recomputed, atol=1e-12)


@pytest.mark.parametrize("code", BLOCKS)
def test_every_readme_python_block_is_checked_above(code):
    assert "SparseGroupLasso(1e-2)" in code or "fit_stacked(" in code
