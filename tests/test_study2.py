"""Issue 23, second part: a sweep's own best.csv under ``selection.rule`` and
``selection.sparsity`` (checked against pandas from its results.csv), submitit jobs
reporting as they finish, the selected points of pareto.png for CSV data sets, and
``regexp.run``'s train.log and .hydra/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# --- selection.rule / selection.sparsity: the sweep's best.csv ------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("selection.rule=median", r"selection.rule must be one of best, 1se, within:TOL.*'median'"),
        ("selection.rule=within:-1", r"selection.rule must be one of .*'within:-1'"),
        ("selection.rule=within:x", r"selection.rule must be one of .*'within:x'"),
        ("selection.sparsity=weights",
         r"selection.sparsity must be one of params, inputs, got 'weights'"),
        ("+selection.tol=0.1", r"selection.tol is not a key of selection; its keys are: "),
    ],
)  # fmt: skip
def test_a_bad_selection_key_names_the_value_and_what_is_allowed(make_config, override, message):
    from regexp.config import validate

    with pytest.raises(ValueError, match=message):
        validate(make_config(override))


def test_selection_set_as_a_value_says_which_keys_it_holds(make_config):
    from regexp.config import validate

    cfg = make_config() | {"selection": "within:0.01"}
    with pytest.raises(ValueError, match=r"selection holds the keys selection.rule, "):
        validate(cfg)


def test_good_selection_keys_pass_and_do_not_change_a_runs_identity(make_config):
    from regexp.config import validate
    from regexp.results.identity import config_id

    default = make_config()
    assert default["selection"] == {"rule": "best", "sparsity": "params"}
    for rule in ("best", "1se", "within:0.01", "within:0"):
        cfg = make_config(f"selection.rule={rule}", "selection.sparsity=inputs")
        validate(cfg)
        assert config_id(cfg) == config_id(default)  # resume reuses runs of another rule


def test_the_configs_sparsity_choices_are_the_selections():
    from regexp.config import SELECTION_SPARSITY
    from regexp.results.selection import SPARSITY

    assert tuple(SPARSITY) == SELECTION_SPARSITY


def test_a_bad_selection_rule_stops_a_sweep_before_any_job(tmp_path):
    proc = _cli(tmp_path, "train", "-m", "lambda=1e-4,1e-3", "selection.rule=within",
                "trainer.epochs=1", f"hydra.sweep.dir={tmp_path / 'sweep'}")  # fmt: skip
    err = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert err[-1].startswith("regexp: error: selection.rule must be one of best, 1se, within:TOL")
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "sweep").glob("*/metrics.csv"))  # no job ran


def _cli(cwd: Path, *args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "regexp.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def ok_runs(results: pd.DataFrame) -> pd.DataFrame:
    """The ok jobs, ``collapsed`` as booleans and ``kept_input`` = 64 · (1 − the fraction of
    digits' 64 inputs removed)."""
    ok = results[results["status"] == "ok"].copy()
    ok["collapsed"] = ok["collapsed"].astype(str).str.lower().eq("true")
    return ok.assign(kept_input=64 * (1 - ok["neuron_sparsity_input"]))


def hand_choice(results: pd.DataFrame, tol: float, kept: str) -> dict[str, float]:
    """The within:TOL rule worked out with pandas: per regularizer, the mean validation
    accuracy of each λ over its ok seeds; λ where a seed collapsed are out; of the λ whose
    mean is at least the best mean − tol, the fewest ``kept`` on average, then the
    largest λ."""
    ok = ok_runs(results)
    choice = {}
    for reg, runs in ok.groupby("regularizer"):
        means = runs.groupby("lambda").agg(
            val=("val_accuracy", "mean"), kept=(kept, "mean"), bad=("collapsed", "any")
        )
        means = means[~means["bad"]]
        near = means[means["val"] >= means["val"].max() - tol - 1e-12]
        near = near.reset_index().sort_values(["kept", "lambda"], ascending=[True, False])
        choice[reg] = float(near["lambda"].iloc[0])
    return choice


@pytest.mark.slow
@pytest.mark.parametrize("sparsity", ["params", "inputs"])
def test_a_sweeps_best_csv_follows_selection_rule_and_sparsity(tmp_path, sparsity):
    root = tmp_path / "sweep"
    proc = _cli(tmp_path, "train", "-m", "regularizer=l1,group_lasso",
                "lambda=1e-4,3e-3,1e-2,3e-2", "seed=0,1", "trainer.epochs=4",
                "model.hidden=[16]", "selection.rule=within:0.03",
                f"selection.sparsity={sparsity}", f"hydra.sweep.dir={root}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = pd.read_csv(root / "results.csv")
    best = pd.read_csv(root / "best.csv").set_index("regularizer")
    kept = {"params": "params_kept", "inputs": "kept_input"}[sparsity]
    expected = hand_choice(results, 0.03, kept)
    assert best["lambda"].to_dict() == pytest.approx(expected)
    assert set(best["rule"]) == {"within:0.03"} and set(best["sparsity"]) == {sparsity}
    # the sparsest network of the whole sweep within 0.03: sparsest.csv and its one line
    ok = ok_runs(results)
    points = ok.groupby(["regularizer", "lambda"]).agg(
        val=("val_accuracy", "mean"), kept=(kept, "mean"), bad=("collapsed", "any")
    )
    points = points[~points["bad"]].reset_index()
    near = points[points["val"] >= points["val"].max() - 0.03 - 1e-12]
    sparsest = near.sort_values(["kept", "lambda"], ascending=[True, False]).iloc[0]
    answer = pd.read_csv(root / "sparsest.csv")
    assert answer["regularizer"].iloc[0] == sparsest["regularizer"]
    assert answer["lambda"].iloc[0] == pytest.approx(sparsest["lambda"])
    lines = [t for t in proc.stdout.splitlines() if "sparsest within 0.03 of the best" in t]
    assert len(lines) == 1 and lines[0].startswith("digits: ")
    # a sweep cut off by an error (a full disk) reports its finished jobs by the same keys
    from regexp.hydra_app.lifecycle import report_finished_jobs

    (root / "best.csv").unlink()
    assert report_finished_jobs(root)
    again = pd.read_csv(root / "best.csv").set_index("regularizer")
    assert again["lambda"].to_dict() == pytest.approx(expected)
    assert set(again["rule"]) == {"within:0.03"} and set(again["sparsity"]) == {sparsity}


def test_hand_choice_reference_on_a_tiny_frame():
    """The reference above on numbers worked out by hand (so that it can fail)."""
    frame = pd.DataFrame(
        {
            "regularizer": ["l1"] * 6,
            "lambda": [1e-4, 1e-4, 1e-3, 1e-3, 1e-2, 1e-2],
            "status": ["ok"] * 6,
            "collapsed": [False, False, False, False, True, False],
            "val_accuracy": [0.9, 0.92, 0.89, 0.9, 0.5, 0.95],
            "params_kept": [100, 100, 60, 60, 10, 10],
            "neuron_sparsity_input": [0.0] * 6,
        }
    )
    # means 0.91, 0.895, (1e-2 collapsed: out); within 0.02 of 0.91: both → 1e-3 (60 kept)
    assert hand_choice(frame, 0.02, "params_kept") == {"l1": 1e-3}
    assert hand_choice(frame, 0.01, "params_kept") == {"l1": 1e-4}
    assert np.isclose(frame["val_accuracy"][:2].mean(), 0.91)


# --- submitit jobs report as they finish ----------------------------------------------


def test_the_relay_prints_each_whole_line_once_as_it_comes(tmp_path, caplog):
    import time

    from regexp.hydra_app.lifecycle import JobLineRelay, relay_line

    caplog.set_level("INFO", logger="regexp.hydra_app.lifecycle")
    path = tmp_path / "state" / "job_lines.txt"
    relay_line(path, "old line of a resumed sweep")
    relay = JobLineRelay(path, interval=0.01)
    relay.start()
    relay_line(path, "job 0: ok")
    deadline = time.monotonic() + 60  # a wait for the thread, not a speed limit
    while "job 0: ok" not in caplog.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    assert caplog.messages == ["job 0: ok"]  # printed while the relay runs, not at stop
    with path.open("a") as file:
        file.write("job 1: half a li")  # a job still writing: not printed yet
    assert relay.poll() == 0
    with path.open("a") as file:
        file.write("ne\n")
    relay_line(path, "job 2: ok")
    relay.stop()
    assert caplog.messages == ["job 0: ok", "job 1: half a line", "job 2: ok"]


@pytest.mark.slow
def test_submitit_jobs_print_exactly_one_line_each_on_the_sweeps_console(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    root = tmp_path / "sweep"
    proc = _cli(tmp_path, "train", "-m", "hydra/launcher=submitit_local", "lambda=1e-4,1e-3,1e-2",
                "trainer.epochs=1", "model.hidden=[8]", f"hydra.sweep.dir={root}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    jobs = [t for t in lines if "| job " in t]
    assert len(jobs) == 3
    assert sorted(t.split("| job ")[1].split(":")[0] for t in jobs) == ["0", "1", "2"]
    assert {t.split("lambda=")[1].split(" ")[0] for t in jobs} == {"0.0001", "0.001", "0.01"}
    report = next(i for i, t in enumerate(lines) if "sweep results in" in t)
    assert all(lines.index(t) < report for t in jobs)  # each before the sweep's report


# --- stars on pareto.png for CSV data sets --------------------------------------------


def csv_sweep(path: str) -> pd.DataFrame:
    """A hand-made sweep of one CSV data set: l1 and sgl, 3 λ, 2 seeds."""
    val = {("l1", 1e-4): 0.90, ("l1", 1e-3): 0.89, ("l1", 1e-2): 0.80,
           ("sgl", 1e-4): 0.91, ("sgl", 1e-3): 0.905, ("sgl", 1e-2): 0.70}  # fmt: skip
    kept = {1e-4: 100, 1e-3: 60, 1e-2: 20}
    rows = [
        {
            "dataset": "csv",
            "dataset.path": path,
            "task": "classification",
            "regularizer": reg,
            "mode": "penalty",
            "lambda": lam,
            "seed": seed,
            "architecture": "6-8-2",
            "status": "ok",
            "val_accuracy": v,
            "test_accuracy": v - 0.01 * seed,
            "neuron_sparsity_input": 0.0,
            "params_kept": kept[lam] + (reg == "sgl"),
            "params_total": 200,
        }
        for (reg, lam), v in val.items()
        for seed in (0, 1)
    ]
    return pd.DataFrame(rows)


def test_pareto_marks_the_chosen_points_of_a_csv_data_set(tmp_path, monkeypatch):
    from regexp.hydra_app import report
    from regexp.plots import sweep as sweep_plots
    from regexp.results import selection

    figures = {}

    def keep(fig, path, **kwargs):
        figures[Path(path).name] = fig

    monkeypatch.setattr(sweep_plots, "save_figure", keep)
    results = csv_sweep("/data/pima.csv")
    best = selection.best(results, rule="within:0.02")
    answer = selection.sparsest_overall(results, 0.02)
    # by hand: l1's best mean 0.90, within 0.02: 1e-4, 1e-3 → 1e-3 (60 kept);
    # sgl's 0.91: 1e-4, 1e-3 → 1e-3 (61 kept); overall within 0.02 of 0.91: l1 1e-4
    # (0.90), l1 1e-3 (0.89), sgl 1e-4, sgl 1e-3 → l1 1e-3, the sparsest
    assert best.set_index("regularizer")["lambda"].to_dict() == {"l1": 1e-3, "sgl": 1e-3}
    assert (answer["regularizer"].iloc[0], answer["lambda"].iloc[0]) == ("l1", 1e-3)
    report.write_plots(results, tmp_path, selected=best, answer=answer)
    fig = figures["pareto.png"]
    val_ax, test_ax = fig.axes[:2]
    assert val_ax.get_title().startswith("pima: validation")

    def stars(ax, label):
        (found,) = [c for c in ax.collections if c.get_label() == label]
        return sorted(map(tuple, np.round(found.get_offsets().data, 6)))

    chosen = "chosen λ per group (rule within:0.02)"
    gold = "sparsest within the tolerance of the best"
    # (fraction of parameters kept, mean metric) of l1 at 1e-3 and sgl at 1e-3
    assert stars(val_ax, chosen) == [(0.3, 0.89), (0.305, 0.905)]
    assert stars(val_ax, gold) == [(0.3, 0.89)]
    assert stars(test_ax, chosen) == [(0.3, 0.885), (0.305, 0.9)]  # test means: v − 0.005
    assert stars(test_ax, gold) == [(0.3, 0.885)]


# --- logger=mlflow and mlflow ui together -----------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, body: dict | None = None) -> tuple[int, str]:
    import json
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read().decode()


@pytest.mark.slow
def test_mlflow_ui_reads_the_store_that_logger_mlflow_writes(tmp_path):
    """The mlflow extra (in dev) installs the full mlflow: its ``mlflow ui``, at the version
    of the mlflow-skinny that logged, reads the SQLite store of ``logger=mlflow``."""
    import json
    import subprocess
    import sys
    import time
    import urllib.error
    from importlib.metadata import PackageNotFoundError, version

    pytest.importorskip("mlflow")  # the mlflow extra is installed (it is, in dev)
    try:
        ui = version("mlflow")
    except PackageNotFoundError:
        pytest.fail(
            "only mlflow-skinny is installed, without mlflow ui: pip install -e '.[mlflow]'"
        )
    assert version("mlflow-skinny") == ui  # the logger's version is the UI's
    db = tmp_path / "mlflow.db"
    run_dir = tmp_path / "grid1" / "0"
    proc = _cli(tmp_path, "train", "logger=mlflow", f"logger.tracking_uri=sqlite:///{db}",
                "trainer.epochs=2", "model.hidden=[8]", f"hydra.run.dir={run_dir}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    logged = pd.read_csv(run_dir / "metrics.csv").iloc[0]
    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow), "ui", "--backend-store-uri", f"sqlite:///{db}",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a wait for the server to start, not a speed limit
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if _get(f"{base}/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert server.poll() is None, server.stderr.read()[-3000:]  # e.g. a schema error
        api = f"{base}/api/2.0/mlflow"
        found = json.loads(_get(f"{api}/experiments/get-by-name?experiment_name=regexp")[1])
        ids = [found["experiment"]["experiment_id"]]
        runs = json.loads(_get(f"{api}/runs/search", {"experiment_ids": ids})[1])
        (run,) = runs["runs"]
        assert run["info"]["run_name"] == "grid1/0"
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics["test_accuracy"] == pytest.approx(float(logged["test_accuracy"]))
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert float(params["lambda"]) == pytest.approx(float(logged["lambda"]))
        status, page = _get(f"{base}/")
        assert status == 200 and "<html" in page.lower()  # the UI's page itself
    finally:
        server.terminate()
        server.wait(timeout=60)


# --- regexp.run writes train.log and .hydra/ as regexp train does -----------------------


def test_regexp_run_writes_train_log_and_hydra_files_as_regexp_train(tmp_path, caplog):
    import logging

    import yaml

    import regexp

    args = ["regularizer=l1", "lambda=0.01", "trainer.epochs=2", "model.hidden=[8]"]
    cli_dir, api_dir = tmp_path / "cli", tmp_path / "api"
    proc = _cli(tmp_path, "train", *args, f"hydra.run.dir={cli_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    caplog.set_level(logging.WARNING)  # the caller's level: INFO records are not theirs
    result = regexp.run(args, run_dir=api_dir)
    assert not [r for r in caplog.records if r.levelno < logging.WARNING]
    for name in ("config.yaml", "overrides.yaml"):  # the same text as Hydra's
        assert (api_dir / ".hydra" / name).read_text() == (cli_dir / ".hydra" / name).read_text()
    ours = yaml.safe_load((api_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
    theirs = yaml.safe_load((cli_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert ours["run"]["dir"] == str(api_dir) and ours["mode"] == "RUN"
    assert ours["runtime"]["output_dir"] == str(api_dir.resolve())
    assert ours["overrides"]["task"] == theirs["overrides"]["task"] == args
    assert ours["runtime"]["choices"] == theirs["runtime"]["choices"]
    log = (api_dir / "train.log").read_text().splitlines()
    cli_log = (cli_dir / "train.log").read_text().splitlines()

    def body(line: str) -> str:  # the line less its time stamp and run folder
        return line.split("] ", 1)[1].replace(str(api_dir), "RUN").replace(str(cli_dir), "RUN")

    assert [body(t).split(" train_seconds=")[0] for t in log] == [
        body(t).split(" train_seconds=")[0] for t in cli_log
    ]
    assert f"test_accuracy={result['test_accuracy']:.4g}" in log[-1]
    assert log[0].split("]")[1:3] == ["[regexp.data.prepare", "[INFO"]
    caplog.clear()
    caplog.set_level(logging.INFO)  # a caller who listens at INFO still gets the records
    regexp.run(args, run_dir=tmp_path / "api2")
    assert any(m.startswith("metrics: status=ok") for m in caplog.messages)
    assert "metrics: status=ok" in (tmp_path / "api2" / "train.log").read_text()


def test_no_lambda_label_lies_under_the_large_star(tmp_path, monkeypatch):
    from matplotlib.text import Annotation, Text

    from regexp.hydra_app import report
    from regexp.plots import sweep as sweep_plots
    from regexp.results import selection

    figures = {}

    def keep(fig, path, **kwargs):
        figures[Path(path).name] = fig

    monkeypatch.setattr(sweep_plots, "save_figure", keep)
    results = csv_sweep("/data/pima.csv")
    best = selection.best(results, rule="within:0.02")
    answer = selection.sparsest_overall(results, 0.02)
    report.write_plots(results, tmp_path, selected=best, answer=answer)
    fig = figures["pareto.png"]
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[:2]:
        (gold,) = [c for c in ax.collections if c.get_label().startswith("sparsest within")]
        (cx, cy) = ax.transData.transform(gold.get_offsets()[0])
        half = np.sqrt(gold.get_sizes()[0]) / 2 * fig.dpi / 72  # the star's half-width
        labels = [t for t in ax.texts if isinstance(t, Annotation)]
        assert labels
        for text in labels:
            box = Text.get_window_extent(text, renderer)
            dx = abs(cx - np.clip(cx, box.x0, box.x1))
            dy = abs(cy - np.clip(cy, box.y0, box.y1))
            assert dx >= half or dy >= half, text.get_text()
