"""Aggregation of sweep results, checked on hand-made frames against numpy by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regexp.hydra_app import objectives
from regexp.results import aggregate, selection
from regexp.runs import collect as sweep

RNG = np.random.default_rng(0)


def results_frame() -> pd.DataFrame:
    """2 regularizers × 2 λ × 3 seeds, one failed and one diverged job, in metrics.csv order."""
    rows = []
    for reg in ("l1", "sgl"):
        for lam in (1e-4, 1e-2):
            for seed in (0, 1, 2):
                rows.append(
                    {
                        "job": str(len(rows)),
                        "dataset": "digits",
                        "task": "classification",
                        "regularizer": reg,
                        "mode": "penalty",
                        "lambda": lam,
                        "seed": seed,
                        "hidden": "40-20",
                        "architecture": "64-40-20-10",
                        "status": "ok",
                        "error": None,
                        "test_accuracy": RNG.uniform(0.5, 1.0),
                        "neuron_sparsity_input": RNG.uniform(),
                        "params_total": 3630,
                        "params_kept": float(RNG.integers(100, 3630)),
                    }
                )
    frame = pd.DataFrame(rows)
    frame.loc[4, ["status", "error", "architecture"]] = ["failed", "ValueError: bad", np.nan]
    frame.loc[[4], ["test_accuracy", "neuron_sparsity_input", "params_total", "params_kept"]] = (
        np.nan
    )
    frame.loc[7, "status"] = "diverged"
    return frame


def test_summary_mean_and_std_over_ok_seeds_match_numpy():
    results = results_frame()
    summary = aggregate.summarize(results)
    assert list(summary.columns[:6]) == ["dataset", "regularizer", "mode", "lambda", "n", "n_ok"]
    assert len(summary) == 4
    for reg in ("l1", "sgl"):
        for lam in (1e-4, 1e-2):
            rows = [
                r
                for r in results.to_dict("records")
                if r["regularizer"] == reg and r["lambda"] == lam
            ]
            ok = [r for r in rows if r["status"] == "ok"]
            got = summary[(summary["regularizer"] == reg) & (summary["lambda"] == lam)].iloc[0]
            assert got["n"] == len(rows) == 3
            assert got["n_ok"] == len(ok)
            for metric in ("test_accuracy", "neuron_sparsity_input", "params_kept"):
                values = np.array([r[metric] for r in ok])
                assert got[f"{metric}_mean"] == pytest.approx(np.mean(values), rel=1e-12)
                assert got[f"{metric}_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
            fraction = np.array([r["params_kept"] / r["params_total"] for r in ok])
            assert got["params_fraction_mean"] == pytest.approx(fraction.mean(), rel=1e-12)
    # the failed job (4) and the diverged one (7) are the ones left out
    assert summary["n_ok"].tolist() == [3, 2, 2, 3]


def test_summary_of_a_group_without_ok_jobs_has_no_mean():
    results = results_frame()
    results.loc[results["regularizer"] == "sgl", "status"] = "failed"
    summary = aggregate.summarize(results).set_index("regularizer")
    assert summary.loc["sgl", "n"].tolist() == [3, 3]
    assert summary.loc["sgl", "n_ok"].tolist() == [0, 0]
    assert summary.loc["sgl", "test_accuracy_mean"].isna().all()


def test_group_columns_add_varying_config_but_never_seed_or_architecture():
    results = results_frame()
    assert aggregate.group_columns(results) == ["dataset", "regularizer", "mode", "lambda"]
    results.loc[results["seed"] == 2, "hidden"] = "20"
    assert aggregate.group_columns(results) == [
        "dataset",
        "regularizer",
        "mode",
        "lambda",
        "hidden",
    ]
    assert aggregate.summarize(results)["n"].sum() == len(results)


def test_summary_by_unknown_column_names_it():
    with pytest.raises(ValueError, match="cannot group by colour: not a column"):
        aggregate.summarize(results_frame(), ["colour"])


def test_pareto_front_on_hand_made_points():
    # cost = fraction of parameters kept (down), gain = accuracy (up)
    cost = np.array([0.1, 0.2, 0.2, 0.5, 0.6, 1.0, 0.3, np.nan])
    gain = np.array([0.5, 0.7, 0.6, 0.9, 0.9, 0.95, 0.65, 1.0])
    # 0.2/0.6 loses to 0.2/0.7; 0.3/0.65 to 0.2/0.7; 0.6/0.9 to 0.5/0.9; NaN never counts
    expected = [True, True, False, True, False, True, False, False]
    assert aggregate.pareto_front(cost, gain).tolist() == expected


def test_pareto_front_keeps_ties():
    assert aggregate.pareto_front([0.5, 0.5], [0.8, 0.8]).tolist() == [True, True]


def test_sort_by_metric_best_first_and_rmse_ascending():
    summary = pd.DataFrame({"test_r2_mean": [0.2, np.nan, 0.9], "test_rmse_mean": [3.0, 1.0, 2.0]})
    assert aggregate.sort_by_metric(summary, "test_r2").index.tolist() == [2, 0, 1]
    assert aggregate.sort_by_metric(summary, "test_rmse").index.tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="unknown metric 'acc'; choose one of: test_r2, test_rmse"):
        aggregate.sort_by_metric(summary, "acc")


def test_objective_values_single_multi_and_not_ok():
    row = {"status": "ok", "val_accuracy": 0.75, "params_kept": 120}
    assert objectives.objective_values(row, ["val_metric"]) == 0.75
    assert objectives.objective_values(row, ["val_metric", "params_kept"]) == [0.75, 120.0]
    regression = {"status": "ok", "val_r2": 0.4, "params_kept": 7}
    assert objectives.objective_values(regression, ["val_metric"]) == 0.4
    assert objectives.objective_values(row | {"status": "diverged"}, ["val_metric"]) is None
    with pytest.raises(ValueError, match="objectives must be a non-empty list of: val_metric"):
        objectives.validate_objectives(["val_acc"])


def _write_job(root, job, row):
    (root / job).mkdir(parents=True)
    pd.DataFrame([row]).to_csv(root / job / "metrics.csv", index=False)


def test_load_results_orders_jobs_and_reports_missing_ones(tmp_path):
    for job in ("10", "2"):
        _write_job(tmp_path, job, {"dataset": "digits", "hidden": 40, "status": "ok", "x": 1})
    killed = tmp_path / "3" / ".hydra"
    killed.mkdir(parents=True)
    (killed / "config.yaml").write_text("lambda: 0.5\n")
    results = sweep.load_results(tmp_path)
    assert results["job"].tolist() == ["2", "3", "10"]
    assert results["status"].tolist() == ["ok", "missing", "ok"]
    assert results.loc[1, "error"] == sweep.MISSING_ERROR
    assert results["hidden"].tolist()[::2] == ["40", "40"]  # text, as "40-20" would be


def test_load_results_rejects_a_path_without_results(tmp_path):
    message = (
        f"no results in '{tmp_path}' (expected a sweep directory, a run directory or a results.csv)"
    )
    with pytest.raises(sweep.NoResultsError) as err:
        sweep.load_results(tmp_path)
    assert str(err.value) == message
    (tmp_path / "summary.csv").write_text("a,b\n1,2\n")
    with pytest.raises(sweep.NoResultsError):
        sweep.load_results(tmp_path / "summary.csv")


def test_mixed_tasks_select_on_each_jobs_own_validation_metric():
    results = pd.DataFrame(
        {
            "task": ["classification", "regression"],
            "status": ["ok", "ok"],
            "val_accuracy": [0.8, np.nan],
            "val_r2": [np.nan, 0.3],
            "test_accuracy": [0.9, np.nan],
            "test_r2": [np.nan, 0.4],
        }
    )
    assert selection.selection_metric(results) == "val_metric"
    assert selection.selection_metric(results.iloc[:1]) == "val_accuracy"
    both = selection.with_val_metric(results)
    assert both["val_metric"].tolist() == [0.8, 0.3]
    assert both["test_metric"].tolist() == [0.9, 0.4]
