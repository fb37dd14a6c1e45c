"""Data hygiene: bad CSV data is refused with one line naming the file, the columns and
what is allowed; scikit-learn scalers; class labels; dataset.sep; fixed built-in tasks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

from regexp.cli import main
from regexp.config import validate
from regexp.data.prepare import encode_classes, load_dataset, make_scaler, split_indices

N = 30


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def table(n: int = N, sep: str = ",", header: str = "a,b,y") -> str:
    """A small CSV text: two features and a 0/1 target."""
    rows = "".join(f"{i},{(7 * i) % 5 - 2.5},{i % 2}\n" for i in range(n))
    return (header + "\n" + rows).replace(",", sep)


def csv_load(path: str, target: object = "y", task: str = "classification", **options):
    return load_dataset("csv", task, path=path, target=target, **options)


# --- scalers -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_scalers_match_a_numpy_hand_computation_on_the_training_split(kind, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(60, 4))
    x[:, 2] = 7.0  # a constant column gets scale 1
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(y=np.arange(60) % 3)
    path = tmp_path / "x.csv"
    frame.to_csv(path, index=False)
    data = csv_load(str(path), scaler=kind, split_seed=4)
    train, val, test = split_indices(frame["y"].to_numpy(), "classification", 0.2, 0.2, 4)
    xt = x[train]
    if kind == "standard":
        shift, scale = xt.mean(axis=0), xt.std(axis=0, ddof=0)
    elif kind == "minmax":
        shift, scale = xt.min(axis=0), xt.max(axis=0) - xt.min(axis=0)
    else:
        shift, scale = np.zeros(4), np.ones(4)
    scale[2] = 1.0
    for rows, got in ((train, data.x_train), (val, data.x_val), (test, data.x_test)):
        np.testing.assert_allclose(got.numpy(), (x[rows] - shift) / scale, atol=1e-5)
    if kind != "none":
        assert np.all(data.x_train.numpy()[:, 2] == 0)


def test_make_scaler_is_scikit_learn():
    assert isinstance(make_scaler("standard"), StandardScaler)
    assert isinstance(make_scaler("minmax"), MinMaxScaler)
    identity = make_scaler("none")
    assert isinstance(identity, FunctionTransformer)
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(identity.fit(x).transform(x), x)
    with pytest.raises(ValueError, match=r"dataset\.scaler must be one of standard, minmax, none"):
        make_scaler("robust")


# --- refused data --------------------------------------------------------------------


def test_duplicate_column_names_are_refused_from_the_raw_header(tmp_path):
    rows = "".join(f"{i},{i % 2},{i},{i % 2}\n" for i in range(N))
    path = write(tmp_path / "dup.csv", "a,y,b,y\n" + rows)
    with pytest.raises(ValueError) as err:
        csv_load(path)
    assert str(err.value).startswith(f"dataset.path: duplicate column names in '{path}': y; ")
    # A column really named y.1 (what pandas would make of the copy) is no duplicate.
    ok = write(tmp_path / "ok.csv", "a,y,b,y.1\n" + rows)
    assert csv_load(ok).feature_names == ["a", "b", "y.1"]


@pytest.mark.parametrize("split", [0, 1, 2], ids=["train", "val", "test"])
@pytest.mark.parametrize("value", ["inf", "-inf"])
def test_infinite_features_are_refused_in_any_split(split, value, tmp_path):
    y = np.arange(N) % 2
    row = split_indices(y, "classification", 0.2, 0.2, seed=0)[split][0]
    lines = table().splitlines()
    cells = lines[row + 1].split(",")
    cells[1] = value
    lines[row + 1] = ",".join(cells)
    path = write(tmp_path / "inf.csv", "\n".join(lines) + "\n")
    with pytest.raises(ValueError) as err:
        csv_load(path)
    assert str(err.value) == (
        f"dataset.path: infinite values (inf, -inf) in '{path}', columns: b; "
        "only finite numbers are allowed, replace or drop those rows first"
    )


def test_values_whose_square_overflows_float64_are_refused(tmp_path):
    huge = write(
        tmp_path / "huge.csv", table().replace("\n3,", "\n2e154,").replace(",-2.5,", ",-1e300,")
    )
    with pytest.raises(ValueError) as err:
        csv_load(huge)
    message = str(err.value)
    assert message.startswith(f"dataset.path: values too large in '{huge}', columns: a, b; ")
    assert "|x| must be <= 1.34e+154" in message
    # Just below the limit, in every row: scaled without overflow.
    big = "a,b,y\n" + "".join(f"{i}e150,1,{i % 2}\n" for i in range(1, N + 1))
    data = csv_load(write(tmp_path / "big.csv", big))
    assert all(np.isfinite(x.numpy()).all() for x in (data.x_train, data.x_val, data.x_test))


def test_regression_target_must_be_finite(tmp_path):
    path = write(tmp_path / "r.csv", table().replace("\n3,-1.5,1", "\n3,-1.5,-inf"))
    with pytest.raises(ValueError, match=r"infinite values \(inf, -inf\) in .*, target: y; "):
        csv_load(path, task="regression")


def test_scaled_features_beyond_float32_are_refused(tmp_path):
    path = write(tmp_path / "f32.csv", table().replace("\n3,", "\n1e100,"))
    with pytest.raises(ValueError) as err:
        csv_load(path, scaler="none")
    assert str(err.value) == (
        "dataset: feature columns out of float32 range after dataset.scaler=none: a "
        "(largest |x| = 1e+100); rescale them, or use dataset.scaler=standard"
    )


def test_leading_index_column_from_to_csv_is_refused_with_the_fix(tmp_path):
    """Choice: refused, not dropped; the message says to write with index=False."""
    frame = pd.read_csv(write(tmp_path / "t.csv", table()))
    path = tmp_path / "indexed.csv"
    frame.to_csv(path)  # index=True by default: header ",a,b,y"
    with pytest.raises(ValueError) as err:
        csv_load(str(path))
    assert str(err.value) == (
        f"dataset.path: the first column of '{path}' has no name ('Unnamed: 0'): an index "
        "column, as DataFrame.to_csv writes by default; write the file with "
        "to_csv(..., index=False), or give the column a name if it is a feature"
    )


def test_other_unnamed_and_overlong_rows_are_refused(tmp_path):
    trailing = write(
        tmp_path / "trail.csv", table(header="a,b,y,").replace("\n", ",\n")[:-2] + "\n"
    )
    with pytest.raises(ValueError, match=r"column 4 of .* has no name in the header; name it"):
        csv_load(trailing)
    longer = write(
        tmp_path / "long.csv", "a,b,y\n" + "".join(f"{i},1,{i % 2},9\n" for i in range(N))
    )
    with pytest.raises(ValueError) as err:
        csv_load(longer)
    assert str(err.value) == (
        f"dataset.path: rows of '{longer}' have more fields than its header (3 names); "
        "name every column, or fix those rows"
    )


def test_header_only_and_empty_files_say_so(tmp_path):
    header = write(tmp_path / "x.csv", "a,b,y\n")
    with pytest.raises(ValueError) as err:
        csv_load(header)
    assert str(err.value) == f"dataset.path: '{header}' has a header but no rows"
    empty = write(tmp_path / "e.csv", "\n")
    with pytest.raises(ValueError) as err:
        csv_load(empty)
    assert str(err.value) == f"dataset.path: '{empty}' is empty; it needs a header and rows"


def test_continuous_float_target_is_refused_for_classification(tmp_path):
    """Rule: float target, not all integers, more distinct values than half the rows."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=N), "y": rng.normal(size=N).round(3)})
    path = tmp_path / "c.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError) as err:
        csv_load(str(path))
    assert str(err.value) == (
        f"dataset.target: 'y' in '{path}' looks continuous ({N} distinct values in {N} rows, "
        "not all integers), not like class labels; set dataset.task=regression, "
        "or use a column of class labels"
    )
    assert csv_load(str(path), task="regression").task == "regression"
    # Integral floats, and a few non-integer labels, are class labels.
    frame.assign(y=np.arange(N) % 3 * 1.0).to_csv(path, index=False)
    assert csv_load(str(path)).classes == (0.0, 1.0, 2.0)
    frame.assign(y=np.arange(N) % 4 * 0.5).to_csv(path, index=False)
    assert csv_load(str(path)).classes == (0.0, 0.5, 1.0, 1.5)


