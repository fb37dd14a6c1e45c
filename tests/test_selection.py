"""Model selection: the best λ per regularizer is chosen on validation, never on test.

Checked on a hand-made sweep whose validation-best and test-best λ differ, against numpy
means, stds and standard errors computed here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regexp.results import selection

LAMBDAS = (1e-4, 1e-3, 1e-2)
# val/test accuracy per (regularizer, λ) for seeds 0, 1, 2. For l1, λ = 1e-3 is best on
# validation, λ = 1e-4 on test; 1e-2 is within one standard error of the best on validation.
VAL = {
    ("l1", 1e-4): [0.90, 0.91, 0.89],
    ("l1", 1e-3): [0.93, 0.94, 0.95],
    ("l1", 1e-2): [0.93, 0.945, 0.935],
    ("sgl", 1e-4): [0.80, 0.82, 0.81],
    ("sgl", 1e-3): [0.85, 0.84, 0.86],
    ("sgl", 1e-2): [0.70, 0.71, 0.69],
}
TEST = {
    key: [v + (0.08 if key == ("l1", 1e-4) else 0.0) for v in vals] for key, vals in VAL.items()
}
KEPT = {1e-4: 3000, 1e-3: 2000, 1e-2: 1000}


def sweep_results() -> pd.DataFrame:
    rows = []
    for (reg, lam), vals in VAL.items():
        for seed, (val, test) in enumerate(zip(vals, TEST[reg, lam], strict=True)):
            rows.append(
                {
                    "dataset": "digits",
                    "task": "classification",
                    "regularizer": reg,
                    "mode": "penalty",
                    "lambda": lam,
                    "seed": seed,
                    "architecture": "64-40-20-10",
                    "status": "ok",
                    "val_accuracy": val,
                    "test_accuracy": test,
                    "neuron_sparsity_input": 0.25 if lam == 1e-2 else 0.0,
                    "neuron_sparsity_hidden1": 0.5 if lam == 1e-2 else 0.1,
                    "params_kept": KEPT[lam] + seed,
                    "params_total": 3630,
                }
            )
    return pd.DataFrame(rows)


def test_best_lambda_is_chosen_on_validation_not_on_test():
    best = selection.best(sweep_results()).set_index("regularizer")
    assert best.loc["l1", "lambda"] == 1e-3  # validation-best; test-best would be 1e-4
    assert best.loc["sgl", "lambda"] == 1e-3
    test = TEST["l1", 1e-3]
    assert best.loc["l1", "test_accuracy_mean"] == pytest.approx(np.mean(test))
    assert best.loc["l1", "test_accuracy_std"] == pytest.approx(np.std(test, ddof=1))
    assert best.loc["l1", "val_accuracy_mean"] == pytest.approx(np.mean(VAL["l1", 1e-3]))
    assert best.loc["l1", "removed_hidden1_mean"] == pytest.approx(0.1 * 40)
    assert best.loc["l1", "params_kept_mean"] == pytest.approx(2001)
    assert set(best["selected_on"]) == {"val_accuracy"} and set(best["n_ok"]) == {3}


def test_one_standard_error_rule_picks_the_sparsest_lambda_close_to_the_best():
    best = selection.best(sweep_results(), rule="1se").set_index("regularizer")
    vals = VAL["l1", 1e-3]
    se = np.std(vals, ddof=1) / np.sqrt(3)
    assert np.mean(VAL["l1", 1e-2]) >= np.mean(vals) - se  # the premise of this test
    assert best.loc["l1", "lambda"] == 1e-2  # fewer parameters kept, within one SE
    assert best.loc["l1", "removed_input_mean"] == pytest.approx(0.25 * 64)
    assert np.mean(VAL["sgl", 1e-2]) < np.mean(VAL["sgl", 1e-3]) - 0.1
    assert best.loc["sgl", "lambda"] == 1e-3  # 1e-2 is far worse: not within one SE


def test_failed_jobs_are_left_out_of_the_choice():
    results = sweep_results()
    results.loc[(results["regularizer"] == "l1") & (results["lambda"] == 1e-3), "status"] = "failed"
    best = selection.best(results).set_index("regularizer")
    assert best.loc["l1", "lambda"] == 1e-2  # the best of the λ with ok jobs


def test_unknown_rule_and_metric_name_the_allowed_values():
    with pytest.raises(ValueError, match=r"rule must be one of best, 1se, within:TOL.*'median'"):
        selection.best(sweep_results(), rule="median")
    with pytest.raises(ValueError, match="unknown metric 'val_f1'"):
        selection.best(sweep_results(), "val_f1")


@pytest.mark.slow
def test_a_sweep_ends_with_progress_lines_and_the_best_lambda_table(tmp_path, capfd):
    from hydra.core.global_hydra import GlobalHydra

    from regexp.cli import main

    root = tmp_path / "sweep"
    GlobalHydra.instance().clear()
    main(["train", "-m", "regularizer=l1,sgl", "lambda=1e-4,1e-2", "trainer.epochs=3",
          "model.hidden=[8]", f"hydra.sweep.dir={root}"])  # fmt: skip
    out = capfd.readouterr()
    text = out.out + out.err
    for k in range(1, 5):
        assert f"] {k}/4 " in text  # a bar of jobs, k/N, elapsed, ETA: one line per job
    assert "ETA" in text and "best λ per group, chosen on val_accuracy" in text
    results = pd.read_csv(root / "results.csv")
    means = results.groupby(["regularizer", "lambda"])["val_accuracy"].mean()
    expected = {reg: means[reg].idxmax() for reg in ("l1", "sgl")}
    best = pd.read_csv(root / "best.csv").set_index("regularizer")
    assert best["lambda"].to_dict() == expected
