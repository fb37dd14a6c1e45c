"""Bad input: one line on stderr naming the bad value, nonzero exit, no traceback, no files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra

import regexp
from regexp.cli import main
from regexp.data.sources import load_csv
from regexp.train import setup as engine_train

FAST = ["trainer.epochs=1", "model.hidden=[4]"]


def cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run ``regexp train`` in-process; return its exit code and stderr."""
    GlobalHydra.instance().clear()
    try:
        main(["train", *argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def csv_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    good = "a,b,y\n" + "".join(f"{i},{2 * i},{i % 2}\n" for i in range(20))
    files = {
        "good": write(tmp / "good.csv", good),
        "text": write(tmp / "text.csv", "a,b,c,y\n1,x,u,0\n2,y,v,1\n"),
        "nan": write(tmp / "nan.csv", "a,b,y\n1,,0\n2,3,1\n"),
        "few": write(tmp / "few.csv", "a,b,y\n1,2,0\n3,4,1\n5,6,0\n"),
        "one": write(tmp / "one.csv", "a,b,y\n" + "".join(f"{i},{i},7\n" for i in range(20))),
    }

    def csv(name: str, target: str = "y") -> list[str]:
        return ["dataset=csv", f"dataset.path={files[name]}", f"dataset.target={target}"]

    return {
        "csv_missing_file": (
            ["dataset=csv", f"dataset.path={tmp / 'nope.csv'}", "dataset.target=y"],
            f"dataset.path: no such file '{tmp / 'nope.csv'}'",
        ),
        "csv_no_path": (["dataset=csv"], "missing required values: dataset.path, dataset.target"),
        "csv_missing_target": (csv("good", "z"), "column 'z' not in"),
        "csv_text_columns": (csv("text"), "non-numeric feature columns in"),
        "csv_nan": (csv("nan"), "missing (NaN) values in"),
        "csv_too_few_rows": (csv("few"), "cannot split 3 rows into train/val/test"),
        "csv_one_class": (csv("one"), "at least 2 classes in the target, found 1: [7]"),
    }


CASES: dict[str, tuple[list[str], str]] = {
    "lambda_negative": (["lambda=-1"], "lambda must be a finite number >= 0, got -1"),
    "lambda_nan": (["lambda=nan"], "lambda must be a finite number >= 0, got nan"),
    "lambda_text": (["lambda=abc"], "lambda must be a finite number >= 0, got 'abc'"),
    "hidden_empty": (["model.hidden=[]"], "model.hidden must be a non-empty list"),
    "hidden_zero": (["model.hidden=[0]"], "model.hidden sizes must be positive ints, got [0]"),
    "hidden_negative": (["model.hidden=[4,-2]"], "positive ints, got [4, -2]"),
    "dropout_one": (["model.dropout=1"], "model.dropout must be in [0, 1), got 1"),
    "dropout_negative": (["model.dropout=-0.5"], "model.dropout must be in [0, 1), got -0.5"),
    "epochs_zero": (["trainer.epochs=0"], "trainer.epochs must be an integer >= 1, got 0"),
    "batch_size_zero": (["trainer.batch_size=0"], "trainer.batch_size must be an integer >= 1"),
    "threshold_negative": (["threshold=-1"], "threshold must be a finite number >= 0, got -1"),
    "l1_ratio_above_one": (
        ["regularizer=elastic_net", "regularizer.l1_ratio=2"],
        "regularizer.l1_ratio must be in [0, 1], got 2",
    ),
    "lr_negative": (["optimizer.lr=-1"], "optimizer.lr must be a finite number > 0, got -1"),
    "device_unknown": (["trainer.device=tpu"], "trainer.device must be one of cpu, cuda, auto"),
    "mode_unknown": (["regularizer.mode=foo"], "regularizer.mode must be one of penalty, proximal"),
    "seed_text": (["seed=abc"], "seed must be an integer in [0, 2**32), got 'abc'"),
    "seed_alias": (["seed=4294967296"], "seed must be an integer in [0, 2**32), got 4294967296"),
    "prox_metric_unknown": (
        ["regularizer.prox_metric=foo"],
        "regularizer.prox_metric must be one of auto, identity, adaptive, got 'foo'",
    ),
    "prox_metric_adaptive_sgd": (
        ["optimizer=sgd", "regularizer.prox_metric=adaptive"],
        "regularizer.prox_metric=adaptive needs optimizer adam or adamw",
    ),
    "regularizer_option_unknown": (["+regularizer.foo=1"], "regularizer.foo is not an option"),
}


CSV_CASES = [
    "csv_missing_file", "csv_no_path", "csv_missing_target", "csv_text_columns", "csv_nan",
    "csv_too_few_rows", "csv_one_class",
]  # fmt: skip


@pytest.mark.parametrize("case", [*CASES, *CSV_CASES])
def test_bad_input_one_line_exit_2_no_run_dir(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.delenv("REGEXP_DEBUG", raising=False)
    overrides, message = (CASES | csv_cases(tmp_path))[case]
    run_dir = tmp_path / "run"
    code, err = cli([*FAST, f"hydra.run.dir={run_dir}", *overrides], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("regexp: error: ")
    assert message in err
    assert "Traceback" not in err
    assert not run_dir.exists()


@pytest.mark.parametrize("group", ["regularizer", "dataset", "optimizer"])
def test_unknown_group_option_lists_the_choices(group, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.delenv("REGEXP_DEBUG", raising=False)
    code, err = cli([f"{group}=foo", f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert code != 0
    assert f"Could not find '{group}/foo'" in err
    assert f"Available options in '{group}'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_debug_switch_raises_with_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setenv("REGEXP_DEBUG", "1")
    GlobalHydra.instance().clear()
    with pytest.raises(ValueError, match="lambda must be"):
        main(["train", "lambda=-1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


@pytest.mark.slow
def test_console_script_stderr_is_one_line_and_debug_shows_traceback(tmp_path):
    exe = Path(sys.executable).with_name("regexp")
    env = {k: v for k, v in os.environ.items() if k not in ("REGEXP_DEBUG", "HYDRA_FULL_ERROR")}
    args = [str(exe), "train", "model.dropout=1", f"hydra.run.dir={tmp_path / 'run'}"]
    plain = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 2
    assert plain.stderr.splitlines() == ["regexp: error: model.dropout must be in [0, 1), got 1"]
    assert not (tmp_path / "run").exists()
    debug = subprocess.run(
        args, env=env | {"REGEXP_DEBUG": "1"}, capture_output=True, text=True, timeout=300
    )
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ValueError: model.dropout must be in [0, 1), got 1" in debug.stderr


def test_validation_happens_before_data_loading(monkeypatch, tmp_path):
    def no_loading(**_):
        raise AssertionError("data loaded before the config was validated")

    monkeypatch.setattr(engine_train, "load_dataset", no_loading)
    with pytest.raises(ValueError, match=r"trainer\.batch_size must be an integer >= 1, got 0"):
        regexp.run([*FAST, "trainer.batch_size=0"], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_csv_encode_categorical_one_hot_encodes_text_columns(tmp_path):
    path = write(tmp_path / "t.csv", "a,colour,y\n1.5,red,0\n2.5,blue,1\n3.5,red,1\n")
    table = load_csv(path, "y", "classification", encode_categorical=True)
    # by hand: a, then one 0/1 column per category in sorted order (blue, red)
    expected = np.array([[1.5, 0, 1], [2.5, 1, 0], [3.5, 0, 1]], dtype=np.float64)
    np.testing.assert_array_equal(table.x, expected)
    assert table.feature_names == ["a", "colour_blue", "colour_red"]
    with pytest.raises(ValueError, match=r"non-numeric feature columns in .*: colour; "):
        load_csv(path, "y", "classification")
    assert pd.read_csv(path).shape == (3, 3)  # the file itself is untouched
