"""The README's examples run as written, and print what numpy recomputes; its links and
command lines work; it stays short."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The README and the pages of docs/ that it owns (docs/reproduction.md is generated).
PAGES = [README, *(ROOT / "docs" / f"{n}.md" for n in ("configuration", "outputs", "sweeps"))]
BLOCKS = [
    b for page in PAGES for b in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
]


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


@pytest.mark.slow
def test_readme_notebook_example_prints_the_saved_models_numpy_accuracy(
    capsys, tmp_path, monkeypatch
):
    from regexp.data.prepare import load_dataset
    from regexp.model.mlp import load_checkpoint

    monkeypatch.chdir(tmp_path)  # the example writes outputs/notebook/l1
    ns, out = run_block("regexp.run(", capsys)
    model, cfg = load_checkpoint(tmp_path / "outputs" / "notebook" / "l1" / "model.pt")
    assert cfg["regularizer"]["name"] == "l1" and cfg["trainer"]["epochs"] == 20
    data = load_dataset(**cfg["dataset"])
    with torch.no_grad():
        logits = model(data.x_test).numpy()
    accuracy = float((logits.argmax(1) == data.y_test.numpy()).mean())
    printed = re.search(r"test accuracy: (\S+) parameters kept: (\d+)", out)
    assert float(printed.group(1)) == pytest.approx(accuracy, abs=1e-12)
    assert accuracy > 0.8  # 20 epochs on digits
    # parameters kept: with a_i the input units of layer i with a non-zero outgoing weight
    # (a_L: all outputs), each layer keeps a_{i+1}·a_i weights and a_{i+1} biases.
    weights = [m.weight.detach().numpy() for m in model if isinstance(m, torch.nn.Linear)]
    alive = [int((w != 0).any(axis=0).sum()) for w in weights] + [weights[-1].shape[0]]
    kept = sum(alive[i + 1] * alive[i] + alive[i + 1] for i in range(len(weights)))
    assert int(printed.group(2)) == kept
    history = np.genfromtxt(tmp_path / "outputs/notebook/l1/history.csv", delimiter=",", names=True)
    assert f"{history['val_loss'][-1]:.6f}" in out  # the last epoch's val_loss, printed
    assert len(ns["results"]) == 1


@pytest.mark.parametrize("code", BLOCKS)
def test_every_readme_python_block_is_checked_above(code):
    assert "SparseGroupLasso(1e-2)" in code or "fit_stacked(" in code or "regexp.run(" in code


def test_readme_is_under_250_lines():
    assert len(README.read_text().splitlines()) < 250


def test_readme_links_point_to_files_that_exist():
    for page in [README, *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), (page.name, target)


def _train_lines() -> list[list[str]]:
    """Every ``regexp train`` command line of the README, as its list of overrides."""
    lines = re.findall(r"^\s*regexp train (.*?)(?:\s+#.*)?$", README.read_text(), flags=re.M)
    return [[a for a in line.split() if a not in ("-m", "--help")] for line in lines]


@pytest.mark.parametrize("overrides", _train_lines(), ids=" ".join)
def test_every_readme_train_command_composes_and_validates(overrides, make_config, tmp_path):
    from regexp.config import validate

    task = []
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key.startswith("hydra"):
            continue  # Hydra's own settings (launcher, directories)
        if key == "dataset.path":  # the example's file: any CSV file with that column
            value = str(tmp_path / "data.csv")
            (tmp_path / "data.csv").write_text("a,Outcome\n" + "1,0\n2,1\n" * 10)
        task.append(f"{key}={value.split(',')[0] if '[' not in value else value}")
    cfg = make_config(*task)  # the first job of a sweep
    validate(cfg)
    for arg in task:  # the README's choices are the ones composed
        key, _, value = arg.partition("=")
        if "." not in key and isinstance(cfg.get(key), dict) and "name" in cfg[key]:
            assert cfg[key]["name"] == value, arg