# --- accepted data -------------------------------------------------------------------


def test_classes_keep_their_labels_and_the_log_lists_them(tmp_path, caplog):
    names = np.array(["setosa", "versicolor", "virginica"])
    text = "a,b,species\n" + "".join(f"{i},{i % 5},{names[i % 3]}\n" for i in range(N))
    path = write(tmp_path / "iris.csv", text)
    with caplog.at_level(logging.INFO, logger="regexp.data.prepare"):
        data = csv_load(path, target="species")
    assert data.classes == ("setosa", "versicolor", "virginica")
    assert [data.classes[i] for i in data.y_train.tolist()] == [
        names[i % 3] for i in split_indices(np.arange(N) % 3, "classification", 0.2, 0.2, 0)[0]
    ]
    assert "3 classes (setosa, versicolor, virginica)" in caplog.text
    ints = write(tmp_path / "ints.csv", table().replace(",0\n", ",10\n").replace(",1\n", ",-3\n"))
    classes = csv_load(ints).classes
    assert classes == (-3, 10) and all(type(c) is int for c in classes)
    mixed = write(tmp_path / "mixed.csv", text.replace("virginica", "3"))
    assert csv_load(mixed, target="species").classes == ("3", "setosa", "versicolor")


def test_mixed_label_types_sort_numbers_first():
    classes, codes = encode_classes(np.array([2, "b", 1.5, "a", 2], dtype=object))
    assert classes == (1.5, 2, "a", "b")
    assert codes.tolist() == [1, 3, 0, 2, 1]


