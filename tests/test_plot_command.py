"""figures: auto | always | never, and `regexp plot`, which draws a run's figures later."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from regexp.cli import main

TINY = ["trainer.epochs=2", "model.hidden=[4]", "trainer.batch_size=256"]
FIGURES = {"learning_curves.png", "sparsity.png", "features.png"}


def regexp(*argv: str) -> int:
    GlobalHydra.instance().clear()
    try:
        main(list(argv))
    except SystemExit as exit_:
        return int(exit_.code)
    return 0


def pngs(run_dir: Path) -> set[str]:
    return {p.name for p in run_dir.glob("*.png")}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "batched"])
def test_sweep_jobs_draw_no_figures_by_default_and_regexp_plot_draws_them(launcher, tmp_path):
    root = tmp_path / "sweep"
    args = ["seed=0,1", f"hydra/launcher={launcher}", f"hydra.sweep.dir={root}"]
    assert regexp("train", "-m", *TINY, *args) == 0
    assert pngs(root / "0") == set() and pngs(root / "1") == set()
    assert {"accuracy_vs_lambda.png", "pareto.png"} <= pngs(root)  # sweep figures stay
    assert regexp("plot", str(root)) == 0
    assert pngs(root / "0") == FIGURES and pngs(root / "1") == FIGURES


@pytest.mark.slow
def test_regexp_plot_redraws_a_single_runs_figures_byte_for_byte(tmp_path):
    run_dir = tmp_path / "run"
    assert regexp("train", *TINY, f"hydra.run.dir={run_dir}") == 0
    drawn = {name: (run_dir / name).read_bytes() for name in pngs(run_dir)}
    assert set(drawn) == FIGURES  # figures=auto: a single run draws its three
    for name in drawn:
        (run_dir / name).unlink()
    assert regexp("plot", str(run_dir)) == 0
    assert {name: (run_dir / name).read_bytes() for name in pngs(run_dir)} == drawn


@pytest.mark.slow
def test_figures_always_and_never(tmp_path):
    assert regexp("train", "-m", *TINY, "figures=always", f"hydra.sweep.dir={tmp_path / 's'}") == 0
    assert pngs(tmp_path / "s" / "0") == FIGURES
    assert regexp("train", *TINY, "figures=never", f"hydra.run.dir={tmp_path / 'r'}") == 0
    assert pngs(tmp_path / "r") == set()


def test_plot_of_a_folder_without_runs_says_so(tmp_path, capsys):
    assert regexp("plot", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"regexp: error: no finished runs in '{tmp_path}' (expected a run or sweep directory)\n"
    )
