"""Adding a regularizer is one class, one YAML and its tests (docs/regularizers.md).

The docs' example class (the log penalty) and its YAML, taken from the docs, are put in
place as a user would ship them (the class registered in ``REGULARIZERS``, the YAML in a
conf folder on Hydra's search path) and trained through ``regexp train``. Its name and
its option reach the files and the figure title from the class alone, and its penalty on
the trained weights matches numpy.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from regexp import config  # imported before the class is registered, as in any session
from regexp.cli import main
from regexp.core.regularizers import REGULARIZERS, option_names
from regexp.model.build import load_model
from regexp.plots.run import run_title
from regexp.results import schema

DOCS = Path(__file__).parents[1] / "docs" / "regularizers.md"


@pytest.fixture
def shipped_log(tmp_path):
    """The docs' class registered and its YAML in ``tmp_path/conf/regularizer/log.yaml``;
    the registry is restored after."""
    text = DOCS.read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    (yaml_text,) = re.findall(r"```yaml\n(.*?)```", text, re.S)
    before = dict(REGULARIZERS)
    namespace: dict = {"__name__": "__docs__"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    conf = tmp_path / "conf"
    (conf / "regularizer").mkdir(parents=True)
    (conf / "regularizer" / "log.yaml").write_text(yaml_text)
    yield namespace["LogPenalty"], conf
    REGULARIZERS.clear()
    REGULARIZERS.update(before)


@pytest.mark.slow
def test_a_new_regularizer_trains_through_the_cli_by_its_class_and_yaml(shipped_log, tmp_path):
    cls, conf = shipped_log
    assert option_names("log") == ("eps",)  # read from the class
    config.PARAMETERS["regularizer.name"].check("regularizer.name", "log")  # registered now
    run = tmp_path / "run"
    main(
        [
            "train",
            "regularizer=log",
            "regularizer.eps=0.2",
            "regularizer.mode=proximal",  # the class's own proximal step, in Adam's metric
            "lambda=0.003",
            "dataset=wine",
            "model.hidden=[8]",
            "trainer.epochs=3",
            "figures=never",
            "threshold=0",  # zeros below come from the proximal step alone
            f"hydra.searchpath=[file://{conf}]",
            f"hydra.run.dir={run}",
        ]
    )
    row = pd.read_csv(run / "metrics.csv").iloc[0]
    assert row["status"] == "ok"
    assert row["regularizer"] == "log"
    # The option's short column and its dotted key; the short one is a config column.
    assert row["eps"] == 0.2 and row["regularizer.eps"] == 0.2
    assert schema.is_config("eps", row.index)
    assert not schema.is_config("eps", ["eps"])  # only beside regularizer.eps
    assert run_title(row.to_dict()) == "wine, log (proximal, eps=0.2), λ = 3e-3, seed 0"

    model, cfg = load_model(run / "model.pt")
    assert cfg["regularizer"] == {
        "name": "log",
        "mode": "proximal",
        "prox_metric": "auto",
        "eps": 0.2,
    }
    weights = [m.weight.detach().double().numpy() for m in model if isinstance(m, torch.nn.Linear)]
    assert len(weights) == 2  # 13 → 8 → 3
    # The proximal step ran: the log penalty's prox sets small weights to exactly 0.
    assert row["weight_sparsity"] > 0 and any((w == 0).any() for w in weights)
    expected = sum(0.003 * np.log1p(np.abs(w) / 0.2).sum() for w in weights)
    got = cls(0.003, eps=0.2)(model.double()).item()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_the_builtin_option_names_are_the_classes():
    assert option_names("elastic_net") == ("l1_ratio",)
    assert option_names("norm") == ("p",)
    assert option_names("sgl") == ()
    assert option_names("not_registered") == ()
    # schema.SHORT names none of them: they are found beside their dotted keys.
    assert not {"l1_ratio", "p"} & set(schema.SHORT)
    columns = ["regularizer", "l1_ratio", "regularizer.l1_ratio", "p", "regularizer.p", "x"]
    short = schema.short_columns(columns)
    assert short["l1_ratio"] == "regularizer.l1_ratio" and short["p"] == "regularizer.p"
    assert "x" not in short
