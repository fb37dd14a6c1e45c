"""logger=tensorboard and logger=mlflow: what lands in the tracker equals the run's CSVs.

Each test reads the tracker's store back with the tracker's own reader (TensorBoard's
EventAccumulator, MLflow's client) and compares it with ``history.csv``, ``metrics.csv``
and the config flattened by ``pandas.json_normalize``.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regexp.config import validate
from regexp.hydra_app.task import run_task as run
from regexp.runs.trackers import flat_params

FAST = ("trainer.epochs=3", "model.hidden=[8]")


def read_metrics(run_dir: Path) -> pd.Series:
    """metrics.csv's row; ``hidden`` such as ``8`` is text (``40-20`` for two layers)."""
    return pd.read_csv(run_dir / "metrics.csv", dtype={"hidden": str}).iloc[0]


def numeric(row: pd.Series) -> dict[str, float]:
    """The numeric cells (NaN ones too) of a metrics.csv row's outcome columns, as floats:
    test_*, val_*, neuron_sparsity_*, and the counts and times README lists."""
    outcomes = ("test_", "val_", "neuron_sparsity_")
    named = ("epochs_run", "weight_sparsity", "params_total", "params_kept", "train_seconds")
    return {
        k: float(v)
        for k, v in row.items()
        if (k.startswith(outcomes) or k in named) and pd.api.types.is_number(v)
    }


def expected_params(cfg: dict) -> dict[str, str]:
    """The config flattened by pandas (dotted keys), values as MLflow stores them."""
    flat = pd.json_normalize(cfg, sep=".").iloc[0].to_dict()
    return {
        k: json.dumps(v) if isinstance(v, list) else "null" if v is None else str(v)
        for k, v in flat.items()
    }


def test_flat_params_dots_nested_keys_and_writes_lists_as_json():
    cfg = {"a": {"b": 1, "c": [1, 2], "d": {"e": True}}, "f": None, "g": {}, "lambda": 1e-3}
    assert flat_params(cfg) == {
        "a.b": 1,
        "a.c": "[1, 2]",
        "a.d.e": True,
        "f": "null",
        "g": "{}",
        "lambda": 1e-3,
    }


