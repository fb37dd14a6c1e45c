"""Issue 20, silently wrong numbers (cases 1-7) and the results/data one-line errors.

Every test asserts on what a command leaves on disk, or on its exit code and message, and
each failed on the main of 2026-12-04 (29be562). References are computed here by hand
(hashlib, numpy, scikit-learn), never by the code under test. Tiny runs: 2 epochs, one
hidden layer of 4.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

import regexp as api
from regexp.cli import main

TINY = ["trainer.epochs=2", "model.hidden=[4]", "trainer.batch_size=256", "figures=never"]
# Enough training that no run collapses to chance (selection never chooses a collapsed λ).
LEARN = ["trainer.epochs=60", "model.hidden=[16]", "trainer.batch_size=16", "figures=never"]


def regexp(*argv: str, capsys: pytest.CaptureFixture | None = None) -> tuple[int, str]:
    """Run ``regexp`` in-process; its exit code and (with ``capsys``) stderr."""
    GlobalHydra.instance().clear()
    if capsys is not None:
        capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err if capsys is not None else ""


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``regexp`` in a subprocess: what a user sees on stderr, logging included."""
    return subprocess.run(
        [sys.executable, "-m", "regexp.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_line(err: str) -> str:
    """The single ``regexp: error:`` line of ``err``; fails on a traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("regexp: error:")]
    assert len(lines) == 1, err
    return lines[0]


def sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def write_table(path: Path, n: int = 90, seed: int = 0, columns=("a", "b", "c")) -> Path:
    """A small CSV: numeric features and an integer target ``y`` of 3 classes that the
    first two features decide (learnable, so that no run collapses to chance)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(columns))), columns=list(columns))
    frame["y"] = (frame[columns[0]] > 0).astype(int) + (frame[columns[1]] > 0).astype(int)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def mixed_sweep(tmp_path_factory) -> Path:
    """One CSV trained as classification and as regression, two λ, one seed."""
    root = tmp_path_factory.mktemp("mixed")
    data = write_table(root / "wine.csv")
    code, _ = regexp(
        "train",
        "-m",
        *LEARN,
        "dataset=csv",
        f"dataset.path={data}",
        "dataset.target=y",
        "dataset.task=classification,regression",
        "lambda=1e-4,1e-2",
        f"hydra.sweep.dir={root / 'sweep'}",
    )
    assert code == 0
    return root / "sweep"


@pytest.fixture(scope="module")
def digits_sweep(tmp_path_factory) -> Path:
    """digits, two λ, two seeds: four jobs."""
    root = tmp_path_factory.mktemp("digits")
    code, _ = regexp(
        "train",
        "-m",
        *LEARN[1:],
        "trainer.epochs=5",
        "lambda=1e-4,1e-2",
        "seed=0,1",
        f"hydra.sweep.dir={root / 's'}",
    )
    assert code == 0
    return root / "s"


# --- 1. Groups come from the run identity: only the seed is averaged over -----------------


@pytest.mark.slow
def test_a_sweep_over_the_task_is_never_averaged_across_tasks(mixed_sweep):
    jobs = [pd.read_csv(d / "metrics.csv").iloc[0] for d in sorted(mixed_sweep.glob("[0-9]"))]
    assert len(jobs) == 4 and {j["task"] for j in jobs} == {"classification", "regression"}
    summary = pd.read_csv(mixed_sweep / "summary.csv")
    assert len(summary) == 4 and (summary["n"] == 1).all()  # 2 tasks x 2 λ, nothing pooled
    best = pd.read_csv(mixed_sweep / "best.csv")
    assert sorted(best["task"]) == ["classification", "regression"]
    for _, row in best.iterrows():  # each task's own λ, chosen on its own metric
        own = [j for j in jobs if j["task"] == row["task"]]
        key = "val_accuracy" if row["task"] == "classification" else "val_r2"
        top = max(j[key] for j in own)
        assert row["lambda"] in [j["lambda"] for j in own if j[key] == top]  # ties: sparsest
        assert row["val_metric_mean"] == pytest.approx(top)


@pytest.mark.slow
def test_compare_of_two_mixed_sweeps_keeps_the_tasks_apart(mixed_sweep, tmp_path, capsys):
    copy = tmp_path / "other"
    shutil.copytree(mixed_sweep, copy)
    out = tmp_path / "cmp"
    code, err = regexp("compare", str(mixed_sweep), str(copy), "--out", str(out), capsys=capsys)
    assert code == 0, err
    comparison = pd.read_csv(out / "comparison.csv")
    assert len(comparison) == 4 and (comparison["n"] == 1).all()
    assert set(comparison["task"]) == {"classification", "regression"}
    assert sorted(pd.read_csv(out / "best.csv")["task"]) == ["classification", "regression"]


