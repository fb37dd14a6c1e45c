"""Sweeps end to end: `regexp train -m` under the basic, joblib and submitit_local launchers
and the Optuna sweeper write one results row per job with that job's config; `regexp
compare` reads several sweeps. Tiny runs: digits, 2 epochs, one hidden layer of 8."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from regexp import cli

TINY = ["trainer.epochs=2", "model.hidden=[8]"]
PLOTS = ("accuracy_vs_lambda.png", "sparsity_vs_lambda.png", "pareto.png")
PNG = b"\x89PNG\r\n\x1a\n"


def train_multirun(sweep_dir: Path, *overrides: str) -> pd.DataFrame:
    """Run `regexp train -m` in a fresh process; return the sweep's results.csv."""
    cmd = [
        sys.executable,
        "-m",
        "regexp.cli",
        "train",
        "-m",
        *overrides,
        *TINY,
        f"hydra.sweep.dir={sweep_dir}",
    ]
    done = subprocess.run(cmd, cwd=sweep_dir.parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_csv(sweep_dir / "results.csv", dtype={"job": str, "hidden": str})


def job_overrides(run_dir: Path) -> dict[str, str]:
    """The overrides Hydra recorded for one job, as written in .hydra/overrides.yaml."""
    lines = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    return dict(line.split("=", 1) for line in lines)


def same(a: object, b: object) -> bool:
    """Equal values, numbers to 1e-12 relative, NaN equal to NaN."""
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return bool(pd.isna(a) and pd.isna(b)) or a == pytest.approx(b, rel=1e-12)


def assert_rows_match_jobs(sweep_dir: Path, results: pd.DataFrame, keys: list[str]) -> None:
    """Exactly one row per job directory, and each row has that job's overrides."""
    jobs = sorted(p.name for p in sweep_dir.iterdir() if (p / ".hydra").is_dir())
    assert sorted(results["job"]) == jobs
    for row in results.to_dict("records"):
        overrides = job_overrides(sweep_dir / row["job"])
        for key in keys:
            value = overrides[key]
            expected = value if key == "regularizer" else float(value)
            assert same(row[key.split(".")[-1]], expected), (row["job"], key)


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """Basic launcher: 2 regularizers × 2 λ × 2 seeds = 8 jobs."""
    sweep_dir = tmp_path_factory.mktemp("grid") / "sweep"
    train_multirun(sweep_dir, "regularizer=l1,group_lasso", "lambda=1e-4,1e-2", "seed=0,1")
    return sweep_dir


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory) -> Path:
    """joblib, 2 workers: an ok job, a diverging one (SGD with lr 1e3) and a failing one."""
    sweep_dir = tmp_path_factory.mktemp("joblib") / "sweep"
    train_multirun(
        sweep_dir,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "regularizer=l1",
        "optimizer=sgd",
        "optimizer.lr=1e-2,1e3,-1",
    )
    return sweep_dir


@pytest.mark.slow
def test_sweep_aggregates_one_row_per_job_with_its_config(grid):
    results = pd.read_csv(grid / "results.csv", dtype={"job": str})
    assert len(results) == 8
    assert_rows_match_jobs(grid, results, ["regularizer", "lambda", "seed"])
    combos = set(zip(results["regularizer"], results["lambda"], results["seed"], strict=True))
    assert combos == set(itertools.product(["l1", "group_lasso"], [1e-4, 1e-2], [0, 1]))
    assert (results["status"] == "ok").all()
    for row in results.to_dict("records"):  # every metrics.csv value, unchanged
        own = pd.read_csv(grid / row["job"] / "metrics.csv", dtype={"hidden": str}).iloc[0]
        assert list(results.columns) == ["job", *own.index]
        for column, value in own.items():
            assert same(row[column], value), (row["job"], column)


@pytest.mark.slow
def test_sweep_summary_has_one_row_per_group_and_the_plots(grid):
    summary = pd.read_csv(grid / "summary.csv")
    assert len(summary) == 4
    assert summary["n"].tolist() == [2, 2, 2, 2]
    assert summary["n_ok"].tolist() == [2, 2, 2, 2]
    for name in PLOTS:
        assert (grid / name).read_bytes()[:8] == PNG