def test_number_target_from_hydra_names_the_column(tmp_path, make_config):
    text = "1,2,3\n" + "".join(f"{i},{i % 4},{i % 2}\n" for i in range(N))
    path = write(tmp_path / "n.csv", text)
    cfg = make_config("dataset=csv", f"dataset.path={path}", "dataset.target=3")
    assert cfg["dataset"]["target"] == 3  # Hydra gives the int
    validate(cfg)
    data = load_dataset(**cfg["dataset"])
    assert data.feature_names == ["1", "2"] and data.classes == (0, 1)
    with pytest.raises(ValueError, match=r"column '4' not in .*quote it for text"):
        csv_load(path, target=4)


def test_semicolon_file_reads_with_sep_or_detection(tmp_path, make_config):
    path = write(tmp_path / "semi.csv", table(sep=";"))
    cfg = make_config("dataset=csv", f"dataset.path={path}", "dataset.target=y", "dataset.sep=';'")
    assert cfg["dataset"]["sep"] == ";"
    validate(cfg)
    data = load_dataset(**cfg["dataset"])
    assert data.feature_names == ["a", "b"]
    assert csv_load(path, sep=None).feature_names == ["a", "b"]  # null: csv.Sniffer
    tabs = write(tmp_path / "tab.csv", table(sep="\t"))
    assert csv_load(tabs, sep="\\t").feature_names == ["a", "b"]
    with pytest.raises(ValueError) as err:
        csv_load(path)  # the default ","
    assert str(err.value).endswith(
        "columns are: a;b;y; is ',' the wrong separator? set dataset.sep, "
        "or dataset.sep=null to detect it"
    )
    bad = make_config("dataset=csv", f"dataset.path={path}", "dataset.target=y", "dataset.sep=';;'")
    with pytest.raises(ValueError, match=r"dataset.sep must be one character, .* got ';;'"):
        validate(bad)


@pytest.mark.parametrize("name", ["digits", "diabetes", "breast_cancer", "wine"])
def test_builtin_datasets_have_a_fixed_task(name, make_config):
    cfg = make_config(f"dataset={name}")
    fixed = cfg["dataset"]["task"]
    validate(cfg)  # the shipped value is the fixed one
    other = "regression" if fixed == "classification" else "classification"
    with pytest.raises(ValueError) as err:
        validate(make_config(f"dataset={name}", f"dataset.task={other}"))
    assert str(err.value) == (
        f"dataset.task is fixed to {fixed} for dataset={name}; only dataset=csv takes a task"
    )


def test_seed_must_be_below_2_to_the_32(make_config):
    validate(make_config(f"seed={2**32 - 1}"))
    with pytest.raises(ValueError) as err:
        validate(make_config(f"seed={2**32}"))
    assert str(err.value) == "seed must be an integer in [0, 2**32), got 4294967296"


# --- the command line ----------------------------------------------------------------


def cli_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    dup = write(tmp / "dup.csv", "a,y,b,y\n" + "".join(f"{i},{i % 2},1,0\n" for i in range(N)))
    inf = write(tmp / "inf.csv", table().replace("\n3,", "\ninf,"))
    header = write(tmp / "header.csv", "a,b,y\n")

    def csv(path: str) -> list[str]:
        return ["dataset=csv", f"dataset.path={path}", "dataset.target=y"]

    return {
        "duplicate": (csv(dup), f"dataset.path: duplicate column names in '{dup}': y; "),
        "inf": (csv(inf), f"dataset.path: infinite values (inf, -inf) in '{inf}', columns: a; "),
        "no_rows": (csv(header), f"dataset.path: '{header}' has a header but no rows"),
        "fixed_task": (
            ["dataset=wine", "dataset.task=regression"],
            "dataset.task is fixed to classification for dataset=wine; only dataset=csv "
            "takes a task",
        ),
    }


@pytest.mark.parametrize("case", ["duplicate", "inf", "no_rows", "fixed_task"])
def test_cli_refuses_bad_data_with_one_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.delenv("REGEXP_DEBUG", raising=False)
    overrides, message = cli_cases(tmp_path)[case]
    run_dir = tmp_path / "run"
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_:
        main(["train", "trainer.epochs=1", f"hydra.run.dir={run_dir}", *overrides])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regexp: error: " + message)
    assert not (run_dir / "metrics.csv").exists()


@pytest.mark.slow
def test_console_refuses_duplicate_columns_with_one_stderr_line(tmp_path):
    path = write(
        tmp_path / "dup.csv", "a,y,b,y\n" + "".join(f"{i},{i % 2},1,0\n" for i in range(N))
    )
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("REGEXP_DEBUG", "HYDRA_FULL_ERROR")}
    args = ["dataset=csv", f"dataset.path={path}", "dataset.target=y", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(
        [sys.executable, "-m", "regexp.cli", "train", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"regexp: error: dataset.path: duplicate column names in '{path}': y; every column "
        "needs its own name (pandas would rename a copy to y.1 and use it as a feature)"
    ]
    assert not (run_dir / "metrics.csv").exists()
