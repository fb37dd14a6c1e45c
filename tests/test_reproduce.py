import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from regexp.job import run
from regexp.paper.claims import front_notes, lam_label, paper_checks, ranking_note
from regexp.paper.reproduce import experiment_lambda, keep_fraction, write_report

# Two epochs; threshold 0.3 zeroes most weights, so that kept counts differ between seeds.
TINY = ("trainer.epochs=2", "threshold=0.3")


def table_row(text: str, first_cell: str) -> list[str]:
    rows = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, rows
    return [c.strip() for c in rows[0].strip("|").split("|")]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """Four 2-epoch runs (SGL and L1, seeds 0 and 1) of the experiment, plus one twin."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    root = tmp_path_factory.mktemp("sweeps")
    jobs = [("sgl", 0), ("sgl", 1), ("l1", 0), ("l1", 1)]
    for i, (reg, seed) in enumerate(jobs):
        with initialize_config_module("regexp.conf", version_base="1.3"):
            overrides = ["experiment=scardapane2017", f"regularizer={reg}", f"seed={seed}"]
            cfg = compose("config", overrides=[*overrides, *TINY])
        run(OmegaConf.to_container(cfg, resolve=True), root / "tiny" / str(i))
    # the same job in a second sweep directory is counted once
    shutil.copytree(root / "tiny" / "0", root / "again" / "0")
    return root


def test_experiment_sets_the_papers_lambda():
    assert experiment_lambda() == pytest.approx(10**-3.5, rel=1e-12)
    assert lam_label(10**-3.5) == "10^-3.5" and lam_label(1e-2) == "10^-2"
    assert lam_label(2e-3) == "0.002"


def test_report_tables_equal_a_pandas_computation_from_metrics_csv(tiny_sweep, tmp_path):
    path = write_report(tiny_sweep, tmp_path / "docs", experiment_lambda())
    text = path.read_text()
    assert (tmp_path / "docs" / "figures" / "pixel_maps.png").stat().st_size > 0
    metrics = pd.concat(
        [pd.read_csv(p) for p in sorted((tiny_sweep / "tiny").rglob("metrics.csv"))]
    )
    sizes = [int(s) for s in metrics["architecture"].iloc[0].split("-")]
    for reg, label in (("sgl", "sparse group Lasso (SGL)"), ("l1", "L1")):
        m = metrics[metrics["regularizer"] == reg]
        assert len(m) == 2
        expected = [label, "2"]
        acc = 100 * m["test_accuracy"]
        expected.append(f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}")
        layers = ["input", *(f"hidden{i}" for i in range(1, len(sizes) - 1))]
        for units, layer in zip(sizes[:-1], layers, strict=True):
            kept = (units * (1 - m[f"neuron_sparsity_{layer}"])).round()
            expected.append(f"{kept.mean():.1f} ± {kept.std(ddof=1):.1f}")
        p = m["params_kept"]
        expected.append(f"{p.mean():.1f} ± {p.std(ddof=1):.1f}")
        assert table_row(text, label) == expected
    assert "1 configurations ran in two sweeps; 1 of them gave identical metrics" in text


def test_pixel_map_is_the_mean_over_seeds_of_inputs_with_a_nonzero_outgoing_weight(tiny_sweep):

    dirs = sorted(d for d in (tiny_sweep / "tiny").iterdir() if d.name != ".regexp")[
        :2
    ]  # the SGL runs
    alive = [
        (torch.load(d / "model.pt", weights_only=False)["state_dict"]["0.weight"] != 0)
        .any(dim=0)
        .numpy()
        for d in dirs
    ]
    expected = np.mean(alive, axis=0)
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(keep_fraction(dirs), expected)


def summary_frame(acc: dict, kept_in: dict, kept_hidden: dict) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "regularizer": list(acc),
            "test_accuracy_mean": list(acc.values()),
            "test_accuracy_std": [0.004] * len(acc),
            "kept_input_mean": [kept_in[r] for r in acc],
            "kept_hidden_mean": [kept_hidden[r] for r in acc],
        }
    )


def test_paper_checks_follow_the_stated_definitions():
    runs = pd.DataFrame({"units_input": [64], "units_hidden1": [40], "units_hidden2": [20]})
    # SGL removes 30 inputs (L1: 15, exactly half: far more) and 20 neurons (L1: 11: more,
    # not far more; L2: 0 removed: far more)
    kept_in, kept_hidden = {"l1": 49, "l2": 64, "sgl": 34}, {"l1": 49, "l2": 60, "sgl": 40}
    acc = {"l1": 0.97, "l2": 0.97, "sgl": 0.965}
    checks = paper_checks(summary_frame(acc, kept_in, kept_hidden), runs)
    assert {c.claim: c.verdict for c in checks} == {
        "SGL removes far more input features than L1": "agrees",
        "SGL removes far more hidden neurons than L1": "partly agrees",
        "SGL's accuracy is equal to or slightly below L1's": "agrees",
        "SGL removes far more input features than L2": "agrees",
        "SGL removes far more hidden neurons than L2": "agrees",
        "SGL's accuracy is equal to or slightly below L2's": "agrees",
    }
    assert checks[1].detail == "20.0 against 11.0 of 60 removed on average, 1.82×"
    assert checks[2].detail == (
        "96.50% against 97.00% (-0.50 points, beyond one seed-to-seed std of 0.40)"
    )
    acc["sgl"] = 0.955  # 1.5 points below: more than "slightly"
    kept_hidden["sgl"] = 55  # 5 removed against L1's 11
    checks = paper_checks(summary_frame(acc, kept_in, kept_hidden), runs)
    assert checks[1].verdict == checks[2].verdict == "disagrees"


def test_front_notes_count_the_lambdas_where_sgl_is_sparser():

    front = pd.DataFrame(
        {
            "regularizer": ["l1", "l1", "sgl", "sgl"],
            "lambda": [1e-4, 1e-3, 1e-4, 1e-3],
            "kept_input_mean": [60.0, 40.0, 50.0, 45.0],
            "params_kept_mean": [3000.0, 2000.0, 2500.0, 1500.0],
            "test_accuracy_mean": [0.97, 0.95, 0.965, 0.93],
        }
    )
    (note,) = front_notes(front)
    assert note == (
        "- Against L1 at the same λ, SGL keeps fewer input features at 1 of 2 values of λ "
        "and fewer parameters at 2; its accuracy is at most 1 point below at 1 of 2 "
        "(differences from -2.00 to -0.50 points)."
    )


def test_ranking_note_names_the_method_with_the_fewest_kept_units_and_ties():
    summary = pd.DataFrame(
        {
            "regularizer": ["l1", "sgl", "group_lasso"],
            "kept_input_mean": [50.0, 45.0, 45.0],
            "kept_hidden_mean": [30.0, 20.0, 25.0],
            "params_kept_mean": [2000.0, 1500.5, 1800.0],
        }
    )
    assert ranking_note(summary)[0] == (
        "Fewest kept on average, of the 3 methods: input features: sparse group Lasso (SGL) "
        "and group Lasso (GL) (45.0); hidden neurons: sparse group Lasso (SGL) (20.0); "
        "parameters: sparse group Lasso (SGL) (1500.5)."
    )
