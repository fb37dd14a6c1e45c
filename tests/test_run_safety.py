"""Runs survive divergence and kills: atomic files, metrics.csv last, resume, determinism."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from regexp.cli import main
from regexp.hydra_app import task as job
from regexp.io import atomic as files
from regexp.plots import run as run_plots


@pytest.mark.slow
def test_sweep_survives_divergence_and_a_failed_job(tmp_path, monkeypatch):
    monkeypatch.delenv("REGEXP_DEBUG", raising=False)
    sweep = tmp_path / "sweep"
    GlobalHydra.instance().clear()
    main([
        "train", "-m", "dataset=diabetes", "optimizer=sgd", "optimizer.lr=1e4,1e-2,-1",
        "trainer.epochs=3", "model.hidden=[4]", f"hydra.sweep.dir={sweep}",
    ])  # fmt: skip
    diverged, ok, failed = (pd.read_csv(sweep / str(i) / "metrics.csv").iloc[0] for i in range(3))

    assert diverged["status"] == "diverged"
    history = pd.read_csv(sweep / "0" / "history.csv")
    assert len(history) == diverged["epochs_run"] < 3  # stopped early
    assert not np.isfinite(history["train_loss"].iloc[-1])
    metric_cols = [c for c in diverged.index if c.startswith(("test_", "val_", "neuron_"))]
    assert len(metric_cols) == 10  # (test, val) x (r2, rmse) x (sparse, dense) + 2 layers
    assert diverged[[*metric_cols, "weight_sparsity", "params_kept"]].isna().all()
    assert diverged["params_total"] == 10 * 4 + 4 + 4 * 1 + 1  # counted by hand
    assert not list((sweep / "0").glob("*.png"))  # figures=auto: a sweep job draws none
    assert (sweep / "0" / "model.pt").is_file()
    assert not (sweep / "0" / "sparsity.csv").exists()

    assert ok["status"] == "ok" and np.isfinite(ok[metric_cols].astype(float)).all()
    assert list(ok.index) == list(diverged.index)  # same columns: results.csv lines up

    assert failed["status"] == "failed"
    assert "optimizer.lr must be a finite number > 0, got -1" in failed["error"]


def test_learning_curves_plot_nan_inf_and_nonpositive_losses(tmp_path):
    history = pd.DataFrame({
        "epoch": [1, 2, 3, 4], "train_loss": [1.0, 0.0, math.inf, math.nan],
        "data_loss": [1.0, -0.5, math.inf, math.nan], "penalty": [0.0, math.nan, 1.0, 0.0],
        "val_loss": [2.0, math.nan, -math.inf, math.nan], "val_accuracy": [0.5, math.nan, 0.7, 0.8],
    })  # fmt: skip
    fig = run_plots.learning_curves_figure(history)
    ax, metric_ax = fig.axes  # losses, then the validation metric
    (metric_line,) = metric_ax.get_lines()
    np.testing.assert_array_equal(metric_line.get_ydata(), history["val_accuracy"])
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"train data loss", "train loss + penalty", "validation loss"}
    for label, column in [("train data loss", "data_loss"), ("validation loss", "val_loss")]:
        np.testing.assert_array_equal(lines[label].get_ydata(), history[column])
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()  # the axis spans the finite positive losses only
    assert 0 < low <= 1.0 and 2.0 <= high < 1e3
    run_plots.plot_learning_curves(history, tmp_path / "curves.png")  # saves without error
    assert (tmp_path / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("writer", ["csv", "checkpoint"])
def test_a_writer_dying_midway_leaves_the_old_file_whole(writer, tmp_path, monkeypatch):
    path = tmp_path / ("metrics.csv" if writer == "csv" else "model.pt")
    old = pd.DataFrame({"a": [1]})
    model = torch.nn.Sequential(torch.nn.Linear(2, 1))
    write = (
        (lambda: files.write_csv(path, old))
        if writer == "csv"
        else (lambda: files.save_checkpoint(path, model, {}))
    )
    write()
    before = path.read_bytes()

    def dies_midway(obj, target, *args, **kwargs):
        Path(target).write_bytes(b"half a fi")
        raise KeyboardInterrupt  # stands in for a kill

    monkeypatch.setattr(pd.DataFrame, "to_csv", dies_midway)
    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        write()
    assert path.read_bytes() == before


@pytest.mark.slow
def test_a_failure_late_in_a_run_leaves_no_metrics_and_keeps_earlier_files(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("REGEXP_DEBUG", raising=False)
    run_dir = tmp_path / "run"
    args = ["train", "trainer.epochs=2", "model.hidden=[4]", f"hydra.run.dir={run_dir}"]
    GlobalHydra.instance().clear()
    main(args)  # a complete run first: the failing re-run must not leave its metrics.csv
    assert (run_dir / "metrics.csv").is_file()

    def broken_plot(*_, **__):
        raise RuntimeError("plot exploded")

    monkeypatch.setattr(run_plots, "plot_features", broken_plot)
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "regexp: error: RuntimeError: plot exploded (set REGEXP_DEBUG=1 for the traceback)"
    )
    assert not (run_dir / "metrics.csv").exists()
    assert len(pd.read_csv(run_dir / "history.csv")) == 2  # written before the failure, kept
    assert (run_dir / "model.pt").is_file()
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.slow
def test_same_config_and_seed_give_identical_metrics(make_config, tmp_path):
    cfg = make_config(
        "dataset=wine", "model.hidden=[8]", "model.dropout=0.3", "regularizer.mode=proximal",
        "lambda=1e-2", "trainer.epochs=3", "trainer.batch_size=16",
    )  # fmt: skip
    rows = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        job.run_task(cfg | {"seed": seed}, tmp_path / name)
        rows.append(pd.read_csv(tmp_path / name / "metrics.csv").drop(columns="train_seconds"))
    pd.testing.assert_frame_equal(rows[0], rows[1], check_exact=True)
    for file in ("history.csv", "sparsity.csv"):
        a, b = (pd.read_csv(tmp_path / n / file) for n in "ab")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    ha, hc = (pd.read_csv(tmp_path / n / "history.csv") for n in "ac")
    assert not ha["train_loss"].equals(hc["train_loss"])  # the seed does matter


@pytest.mark.slow
def test_killed_sweep_resumes_skipping_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    seeds = [0, 1, 2, 3]
    args = [
        str(Path(sys.executable).with_name("regexp")), "train", "-m",
        f"seed={','.join(map(str, seeds))}", "model.hidden=[8]", "trainer.epochs=15",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("REGEXP_DEBUG", "REGEXP_FAULT")}
    # SIGKILL right after the second job's files are complete (regexp.errors.fault_point).
    killed = subprocess.run(
        args, env=env | {"REGEXP_FAULT": "run_written@2:kill"}, capture_output=True, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL
    done = {p.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.csv")}
    assert sorted(done) == ["0", "1"]
    for name in done:  # atomic: what exists is complete
        assert pd.read_csv(sweep / name / "metrics.csv")["status"].tolist() == ["ok"]

    rerun = subprocess.run(
        [*args, "resume=true"], env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != ".regexp")
    assert jobs == [str(i) for i in range(len(seeds))]
    for name, mtime in done.items():
        assert (sweep / name / "metrics.csv").stat().st_mtime_ns == mtime  # skipped, untouched
    rows = pd.concat([pd.read_csv(sweep / j / "metrics.csv") for j in jobs])
    assert sorted(rows["seed"]) == seeds and set(rows["status"]) == {"ok"}
    assert not list(sweep.glob("*/.*.tmp"))
    # the resumed sweep ends normally, so its aggregation pools all four jobs, once each
    assert sorted(pd.read_csv(sweep / "results.csv")["seed"]) == seeds


@pytest.mark.slow
def test_resume_reruns_a_job_whose_config_changed(tmp_path, monkeypatch):
    monkeypatch.delenv("REGEXP_DEBUG", raising=False)
    sweep, metrics = tmp_path / "sweep", tmp_path / "sweep" / "0" / "metrics.csv"

    def sweep_with(lam: str) -> None:
        GlobalHydra.instance().clear()
        main([
            "train", "-m", "dataset=wine", f"lambda={lam}", "trainer.epochs=1",
            "model.hidden=[4]", "resume=true", f"hydra.sweep.dir={sweep}",
        ])  # fmt: skip

    sweep_with("1e-3")
    first = metrics.stat().st_mtime_ns
    sweep_with("1e-3")
    assert metrics.stat().st_mtime_ns == first  # same job: skipped
    sweep_with("1e-2")
    assert pd.read_csv(metrics)["lambda"].tolist() == [0.01]  # another job: run again
