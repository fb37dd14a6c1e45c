import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
    """Keep the prepared data sets of this session (regexp.data.cache) in a fresh
    folder, not the user's cache; subprocesses inherit it."""
    old = os.environ.get("REGEXP_CACHE_DIR")
    os.environ["REGEXP_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield os.environ["REGEXP_CACHE_DIR"]
    if old is None:
        del os.environ["REGEXP_CACHE_DIR"]
    else:
        os.environ["REGEXP_CACHE_DIR"] = old


@pytest.fixture
def make_config():
    """Compose the shipped Hydra config with overrides, as a plain dict."""

    def make(*overrides: str) -> dict:
        with initialize_config_module("regexp.conf", version_base="1.3"):
            cfg = compose("config", overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)

    return make


@pytest.fixture
def regexp_cli(tmp_path):
    """Run the installed ``regexp`` command in a subprocess inside ``tmp_path``."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "regexp.cli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"regexp {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
        return proc

    return run
