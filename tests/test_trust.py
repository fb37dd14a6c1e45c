"""Results are never silently reused or mixed: run identity, resume by identity, one sweep
per directory, aggregation by declared columns, clean stops. Every test asserts on the files
that the commands leave on disk. Tiny runs: digits, 2 epochs, one hidden layer of 4."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from filelock import FileLock
from hydra.core.global_hydra import GlobalHydra

from regexp.cli import main

TINY = ["trainer.epochs=2", "model.hidden=[4]", "trainer.batch_size=256"]


def regexp(*argv: str, capsys: pytest.CaptureFixture | None = None) -> tuple[int, str]:
    """Run ``regexp`` in-process; its exit code and (with ``capsys``) stderr."""
    GlobalHydra.instance().clear()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err if capsys is not None else ""


def sweep(root: Path, *overrides: str, capsys=None) -> tuple[int, str]:
    return regexp("train", "-m", *TINY, *overrides, f"hydra.sweep.dir={root}", capsys=capsys)


def metrics(run_dir: Path) -> dict:
    return pd.read_csv(run_dir / "metrics.csv").iloc[0].to_dict()


def flat_keys(node: dict, prefix: str = "") -> set[str]:
    """Dotted keys of a nested dict, written here independently of regexp's flatten."""
    keys = set()
    for k, v in node.items():
        keys |= flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return keys


# --- 1. Run identity ------------------------------------------------------------------


@pytest.mark.slow
def test_metrics_csv_records_every_config_key_and_both_ids(tmp_path):
    run_dir = tmp_path / "run"
    assert regexp("train", *TINY, f"hydra.run.dir={run_dir}")[0] == 0
    row = metrics(run_dir)
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert flat_keys(config) <= set(row)
    assert row["model.hidden"] == "[4]" and row["optimizer.betas"] == "[0.9, 0.999]"
    assert row["dataset.scaler"] == "standard" and row["trainer.batch_size"] == 256
    import sklearn

    assert row["data_id"] == f"sklearn-{sklearn.__version__}:digits"
    assert len(row["config_id"]) == 16 and int(row["config_id"], 16) >= 0
    ckpt = torch.load(run_dir / "model.pt", weights_only=True)
    assert (ckpt["config_id"], ckpt["data_id"]) == (row["config_id"], row["data_id"])


def test_a_csv_files_bytes_are_its_data_id(tmp_path):
    import hashlib

    data = tmp_path / "d.csv"
    data.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(60)))
    run_dir = tmp_path / "run"
    args = ["dataset=csv", f"dataset.path={data}", "dataset.target=y"]
    assert regexp("train", *TINY, *args, f"hydra.run.dir={run_dir}")[0] == 0
    expected = hashlib.sha256(data.read_bytes()).hexdigest()[:16]
    assert metrics(run_dir)["data_id"] == f"csv:{expected}"


# --- 2. Resume by identity ------------------------------------------------------------

CHANGES = [
    "dataset.scaler=minmax",
    "model.init=glorot_normal",
    "optimizer.betas=[0.8,0.99]",
    "optimizer.eps=1e-3",
    "dataset.split_seed=1",
    "dataset.val_size=0.3",
    "trainer.early_stopping_patience=1",
]