def _row(**changes) -> dict:
    row = {
        "dataset": "csv",
        "task": "classification",
        "regularizer": "l1",
        "mode": "penalty",
        "lambda": 0.1,
        "seed": 0,
        "config_id": "c0",
        "data_id": "csv:aaaa",
        "dataset.task": "classification",
        "model.init": "default",
        "status": "ok",
        "val_accuracy": 0.5,
        "test_accuracy": 0.5,
    }
    return row | changes


@pytest.mark.parametrize(
    "change",
    [
        {"task": "regression", "dataset.task": "regression"},
        {"data_id": "csv:bbbb"},  # the same path and settings, other bytes
        {"model.init": "glorot_normal"},
    ],
)
def test_rows_that_differ_beyond_the_seed_are_never_averaged(change):
    results = pd.DataFrame(
        [
            _row(seed=0, config_id="c0", val_accuracy=0.2),
            _row(seed=1, config_id="c1", val_accuracy=0.4),
            _row(seed=0, config_id="c2", val_accuracy=0.9, **change),
        ]
    )
    summary = api.summarize(results)
    assert sorted(summary["n"]) == [1, 2]
    assert sorted(summary["val_accuracy_mean"]) == pytest.approx([0.3, 0.9])
    # a coarser grouping asked for by hand still never pools two configurations
    coarse = api.summarize(results, by=["regularizer", "lambda"])
    assert sorted(coarse["val_accuracy_mean"]) == pytest.approx([0.3, 0.9])


# --- 2. A run that appears twice is counted once --------------------------------------


