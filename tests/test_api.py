"""The notebook API: ``regexp.run``, ``regexp.load_results``, ``regexp.summarize``."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

import regexp

FAST = ["trainer.epochs=3", "model.hidden=[8]"]


def python(code: str, cwd, **env: str) -> str:
    """Run ``code`` in a fresh Python process in ``cwd``; its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_import_regexp_loads_neither_pandas_nor_matplotlib_nor_hydra(tmp_path):
    out = python(
        """
        import sys
        import regexp
        heavy = ("pandas", "matplotlib", "hydra", "omegaconf", "sklearn", "mlflow")
        print([m for m in sys.modules if m.split(".")[0] in heavy])
        print(callable(regexp.L1), "run" in dir(regexp))
        """,
        tmp_path,
    )
    assert out.splitlines() == ["[]", "True True"]


@pytest.mark.slow
def test_run_and_load_results_from_a_fresh_process(tmp_path):
    (tmp_path / "tmp").mkdir()
    out = python(
        f"""
        import json, os
        import regexp
        row = regexp.run({[*FAST, "regularizer=l1"]!r}, run_dir="runs/l1")
        frame = regexp.load_results("runs/l1")
        summary = regexp.summarize(frame)
        temporary = regexp.run({FAST!r})  # run_dir=None: a temporary folder, removed
        # Independent references: the returned model on the test split, by numpy.
        import numpy as np
        import torch
        from regexp.data.prepare import load_dataset
        data = load_dataset(**row.config["dataset"])
        with torch.no_grad():
            pred = row.model(data.x_test).numpy().argmax(1)
        weights = [m.weight.detach().numpy() for m in row.model if hasattr(m, "weight")]
        print(json.dumps({{
            "row": dict(row),
            "accuracy": float((pred == data.y_test.numpy()).mean()),
            "zeros": float(sum((w == 0).sum() for w in weights) / sum(w.size for w in weights)),
            "frame": frame.iloc[0].to_dict(),
            "n": int(summary["n"].iloc[0]),
            "left": [p for p in os.listdir(os.environ["TMPDIR"]) if p.startswith("regexp-")],
            "temporary": [temporary["status"], temporary.run_dir, len(temporary.history)],
        }}, default=str))
        """,
        tmp_path,
        TMPDIR=str(tmp_path / "tmp"),
    )
    got = json.loads(out)
    assert got["row"]["regularizer"] == "l1" and got["row"]["status"] == "ok"
    assert got["row"]["test_accuracy"] == pytest.approx(got["accuracy"], abs=1e-12)
    assert got["row"]["weight_sparsity"] == pytest.approx(got["zeros"], abs=1e-12)
    assert got["frame"]["test_accuracy"] == pytest.approx(got["accuracy"], abs=1e-12)
    assert got["n"] == 1
    assert got["left"] == []  # the temporary run directory (regexp-*) is gone
    assert got["temporary"] == ["ok", None, 3]


@pytest.mark.slow
def test_run_matches_the_command_line_and_returns_history_and_model(regexp_cli, tmp_path):
    overrides = [*FAST, "regularizer=group_lasso", "lambda=1e-2", "seed=3"]
    regexp_cli("train", *overrides, "hydra.run.dir=cli")
    result = regexp.run(overrides, run_dir=tmp_path / "api")
    cli = pd.read_csv(tmp_path / "cli" / "metrics.csv", dtype={"hidden": str}).iloc[0]
    for key, value in cli.items():
        if key != "train_seconds":
            assert result[key] == value or (pd.isna(value) and pd.isna(result[key])), key
    history = pd.read_csv(tmp_path / "cli" / "history.csv")
    pd.testing.assert_frame_equal(result.history, history)
    assert result.run_dir == tmp_path / "api"
    assert result.config["regularizer"]["name"] == "group_lasso"
    # The returned model is the thresholded one: its accuracy, by numpy, is test_accuracy.
    from regexp.data.prepare import load_dataset

    data = load_dataset(**result.config["dataset"])
    with torch.no_grad():
        logits = result.model(data.x_test).numpy()
    accuracy = (logits.argmax(1) == data.y_test.numpy()).mean()
    assert accuracy == pytest.approx(result["test_accuracy"], abs=1e-12)
    assert isinstance(result, dict) and pd.DataFrame([result]).shape == (1, len(cli))


@pytest.mark.slow
def test_run_leaves_the_callers_rng_threads_hydra_and_matplotlib_as_they_were(tmp_path):
    import matplotlib
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    torch.manual_seed(1234)
    expected_draw = torch.rand(3)
    torch.manual_seed(1234)
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if threads != 2 else 1)
    before = torch.get_num_threads()
    backend = matplotlib.rcParams._get_backend_or_none()
    try:
        with initialize_config_module("regexp.conf", version_base="1.3"):
            regexp.run(FAST, run_dir=tmp_path / "inside")  # inside a caller's Hydra
            assert GlobalHydra.instance().is_initialized()
            assert compose("config", ["seed=7"])["seed"] == 7  # the caller's still works
        assert not GlobalHydra.instance().is_initialized()
        regexp.run(FAST, run_dir=tmp_path / "outside")
        assert not GlobalHydra.instance().is_initialized()
        assert torch.get_num_threads() == before  # the run itself used trainer.num_threads=1
        assert torch.equal(torch.rand(3), expected_draw)  # the run's seeding did not leak
        assert matplotlib.rcParams._get_backend_or_none() == backend
    finally:
        torch.set_num_threads(threads)


def test_run_refuses_bad_values_with_the_cli_message(tmp_path):
    with pytest.raises(ValueError, match=r"^lambda must be a finite number >= 0, got -1$"):
        regexp.run(["lambda=-1"], run_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(TypeError, match="list of strings"):
        regexp.run("lambda=1e-3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^logger=tensorboard writes into the run directory"):
        regexp.run(["logger=tensorboard"])


@pytest.mark.slow
def test_summarize_of_two_seeds_is_their_mean_and_sample_std(tmp_path):
    rows = [regexp.run([*FAST, f"seed={s}"], run_dir=tmp_path / "sweep" / str(s)) for s in (0, 1)]
    summary = regexp.summarize(regexp.load_results(tmp_path / "sweep"))
    acc = np.array([r["test_accuracy"] for r in rows])
    assert summary["n"].tolist() == [2]
    assert summary["test_accuracy_mean"].iloc[0] == pytest.approx(acc.mean(), abs=1e-15)
    assert summary["test_accuracy_std"].iloc[0] == pytest.approx(acc.std(ddof=1), abs=1e-15)
