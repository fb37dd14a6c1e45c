"""Compression: a sparse MLP rebuilt as a smaller dense one (regexp.model.compress and
``regexp compress``), checked against hand-built networks and numpy."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from regexp.core.sparsity import params_kept
from regexp.model.compress import compress_model
from regexp.model.mlp import load_checkpoint, mlp
from regexp.runs import compression


def _sparse_mlp() -> nn.Sequential:
    """6-5-4-3 with inputs 1 and 4, hidden1 units 0 and 2, and hidden2 unit 3 dead."""
    torch.manual_seed(0)
    model = mlp(6, [5, 4], 3, "tanh", dropout=0.5)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        linears[0].weight[:, [1, 4]] = 0
        linears[1].weight[:, [0, 2]] = 0
        linears[2].weight[:, [3]] = 0
        linears[1].weight[1, :] = 0  # hidden2 unit 1: no input, constant tanh(b): kept
    return model.eval()


def _numpy_forward(model: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """The dense network computed layer by layer in numpy (dropout is off in eval mode)."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    h = x.astype(np.float64)
    for i, m in enumerate(linears):
        h = h @ m.weight.detach().double().numpy().T + m.bias.detach().double().numpy()
        if i < len(linears) - 1:
            h = np.tanh(h)
    return h


def test_dead_units_are_removed_and_outputs_unchanged():
    model = _sparse_mlp()
    small = compress_model(model)
    linears = [m for m in small.layers if isinstance(m, nn.Linear)]
    # Kept: inputs {0,2,3,5}, hidden1 {1,3,4}, hidden2 {0,1,2}, outputs {0,1,2}.
    assert [tuple(m.weight.shape) for m in linears] == [(3, 4), (3, 3), (3, 3)]
    assert small.kept_inputs.tolist() == [0, 2, 3, 5]
    assert not any(isinstance(m, nn.Dropout) for m in small.layers)
    # Hand count: (3·4 + 3) + (3·3 + 3) + (3·3 + 3) = 39, which params_kept also counts.
    n = sum(p.numel() for p in small.parameters())
    assert n == 39 == params_kept(model)
    x = np.random.default_rng(1).normal(size=(50, 6))
    with torch.no_grad():
        out = small.forward_full(torch.tensor(x, dtype=torch.float32)).double().numpy()
        kept = small(torch.tensor(x[:, [0, 2, 3, 5]], dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(out, _numpy_forward(model, x), atol=1e-5)
    np.testing.assert_array_equal(out, kept)


def test_a_model_without_kept_inputs_or_not_an_mlp_is_refused():
    model = _sparse_mlp()
    with torch.no_grad():
        model[0].weight.zero_()
    with pytest.raises(ValueError, match="every input feature was removed"):
        compress_model(model)
    with pytest.raises(ValueError, match="cannot remove units through BatchNorm1d"):
        compress_model(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)))


@pytest.fixture(scope="module")
def sgl_run(tmp_path_factory):
    """A short default SGL run (λ large enough to remove inputs and units)."""
    from regexp.cli import main

    run_dir = tmp_path_factory.mktemp("runs") / "sgl"
    main(["train", "lambda=3e-3", "trainer.epochs=60", f"hydra.run.dir={run_dir}"])
    return run_dir


@pytest.mark.slow
def test_regexp_compress_matches_params_kept_and_the_thresholded_outputs(sgl_run, capsys):
    from regexp.cli import main

    main(["compress", str(sgl_run)])
    assert "1 of 1 run(s) compressed" in capsys.readouterr().out
    table = pd.read_csv(sgl_run / "compression.csv")
    metrics = pd.read_csv(sgl_run / "metrics.csv").iloc[0]
    before, after = (
        table.set_index("model").loc["thresholded"],
        table.set_index("model").loc["compressed"],
    )
    assert before["params"] == metrics["params_total"]
    assert after["params"] == metrics["params_kept"] < metrics["params_total"]
    assert after["max_abs_diff"] <= 1e-5
    assert (table[["latency_b1_us", "latency_b256_us"]] > 0).all().all()
    assert after["file_bytes"] == (sgl_run / "compressed.pt").stat().st_size
    # Independently: the saved compressed network against the thresholded model.pt.
    model, _ = load_checkpoint(sgl_run / "model.pt")
    small = compression.load_compressed(sgl_run / "compressed.pt")
    assert len(small.kept_inputs) == 64 - int(
        pd.read_csv(sgl_run / "sparsity.csv").set_index("layer").loc["input", "removed"]
    )
    x = torch.randn(200, 64)
    with torch.no_grad():
        np.testing.assert_allclose(small.forward_full(x), model(x), atol=1e-5)