@pytest.mark.slow
def test_a_copied_sweep_compared_with_its_original_counts_each_run_once(digits_sweep, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(digits_sweep, copy)
    proc = cli(tmp_path, "compare", str(digits_sweep), str(copy), "--out", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    comparison = pd.read_csv(tmp_path / "c" / "comparison.csv")
    assert list(comparison["n"]) == [2, 2]  # two seeds each, not four
    jobs = pd.concat(pd.read_csv(d / "metrics.csv") for d in sorted(digits_sweep.glob("[0-9]")))
    for lam, g in jobs.groupby("lambda"):
        got = comparison.set_index("lambda").loc[lam, "val_accuracy_std"]
        assert got == pytest.approx(np.std(g["val_accuracy"].to_numpy(), ddof=1))
    notes = [line for line in proc.stderr.splitlines() if "counted once" in line]
    assert len(notes) == 1 and "4" in notes[0], proc.stderr


def test_summarize_counts_a_duplicated_row_once():
    one = _row(seed=0, config_id="c0", val_accuracy=0.2)
    two = _row(seed=1, config_id="c1", val_accuracy=0.4)
    summary = api.summarize(pd.DataFrame([one, two, one | {"job": "copy/0"}]))
    assert list(summary["n"]) == [2]
    assert summary["val_accuracy_mean"].iloc[0] == pytest.approx(0.3)


# --- 3. data_id is the hash of the bytes that were trained on ---------------------------


@pytest.mark.slow
def test_a_csv_rewritten_during_training_keeps_the_trained_bytes_id(tmp_path, monkeypatch):
    data = write_table(tmp_path / "d.csv")
    old = data.read_bytes()
    from regexp.hydra_app import task

    original = task.fit_setup

    def rewrite_then_fit(*args, **kwargs):
        write_table(data, seed=1)  # another file at the same path, while the run trains
        return original(*args, **kwargs)

    monkeypatch.setattr(task, "fit_setup", rewrite_then_fit)
    args = [*TINY, "dataset=csv", f"dataset.path={data}", "dataset.target=y"]
    sweep = tmp_path / "s"
    assert regexp("train", "-m", *args, f"hydra.sweep.dir={sweep}")[0] == 0
    row = pd.read_csv(sweep / "0" / "metrics.csv").iloc[0]
    assert row["data_id"] == f"csv:{sha16(old)}"
    assert torch.load(sweep / "0" / "model.pt", weights_only=True)["data_id"] == row["data_id"]
    # resume sees other bytes now: it trains again rather than reuse the old rows' run
    monkeypatch.setattr(task, "fit_setup", original)
    new = data.read_bytes()
    assert regexp("train", "-m", *args, "resume=true", f"hydra.sweep.dir={sweep}")[0] == 0
    assert pd.read_csv(sweep / "0" / "metrics.csv").iloc[0]["data_id"] == f"csv:{sha16(new)}"


def test_a_file_that_changes_while_it_is_read_is_read_again(tmp_path, monkeypatch):
    from regexp.data import sources

    data = write_table(tmp_path / "d.csv")
    final = write_table(tmp_path / "final.csv", seed=5).read_bytes()
    real = Path.read_bytes
    calls = []

    def read_then_change(self):
        content = real(self)
        if not calls:
            data.write_bytes(final)  # a writer finishes just after the first read
        calls.append(1)
        return content

    monkeypatch.setattr(Path, "read_bytes", read_then_change)
    table = sources.load_csv(str(data), "y", "classification")
    assert len(calls) >= 2
    assert table.data_id == f"csv:{sha16(final)}"
    expected = pd.read_csv(tmp_path / "final.csv")
    np.testing.assert_array_equal(table.x, expected[["a", "b", "c"]].to_numpy())


# --- 4. The data cache checks what it holds -------------------------------------------


def test_a_cache_file_swapped_for_another_settings_file_is_rebuilt(tmp_path, monkeypatch, caplog):
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from regexp.data.prepare import load_dataset

    monkeypatch.setenv("REGEXP_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "datasets"
    load_dataset("wine", "classification", scaler="standard")
    standard = set(folder.glob("*.pt"))
    load_dataset("wine", "classification", scaler="minmax")
    (minmax,) = set(folder.glob("*.pt")) - standard
    (target,) = standard
    shutil.copyfile(minmax, target)  # the standard setting's name, the minmax tensors
    with caplog.at_level("INFO"):
        data = load_dataset("wine", "classification", scaler="standard")
    # reference: scikit-learn's split and StandardScaler, by hand
    x, y = load_wine(return_X_y=True)
    rows = np.arange(len(y))
    rest, _ = train_test_split(rows, test_size=0.2, random_state=0, stratify=y)
    train, _ = train_test_split(rest, test_size=0.25, random_state=0, stratify=y[rest])
    scaled = StandardScaler().fit(x[np.sort(train)]).transform(x[np.sort(train)])
    np.testing.assert_allclose(data.x_train.numpy(), scaled, rtol=1e-5, atol=1e-5)
    notes = [r.getMessage() for r in caplog.records if "data cache" in r.getMessage()]
    assert len(notes) == 1 and target.name in notes[0]
    assert torch.load(target, weights_only=True)["cache_key"]["scaler"] == "standard"


def test_a_cache_file_whose_tensors_were_altered_is_rebuilt(tmp_path, monkeypatch, caplog):
    from regexp.data.prepare import load_dataset

    monkeypatch.setenv("REGEXP_CACHE_DIR", "")  # the reference: prepared afresh
    fresh = load_dataset("wine", "classification")
    monkeypatch.setenv("REGEXP_CACHE_DIR", str(tmp_path))
    load_dataset("wine", "classification")
    (path,) = (tmp_path / "datasets").glob("*.pt")
    entry = torch.load(path, weights_only=True)
    entry["x_test"] = entry["x_test"] + 1.0  # same key and checksum, other numbers
    torch.save(entry, path)
    with caplog.at_level("INFO"):
        data = load_dataset("wine", "classification")
    assert torch.equal(data.x_test, fresh.x_test)
    assert any("data cache" in r.getMessage() for r in caplog.records)


# --- 5. No unknown keys, with or without + --------------------------------------------


@pytest.mark.parametrize("override", ["+lamdba=0.5", "lamdba=0.5"])
def test_an_unknown_top_level_key_is_refused_with_the_closest_one(override, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, err = regexp("train", *TINY, override, f"hydra.run.dir={run_dir}", capsys=capsys)
    assert code == 2
    line = error_line(err)
    assert "lamdba" in line and "lambda" in line and "+lamdba" not in line.split("'lamdba'")[-1]
    assert not (run_dir / "metrics.csv").exists()


@pytest.mark.parametrize("override", ["+trainer.foo=1", "trainer.foo=1"])
def test_an_unknown_group_key_is_refused_without_suggesting_the_plus(override, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, err = regexp("train", *TINY, override, f"hydra.run.dir={run_dir}", capsys=capsys)
    assert code == 2
    line = error_line(err)
    assert "trainer.foo" in line and "not a" in line
    assert "To append to your config use" not in line  # Hydra's advice that regexp refuses
    assert not (run_dir / "metrics.csv").exists()


def test_the_api_and_experiment_configs_refuse_unknown_keys_too(make_config):
    for override in ("+lamdba=0.5", "lamdba=0.5"):
        with pytest.raises(ValueError, match=r"lamdba.*lambda"):
            api.run([override, *TINY])
    from regexp.config import validate

    cfg = make_config() | {"sed": 3}  # what an experiment file's `sed: 3` composes to
    with pytest.raises(ValueError, match=r"sed.*seed"):
        validate(cfg)


def test_the_schemas_top_level_keys_are_the_results_schemas():
    from regexp.config import GROUPS, TOP_LEVEL_KEYS
    from regexp.results import schema

    assert set(TOP_LEVEL_KEYS) == set(schema.TOP_LEVEL)
    assert {"dataset", "model", "regularizer", "optimizer", "trainer", "logger"} == set(GROUPS)


# --- 6. regexp plot labels features as they were at training time ---------------------


@pytest.mark.slow
def test_plot_labels_features_by_the_training_time_columns(tmp_path, monkeypatch):
    data = write_table(tmp_path / "d.csv", columns=("alpha", "beta", "gamma"))
    run_dir = tmp_path / "run"
    args = [*TINY, "dataset=csv", f"dataset.path={data}", "dataset.target=y"]
    assert regexp("train", *args, f"hydra.run.dir={run_dir}")[0] == 0
    ckpt = torch.load(run_dir / "model.pt", weights_only=True)
    assert ckpt["feature_names"] == ["alpha", "beta", "gamma"]
    frame = pd.read_csv(data)  # the columns reordered and renamed after training
    frame.rename(columns={"beta": "zeta"})[["y", "gamma", "zeta", "alpha"]].to_csv(
        data, index=False
    )
    from regexp.plots import run as run_plots

    drawn = {}
    real = run_plots.plot_features

    def spy(**kwargs):
        drawn.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(run_plots, "plot_features", spy)
    assert regexp("plot", str(run_dir))[0] == 0
    assert list(drawn["names"]) == ["alpha", "beta", "gamma"]
    first = next(v for k, v in ckpt["state_dict"].items() if k.endswith("weight"))
    np.testing.assert_allclose(drawn["importance"], np.linalg.norm(first.numpy(), axis=0))
    assert (run_dir / "features.png").is_file()


# --- 7. No selection on the test split ------------------------------------------------


@pytest.mark.slow
def test_compare_refuses_to_select_on_a_test_column(digits_sweep, tmp_path, capsys):
    out = tmp_path / "cmp"
    code, err = regexp("compare", str(digits_sweep), "--select", "test_accuracy", "--out",
                       str(out), capsys=capsys)  # fmt: skip
    assert code == 2
    line = error_line(err)
    assert "test_accuracy" in line and "--allow-test-selection" in line
    assert not out.exists()
    with pytest.raises(ValueError, match="test split"):
        api.best(api.load_results(digits_sweep), metric="test_accuracy")
    code, err = regexp("compare", str(digits_sweep), "--select", "test_accuracy",
                       "--allow-test-selection", "--out", str(out), capsys=capsys)  # fmt: skip
    assert code == 0, err
    best = pd.read_csv(out / "best.csv")
    assert set(best["selected_on"]) == {"test_accuracy"}


# --- One line where a traceback was ---------------------------------------------------


def test_compare_of_dev_null_is_one_line(capsys):
    code, err = regexp("compare", "/dev/null", capsys=capsys)
    assert code == 2 and "/dev/null" in error_line(err)
    with pytest.raises(ValueError, match="/dev/null"):
        api.load_results("/dev/null")


@pytest.mark.slow
def test_compare_reads_a_results_csv_from_a_pipe(digits_sweep, tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    text = (digits_sweep / "results.csv").read_bytes()

    def writer():
        with open(fifo, "wb") as handle:
            handle.write(text)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    out = tmp_path / "cmp"
    code, err = regexp("compare", str(fifo), "--out", str(out), capsys=capsys)
    if thread.is_alive():  # the pipe was never read: let the writer finish
        with open(fifo, "rb") as handle:
            handle.read()
    thread.join(timeout=10)
    assert code == 0, err
    assert list(pd.read_csv(out / "comparison.csv")["n"]) == [2, 2]


def test_summarize_and_best_refuse_what_they_cannot_use_with_a_value_error():
    with pytest.raises(ValueError, match="no runs"):
        api.summarize(pd.DataFrame())
    text = pd.DataFrame([_row(), _row(seed=1, config_id="c1")])
    text["val_accuracy"] = ["high", "low"]
    with pytest.raises(ValueError, match=r"val_accuracy.*not numbers"):
        api.best(text)
    with pytest.raises(ValueError, match=r"regularizer.*not numbers"):
        api.best(pd.DataFrame([_row()]), metric="regularizer")


def test_a_huge_value_outside_the_training_range_gets_the_real_remedy(tmp_path, capsys):
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=90), "wild": 1.0, "y": np.arange(90) % 3})
    rows = np.arange(90)
    _, test = train_test_split(rows, test_size=0.2, random_state=0, stratify=frame["y"])
    frame.loc[test[0], "wild"] = 1e100  # in a test row only: the scaler never saw it
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    code, err = regexp("train", *TINY, "dataset=csv", f"dataset.path={path}",
                       "dataset.target=y", f"hydra.run.dir={tmp_path / 'r'}",
                       capsys=capsys)  # fmt: skip
    assert code == 2
    line = error_line(err)
    assert "wild" in line and "1e+100" in line
    assert "use dataset.scaler=standard" not in line  # the scaler in use: no remedy
    assert "training rows" in line and "clip" in line


def test_a_float_target_with_rare_values_lists_the_files_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    labels = np.round(np.arange(200) % 50 * 0.5 + 0.25, 2)
    labels[:3] = [100.75, 200.75, 300.75]  # three labels of one row each
    frame["y"] = labels
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    code, err = regexp("train", *TINY, "dataset=csv", f"dataset.path={path}",
                       "dataset.target=y", f"hydra.run.dir={tmp_path / 'r'}",
                       capsys=capsys)  # fmt: skip
    assert code == 2
    line = error_line(err)
    assert "100.75" in line and "200.75" in line and "300.75" in line
    assert "dataset.task=regression" in line


def test_a_path_with_spaces_gets_a_hint_to_quote_it(tmp_path, capsys):
    code, err = regexp("train", *TINY, "dataset=csv", f"dataset.path={tmp_path}/my data (1).csv",
                       "dataset.target=y", capsys=capsys)  # fmt: skip
    assert code == 2
    line = error_line(err)
    assert "my data (1).csv" in line and "quote" in line


def test_load_results_does_not_resolve_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("REGEXP_TEST_SECRET", "hunter2")
    job = tmp_path / "foreign" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(
        "dataset:\n  name: digits\n  task: classification\n  token: ${oc.env:REGEXP_TEST_SECRET}\n"
        "model: {hidden: [4], activation: relu, dropout: 0.0}\n"
        "regularizer: {name: l1, mode: penalty}\noptimizer: {name: adam, lr: 0.001}\n"
        "trainer: {epochs: 2, batch_size: 32}\nlambda: 0.001\nseed: 0\nthreshold: 0.001\n"
    )
    results = api.load_results(tmp_path / "foreign")
    assert results["status"].tolist() == ["missing"]
    assert not results.astype(str).apply(lambda c: c.str.contains("hunter2")).any().any()


@pytest.mark.slow
def test_regexp_run_leaves_pythons_random_state_alone(tmp_path):
    code = (
        "import random, regexp\n"
        "random.seed(7); before = random.getstate()\n"
        f"regexp.run({TINY!r}, run_dir={str(tmp_path / 'r')!r})\n"
        "assert random.getstate() == before, 'random state changed'\n"
    )
    env = os.environ | {"REGEXP_CACHE_DIR": ""}  # prepared afresh: scikit-learn is imported
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_ok_copy_of_a_run_is_the_one_kept_whatever_the_index():
    failed = _row(seed=0, config_id="c0", status="failed", val_accuracy=np.nan)
    ok = _row(seed=0, config_id="c0", val_accuracy=0.7)
    other = _row(seed=1, config_id="c1", val_accuracy=0.5)
    frame = pd.DataFrame([failed, ok, other], index=[0, 0, 0])  # as pd.concat leaves it
    summary = api.summarize(frame)
    assert list(summary["n"]) == [2] and list(summary["n_ok"]) == [2]
    assert summary["val_accuracy_mean"].iloc[0] == pytest.approx(0.6)
