import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, mean_squared_error, r2_score

from regexp.data.prepare import load_dataset
from regexp.hydra_app.task import run_task as run
from regexp.model.mlp import load_checkpoint, mlp
from regexp.train.evaluate import evaluate

FAST = ("trainer.epochs=3", "model.hidden=[16,8]")
RUN_FILES = {
    "metrics.csv",
    "sparsity.csv",
    "history.csv",
    "model.pt",
    "learning_curves.png",
    "sparsity.png",
    "features.png",
}


@pytest.mark.slow
def test_cli_train_writes_every_output_file_and_column(regexp_cli, tmp_path):
    proc = regexp_cli("train", "hydra.run.dir=run", *FAST, "lambda=1e-3", "seed=1")
    run_dir = tmp_path / "run"
    assert {p.name for p in run_dir.iterdir()} >= RUN_FILES
    assert "test_accuracy" in proc.stdout  # the summary table
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert len(metrics) == 1
    row = metrics.iloc[0]
    expected = {
        "dataset": "digits",
        "regularizer": "sgl",
        "mode": "penalty",
        "lambda": 1e-3,
        "seed": 1,
        "hidden": "16-8",
        "architecture": "64-16-8-10",
        "status": "ok",
    }
    for key, value in expected.items():
        assert row[key] == value, key
    for col in (
        "test_accuracy",
        "test_accuracy_dense",
        "val_accuracy",
        "val_accuracy_dense",
        "weight_sparsity",
        "neuron_sparsity_input",
        "neuron_sparsity_hidden1",
        "neuron_sparsity_hidden2",
        "params_total",
        "params_kept",
        "train_seconds",
    ):
        assert col in metrics.columns, col
    assert row["params_total"] == 64 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10
    sparsity = pd.read_csv(run_dir / "sparsity.csv")
    assert list(sparsity.columns) == ["layer", "units", "removed", "fraction"]
    assert list(sparsity["layer"]) == ["input", "hidden1", "hidden2"]
    assert list(sparsity["units"]) == [64, 16, 8]
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history.columns) == [
        "epoch",
        "train_loss",
        "data_loss",
        "penalty",
        "val_loss",
        "val_accuracy",
    ]
    assert list(history["epoch"]) == [1, 2, 3]
    np.testing.assert_allclose(
        history["train_loss"], history["data_loss"] + history["penalty"], rtol=1e-6
    )


def test_checkpoint_reloads_to_the_reported_test_accuracy(make_config, tmp_path):
    cfg = make_config(*FAST, "regularizer=l1")
    row = run(cfg, tmp_path)
    model, saved = load_checkpoint(tmp_path / "model.pt")
    assert saved["regularizer"]["name"] == "l1"
    data = load_dataset(**saved["dataset"])
    pred = model(data.x_test).argmax(-1).numpy()
    assert accuracy_score(data.y_test.numpy(), pred) == pytest.approx(row["test_accuracy"])


@pytest.mark.slow
def test_default_digits_config_learns(make_config, tmp_path):
    row = run(make_config("trainer.epochs=20"), tmp_path)
    # Ten classes: chance is 0.1. Twenty epochs of the default MLP reach well above 0.9.
    assert row["test_accuracy"] > 0.9
    # 64-40-20-10 with biases, counted by hand
    assert row["params_total"] == 64 * 40 + 40 + 40 * 20 + 20 + 20 * 10 + 10


@pytest.mark.slow
def test_diabetes_regression_reports_r2_and_rmse(make_config, tmp_path):
    cfg = make_config(
        "dataset=diabetes",
        "regularizer=l2",
        "lambda=1e-4",
        "trainer.epochs=40",
        "model.hidden=[16,8]",
    )
    row = run(cfg, tmp_path)
    assert {"test_r2", "test_rmse", "test_r2_dense", "test_rmse_dense", "val_r2"} <= set(row)
    assert "test_accuracy" not in row
    assert row["test_r2"] > 0.2  # linear regression on diabetes reaches about 0.45
    model, _ = load_checkpoint(tmp_path / "model.pt")
    data = load_dataset("diabetes", "regression")
    pred = model(data.x_test).squeeze(-1).detach().double().numpy() * data.y_std + data.y_mean
    true = data.y_test.double().numpy() * data.y_std + data.y_mean
    assert row["test_r2"] == pytest.approx(r2_score(true, pred), abs=1e-6)
    assert row["test_rmse"] == pytest.approx(np.sqrt(mean_squared_error(true, pred)), rel=1e-5)
    history = pd.read_csv(tmp_path / "history.csv")
    assert "val_r2" in history.columns


