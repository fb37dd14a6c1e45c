"""The cache of prepared built-in data sets (regexp.data.cache) against fresh loads.

The reference is :func:`regexp.data.prepare.load_dataset` with the cache off
(``REGEXP_CACHE_DIR=``): scikit-learn's loader, split and scaler, every time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields

import pytest
import torch

from regexp.data.prepare import Dataset, load_dataset

BUILTIN = [("digits", "classification"), ("diabetes", "regression"), ("wine", "classification")]


def same(a: Dataset, b: Dataset) -> bool:
    for f in fields(Dataset):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            if not (x.dtype == y.dtype and torch.equal(x, y)):
                return False
        elif not (type(x) is type(y) and x == y):
            return False
    return True


@pytest.mark.parametrize("name,task", BUILTIN)
def test_a_cached_data_set_is_the_freshly_prepared_one(name, task, monkeypatch, tmp_path):
    monkeypatch.setenv("REGEXP_CACHE_DIR", "")
    fresh = load_dataset(name, task, split_seed=3, scaler="minmax")
    monkeypatch.setenv("REGEXP_CACHE_DIR", str(tmp_path))
    first = load_dataset(name, task, split_seed=3, scaler="minmax")  # prepares, saves
    assert len(list((tmp_path / "datasets").glob(f"{name}-*.pt"))) == 1
    again = load_dataset(name, task, split_seed=3, scaler="minmax")  # reads the file
    assert same(first, fresh) and same(again, fresh)


def test_each_setting_has_its_own_file_and_a_bad_file_is_prepared_again(monkeypatch, tmp_path):
    monkeypatch.setenv("REGEXP_CACHE_DIR", str(tmp_path))
    a = load_dataset("wine", "classification")
    load_dataset("wine", "classification", split_seed=1)
    load_dataset("wine", "classification", scaler="none")
    load_dataset("wine", "classification")
    files = sorted((tmp_path / "datasets").glob("*.pt"))
    assert len(files) == 3
    for f in files:
        f.write_bytes(b"not a torch file")
    b = load_dataset("wine", "classification")
    assert same(a, b)
    assert sum(f.read_bytes() != b"not a torch file" for f in files) == 1  # rewritten


def test_an_unwritable_cache_does_not_stop_a_run(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("a file where the cache folder would be")
    monkeypatch.setenv("REGEXP_CACHE_DIR", str(tmp_path / "file"))
    assert load_dataset("wine", "classification").n_classes == 3


@pytest.mark.slow
def test_a_second_run_does_not_import_scikit_learn(tmp_path):
    code = (
        "import sys\n"
        "from regexp.data.prepare import load_dataset\n"
        "load_dataset('digits', 'classification')\n"
        "print('sklearn' in sys.modules)\n"
    )
    env = {**os.environ, "REGEXP_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [r.stdout.strip() for r in runs] == ["True", "False"], runs[-1].stderr[-2000:]
