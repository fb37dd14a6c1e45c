"""Validation: one table (regexp.config.PARAMETERS), checked once per run.

The counts patch ``regexp.config.validate`` and run each entry point of a run: a single
``regexp train``, a sweep's jobs, ``regexp.run``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra

import regexp
from regexp import config
from regexp.api import compose_config
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
    keys = _keys(group, choice)
    if group != "regularizer":  # its options are its class's arguments
        assert sorted(keys) == sorted(config.group_keys(cfg, group))
        # the file names its schema, whose keys are the table's for its choice
        path = f"/schema/{group}" if group == "trainer" else f"/schema/{group}/{choice}"
        package = "dataset" if "@package _global_" in text else "_here_"
        assert yaml.safe_load(text)["defaults"] == [f"{path}@{package}", "_self_"]
        schema = config.schema(group, None if group == "trainer" else choice)
        assert list(schema) == config.group_keys(cfg, group)


def _keys(group: str, choice: str) -> dict:
    """The keys that ``conf/<group>/<choice>.yaml`` sets in its group (not its defaults)."""
    text = (CONF / group / f"{choice}.yaml").read_text()
    keys = yaml.safe_load(text)
    if "@package _global_" in text:  # the file sets keys of other groups too
        keys = keys[group]
    return {k: v for k, v in keys.items() if k != "defaults"}


def test_every_table_key_is_in_a_shipped_yaml():
    top = yaml.safe_load((CONF / "config.yaml").read_text())
    shipped = set(top)
    shipped |= {
        f"{k}.{sub}" for k, v in top.items() if k != "hydra" and isinstance(v, dict) for sub in v
    }
    for group, choice in _choices():
        shipped |= {f"{group}.{k}" for k in _keys(group, choice)}
    assert set(config.PARAMETERS) <= shipped


# --- the schemas in Hydra's ConfigStore (regexp.config.schema) ----------------------------


def test_the_schemas_are_in_hydras_configstore_and_type_the_composed_config(make_config):
    from hydra.core.config_store import ConfigStore
    from omegaconf import IntegerNode, ListConfig, StringNode

    make_config()  # Hydra imports regexp.conf, which registers the schemas
    store = ConfigStore.instance()
    for path in config.schema_paths():
        group, _, name = path.rpartition("/")
        assert f"{name}.yaml" in store.list(group), path
    # the keys of the schema of SGD are the table's for optimizer=sgd, nothing else
    assert list(config.schema("optimizer", "sgd")) == ["name", "lr", "momentum"]
    assert list(config.schema("optimizer", "adam")) == ["name", "lr", "betas", "eps"]
    from hydra import compose, initialize_config_module

    with initialize_config_module("regexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["seed=3"])
    assert isinstance(cfg._get_node("seed"), IntegerNode)
    assert isinstance(cfg.trainer._get_node("epochs"), IntegerNode)
    assert isinstance(cfg.model._get_node("hidden"), ListConfig)
    assert isinstance(cfg.dataset._get_node("scaler"), StringNode)
    # the values are the YAML files' and the command line's, as they were given
    assert make_config("lambda=0", "model.dropout=0")["lambda"] == 0
    assert isinstance(make_config("lambda=0")["lambda"], int)


def _typed_keys() -> list[tuple[str, list[str]]]:
    """Every key whose schema node refuses a text value (an int, a list of ints: a string
    node takes any value, which validate then checks), with the choices that make it a key
    of the config."""
    choices = {
        "model.channels": ["model=cnn"],
        "model.pool": ["model=cnn"],
    }
    kinds = {k: p.kind for k, p in config.PARAMETERS.items()}
    return [(k, choices.get(k, [])) for k, kind in kinds.items() if kind not in (Any, str)]


@pytest.mark.parametrize(("key", "choices"), _typed_keys())
def test_a_value_the_schema_refuses_gets_the_tables_line(key, choices):
    assert len(_typed_keys()) == 9  # seed, split_seed, 2 sizes, pool, 4 of trainer
    kind = config.PARAMETERS[key].kind
    bad = "[abc]" if "list" in str(kind) else "abc"
    value = ["abc"] if bad == "[abc]" else "abc"
    with pytest.raises(ValueError) as table:
        config.PARAMETERS[key].check(key, value)
    with pytest.raises(ValueError) as got:
        compose_config([*choices, f"{key}={bad}"])
    assert str(got.value) == str(table.value)
    assert "\n" not in str(got.value) and "abc" in str(got.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", "seed must be an integer in [0, 2**32), got 'abc'"),
        ("seed=1.5", "seed must be an integer in [0, 2**32), got 1.5"),
        ("trainer.epochs=0.5", "trainer.epochs must be an integer >= 1, got 0.5"),
        ("model.hidden=[a]", "model.hidden sizes must be positive ints, got ['a']"),
        (
            "trainer.early_stopping_patience=x",
            "trainer.early_stopping_patience must be null or an integer >= 1, got 'x'",
        ),
    ],
)
def test_regexp_train_words_a_schema_error_in_one_line(override, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main(["train", override, f"hydra.run.dir={run_dir}"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"regexp: error: {message}\n"
    assert not run_dir.exists()


def test_a_wrong_value_in_a_users_config_file_names_the_file(tmp_path, capsys):
    conf = tmp_path / "conf"
    (conf / "trainer").mkdir(parents=True)
    text = (CONF / "trainer" / "default.yaml").read_text().replace("epochs: 200", "epochs: ten")
    (conf / "trainer" / "mine.yaml").write_text(text)
    (conf / "trainer" / "extra.yaml").write_text(text.replace("epochs: ten", "epochs: 9\nfoo: 1"))
    args = [f"hydra.searchpath=[file://{conf}]", f"hydra.run.dir={tmp_path / 'run'}"]
    with pytest.raises(SystemExit):
        main(["train", "trainer=mine", *args])
    assert capsys.readouterr().err == (
        "regexp: error: trainer.epochs must be an integer >= 1, got 'ten' (in 'trainer/mine')\n"
    )
    with pytest.raises(SystemExit):
        main(["train", "trainer=extra", *args])
    assert capsys.readouterr().err == (
        "regexp: error: trainer.foo is not a key of its schema (in 'trainer/extra'); its keys "
        "are: trainer.epochs, trainer.batch_size, trainer.drop_last, "
        "trainer.early_stopping_patience, trainer.device, trainer.num_threads, trainer.engine\n"
    )
