"""Validation: one table (regexp.config.PARAMETERS), checked once per run.

The counts patch ``regexp.config.validate`` and run each entry point of a run: a single
``regexp train``, a sweep's jobs, ``regexp.run``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra

import regexp
from regexp import config
from regexp.cli import main

FAST = ["trainer.epochs=1", "model.hidden=[4]"]
CONF = Path(importlib.import_module("regexp.conf").__file__).parent  # the shipped YAMLs


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """The configs ``regexp.config.validate`` is called with, from a fresh process state."""
    seen: list[dict] = []
    real = config.validate

    def counting(cfg):
        seen.append(cfg)
        real(cfg)

    monkeypatch.setattr(config, "validate", counting)
    monkeypatch.setattr(config, "_validated", set())
    GlobalHydra.instance().clear()
    return seen


@pytest.mark.slow
def test_a_single_cli_run_validates_once(calls, tmp_path):
    main(["train", *FAST, f"hydra.run.dir={tmp_path / 'run'}"])
    assert (tmp_path / "run" / "metrics.csv").is_file()
    assert len(calls) == 1


@pytest.mark.slow
def test_each_job_of_a_sweep_validates_once(calls, tmp_path):
    args = ["-m", *FAST, "seed=0,1", "hydra/launcher=basic", f"hydra.sweep.dir={tmp_path}/s"]
    main(["train", *args])
    assert sorted(c["seed"] for c in calls) == [0, 1]


@pytest.mark.slow
def test_regexp_run_validates_once(calls, tmp_path):
    regexp.run(FAST, run_dir=tmp_path / "run")
    assert len(calls) == 1


def test_a_config_that_differs_is_validated_anew(calls):
    cfg = {"lambda": -1.0}
    for _ in range(2):  # a config that failed is not remembered
        with pytest.raises(ValueError):
            config.validate_once(cfg)
    assert len(calls) == 2


def _choices() -> list[tuple[str, str]]:
    groups = ["dataset", "model", "optimizer", "trainer", "logger", "regularizer"]
    return [(g, p.stem) for g in groups for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "choice"), _choices())
def test_every_shipped_choice_passes_and_every_key_is_in_the_table(group, choice, make_config):
    extra = []
    if (group, choice) == ("dataset", "csv"):
        extra = [f"dataset.path={CONF / 'config.yaml'}", "dataset.target=x"]
    if (group, choice) == ("logger", "tensorboard"):
        pytest.importorskip("tensorboard")
    if (group, choice) == ("logger", "mlflow"):
        pytest.importorskip("mlflow")
    cfg = make_config(f"{group}={choice}", *extra)
    config.validate(cfg)  # no unknown key, every value allowed
    text = (CONF / group / f"{choice}.yaml").read_text()
    keys = yaml.safe_load(text)
    if "@package _global_" in text:  # the file sets keys of other groups too
        keys = keys[group]
    if group != "regularizer":  # its options are its class's arguments
        assert sorted(keys) == sorted(config.group_keys(cfg, group))


def test_every_table_key_is_in_a_shipped_yaml():
    top = yaml.safe_load((CONF / "config.yaml").read_text())
    shipped = set(top)
    shipped |= {
        f"{k}.{sub}" for k, v in top.items() if k != "hydra" and isinstance(v, dict) for sub in v
    }
    for group, choice in _choices():
        text = (CONF / group / f"{choice}.yaml").read_text()
        keys = yaml.safe_load(text)
        if "@package _global_" in text:
            keys = keys[group]
        shipped |= {f"{group}.{k}" for k in keys}
    assert set(config.PARAMETERS) <= shipped
