"""What the command loads, and when: the costs of a run that are not training.

Each check runs a fresh interpreter, so that it sees the imports of that process only.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_importing_regexp_and_its_help_load_no_torch():
    out = python(
        "import sys\n"
        "import regexp, regexp.cli\n"
        "regexp.cli.main(['--help'])\n"
        "print(sorted(m for m in ('torch', 'pandas', 'sklearn', 'matplotlib') "
        "if m in sys.modules))\n"
    )
    assert out.splitlines()[-1] == "[]"


def test_every_public_name_is_its_modules_object():
    import regexp.api
    import regexp.results.aggregate
    import regexp.results.selection
    import regexp.runs.collect
    import regexp.runs.compression

    modules = (
        regexp.core.penalties,
        regexp.core.regularizers,
        regexp.core.sparsity,
        regexp.api,
        regexp.results.aggregate,
        regexp.results.selection,
        regexp.runs.collect,
        regexp.runs.compression,
    )
    for name in regexp.__all__:
        found = {id(vars(m)[name]): vars(m)[name] for m in modules if name in vars(m)}
        assert len(found) == 1, name  # one object, wherever core re-exports it
        assert getattr(regexp, name) is next(iter(found.values()))
    assert set(regexp.__all__) <= set(dir(regexp))


@pytest.mark.slow
def test_a_run_never_imports_torch_dynamo(tmp_path):
    # Building a torch.optim optimizer imports torch._dynamo: about a second per run.
    python(
        "import sys\n"
        "from pathlib import Path\n"
        "from hydra import compose, initialize_config_module\n"
        "from omegaconf import OmegaConf\n"
        "from regexp.hydra_app.task import run_task as run\n"
        "with initialize_config_module('regexp.conf', version_base='1.3'):\n"
        "    cfg = compose('config', ['trainer.epochs=1', 'model.hidden=[8]'])\n"
        f"run(OmegaConf.to_container(cfg, resolve=True), Path({str(tmp_path)!r}), summary=False)\n"
        "assert 'torch._dynamo' not in sys.modules\n"
    )
    assert (tmp_path / "metrics.csv").is_file()