@pytest.mark.slow
def test_joblib_failed_and_diverged_jobs_get_their_rows(joblib_sweep):
    results = pd.read_csv(joblib_sweep / "results.csv", dtype={"job": str})
    assert len(results) == 3
    assert_rows_match_jobs(joblib_sweep, results, ["optimizer.lr"])
    status = dict(zip(results["lr"], results["status"], strict=True))
    assert status == {1e-2: "ok", 1e3: "diverged", -1: "failed"}
    error = results.loc[results["lr"] == -1, "error"].item()
    assert error == "ValueError: optimizer.lr must be a finite number > 0, got -1"
    summary = pd.read_csv(joblib_sweep / "summary.csv")
    assert dict(zip(summary["lr"], summary["n_ok"], strict=True)) == {1e-2: 1, 1e3: 0, -1: 0}


@pytest.mark.slow
def test_submitit_local_sweep_results_complete(tmp_path):
    sweep_dir = tmp_path / "sweep"
    results = train_multirun(
        sweep_dir, "hydra/launcher=submitit_local", "regularizer=sgl", "optimizer.lr=1e-3,-1"
    )
    assert len(results) == 2
    assert_rows_match_jobs(sweep_dir, results, ["optimizer.lr"])
    assert (results["regularizer"] == "sgl").all()
    assert dict(zip(results["lr"], results["status"], strict=True)) == {1e-3: "ok", -1: "failed"}


@pytest.mark.slow
def test_optuna_search_returns_both_objectives(tmp_path):
    sweep_dir = tmp_path / "search"
    results = train_multirun(
        sweep_dir, "hparams_search=lambda_optuna", "hydra.sweeper.n_trials=3", "regularizer=l1"
    )
    assert len(results) == 3
    assert ((results["lambda"] >= 1e-6) & (results["lambda"] <= 1e-1)).all()
    assert_rows_match_jobs(sweep_dir, results, ["lambda"])
    solutions = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())["solutions"]
    assert solutions
    for solution in solutions:  # what the study saw is what the job measured
        row = results[results["lambda"] == solution["params"]["lambda"]].iloc[0]
        assert solution["values"] == [row["val_accuracy"], row["params_kept"]]
        assert solution["objectives"] == {
            "val_metric": row["val_accuracy"],
            "params_kept": row["params_kept"],
        }
    meaning = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(meaning["objective_meaning"]) == {"val_metric", "params_kept"}


@pytest.mark.slow
def test_compare_two_sweeps(grid, joblib_sweep, tmp_path, capsys):
    out = tmp_path / "cmp"
    cli.main(["compare", str(grid), str(joblib_sweep / "results.csv"), "--out", str(out)])
    table = capsys.readouterr().out
    assert "regexp compare (sorted on val_accuracy)" in table
    comparison = pd.read_csv(out / "comparison.csv")
    assert comparison["n"].sum() == 8 + 3
    means = comparison["val_accuracy_mean"].dropna().tolist()  # sorted on validation
    assert means == sorted(means, reverse=True)
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == PNG
    cli.main(["compare", str(grid), str(joblib_sweep), "--by", "source", "--out", str(out)])
    # --by adds source to the groups; it never pools runs that differ beyond the seed
    per_config = pd.read_csv(out / "comparison.csv")
    assert list(per_config.loc[per_config["source"] == str(grid), "n"]) == [2, 2, 2, 2]
    by_source = per_config.groupby("source")[["n", "n_ok"]].sum()
    assert by_source.loc[str(grid), ["n", "n_ok"]].tolist() == [8, 8]
    assert by_source.loc[str(joblib_sweep), ["n", "n_ok"]].tolist() == [3, 1]


@pytest.mark.slow
def test_compare_a_run_directory(grid, tmp_path):
    cli.main(["compare", str(grid / "5"), "--out", str(tmp_path)])
    comparison = pd.read_csv(tmp_path / "comparison.csv")
    own = pd.read_csv(grid / "5" / "metrics.csv").iloc[0]
    assert comparison["n"].tolist() == [1]
    assert comparison["test_accuracy_mean"].item() == pytest.approx(own["test_accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["EMPTY"],
            "no results in 'EMPTY' (expected a sweep directory, a run directory or a results.csv)",
        ),
        (["GRID", "--metric", "accuracy"], "unknown metric 'accuracy'; choose one of: "),
        (["GRID", "--by", "colour"], "cannot group by colour: not a column; choose from "),
    ],
)
def test_compare_errors_are_one_line(grid, tmp_path, capsys, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    paths = {"EMPTY": str(empty), "GRID": str(grid)}
    args = [paths.get(a, a) for a in args]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compare", *args, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("regexp: error: " + message.replace("EMPTY", str(empty)))
    assert err.count("\n") == 1 and "Traceback" not in err