def test_proximal_mode_produces_exact_zeros_before_thresholding(make_config, tmp_path):
    cfg = make_config(
        "regularizer=group_lasso",
        "regularizer.mode=proximal",
        "lambda=2",
        "threshold=0",
        *FAST,
    )
    row = run(cfg, tmp_path)
    # threshold=0 zeroes nothing: every zero comes from the proximal steps themselves.
    assert row["weight_sparsity"] > 0
    assert row["neuron_sparsity_input"] > 0
    state = torch.load(tmp_path / "model.pt", weights_only=False)["state_dict"]
    first = state["0.weight"]
    dead = (first == 0).all(dim=0)
    assert dead.float().mean().item() == pytest.approx(row["neuron_sparsity_input"])


def test_penalty_mode_needs_the_threshold_for_zeros(make_config, tmp_path):
    cfg = make_config("regularizer=l1", "lambda=1e-3", "threshold=0", *FAST)
    assert run(cfg, tmp_path)["weight_sparsity"] == 0


def test_evaluate_matches_scikit_learn_accuracy():
    data = load_dataset("wine", "classification")
    torch.manual_seed(0)
    model = mlp(data.n_features, [5], data.n_outputs)
    pred = model(data.x_val).argmax(-1).numpy()
    metrics = evaluate(model, data, "val")
    assert metrics["accuracy"] == pytest.approx(accuracy_score(data.y_val.numpy(), pred))
    logits = model(data.x_val).detach().double()
    ce = -torch.log_softmax(logits, -1)[torch.arange(len(data.y_val)), data.y_val].mean()
    assert metrics["loss"] == pytest.approx(ce.item(), rel=1e-5)


@pytest.mark.slow
def test_early_stopping_restores_the_best_validation_weights(make_config, tmp_path):
    cfg = make_config(
        "dataset=wine",
        "model.hidden=[32]",
        "optimizer.lr=0.05",
        "regularizer=none",
        "trainer.epochs=300",
        "trainer.early_stopping_patience=3",
        "threshold=0",
    )
    row = run(cfg, tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")
    assert row["epochs_run"] == len(history) < 300
    best = history["val_loss"].idxmin()
    assert len(history) - 1 - best == 3  # stopped `patience` epochs after the best one
    model, _ = load_checkpoint(tmp_path / "model.pt")
    data = load_dataset(**cfg["dataset"])
    logits = model(data.x_val).detach().double()
    ce = -torch.log_softmax(logits, -1)[torch.arange(len(data.y_val)), data.y_val].mean()
    assert ce.item() == pytest.approx(history["val_loss"].min(), rel=1e-5)


def test_run_returns_the_validation_metric_for_sweepers(make_config, tmp_path):
    from regexp.hydra_app.objectives import objective

    row = run(make_config(*FAST), tmp_path)
    model, saved = load_checkpoint(tmp_path / "model.pt")  # the thresholded model
    data = load_dataset(**saved["dataset"])
    with torch.no_grad():
        pred = model(data.x_val).argmax(-1).numpy()
    assert objective(row) == pytest.approx(accuracy_score(data.y_val.numpy(), pred), abs=1e-12)
    assert np.isnan(objective({**row, "status": "diverged"}))


@pytest.mark.slow
def test_every_subcommand_that_help_lists_runs_and_no_other(regexp_cli):
    out = regexp_cli("--help").stdout
    listed = re.findall(r"^  (\w+) ", out.split("commands:")[1].split("examples:")[0], re.M)
    assert listed == ["train", "compare", "plot", "refine", "compress"]
    assert "Configuration groups" in regexp_cli("train", "--help").stdout
    assert "--metric" in regexp_cli("compare", "--help").stdout
    assert "compressed.pt" in regexp_cli("compress", "--help").stdout
    assert "resume=true" in regexp_cli("refine", "--help").stdout
    bad = regexp_cli("nosuch", check=False)
    assert bad.returncode == 2
    allowed = "train, compare, plot, refine, compress"
    assert f"unknown command 'nosuch'; choose one of: {allowed}" in bad.stderr