@pytest.mark.slow
@pytest.mark.parametrize("change", CHANGES)
def test_resume_reruns_a_job_whose_config_changed_and_keeps_the_stale_run(change, tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0")[0] == 0
    stale = (root / "0" / "history.csv").read_bytes()
    stale_id = metrics(root / "0")["config_id"]
    assert sweep(root, "seed=0", change, "resume=true")[0] == 0
    key, value = change.split("=")
    row = metrics(root / "0")
    assert str(row[key]).replace(" ", "") == value.replace("1e-3", "0.001")
    assert row["config_id"] != stale_id
    assert "training 64-4-10" in (root / "0" / "train.log").read_text()  # trained again
    if change != "trainer.early_stopping_patience=1":  # (2 epochs: nothing to stop early)
        assert (root / "0" / "history.csv").read_bytes() != stale
    config = yaml.safe_load((root / "0" / ".hydra" / "config.yaml").read_text())
    assert config["resume"] is True  # the directory describes the run that is in it
    kept = list((root / ".regexp" / "superseded").rglob("metrics.csv"))
    assert [pd.read_csv(p)["config_id"].iloc[0] for p in kept] == [stale_id]


@pytest.mark.slow
def test_resume_reruns_when_the_csv_file_changed(tmp_path):
    data = tmp_path / "d.csv"
    rows = "".join(f"{i},{i % 5},{i % 2}\n" for i in range(80))
    data.write_text("a,b,y\n" + rows)
    root = tmp_path / "sweep"
    args = ["dataset=csv", f"dataset.path={data}", "dataset.target=y", "seed=0"]
    assert sweep(root, *args)[0] == 0
    old = metrics(root / "0")
    data.write_text("a,b,c,y\n" + "".join(f"{i},{i % 5},{i % 7},{i % 2}\n" for i in range(80)))
    assert sweep(root, *args, "resume=true")[0] == 0
    new = metrics(root / "0")
    assert new["data_id"] != old["data_id"]
    assert new["architecture"] == "3-4-2" and old["architecture"] == "2-4-2"


@pytest.mark.slow
def test_resume_skips_a_finished_job_without_rewriting_its_hydra_files(tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1")[0] == 0
    before = {p: p.read_bytes() for p in root.glob("*/.hydra/*.yaml")}
    history = {p: p.read_bytes() for p in root.glob("*/history.csv")}
    assert sweep(root, "seed=0,1", "resume=true")[0] == 0
    assert {p: p.read_bytes() for p in root.glob("*/.hydra/*.yaml")} == before
    assert {p: p.read_bytes() for p in root.glob("*/history.csv")} == history
    assert len(pd.read_csv(root / "results.csv")) == 2


@pytest.mark.slow
def test_resume_matches_jobs_by_config_when_a_sweep_grows(tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, "lambda=1e-4,1e-2")[0] == 0
    runs = {metrics(root / j)["lambda"]: (root / j / "history.csv").read_bytes() for j in "01"}
    # The grown sweep puts λ = 1e-2 at job 2, where it was job 1.
    assert sweep(root, "lambda=1e-4,1e-3,1e-2", "resume=true")[0] == 0
    assert (root / "0" / "history.csv").read_bytes() == runs[1e-4]
    assert (root / "2" / "history.csv").read_bytes() == runs[1e-2]  # moved, not retrained
    assert metrics(root / "1")["lambda"] == 1e-3
    results = pd.read_csv(root / "results.csv")
    assert sorted(results["lambda"]) == [1e-4, 1e-3, 1e-2]


@pytest.mark.slow
def test_resume_of_a_smaller_sweep_pools_only_its_jobs(tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, "lambda=1e-4,1e-2")[0] == 0
    kept = (root / "1" / "history.csv").read_bytes()
    assert sweep(root, "lambda=1e-2", "resume=true")[0] == 0
    assert (root / "0" / "history.csv").read_bytes() == kept  # job 1's run is now job 0's
    assert pd.read_csv(root / "results.csv")["lambda"].tolist() == [1e-2]
    assert not (root / "1").exists()


@pytest.mark.slow
@pytest.mark.parametrize("content", ["", "dataset,task,status\ndigits,classif"])
def test_an_empty_or_truncated_metrics_csv_means_the_job_runs_again(content, tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0")[0] == 0
    (root / "0" / "metrics.csv").write_text(content)
    assert sweep(root, "seed=0", "resume=true")[0] == 0
    assert metrics(root / "0")["status"] == "ok"


@pytest.mark.slow
def test_single_run_resume_in_an_existing_dir_reruns_after_a_change(tmp_path):
    run_dir = tmp_path / "run"
    assert regexp("train", *TINY, f"hydra.run.dir={run_dir}")[0] == 0
    before = (run_dir / "history.csv").read_bytes()
    assert regexp("train", *TINY, f"hydra.run.dir={run_dir}", "resume=true")[0] == 0
    assert (run_dir / "history.csv").read_bytes() == before  # same config: reused
    args = [*TINY, "dataset.scaler=minmax", f"hydra.run.dir={run_dir}", "resume=true"]
    assert regexp("train", *args)[0] == 0
    assert metrics(run_dir)["dataset.scaler"] == "minmax"
    assert (run_dir / "history.csv").read_bytes() != before
    assert list((run_dir / ".regexp" / "superseded").rglob("history.csv"))


# --- 3. One sweep per directory -------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_into_another_sweeps_directory_is_refused(tmp_path, capsys):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1,2,3")[0] == 0
    before = pd.read_csv(root / "results.csv")
    code, err = sweep(root, "seed=7", capsys=capsys)
    assert code == 2
    assert err.strip() == (
        f"regexp: error: hydra.sweep.dir '{root}' already holds 4 run(s) of another sweep; "
        "choose a new hydra.sweep.dir, or pass resume=true to reuse its finished runs"
    )
    pd.testing.assert_frame_equal(pd.read_csv(root / "results.csv"), before)


def test_a_second_sweep_while_one_holds_the_lock_stops_with_one_line(tmp_path, capsys):
    root = tmp_path / "sweep"
    (root / ".regexp").mkdir(parents=True)
    with FileLock(root / ".regexp" / "sweep.lock"):
        code, err = sweep(root, "seed=0", capsys=capsys)
    assert code == 2
    assert err.startswith(f"regexp: error: another sweep is running in hydra.sweep.dir '{root}'")
    assert not (root / "0").exists()


@pytest.mark.parametrize("launcher", ["basic", "batched"])
@pytest.mark.slow
def test_two_jobs_in_one_directory_are_an_error(launcher, tmp_path, capsys):
    root = tmp_path / "sweep"
    args = ["lambda=1e-4,1e-3", "hydra.sweep.subdir=${regularizer.name}"]
    code, err = sweep(root, *args, f"hydra/launcher={launcher}", capsys=capsys)
    assert code == 2
    assert "write to the same directory" in err and err.count("\n") == 1
    if launcher == "batched":  # it knows every job before any runs
        assert not (root / "sgl").exists()


@pytest.mark.slow
def test_results_csv_pools_exactly_this_sweeps_jobs(tmp_path):
    root = tmp_path / "sweep"
    other = root / "old" / "nested"
    assert sweep(other, "seed=5")[0] == 0  # another sweep inside this one's folder
    assert sweep(root, "seed=0", "resume=true")[0] == 0
    assert pd.read_csv(root / "results.csv")["seed"].tolist() == [0]


# --- 4. Aggregation by name -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "column"),
    [
        ("model.init=default,glorot_normal", "model.init"),
        ("dataset.scaler=standard,minmax", "dataset.scaler"),
        ("trainer.early_stopping_patience=null,1", "trainer.early_stopping_patience"),
    ],
)
def test_configs_that_differ_are_never_averaged_together(override, column, tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, override, "hydra/launcher=batched")[0] == 0
    summary = pd.read_csv(root / "summary.csv")
    assert len(summary) == 2 and summary["n"].tolist() == [1, 1]
    assert column in summary.columns and summary[column].nunique(dropna=False) == 2


@pytest.mark.slow
def test_l1_ratio_is_a_config_column_that_splits_groups(tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, "regularizer=l1,elastic_net", "hydra/launcher=batched")[0] == 0
    summary = pd.read_csv(root / "summary.csv")
    assert "l1_ratio" in summary.columns and "l1_ratio_mean" not in summary.columns
    assert sorted(summary["regularizer"]) == ["elastic_net", "l1"]


@pytest.mark.slow
def test_split_seed_that_follows_the_seed_is_averaged_over_like_it(tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1", "dataset.split_seed=${seed}")[0] == 0
    summary = pd.read_csv(root / "summary.csv")
    assert summary["n"].tolist() == [2]


@pytest.mark.slow
def test_compare_counts_a_run_once_however_often_it_is_named(tmp_path, capsys):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1")[0] == 0
    out = tmp_path / "cmp"
    code, _ = regexp("compare", str(root), str(root), str(root / "0"), "--out", str(out))
    assert code == 0
    assert pd.read_csv(out / "comparison.csv")["n"].tolist() == [2]


@pytest.mark.slow
def test_compare_refuses_a_truncated_results_csv_and_an_out_file(tmp_path, capsys):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1")[0] == 0
    text = (root / "results.csv").read_text()
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: len(text) - 40])
    code, err = regexp("compare", str(cut), capsys=capsys)
    assert code == 2
    assert (
        err == f"regexp: error: '{cut}' is truncated (its last row is incomplete); regenerate it\n"
    )
    code, err = regexp("compare", str(root), "--out", str(cut), capsys=capsys)
    assert (
        code == 2
        and err == f"regexp: error: --out '{cut}' is a file; name a directory to write into\n"
    )


# --- 6. Clean stops -------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_prints_one_line_keeps_finished_runs_and_leaves_no_temporaries(tmp_path):
    root = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "regexp.cli", "train", "-m", "seed=0,1,2,3,4,5",
        "model.hidden=[8]", "trainer.epochs=3", f"hydra.sweep.dir={root}",
    ]  # fmt: skip
    # A Ctrl-C (SIGINT to the process) right after the second job's files are complete
    # (regexp.errors.fault_point). A background shell ignores SIGINT, and children inherit
    # that: restore the default.
    default = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    env = {k: v for k, v in os.environ.items() if k != "REGEXP_DEBUG"}
    proc = subprocess.run(
        cmd,
        env=env | {"REGEXP_FAULT": "run_written@2:sigint"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default,
        timeout=600,
    )
    err = proc.stderr
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"regexp: interrupted; finished runs are kept in {root}. To continue a sweep, run the "
        "same command with resume=true"
    )
    assert "Traceback" not in err
    assert not [p for p in root.rglob("*.tmp")]
    done = sorted(p.parent.name for p in root.glob("*/metrics.csv"))
    assert done == ["0", "1"]
    for name in done:
        assert pd.read_csv(root / name / "metrics.csv")["status"].tolist() == ["ok"]


@pytest.mark.slow
def test_compare_into_a_closed_pipe_ends_quietly(tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1", "lambda=1e-4,1e-3,1e-2")[0] == 0
    cmd = f"{sys.executable} -m regexp.cli compare {root} --out {tmp_path / 'c'} | head -c 10"
    done = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=os.environ)
    assert done.returncode == 0 and done.stderr == ""
    assert len(done.stdout) == 10


@pytest.mark.slow
def test_jobs_file_lists_this_sweeps_job_directories(tmp_path):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1", "hydra/launcher=batched")[0] == 0
    assert (root / ".regexp" / "jobs.txt").read_text().split() == ["0", "1"]
