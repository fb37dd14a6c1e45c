"""Issue 20, data lost or mixed: a run owns only the folder it was given (marker, lock),
interrupts and resume never mix two jobs' files (faults injected at each step through
``REGEXP_FAULT``, never by racing a signal), ``regexp.run`` obeys the rules of ``regexp
train``, trackers never cost a run, and the one-line errors of the run side. Every test
asserts on the files left on disk, or on the exit code and message. Tiny runs: digits,
2 epochs, one hidden layer of 4."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib.figure
import pandas as pd
import pytest
import torch
import yaml
from filelock import FileLock
from hydra.core.global_hydra import GlobalHydra

import regexp
from regexp import errors
from regexp.cli import main

TINY = ["trainer.epochs=2", "model.hidden=[4]", "trainer.batch_size=256"]
INTERRUPTED = "regexp: interrupted; finished runs are kept in {}. To continue a sweep, run the same command with resume=true"  # noqa: E501


@pytest.fixture(autouse=True)
def _plain_errors(monkeypatch):
    """One-line errors (no debug), no fault unless a test sets one, fresh fault counts."""
    monkeypatch.delenv("REGEXP_DEBUG", raising=False)
    monkeypatch.delenv("REGEXP_FAULT", raising=False)
    getattr(errors, "FAULT_HITS", {}).clear()


def regexp_cli(*argv: str, capsys: pytest.CaptureFixture | None = None) -> tuple[int, str]:
    """Run ``regexp`` in-process; its exit code and (with ``capsys``) stderr."""
    GlobalHydra.instance().clear()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err if capsys is not None else ""


def train(run_dir: Path, *overrides: str, capsys=None) -> tuple[int, str]:
    return regexp_cli("train", *TINY, *overrides, f"hydra.run.dir={run_dir}", capsys=capsys)


def sweep(root: Path, *overrides: str, capsys=None) -> tuple[int, str]:
    return regexp_cli("train", "-m", *TINY, *overrides, f"hydra.sweep.dir={root}", capsys=capsys)


def metrics(run_dir: Path) -> dict:
    return pd.read_csv(run_dir / "metrics.csv").iloc[0].to_dict()


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path → bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def last_line(err: str) -> str:
    lines = err.strip().splitlines()
    return lines[-1] if lines else ""


# --- 8. Two runs into one folder at once ------------------------------------------------


@pytest.mark.slow
def test_a_second_run_into_a_folder_a_run_holds_is_refused_and_changes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(run_dir)[0] == 0
    before = listing(run_dir)
    lock = run_dir / ".regexp" / "sweep.lock"
    with FileLock(lock, timeout=0):  # the first run, still running
        code, err = train(run_dir, "lambda=1e-2", capsys=capsys)
    assert code == 2
    assert err.splitlines() == [
        f"regexp: error: another run is running in hydra.run.dir '{run_dir}' (it holds "
        f"{lock}); wait for it to end, or choose another hydra.run.dir"
    ]
    assert listing(run_dir) == before  # nothing moved, nothing written
    assert metrics(run_dir)["lambda"] == 1e-3


@pytest.mark.slow
def test_the_default_run_folder_ends_with_the_process_id(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "regexp.cli", "train", *TINY],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert run_dir.name.endswith(f"_digits_sgl_{proc.pid}")
    assert (run_dir / "metrics.csv").is_file() and (run_dir / ".regexp-run").is_file()


# --- 9. A run owns only what it wrote --------------------------------------------------


def write_csv_data(path: Path) -> None:
    rows = "".join(f"{i % 7},{(3 * i) % 5},{i % 2}\n" for i in range(60))
    path.write_text("a,b,y\n" + rows)


def test_a_folder_holding_other_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    write_csv_data(folder / "data.csv")
    (folder / "notes.txt").write_text("my notes\n")
    before = listing(folder)
    csv = ["dataset=csv", f"dataset.path={folder / 'data.csv'}", "dataset.target=y"]
    code, err = train(folder, *csv, capsys=capsys)
    assert code == 2
    assert err.splitlines() == [
        f"regexp: error: hydra.run.dir '{folder}' holds files that are not a regexp run's "
        "(data.csv, notes.txt); a run writes only into a new or empty folder or one of its "
        "own: choose another hydra.run.dir"
    ]
    assert listing(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv", "notes.txt"]


def test_a_sweep_into_a_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "results.csv").write_text("my,own\n1,2\n")
    before = listing(folder)
    code, err = sweep(folder, "seed=0,1", capsys=capsys)
    assert code == 2
    assert err.splitlines() == [
        f"regexp: error: hydra.sweep.dir '{folder}' holds files that are not a regexp "
        "sweep's (results.csv); a sweep writes only into a new or empty folder or one of "
        "its own: choose another hydra.sweep.dir"
    ]
    assert listing(folder) == before


@pytest.mark.slow
def test_superseding_moves_only_the_earlier_runs_own_files(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir)[0] == 0
    (run_dir / "notes.txt").write_text("written by hand beside the run\n")
    assert train(run_dir, "lambda=1e-2")[0] == 0

    assert (run_dir / "notes.txt").read_text() == "written by hand beside the run\n"
    assert metrics(run_dir)["lambda"] == 0.01
    (old,) = (run_dir / ".regexp" / "superseded").iterdir()
    assert metrics(old)["lambda"] == 0.001
    assert (old / ".hydra" / "config.yaml").is_file() and (old / "train.log").is_file()
    assert not (old / "notes.txt").exists()
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert "lambda=1e-2" in overrides  # the folder's .hydra is the new run's


# --- 10. Interrupts during a resume whose job numbers changed ---------------------------


def seed_of(run_dir: Path) -> dict[str, int]:
    """The seed each file of a run folder records: metrics.csv, model.pt, .hydra."""
    seeds = {}
    if (run_dir / "metrics.csv").is_file():
        seeds["metrics"] = int(metrics(run_dir)["seed"])
    if (run_dir / "model.pt").is_file():
        ckpt = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
        seeds["model"] = int(ckpt["config"]["seed"])
    if (run_dir / ".hydra" / "overrides.yaml").is_file():
        lines = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        seeds["hydra"] = int(dict(x.split("=", 1) for x in lines)["seed"])
    return seeds


def assert_each_folder_holds_one_job(root: Path) -> dict[Path, int]:
    """Every folder under ``root`` that holds a run's files (job folders, and runs set
    aside in .regexp/) holds those of one run only, and a finished run is whole. Returns
    the finished runs: folder → seed."""
    finished = {}
    folders = {p.parent for p in root.rglob("*") if p.name in ("metrics.csv", "model.pt")}
    folders |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    for folder in folders:
        seeds = seed_of(folder)
        assert len(set(seeds.values())) == 1, f"{folder} mixes runs: {seeds}"
        if "metrics" in seeds:
            assert {"metrics", "model"} <= set(seeds), f"{folder}: a finished run split"
            assert (folder / "history.csv").is_file(), f"{folder}: a finished run split"
            finished[folder] = seeds["metrics"]
    return finished


@pytest.mark.parametrize(
    "fault",
    [
        "set_aside@1",  # resume setting the earlier runs aside: after the first
        "job_start@1",  # job 0 (a new seed) has its .hydra files, in the folder of seed 0
        "fit@1",  # job 0 trained, not yet written
        "reuse@1",  # job 1 claimed seed 0's run, nothing moved yet
        "reuse_file@2",  # job 1 midway through taking seed 0's files over
        "job_start@3",  # job 2 started, seed 1's run still set aside
    ],
)
@pytest.mark.slow
def test_ctrl_c_at_each_step_of_a_resume_never_mixes_two_jobs(fault, tmp_path, capsys, monkeypatch):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1")[0] == 0  # job 0: seed 0, job 1: seed 1
    assert sorted(assert_each_folder_holds_one_job(root).values()) == [0, 1]

    monkeypatch.setenv("REGEXP_FAULT", fault)
    capsys.readouterr()
    code, err = sweep(root, "seed=2,0,1", "resume=true", capsys=capsys)  # numbers change
    assert code == 130
    assert last_line(err) == INTERRUPTED.format(root)
    assert "Traceback" not in err
    finished = assert_each_folder_holds_one_job(root)
    assert {0, 1} <= set(finished.values())  # neither earlier run is lost
    assert not list(root.rglob("*.claimed-*"))

    monkeypatch.delenv("REGEXP_FAULT")
    code, err = sweep(root, "seed=2,0,1", "resume=true", capsys=capsys)
    assert code == 0, err[-2000:]
    for job, seed in (("0", 2), ("1", 0), ("2", 1)):
        assert seed_of(root / job) == {"metrics": seed, "model": seed, "hydra": seed}
        assert metrics(root / job)["status"] == "ok"
    results = pd.read_csv(root / "results.csv", dtype={"job": str})
    assert sorted(zip(results["job"], results["seed"], strict=True)) == [
        ("0", 2), ("1", 0), ("2", 1)
    ]  # fmt: skip
    assert_each_folder_holds_one_job(root)


@pytest.mark.slow
def test_ctrl_c_while_a_single_run_resumes_puts_the_earlier_run_back_whole(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    assert train(run_dir)[0] == 0
    before = {k: v for k, v in listing(run_dir).items() if not k.startswith(".regexp/")}
    monkeypatch.setenv("REGEXP_FAULT", "move_file@3")  # setting it aside, three files moved
    code, _ = train(run_dir, "lambda=1e-2", "resume=true")
    assert code == 130
    after = {k: v for k, v in listing(run_dir).items() if not k.startswith(".regexp/")}
    assert after == before  # back where it was, whole, and nothing of the new run
    assert not list((run_dir / ".regexp").glob("reusable/*"))


# --- 11. regexp.run obeys the rules of regexp train ------------------------------------


def test_api_run_writes_into_the_hydra_run_dir_override(tmp_path):
    run_dir = tmp_path / "api_run"
    result = regexp.run([*TINY, f"hydra.run.dir={run_dir}"])
    assert result.run_dir == run_dir
    assert metrics(run_dir)["test_accuracy"] == pytest.approx(result["test_accuracy"])


def test_api_run_refuses_other_hydra_settings(tmp_path):
    with pytest.raises(ValueError, match=r"regexp.run takes no Hydra setting but hydra.run.dir"):
        regexp.run([*TINY, "hydra.job.chdir=true"], run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_api_run_into_a_cli_run_sets_the_cli_run_aside(tmp_path):
    run_dir = tmp_path / "run"
    assert train(run_dir)[0] == 0
    regexp.run([*TINY, "lambda=1e-2"], run_dir=run_dir)
    # its own .hydra/ and train.log (as regexp train writes), not the CLI run's
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["lambda"] == 0.01
    assert "strength=0.01" in (run_dir / "train.log").read_text()
    assert "strength=0.001" not in (run_dir / "train.log").read_text()
    assert metrics(run_dir)["lambda"] == 0.01
    (old,) = (run_dir / ".regexp" / "superseded").iterdir()
    assert yaml.safe_load((old / ".hydra" / "config.yaml").read_text())["lambda"] == 0.001
    assert metrics(old)["lambda"] == 0.001


@pytest.mark.slow
def test_api_run_resume_takes_back_the_finished_run(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    first = regexp.run(TINY, run_dir=run_dir)
    model = (run_dir / "model.pt").read_bytes()

    def no_training(*_, **__):
        raise AssertionError("resume=true trained again")

    monkeypatch.setattr("regexp.api.run_task", no_training)
    again = regexp.run([*TINY, "resume=true"], run_dir=run_dir)
    assert again["test_accuracy"] == first["test_accuracy"]
    assert (run_dir / "model.pt").read_bytes() == model


def test_api_run_resume_needs_a_run_dir():
    with pytest.raises(ValueError, match=r"^resume=true takes back a finished run"):
        regexp.run([*TINY, "resume=true"])


@pytest.mark.slow
def test_api_run_refuses_a_folder_of_other_files_and_a_locked_one(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    with pytest.raises(ValueError, match=r"run_dir '.*mine' holds files that are not a regexp"):
        regexp.run(TINY, run_dir=folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]

    run_dir = tmp_path / "run"
    regexp.run(TINY, run_dir=run_dir)
    before = listing(run_dir)
    refused = pytest.raises(ValueError, match=r"another run is running in run_dir")
    with FileLock(run_dir / ".regexp" / "sweep.lock", timeout=0), refused:
        regexp.run([*TINY, "lambda=1e-2"], run_dir=run_dir)
    assert listing(run_dir) == before


@pytest.mark.parametrize("overrides", [[1, 2], ["lambda=1e-2", 3.0], 5])
def test_api_run_with_overrides_that_are_not_strings_is_one_clear_type_error(overrides):
    with pytest.raises(TypeError) as err:
        regexp.run(overrides)
    assert str(err.value).startswith("overrides must be a list of strings such as")
    assert "\n" not in str(err.value)


# --- 12. Trackers never cost a run ------------------------------------------------------


@pytest.mark.slow
def test_a_tensorboard_folder_that_cannot_be_written_keeps_the_run(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    run_dir = tmp_path / "run"
    code, err = train(run_dir, "logger=tensorboard", f"logger.save_dir={blocker}", capsys=capsys)
    assert code == 0, err[-2000:]
    row = metrics(run_dir)
    assert row["status"] == "ok" and 0 <= row["test_accuracy"] <= 1
    assert row["tracker_error"].startswith("logger=tensorboard: ")
    assert (run_dir / "model.pt").is_file() and (run_dir / "history.csv").is_file()


@pytest.mark.slow
def test_an_mlflow_store_that_cannot_be_written_keeps_the_run(tmp_path):
    pytest.importorskip("mlflow")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    run_dir = tmp_path / "run"
    uri = f"logger.tracking_uri=sqlite:///{blocker}/mlflow.db"
    assert train(run_dir, "logger=mlflow", uri)[0] == 0
    row = metrics(run_dir)
    assert row["status"] == "ok"
    assert row["tracker_error"].startswith("logger=mlflow: ")


@pytest.mark.slow
def test_an_unreachable_mlflow_server_is_one_line_and_keeps_the_run(tmp_path, capsys):
    pytest.importorskip("mlflow")
    run_dir = tmp_path / "run"
    args = ["logger=mlflow", "logger.tracking_uri=http://127.0.0.1:9", "logger.timeout=2"]
    code, err = train(run_dir, *args, capsys=capsys)
    assert code == 0
    row = metrics(run_dir)
    assert row["status"] == "ok"
    assert row["tracker_error"].startswith("logger=mlflow: ")
    assert "\n" not in row["tracker_error"]
    assert [line for line in err.splitlines() if "the tracker failed" in line] == [
        line for line in err.splitlines() if "tracker" in line
    ]
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") is None  # restored


@pytest.mark.slow
def test_mlflow_requests_get_the_configured_timeout_and_no_retries(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    seen = {}

    def record(self, *args, **kwargs):
        names = ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        seen.update({k: os.environ.get(k) for k in names})
        raise ConnectionError("no server here")

    monkeypatch.setattr(MlflowClient, "__init__", record)
    run_dir = tmp_path / "run"
    assert train(run_dir, "logger=mlflow", "logger.timeout=3")[0] == 0
    assert seen == {"MLFLOW_HTTP_REQUEST_TIMEOUT": "3", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    assert metrics(run_dir)["tracker_error"] == "logger=mlflow: ConnectionError: no server here"


# --- One line where a traceback was -----------------------------------------------------


@pytest.mark.parametrize("module", ["torch", "hydra", "pandas"])
@pytest.mark.slow
def test_ctrl_c_during_the_first_import_of_a_library_is_one_line(module, tmp_path):
    """A Ctrl-C while a library is first imported leaves it half-initialized: importing
    it again fails. The hook below raises KeyboardInterrupt at that first import, and
    makes every later one fail as a half-initialized module does."""
    script = textwrap.dedent(f"""
        import builtins, sys
        real, state = builtins.__import__, {{"hit": False}}

        def fake(name, *args, **kwargs):
            if name == {module!r} or name.startswith({module + "."!r}):
                if not state["hit"]:
                    state["hit"] = True
                    raise KeyboardInterrupt
                raise ImportError("cannot import name 'x' from partially initialized "
                                  "module")
            return real(name, *args, **kwargs)

        builtins.__import__ = fake
        from regexp.cli import main
        sys.argv = ["regexp"]
        main({["train", *TINY, f"hydra.run.dir={tmp_path / 'run'}"]!r})
    """)
    if module == "hydra":  # as the console script does: the import is part of startup
        script = script.replace("from regexp.cli import main", "")
        script = script.replace("main([", "from regexp.cli import main; main([")
    env = {k: v for k, v in os.environ.items() if k != "REGEXP_DEBUG"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 130, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("regexp: interrupted;")


@pytest.mark.slow
def test_compare_out_into_a_folder_that_cannot_be_written_is_one_line(
    tmp_path, capsys, monkeypatch
):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1")[0] == 0
    out = tmp_path / "readonly"
    out.mkdir()

    def denied(self, path, *args, **kwargs):  # what a read-only folder does (even for root)
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", denied)
    capsys.readouterr()
    code, err = regexp_cli("compare", str(root), "--out", str(out), capsys=capsys)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"regexp: error: cannot write '{out}/")
    assert line.endswith(": Permission denied")


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
@pytest.mark.slow
def test_plot_names_a_damaged_model_pt_and_plots_the_other_runs(damage, tmp_path, capsys):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1,2")[0] == 0
    model = root / "1" / "model.pt"
    data = model.read_bytes()
    model.write_bytes(b"garbage" * 10 if damage == "corrupt" else data[: len(data) // 2])
    capsys.readouterr()
    code, err = regexp_cli("plot", str(root), capsys=capsys)
    assert code == 1
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("regexp:")]  # beside rich's bar
    assert line.startswith(f"regexp: error: {root / '1'}: '{model}' is not a readable checkpoint")
    for job in ("0", "2"):
        assert sorted(p.name for p in (root / job).glob("*.png")) == [
            "features.png", "learning_curves.png", "sparsity.png"
        ]  # fmt: skip
    assert not (root / "1" / "features.png").exists()


@pytest.mark.slow
def test_plot_on_a_sweep_that_cannot_be_written_fails_with_one_line(tmp_path, capsys, monkeypatch):
    root = tmp_path / "sweep"
    assert sweep(root, "seed=0,1")[0] == 0

    def denied(self, path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", denied)
    capsys.readouterr()
    code, err = regexp_cli("plot", str(root), capsys=capsys)
    assert code == 1
    assert "Traceback" not in err
    assert [x for x in err.splitlines() if x.startswith("regexp:")] == [  # beside rich's bar
        f"regexp: error: 2 run folder(s) cannot be written, e.g. '{root / '0'}' "
        "(Permission denied): no figures drawn there"
    ]
    assert not list(root.rglob("*.png")) or not list(root.glob("[01]/*.png"))


@pytest.mark.parametrize("where", ["hydra_save_config", "run_files"])
@pytest.mark.slow
def test_a_disk_that_fills_during_a_sweep_keeps_results_of_the_finished_jobs(
    where, tmp_path, capsys, monkeypatch
):
    root = tmp_path / "sweep"
    if where == "run_files":  # job 2 writing its files
        monkeypatch.setenv("REGEXP_FAULT", "write_run@3:enospc")
        failing = "<fault point write_run>"
    else:  # Hydra saving job 2's .hydra/config.yaml (3 files per job)
        import hydra.core.utils

        save, calls = hydra.core.utils._save_config, []
        failing = str(root / "2" / ".hydra" / "config.yaml")

        def full_disk(cfg, filename, output_dir):
            calls.append(filename)
            if len(calls) == 7:
                raise OSError(errno.ENOSPC, "No space left on device", failing)
            save(cfg, filename, output_dir)

        monkeypatch.setattr(hydra.core.utils, "_save_config", full_disk)
    code, err = sweep(root, "seed=0,1,2,3", capsys=capsys)
    assert code == 1
    assert last_line(err) == (
        f"regexp: error: cannot write '{failing}': the disk is full (No space "
        f"left on device); results.csv in {root} holds the jobs that finished"
    )
    assert "Traceback" not in err
    results = pd.read_csv(root / "results.csv", dtype={"job": str})
    ok = results[results["status"] == "ok"]
    assert {("0", 0), ("1", 1)} <= set(zip(ok["job"], ok["seed"], strict=True))
    assert "2" not in set(ok["job"])  # the job the full disk cut off is not counted as ok
    if where == "hydra_save_config":  # Hydra's own error ends the sweep at once
        assert set(results["job"]) <= {"0", "1", "2"} and not (root / "3").exists()


@pytest.mark.slow
def test_a_sweep_where_every_job_diverged_writes_no_best_csv_and_compare_agrees(tmp_path, capsys):
    root = tmp_path / "sweep"
    diverge = ["dataset=diabetes", "optimizer=sgd", "optimizer.lr=1e4", "trainer.epochs=3"]
    code, _ = sweep(root, *diverge, "seed=0,1")
    said = capsys.readouterr()
    said = said.out + said.err  # Hydra logs to stdout
    assert code == 0
    assert "KeyError" not in said
    assert set(pd.read_csv(root / "results.csv")["status"]) == {"diverged"}
    assert (root / "summary.csv").is_file() and not (root / "best.csv").exists()
    assert "no best λ: no group has an ok run to choose λ on" in said

    out = tmp_path / "cmp"
    code, _ = regexp_cli("compare", str(root), "--out", str(out))
    assert code == 0
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert said == f"comparison.csv and plots written to {out} (no best.csv: no ok run to choose λ)"
    assert (out / "comparison.csv").is_file() and not (out / "best.csv").exists()


def test_a_sweep_subdir_that_leads_outside_is_refused_before_anything_is_written(tmp_path, capsys):
    root = tmp_path / "sweep"
    code, err = sweep(root, "seed=0,1", "hydra.sweep.subdir=../x_${hydra.job.num}", capsys=capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "regexp: error: hydra.sweep.subdir '../x_${hydra.job.num}' leads out of "
        "hydra.sweep.dir; a job's folder must lie inside the sweep's, e.g. "
        "hydra.sweep.subdir=${hydra.job.num} (the default)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing, inside or outside


@pytest.mark.parametrize("launcher", ["basic", "joblib", "batched"])
def test_n_jobs_zero_is_one_line(launcher, tmp_path, capsys):
    if launcher == "joblib":
        pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    root = tmp_path / "sweep"
    code, err = sweep(
        root, "seed=0,1", f"hydra/launcher={launcher}", "hydra.launcher.n_jobs=0", capsys=capsys
    )
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("regexp: error: ")
    assert "n_jobs" in line
    assert not list(root.glob("*/metrics.csv"))


def test_the_fault_hook_is_inert_without_its_variable():
    for name in ("fit", "job_start", "reuse"):
        errors.fault_point(name)  # no REGEXP_FAULT: nothing happens
    os.environ["REGEXP_FAULT"] = "fit@2"
    try:
        errors.fault_point("fit")
        with pytest.raises(KeyboardInterrupt):
            errors.fault_point("fit")
    finally:
        del os.environ["REGEXP_FAULT"]