@pytest.mark.slow
def test_tensorboard_events_hold_history_per_epoch_and_final_metrics(make_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    cfg = make_config("logger=tensorboard", "regularizer=l1", *FAST)
    run_dir = tmp_path / "run"
    run(cfg, run_dir, summary=False)
    run(cfg, run_dir, summary=False)  # a rerun replaces the event file, adds none
    events = list((run_dir / "tensorboard").iterdir())
    assert len(events) == 1 and events[0].name.startswith("events.out.tfevents.")

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    history = pd.read_csv(run_dir / "history.csv")
    row = read_metrics(run_dir)
    numeric_history = [c for c in history.select_dtypes("number") if c != "epoch"]
    assert set(acc.Tags()["scalars"]) == {f"history/{c}" for c in numeric_history} | set(
        numeric(row)
    )
    for col in numeric_history:  # TensorBoard stores scalars as float32
        points = acc.Scalars(f"history/{col}")
        assert [p.step for p in points] == history["epoch"].tolist() == [1, 2, 3]
        assert [p.value for p in points] == history[col].astype(np.float32).tolist()
    for name, value in numeric(row).items():
        (point,) = acc.Scalars(name)
        assert point.step == 3
        np.testing.assert_equal(point.value, np.float32(value))
    assert numeric(row)["test_accuracy"] > 0

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hp = {k: v.string_value or v.number_value or v.bool_value for k, v in start.hparams.items()}
    assert hp["regularizer.name"] == "l1"
    assert hp["optimizer.lr"] == cfg["optimizer"]["lr"] == 1e-3
    assert hp["model.hidden"] == "[8]"
    assert set(hp) == set(expected_params(cfg))


@pytest.mark.slow
def test_tensorboard_save_dir_holds_a_folder_per_run(make_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = tmp_path / "board"
    cfg = make_config("logger=tensorboard", f"logger.save_dir={board}", *FAST)
    run(cfg, tmp_path / "sweep" / "0", summary=False)
    assert not (tmp_path / "sweep" / "0" / "tensorboard").exists()
    acc = EventAccumulator(str(board / "sweep" / "0"))
    acc.Reload()
    history = pd.read_csv(tmp_path / "sweep" / "0" / "history.csv")
    values = [p.value for p in acc.Scalars("history/val_loss")]
    assert values == history["val_loss"].astype(np.float32).tolist()


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory) -> str:
    """One SQLite store for the module's MLflow tests (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"


def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def mlflow_runs(uri: str, experiment: str) -> list:
    client = mlflow_client(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


def check_mlflow_run(uri: str, mlrun, run_dir: Path, cfg: dict) -> None:
    """The MLflow run holds run_dir's config, history.csv per epoch and metrics.csv."""
    client = mlflow_client(uri)
    history = pd.read_csv(run_dir / "history.csv")
    row = numeric(read_metrics(run_dir))
    assert mlrun.info.status == "FINISHED"
    assert mlrun.info.run_name == f"{run_dir.parent.name}/{run_dir.name}"
    assert mlrun.data.tags["run_dir"] == str(run_dir.resolve())
    assert mlrun.data.params == expected_params(cfg)
    for col in [c for c in history.select_dtypes("number") if c != "epoch"]:
        points = client.get_metric_history(mlrun.info.run_id, f"history/{col}")
        assert [(p.step, p.value) for p in points] == list(
            zip(history["epoch"], history[col], strict=True)
        )
    finals = {k: v for k, v in mlrun.data.metrics.items() if not k.startswith("history/")}
    assert finals.keys() == row.keys()
    for name, value in row.items():
        np.testing.assert_equal(finals[name], value)  # float64 in and out: equal
    points = client.get_metric_history(mlrun.info.run_id, "test_accuracy")
    assert [p.step for p in points] == [len(history)]


@pytest.mark.slow
def test_mlflow_run_holds_params_history_and_final_metrics(make_config, tmp_path, mlflow_store):
    cfg = make_config(
        "logger=mlflow",
        f"logger.tracking_uri={mlflow_store}",
        "logger.experiment_name=single",
        "regularizer=sgl",
        "lambda=1e-2",
        *FAST,
    )
    run_dir = tmp_path / "runs" / "sgl"
    run(cfg, run_dir, summary=False)
    (mlrun,) = mlflow_runs(mlflow_store, "single")
    params = mlrun.data.params
    assert params["regularizer.name"] == "sgl"
    assert float(params["lambda"]) == 1e-2
    assert float(params["optimizer.lr"]) == 1e-3
    assert params["model.hidden"] == "[8]"
    assert mlrun.data.metrics["test_accuracy"] == read_metrics(run_dir)["test_accuracy"]
    check_mlflow_run(mlflow_store, mlrun, run_dir, cfg)

    run(cfg, run_dir, summary=False)  # a rerun of the directory replaces its MLflow run
    (again,) = mlflow_runs(mlflow_store, "single")
    assert again.info.run_id != mlrun.info.run_id
    check_mlflow_run(mlflow_store, again, run_dir, cfg)


@pytest.mark.slow
def test_batched_sweep_logs_each_job_as_its_own_mlflow_run(make_config, tmp_path, mlflow_store):
    # Two jobs trained as one stack, then written (and logged) by 2 worker processes at
    # once; both create the experiment "sweep" if it is not there.
    store = f"logger.tracking_uri={mlflow_store}"
    logger = ["logger=mlflow", store, "logger.experiment_name=sweep"]
    sweep = ["regularizer=l1,l2", "lambda=1e-3", *FAST, *logger]
    workers = ["hydra.launcher.n_jobs=2", "hydra.launcher.parallel_from=2"]
    cmd = [sys.executable, "-m", "regexp.cli", "train", "-m", "hydra/launcher=batched"]
    proc = subprocess.run(
        [*cmd, *sweep, *workers, "hydra.sweep.dir=sweep"],
        cwd=tmp_path,
        env={**os.environ, "REGEXP_DEBUG": ""},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert "trained 2 jobs (#0-1) in one stack: 2 ok" in log
    assert "configs and outputs in 2 processes" in log
    assert "worker processes failed" not in log

    runs = {r.data.params["regularizer.name"]: r for r in mlflow_runs(mlflow_store, "sweep")}
    assert sorted(runs) == ["l1", "l2"]
    for job, reg in (("0", "l1"), ("1", "l2")):
        cfg = make_config(f"regularizer={reg}", "lambda=1e-3", *FAST, *logger)
        check_mlflow_run(mlflow_store, runs[reg], tmp_path / "sweep" / job, cfg)
    client = mlflow_client(mlflow_store)
    l1, l2 = (client.get_metric_history(runs[r].info.run_id, "history/val_loss") for r in runs)
    assert [m.value for m in l1] != [m.value for m in l2]  # each its own history


def test_default_mlflow_store_is_an_sqlite_file_under_the_working_directory(
    make_config, tmp_path, monkeypatch
):
    from regexp.runs.trackers import _sqlite_store

    uri = make_config("logger=mlflow")["logger"]["tracking_uri"]
    assert uri == "sqlite:///outputs/mlruns/mlflow.db"
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "outputs" / "mlruns" / "mlflow.db"
    assert _sqlite_store(uri) == (f"sqlite:///{db}", db)  # absolute: sqlite:////tmp/...
    assert db.parent.is_dir()
    assert _sqlite_store("http://localhost:5000") == ("http://localhost:5000", None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("logger.name=wandb",),
            "logger.name must be one of csv, tensorboard, mlflow, got 'wandb'",
        ),
        (
            ("logger=mlflow", "+logger.foo=1"),
            "logger.foo is not an option of logger=mlflow; it takes tracking_uri, experiment_name",
        ),
        (("logger=csv", "+logger.save_dir=x"), "logger.save_dir is not an option of logger=csv"),
        (("logger=mlflow", "logger.tracking_uri=''"), "logger.tracking_uri must be a non-empty"),
        (("logger=tensorboard", "logger.save_dir=3"), "logger.save_dir must be null or a folder"),
    ],
)
def test_bad_logger_values_are_refused_by_name(make_config, overrides, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        validate(make_config(*overrides))


@pytest.mark.parametrize(
    ("logger", "package"),
    [("tensorboard", "tensorboard"), ("mlflow", "mlflow"), ("mlflow", "sqlalchemy")],
)
def test_missing_tracker_package_is_refused_before_training(
    make_config, monkeypatch, logger, package
):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a)
    )
    with pytest.raises(ValueError) as err:
        validate(make_config(f"logger={logger}"))
    assert str(err.value) == (
        f'logger={logger} needs the {package} package: pip install -e ".[{logger}]"'
    )


@pytest.mark.slow
def test_cli_without_mlflow_ends_with_one_line_and_no_run_directory(tmp_path):
    # The package hidden from importlib.util.find_spec, as when it is not installed.
    code = (
        "import importlib.util as u, sys\n"
        "real = u.find_spec\n"
        "u.find_spec = lambda name, *a: None if name == 'mlflow' else real(name, *a)\n"
        "from regexp.cli import main\n"
        "sys.argv = ['regexp', 'train', 'logger=mlflow', 'hydra.run.dir=run']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        'regexp: error: logger=mlflow needs the mlflow package: pip install -e ".[mlflow]"'
    ]
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "outputs").exists()