@pytest.mark.slow
def test_outputs_that_disagree_write_nothing(sgl_run, monkeypatch, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sgl_run, run)
    for name in ("compressed.pt", "compression.csv"):
        (run / name).unlink(missing_ok=True)

    def broken(model):
        small = compress_model(model)
        with torch.no_grad():
            small.layers[-1].bias += 1e-3
        return small

    monkeypatch.setattr(compression, "compress_model", broken)
    with pytest.raises(ValueError, match=r"differ by .* > 1e-05 .* nothing written"):
        compression.compress(run)
    assert not (run / "compressed.pt").exists() and not (run / "compression.csv").exists()


@pytest.mark.slow
def test_compress_of_a_folder_without_runs_is_one_line(regexp_cli, tmp_path):
    proc = regexp_cli("compress", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"regexp: error: no finished runs in '{tmp_path}' (expected a run or sweep directory)"
    ]


@pytest.mark.slow
def test_compress_true_adds_the_compressed_columns_to_metrics(tmp_path):
    from regexp.cli import main

    run_dir = tmp_path / "run"
    main(["train", "lambda=3e-3", "trainer.epochs=30", "compress=true", f"hydra.run.dir={run_dir}"])
    metrics = pd.read_csv(run_dir / "metrics.csv").iloc[0]
    table = pd.read_csv(run_dir / "compression.csv").set_index("model")
    assert metrics["compressed_params"] == metrics["params_kept"]
    assert metrics["compressed_params"] == table.loc["compressed", "params"]
    assert metrics["compressed_latency_b1_us"] > 0
    assert metrics["compress"]  # a config column, outside config_id (the numbers are the same)


def test_a_conv_net_loses_its_dead_channels_and_columns():
    from regexp.model.cnn import cnn

    torch.manual_seed(0)
    model = cnn((1, 8, 8), [4, 6], 3, dropout=0.2).eval()
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    head = next(m for m in model if isinstance(m, nn.Linear))
    with torch.no_grad():
        convs[1].weight[:, 1] = 0  # conv1's output channel 1 feeds nothing
        head.weight[:, 2 * 4 : 3 * 4] = 0  # conv2's channel 2: all 4 of its columns
        head.weight[:, 0 * 4 + 3] = 0  # one position of the live channel 0: kept
    small = compress_model(model)
    # By hand: conv1 1→3 (3·1·9 + 3 = 30), conv2 3→5 (5·3·9 + 5 = 140), head 20 columns
    # (5 channels · 4 positions) → 3 (3·20 + 3 = 63): 233.
    assert sum(p.numel() for p in small.parameters()) == 233
    x = torch.randn(40, 64)
    with torch.no_grad():
        np.testing.assert_allclose(small.forward_full(x), model(x), atol=1e-5)
    assert small.kept_inputs.tolist() == list(range(64))


def test_a_dead_image_channel_drops_its_pixels():
    from regexp.model.cnn import cnn

    torch.manual_seed(1)
    model = cnn((3, 4, 4), [2], 2, pool=1).eval()
    with torch.no_grad():
        model[1].weight[:, 1] = 0  # the green plane is never read
    small = compress_model(model)
    assert small.kept_inputs.tolist() == [*range(16), *range(32, 48)]
    x = torch.randn(10, 48)
    with torch.no_grad():
        np.testing.assert_allclose(small.forward_full(x), model(x), atol=1e-5)
        np.testing.assert_allclose(small(x[:, small.kept_inputs]), model(x), atol=1e-5)
    from regexp.model.compress import from_state, state

    restored = from_state(state(small))  # the layer spec and weights of compressed.pt
    with torch.no_grad():
        assert torch.equal(restored.forward_full(x), small.forward_full(x))
