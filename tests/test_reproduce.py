"""The reproduction report against independent computations from the runs' own files.

A tiny sweep (2 epochs; threshold 0.3, so that kept counts differ between seeds) of the
experiment's protocol is written with :func:`regexp.hydra_app.task.run_task`; the report's numbers
are then
recomputed here from ``metrics.csv``, ``model.pt`` and the raw digits data with pandas,
numpy (``numpy.interp``) and scipy (``scipy.stats``).
"""

import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.nn.utils import prune

from regexp.hydra_app.task import run_task as run
from regexp.plots import run as run_plots
from regexp.reproduction import analysis, matched
from regexp.reproduction.analysis import Matched, censored_cell
from regexp.reproduction.baselines import keep_columns, prune_, pruning_front, write_baselines
from regexp.reproduction.claims import (
    VERDICTS,
    accuracy_check,
    lam_label,
    removal_check,
    tally,
    verdict,
)
from regexp.reproduction.known import precision_recall
from regexp.reproduction.operating import operating_points
from regexp.reproduction.protocol import constant_inputs, keep_fraction
from regexp.reproduction.reproduce import experiment_lambda, write_report

TINY = ("trainer.epochs=2", "threshold=0.3")
LAM = 10**-3.5
SEEDS = (0, 1, 2)
# (regularizer, mode, prox_metric, lambda) of the tiny sweep, each for every seed
JOBS = [
    ("none", "penalty", "auto", LAM),
    ("l1", "penalty", "auto", LAM),
    ("l1", "penalty", "auto", 1e-2),
    ("sgl", "penalty", "auto", LAM),
    ("sgl", "penalty", "auto", 1e-2),
    ("sgl", "proximal", "adaptive", LAM),
    ("sgl", "proximal", "adaptive", 1e-2),
    ("sgl", "proximal", "identity", LAM),
]


def table_row(text: str, first_cell: str, after: str = "") -> list[str]:
    """The cells of the Markdown table row starting with ``first_cell`` (the first such row
    after the line containing ``after``)."""
    text = text[text.index(after) :] if after else text
    rows = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert rows, first_cell
    return [c.strip() for c in rows[0].strip("|").split("|")]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as ``regexp train`` sets it (trainer.num_threads): tiny networks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """24 two-epoch runs of the experiment (``JOBS`` × ``SEEDS``), plus one twin."""
    root = tmp_path_factory.mktemp("sweeps")
    with pytest.MonkeyPatch.context() as mp:  # the report reads no run figure: skip them
        for name in ("plot_learning_curves", "plot_sparsity", "plot_features"):
            mp.setattr(run_plots, name, lambda *args, **kwargs: None)
        write_runs(root)
    # the same job in a second sweep directory is counted once
    shutil.copytree(root / "tiny" / "0", root / "again" / "0")
    write_baselines(root, finetune_epochs=2, lassonet=False, n_jobs=1)
    return root


def write_runs(root) -> None:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    i = 0
    for seed in SEEDS:
        for reg, mode, metric, lam in JOBS:
            overrides = [
                "experiment=scardapane2017",
                f"regularizer={reg}",
                f"regularizer.mode={mode}",
                f"regularizer.prox_metric={metric}",
                f"lambda={lam}",
                f"seed={seed}",
            ]
            with initialize_config_module("regexp.conf", version_base="1.3"):
                cfg = compose("config", overrides=[*overrides, *TINY])
            run(OmegaConf.to_container(cfg, resolve=True), root / "tiny" / str(i))
            i += 1


@pytest.fixture(scope="module")
def report(tiny_sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    return write_report(tiny_sweep, out, LAM).read_text(), out


@pytest.fixture(scope="module")
def metrics(tiny_sweep):
    frame = pd.concat(
        [
            pd.read_csv(p).assign(run_dir=p.parent)
            for p in sorted((tiny_sweep / "tiny").rglob("metrics.csv"))
        ],
        ignore_index=True,
    )
    frame["prox_metric"] = frame["prox_metric"].where(frame["mode"] == "proximal", "")
    return frame


def digits_split(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw digits pixels and the training row indices of the experiment's split, by hand."""
    x, y = load_digits(return_X_y=True)
    rows = np.arange(len(y))
    rest, _ = train_test_split(rows, test_size=0.25, random_state=seed, stratify=y)
    train, _ = train_test_split(rest, test_size=0.15 / 0.75, random_state=seed, stratify=y[rest])
    return x, train


def constant_pixels(seed: int) -> np.ndarray:
    x, train = digits_split(seed)
    return np.ptp(x[train], axis=0) == 0


def test_experiment_sets_the_demos_lambda_and_a_split_per_seed(make_config):
    assert experiment_lambda() == pytest.approx(10**-3.5, rel=1e-12)
    assert lam_label(10**-3.5) == "10^-3.5" and lam_label(1e-2) == "10^-2"
    assert lam_label(2e-3) == "0.002"
    cfg = make_config("experiment=scardapane2017", "seed=3")
    assert cfg["dataset"]["split_seed"] == 3 and cfg["trainer"]["drop_last"] is True


@pytest.mark.slow
def test_constant_inputs_are_those_of_numpy_on_the_training_rows(metrics, report):
    from regexp.data.prepare import load_dataset

    text, _ = report
    counts = []
    for seed in SEEDS:
        expected = constant_pixels(seed)
        data = load_dataset("digits", "classification", 0.15, 0.25, seed, "minmax")
        np.testing.assert_array_equal(constant_inputs(data), expected)
        counts.append(f"{seed}: {expected.sum()}")
    assert f"per split seed: {', '.join(counts)} (of 64)" in text
    every = np.flatnonzero(np.all([constant_pixels(s) for s in SEEDS], axis=0)).tolist()
    assert f"constant in every split (pixel indices {every}" in text


def removed_beyond(run_dir, seed: int) -> int:
    w = torch.load(run_dir / "model.pt", weights_only=False)["state_dict"]["0.weight"]
    dead = (w == 0).all(dim=0).numpy()
    return int((dead & ~constant_pixels(seed)).sum())


@pytest.mark.slow
def test_same_lambda_table_equals_a_pandas_computation(metrics, report):
    text, out = report
    assert (out / "figures" / "pixel_maps.png").stat().st_size > 0
    sizes = [int(s) for s in metrics["architecture"].iloc[0].split("-")]
    at = np.isclose(metrics["lambda"], LAM) & (metrics["mode"] == "penalty")
    for reg, label in (("sgl", "SGL"), ("l1", "L1"), ("none", "none")):
        m = metrics[at & (metrics["regularizer"] == reg)]
        assert len(m) == len(SEEDS)
        acc = 100 * m["test_accuracy"]
        expected = [label, str(len(SEEDS)), f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}"]
        layers = ["input", *(f"hidden{i}" for i in range(1, len(sizes) - 1))]
        for units, layer in zip(sizes[:-1], layers, strict=True):
            kept = (units * (1 - m[f"neuron_sparsity_{layer}"])).round()
            expected.append(f"{kept.mean():.1f} ± {kept.std(ddof=1):.1f}")
        p = m["params_kept"]
        expected.append(f"{p.mean():.1f} ± {p.std(ddof=1):.1f}")
        beyond = pd.Series([removed_beyond(r.run_dir, r.seed) for r in m.itertuples()])
        expected.append(f"{beyond.mean():.1f} ± {beyond.std(ddof=1):.1f}")
        assert table_row(text, label) == expected
    assert "1 configurations ran in two sweeps; 1 of them gave identical metrics" in text


@pytest.mark.slow
def test_same_lambda_paired_line_is_scipys_t_interval(metrics, report):
    text, _ = report
    at = np.isclose(metrics["lambda"], LAM) & (metrics["mode"] == "penalty")
    a = metrics[at & (metrics["regularizer"] == "sgl")].set_index("seed")["test_accuracy"]
    b = metrics[at & (metrics["regularizer"] == "l1")].set_index("seed")["test_accuracy"]
    ci = stats.ttest_rel(a.loc[list(SEEDS)], b.loc[list(SEEDS)]).confidence_interval(0.95)
    d = 100 * (a - b).mean()
    line = (
        f"- L1, test accuracy (%): {100 * a.mean():.2f} against {100 * b.mean():.2f}; "
        f"difference {d:+.2f} [{100 * ci.low:+.2f}, {100 * ci.high:+.2f}] (n = 3)"
    )
    assert line in text


@pytest.mark.slow
def test_pixel_map_is_the_mean_over_seeds_of_inputs_with_a_nonzero_outgoing_weight(metrics):
    m = metrics[(metrics["regularizer"] == "sgl") & (metrics["mode"] == "penalty")]
    alive = [
        (torch.load(d / "model.pt", weights_only=False)["state_dict"]["0.weight"] != 0)
        .any(dim=0)
        .numpy()
        for d in m["run_dir"]
    ]
    expected = np.mean(alive, axis=0)
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(keep_fraction(pd.Series(alive)), expected)


@pytest.mark.slow
def test_matched_cells_are_numpy_interp_along_each_seeds_front(metrics, report):
    """The accuracy at SGL's mean parameter count, read off each seed's λ front: numpy.interp
    inside the front, nothing across an accuracy gap above 2 points or past its ends."""
    text, _ = report
    pen = metrics[metrics["mode"] == "penalty"]
    sgl_at = pen[(pen["regularizer"] == "sgl") & np.isclose(pen["lambda"], LAM)]
    target = sgl_at["params_kept"].mean()
    for reg, label in (("sgl", "SGL"), ("l1", "L1")):
        vals, marks = [], []
        for seed in SEEDS:
            f = pen[(pen["regularizer"] == reg) & (pen["seed"] == seed)]
            g = f.groupby("params_kept")["test_accuracy"]
            f, spread = g.mean(), g.max() - g.min()  # equal x: mean y, unless > 2 points apart
            x, y = f.index.to_numpy(float), f.to_numpy()
            if not x.min() <= target <= x.max():
                vals.append(math.nan)
                marks.append("grid ends")
                continue
            i = np.searchsorted(x, target)
            near = [i] if x[i] == target else [i - 1, i]
            if (spread.to_numpy()[near] > 0.02).any():
                vals.append(math.nan)
                marks.append("ambiguous")
                continue
            if x[i] != target and abs(y[i] - y[i - 1]) > 0.02:
                vals.append(math.nan)
                marks.append("gap")
                continue
            vals.append(np.interp(target, x, y))
        v = 100 * pd.Series(vals).dropna()
        if v.empty:
            expected = marks[0] if len(set(marks)) == 1 else None
        else:
            expected = f"{v.mean():.2f}" + (f" ± {v.std(ddof=1):.2f}" if len(v) > 1 else "")
            if len(v) < len(SEEDS):
                counts = pd.Series(marks).value_counts()
                expected += (
                    f" (n = {len(v)} of {len(SEEDS)}; "
                    + ", ".join(f"{c} {m}" for m, c in counts.items())
                    + ")"
                )
        row = table_row(text, label, "### At matched sparsity on the test fronts")
        if expected is not None:
            assert row[1] == expected
    assert f"accuracy (%) at {target:.0f} parameters" in text


HAND_FRONT = pd.DataFrame(
    {  # two methods, two seeds, three λ each; seed 1 of "b" has two points at x = 20
        "method": ["a"] * 6 + ["b"] * 6,
        "seed": [0, 0, 0, 1, 1, 1] * 2,
        "lambda": [1, 2, 3] * 4,
        "x": [30, 20, 10, 32, 18, 8, 28, 16, 6, 20, 20, 5],
        "y": [0.97, 0.95, 0.90, 0.96, 0.94, 0.88, 0.96, 0.93, 0.80, 0.95, 0.91, 0.70],
    }
)


def test_value_at_is_numpy_interp_on_the_hand_made_front():
    for _, g in HAND_FRONT.groupby(["method", "seed"]):
        xs = sorted(set(g["x"]))
        ys = [g.loc[g["x"] == x, "y"].mean() for x in xs]  # equal x: mean y
        targets = [4, 5, 12, 19.5, 20, 27, 40]
        got = matched.value_at(g["x"], g["y"], targets)
        for t, v in zip(targets, got, strict=True):
            if xs[0] <= t <= xs[-1]:
                assert v == pytest.approx(np.interp(t, xs, ys), abs=1e-12)
            else:
                assert math.isnan(v)


def test_x_at_level_is_the_sparsest_point_reaching_the_accuracy():
    x, y = [10, 20, 30], [0.90, 0.95, 0.97]
    assert matched.x_at_level(x, y, 0.80) == 10  # the sparsest point is good enough
    assert matched.x_at_level(x, y, 0.92) == pytest.approx(10 + 10 * 0.02 / 0.05)
    assert matched.x_at_level(x, y, 0.96) == pytest.approx(25.0)
    assert math.isnan(matched.x_at_level(x, y, 0.98))
    # a dip: the first crossing from the sparse end counts
    assert matched.x_at_level([5, 10, 15], [0.95, 0.90, 0.96], 0.94) == 5


def test_paired_interval_is_scipys_t_interval():
    rng = np.random.default_rng(0)
    a, b = pd.Series(rng.normal(1, 1, 7)), pd.Series(rng.normal(0, 1, 7))
    d = matched.paired_interval(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert d.mean == pytest.approx((a - b).mean()) and d.n == 7
    half = stats.t.ppf(0.975, 6) * (a - b).std(ddof=1) / math.sqrt(7)
    assert d.high - d.mean == pytest.approx(half)
    b[3] = math.nan  # an unpaired seed is left out
    assert matched.paired_interval(a, b).n == 6


def test_matched_comparison_on_the_hand_made_front():
    points = HAND_FRONT.rename(columns={"x": "params_kept", "y": "test_accuracy"}).assign(
        kept_input=math.nan, kept_hidden=math.nan
    )
    mt = Matched(points, {"params_kept": [19.0]}, [0.92], gap=None)
    d, a, b = mt.accuracy("params_kept", "a", "b", 19.0)
    ya = [
        np.interp(19, [10, 20, 30], [0.90, 0.95, 0.97]),
        np.interp(19, [8, 18, 32], [0.88, 0.94, 0.96]),
    ]
    yb = [np.interp(19, [6, 16, 28], [0.80, 0.93, 0.96]), np.interp(19, [5, 20], [0.70, 0.93])]
    diff = np.subtract(ya, yb)
    ci = stats.t.interval(0.95, 1, loc=diff.mean(), scale=diff.std(ddof=1) / math.sqrt(2))
    assert (a, b) == pytest.approx((np.mean(ya), np.mean(yb)))
    assert (d.mean, d.low, d.high) == pytest.approx((diff.mean(), *ci))
    # units kept at 92% accuracy: the crossing of the first segment that climbs to 0.92
    d, a, b = mt.kept("params_kept", "a", "b", 0.92)
    ka = [10 + 10 * 0.02 / 0.05, 8 + 10 * 0.04 / 0.06]
    kb = [6 + 10 * 0.12 / 0.13, 5 + 15 * 0.22 / 0.23]
    assert (a, b) == pytest.approx((np.mean(ka), np.mean(kb)))
    assert d.mean == pytest.approx(np.mean(np.subtract(kb, ka)))  # how many more a removes


def test_verdicts_follow_the_stated_rules():
    iv = matched.Interval
    acc = accuracy_check("c", iv(-0.002, -0.008, 0.004, 5), 0.97, 0.972)
    assert acc.verdict == "agrees" and "within noise: the interval holds 0" in acc.detail
    assert accuracy_check("c", iv(-0.02, -0.03, -0.012, 5), 0.95, 0.97).verdict == "disagrees"
    assert accuracy_check("c", iv(-0.01, -0.02, 0.0, 5), 0.96, 0.97).verdict == "undecided"
    rem = removal_check("r", iv(8.0, 5.0, 11.0, 5), 16.0, 8.0, "of 60")
    assert rem.verdict == "agrees"
    assert (
        rem.detail
        == "16.0 against 8.0 of 60 removed, 2.00×; paired difference +8.0 [+5.0, +11.0] (n = 5)"
    )
    assert removal_check("r", iv(4.0, 1.0, 7.0, 5), 12.0, 8.0, "of 60").verdict == "partly agrees"
    assert removal_check("r", iv(1.0, -2.0, 4.0, 5), 9.0, 8.0, "of 60").verdict == "within noise"
    assert removal_check("r", iv(-3.0, -5.0, -1.0, 5), 5.0, 8.0, "of 60").verdict == "disagrees"
    checks = [acc, rem, removal_check("r", iv(1.0, -2.0, 4.0, 5), 9.0, 8.0, "of 60")]
    assert tally(checks) == "2 agrees, 1 within noise"


@pytest.mark.parametrize(
    ("rule", "low", "high", "kwargs", "expected"),
    [
        # accuracy: agrees iff low >= -tol; disagrees iff high < -tol
        ("accuracy", -0.0099, 0.01, {}, "agrees"),
        ("accuracy", -0.0100, 0.01, {}, "agrees"),
        ("accuracy", -0.0101, 0.01, {}, "undecided"),
        ("accuracy", -0.03, -0.0099, {}, "undecided"),
        ("accuracy", -0.03, -0.0101, {}, "disagrees"),
        # equal: agrees iff the whole interval is inside [-tol, tol]
        ("equal", -0.0099, 0.0099, {}, "agrees"),
        ("equal", -0.0101, 0.0099, {}, "undecided"),
        ("equal", -0.0099, 0.0101, {}, "undecided"),
        ("equal", -0.03, -0.0101, {}, "disagrees"),
        ("equal", 0.0101, 0.03, {}, "disagrees"),
        # removal: the interval against 0, the ratio against far = 2
        ("removal", 0.01, 5.0, {"ratio": 2.0}, "agrees"),
        ("removal", 0.01, 5.0, {"ratio": 1.99}, "partly agrees"),
        ("removal", -0.01, 5.0, {"ratio": 3.0}, "within noise"),
        ("removal", 0.0, 5.0, {"ratio": 3.0}, "within noise"),
        ("removal", -5.0, 0.0, {"ratio": 0.5}, "within noise"),
        ("removal", -5.0, -0.01, {"ratio": 0.5}, "disagrees"),
        # a seed left out counts as a failure: agreeing verdicts become undecided
        ("accuracy", -0.005, 0.01, {"seeds": 5}, "agrees"),
        ("accuracy", -0.005, 0.01, {"seeds": 6}, "undecided"),
        ("removal", 1.0, 5.0, {"ratio": 3.0, "seeds": 6}, "undecided"),
        ("removal", 1.0, 5.0, {"ratio": 1.5, "seeds": 6}, "undecided"),
        ("removal", -5.0, -1.0, {"ratio": 0.5, "seeds": 6}, "disagrees"),
        ("accuracy", -0.03, -0.02, {"seeds": 6}, "disagrees"),
    ],
)
def test_verdict_on_each_side_of_each_boundary(rule, low, high, kwargs, expected):
    d = matched.Interval((low + high) / 2, low, high, 5)
    assert verdict(rule, d, **kwargs) == expected


def test_verdict_without_an_interval_is_undecided_and_rules_are_checked():
    for n, low in ((1, math.nan), (0, math.nan)):
        assert verdict("accuracy", matched.Interval(0.0, low, low, n)) == "undecided"
        assert verdict("removal", matched.Interval(3.0, low, low, n), ratio=9) == "undecided"
    with pytest.raises(ValueError, match="rule must be one of accuracy, removal, equal"):
        verdict("more", matched.Interval(0, -1, 1, 5))


def test_checks_report_the_strict_verdict_beside_the_plain_one():
    iv = matched.Interval(-0.002, -0.008, 0.004, 4)
    c = accuracy_check("c", iv, 0.97, 0.972, seeds=5, row="Table 2, rows SGL and L1")
    assert (c.verdict, c.strict) == ("agrees", "undecided")
    assert c.line().startswith("- **agrees** (**undecided** with the seeds left out")
    assert c.line().endswith("[Table 2, rows SGL and L1]")
    assert tally([c]) == "1 agrees" and tally([c], strict=True) == "1 undecided"


COLLAPSE = (  # a front that falls off: 0.97 at 40 inputs, then 0.10 at 0
    [0, 20, 30, 40, 64],
    [0.10, 0.955, 0.962, 0.97, 0.971],
)


def test_no_value_is_read_across_an_accuracy_gap():
    x, y = COLLAPSE
    v, mark = matched.read_value(x, y, 10, 0.02)  # between 0.10 and 0.955
    assert mark == "gap" and math.isnan(v)
    v, mark = matched.read_value(x, y, 25, 0.02)
    assert mark == "interpolated" and v == pytest.approx(np.interp(25, x, y))
    assert matched.read_value(x, y, 30, 0.02) == (pytest.approx(0.962), "measured")
    assert matched.read_value(x, y, 70, 0.02)[1] == "grid ends"
    # the level: the sparsest point at or above it; across the gap only a bound
    assert matched.read_level(x, y, 0.5, 0.02) == (20.0, "≤")
    assert matched.read_level(x, y, 0.96, 0.02)[1] == "interpolated"
    assert matched.read_level(x, y, 0.05, 0.02) == (0.0, "≤")  # the grid ends there
    assert matched.read_level(x, y, 0.99, 0.02)[1] == "not reached"


@pytest.mark.slow
def test_no_interpolated_value_crosses_a_gap_larger_than_the_stated_one():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 8))
        x = np.sort(rng.choice(np.arange(0, 100), n, replace=False)).astype(float)
        y = np.sort(rng.uniform(0.05, 0.99, n))
        for target in rng.uniform(-5, 105, 10):
            v, mark = matched.read_value(x, y, target, matched.GAP)
            if mark == "interpolated":
                i = np.searchsorted(x, target)
                assert abs(y[i] - y[i - 1]) <= matched.GAP
                assert v == pytest.approx(np.interp(target, x, y))
            elif mark != "measured":
                assert math.isnan(v)
        for level in rng.uniform(0, 1, 5):
            v, mark = matched.read_level(x, y, level, matched.GAP)
            if mark == "interpolated":
                i = int(np.argmax(y >= level))
                assert i > 0 and y[i] - y[i - 1] <= matched.GAP
                assert x[i - 1] <= v <= x[i]


def test_censored_cells_name_what_was_not_measured():
    rows = pd.DataFrame(
        {
            "value": [0.95, 0.97, math.nan, math.nan],
            "mark": ["interpolated", "measured", "gap", "≤"],
            "bound": [math.nan, math.nan, math.nan, 30.0],
        }
    )
    assert censored_cell(rows, 100) == "96.00 ± 1.41 (n = 2 of 4; 1 gap, 1 ≤)"
    bounds = pd.DataFrame({"value": [math.nan] * 2, "mark": ["≤"] * 2, "bound": [10.0, 20.0]})
    assert censored_cell(bounds) == "≤ 15.0"
    ends = pd.DataFrame({"value": [math.nan], "mark": ["grid ends"], "bound": [math.nan]})
    assert censored_cell(ends) == "grid ends"


def test_operating_points_are_the_sparsest_reaching_the_validation_level():
    pts = pd.DataFrame(
        {
            "method": ["m"] * 4 + ["lassonet"] * 2,
            "seed": [0, 0, 0, 1, 0, 0],
            "lambda": [1e-4, 1e-3, 1e-2, 1e-4, 0.1, 0.2],
            "val_accuracy": [0.97, 0.962, 0.90, 0.90, 0.97, 0.96],
            "test_accuracy": [0.96, 0.95, 0.89, 0.91, 0.95, 0.94],
            "kept_input": [60, 40, 10, 60, 30, 20],
            "kept_hidden": [50, 30, 5, 50, math.nan, math.nan],
            "params_kept": [3000, 1500, 200, 3000, math.nan, math.nan],
        }
    )
    ops = operating_points(pts, {0: 0.97, 1: 0.95}, 0.01).set_index(["method", "seed"])
    assert ops.loc[("m", 0), "lambda"] == 1e-3  # 0.962 ≥ 0.96; 0.90 is not
    assert ops.loc[("m", 0), "test_accuracy"] == 0.95
    assert math.isnan(ops.loc[("m", 1), "test_accuracy"])  # 0.90 < 0.94: no point
    assert ops.loc[("lassonet", 0), "kept_input"] == 20  # inputs: its own axis


def test_norm_std_pruning_keeps_the_columns_of_largest_norm_times_std():
    torch.manual_seed(1)
    w = torch.randn(6, 12)
    std = torch.rand(12)
    score = np.linalg.norm(w.numpy(), axis=0) * std.numpy()
    expected = np.zeros(12, bool)
    expected[np.argsort(-score)[:4]] = True
    np.testing.assert_array_equal(keep_columns(w, 4, std).numpy(), expected)


def test_precision_and_recall_of_kept_inputs():
    assert precision_recall(np.array([0, 1, 2, 50]), np.arange(20)) == (0.75, 3 / 20)
    p, r = precision_recall(np.array([], int), np.arange(20))
    assert math.isnan(p) and r == 0


def test_the_synthetic_data_set_is_make_classification_unshuffled():
    from sklearn.datasets import make_classification

    from regexp.data.sources import LOADERS

    table = LOADERS["synthetic"]()
    x, y = make_classification(
        n_samples=2000,
        n_features=200,
        n_informative=20,
        n_redundant=20,
        n_repeated=0,
        n_classes=2,
        shuffle=False,
        random_state=0,
    )
    np.testing.assert_array_equal(table.x, x)
    np.testing.assert_array_equal(table.y, y)
    assert table.feature_names[:2] == ["informative_0", "informative_1"]
    assert table.feature_names[20] == "redundant_0" and table.feature_names[40] == "noise_0"


@pytest.mark.slow
def test_runs_of_the_sweeps_below_the_root_are_read(tiny_sweep, tmp_path):
    from regexp.reproduction.runs import read_runs

    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "multirun.yaml").write_text("{}\n")  # a sweep of its own
    shutil.copytree(tiny_sweep / "tiny" / "0", tmp_path / "one" / "0")
    shutil.copytree(tiny_sweep / "tiny" / "1", tmp_path / "loose")
    runs = read_runs(tmp_path)
    assert sorted(runs["job"]) == ["loose", "one/0"]
    assert sorted(runs["sweep"]) == ["loose", "one"]


@pytest.mark.slow
def test_thresholds_remeasure_the_saved_raw_weights(metrics):
    from regexp.data.prepare import load_dataset
    from regexp.model.mlp import load_checkpoint
    from regexp.reproduction import thresholds

    r = metrics[(metrics["regularizer"] == "sgl") & (metrics["mode"] == "penalty")].iloc[0]
    ckpt = torch.load(r["run_dir"] / "model.pt", weights_only=True)
    raw = ckpt["raw_state_dict"]
    model, cfg = load_checkpoint(r["run_dir"] / "model.pt")
    data = load_dataset(**cfg["dataset"])
    got = thresholds.remeasure(model, raw, data, [0.0, 0.1, cfg["threshold"]])
    ws = [raw[k].numpy() for k in raw if k.endswith("weight")]
    for t in (0.0, 0.1, cfg["threshold"]):
        kept = [np.where(np.abs(w) < t, 0.0, w) for w in ws]
        alive_in = (kept[0] != 0).any(axis=0)
        assert got[thresholds.column("kept_input", t)] == alive_in.sum()
        np.testing.assert_array_equal(got[thresholds.column("alive", t)], alive_in)
    # at the run's own threshold, the numbers of metrics.csv
    t = cfg["threshold"]
    assert got[thresholds.column("test_accuracy", t)] == pytest.approx(r["test_accuracy"])
    assert got[thresholds.column("params_kept", t)] == r["params_kept"]


def test_pruning_keeps_exactly_the_k_columns_of_largest_l2_norm():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    w0 = net[0].weight.detach().numpy().copy()
    w1 = net[2].weight.detach().numpy().copy()
    masks = prune_(net, [5, 2])
    for w, k, mask, lin in ((w0, 5, masks[0], net[0]), (w1, 2, masks[1], net[2])):
        top = np.argsort(np.linalg.norm(w, axis=0))[::-1][:k]
        expected = np.zeros(w.shape[1], bool)
        expected[top] = True
        np.testing.assert_array_equal(mask.numpy(), expected)
        np.testing.assert_array_equal(lin.weight.detach().numpy(), w * expected)
    # torch's own structured pruning by the L2 norm of columns agrees
    lin = torch.nn.Linear(12, 6)
    ref = torch.nn.Linear(12, 6)
    ref.load_state_dict(lin.state_dict())
    prune.ln_structured(ref, "weight", amount=7, n=2, dim=1)
    assert torch.equal(keep_columns(lin.weight, 5), ref.weight_mask[0].bool())
    with pytest.raises(ValueError, match=r"k must be in \[0, 12\], got 13"):
        keep_columns(lin.weight, 13)


@pytest.mark.slow
def test_pruning_front_from_the_dense_runs(metrics, tiny_sweep):
    dense = metrics[metrics["regularizer"] == "none"].sort_values("seed")
    table = pd.read_csv(tiny_sweep / "baselines" / "pruning.csv")
    # seeds × schedules × criteria × fractions × fine-tune
    assert len(table) == len(SEEDS) * 2 * 2 * 10 * 2
    whole = table[(table["fraction"] == 1.0) & (table["finetune_epochs"] == 0)]
    for r in dense.itertuples():  # q = 1 without fine-tuning is the dense run itself
        row = whole[(whole["seed"] == r.seed) & (whole["schedule"] == "all")].iloc[0]
        assert row["val_accuracy"] == pytest.approx(r.val_accuracy)
        assert row["test_accuracy"] == pytest.approx(r.test_accuracy)
        assert row["params_kept"] == r.params_kept
    # fine-tuning keeps the pruned columns at 0: at q = 0.5 at most half the inputs remain
    half = table[(table["fraction"] == 0.5) & (table["schedule"] == "inputs")]
    assert (half["kept_input"] <= 32).all()
    one = pruning_front([dense["run_dir"].iloc[0]], [0.5], finetune_epochs=3)
    ft = one[(one["schedule"] == "all") & (one["finetune_epochs"] == 3)].iloc[0]
    assert len(ft["inputs"].split()) == ft["kept_input"]
    assert ft["kept_input"] <= 32 and ft["kept_hidden"] <= 20 + 10


@pytest.mark.slow
def test_report_has_every_section_and_figure(report):
    text, out = report
    for heading in (
        "## Summary",
        "## Protocol",
        "## Constant inputs",
        "## The paper's claim",
        "### Operating points chosen on validation (Table 2)",
        "### At matched sparsity on the test fronts (Table 3)",
        "## Threshold sensitivity (Table 4)",
        "## Penalty against proximal mode",
        "## Baselines and like-for-like methods at matched sparsity (Table 5)",
        "## Accuracy–sparsity fronts",
    ):
        assert heading in text
    assert text.index("## Summary") < text.index("## Protocol")
    for name in ("pixel_maps.png", "front.png", "front_proximal.png", "front_baselines.png"):
        assert (out / "figures" / name).stat().st_size > 0
    assert "authors' demo" in text and "not from the paper's text" in text
    assert "so does this run (`trainer.drop_last=true`)" in text
    assert "LassoNet did not run" in text
    assert "GL: group Lasso" in text and "SGL: sparse group Lasso" in text
    # the same-λ bullet gives each part the verdict of the one rule (claims.verdict)
    verdicts = "|".join(VERDICTS)
    for name in ("L1",):  # the tiny sweep's only other penalty
        assert re.search(
            rf"{name}: accuracy [+-]\d+\.\d\d points \(({verdicts})\), [+-]\d+\.\d inputs "
            rf"removed \([^,]+, ({verdicts})\), [+-]\d+\.\d hidden neurons removed "
            rf"\([^,]+, ({verdicts})\)",
            text,
        ), name
    assert re.search(r"Of the \d+ parts at matched sparsity: .*; with the seeds left out", text)
    # every summary bullet about a result cites a table
    top = text[text.index("## Summary") : text.index("Abbreviations:")]
    for line in top.splitlines():
        if line.startswith("- **At") or line.startswith("  - "):
            assert re.search(r"\[Table \d", line), line


@pytest.mark.slow
def test_lassonet_path_selects_ever_fewer_inputs(make_config):
    import lassonet  # noqa: F401  (the dev extra installs it: never skipped)

    from regexp.data.prepare import load_dataset
    from regexp.reproduction.baselines import lassonet_path

    cfg = make_config("experiment=scardapane2017", "seed=1")
    data = load_dataset(**cfg["dataset"])
    path, selected = lassonet_path(cfg, data, path_multiplier=2.0)
    assert [int(s.sum()) for s in selected] == path["kept_input"].tolist()
    kept = path["kept_input"].to_numpy()
    assert kept[0] == 64 and kept[-1] == 0  # dense first, then until no input is left
    assert (np.diff(kept) <= 0).all()
    assert path["test_accuracy"].iloc[0] > 0.9  # the dense network has learned digits
    assert path["test_accuracy"].between(0, 1).all() and (path["seed"] == 1).all()
    assert (path["epochs"] > 0).all()  # each path point trained for some epochs


def test_lassonet_refit_trains_the_protocols_mlp_on_the_selected_inputs(make_config):
    from regexp.data.prepare import load_dataset
    from regexp.reproduction.baselines import refit

    cfg = make_config("experiment=scardapane2017", "seed=1", "trainer.epochs=3")
    data = load_dataset(**cfg["dataset"])
    sel = np.zeros(64, bool)
    sel[[10, 20, 30, 43]] = True
    row = refit(cfg, data, sel)
    kept = np.array([int(i) for i in row["inputs"].split()])
    assert set(kept) <= {10, 20, 30, 43} and row["kept_input"] == len(kept)


def test_lassonet_ranks_inputs_by_how_long_they_stay_on_its_path():
    from regexp.reproduction.known import path_ranking

    # stays: input 0: 2 points, 1: 1, 2: 3, 3: 4, 4: 2, 5: 0 (and NaN: an empty selection)
    path = ["0 1 2 3 4", "0 2 3 4", "2 3", "3", np.nan]
    assert path_ranking(path, 6).tolist() == [3, 2, 0, 4, 1, 5]


def test_a_baseline_table_without_a_dataset_column_is_left_out(tmp_path, caplog):
    from regexp.reproduction.analysis import read_baselines
    from regexp.reproduction.baselines import LASSONET_FILE

    row = {"seed": 0, "reading": "path", "lambda": 1.0, "kept_input": 3, "val_accuracy": 0.5}
    row |= {"test_accuracy": 0.5, "epochs": 10, "path_seconds": 1.0, "inputs": "0 1 2"}
    pd.DataFrame([row]).to_csv(tmp_path / LASSONET_FILE, index=False)
    with caplog.at_level("WARNING"):
        _, _, lasso = read_baselines(tmp_path, "breast_cancer")
    assert lasso is None and "has no dataset column" in caplog.text
    rows = [{"dataset": d, **row} for d in ("digits", "breast_cancer", "breast_cancer")]
    pd.DataFrame(rows).to_csv(tmp_path / LASSONET_FILE, index=False)
    points, _, lasso = read_baselines(tmp_path, "breast_cancer")
    assert len(lasso) == 2 and set(lasso["dataset"]) == {"breast_cancer"}
    assert len(points) == 2 and set(points["method"]) == {"lassonet"}


def test_matched_means_are_over_the_seeds_of_the_paired_difference():
    from regexp.reproduction.analysis import Matched

    table = pd.DataFrame(
        {
            "method": ["a", "a", "a", "b", "b"],
            "seed": [0, 1, 2, 1, 2],
            "target": [5.0] * 5,
            "value": [10.0, 2.0, 4.0, 1.0, 1.0],
        }
    )
    # seed 0 has no b: the means are those of seeds 1 and 2 (3 and 1), as is the difference
    assert Matched._means(table, ("a", "b"), 5.0) == [3.0, 1.0]
    # no shared seed: each method's own mean
    alone = table[~((table["method"] == "b") | (table["seed"] > 0))]
    assert Matched._means(pd.concat([alone, table.iloc[[3]].assign(seed=9)]), ("a", "b"), 5.0) == [
        10.0,
        1.0,
    ]


def test_equal_x_points_that_disagree_have_no_single_value():
    """Several λ keeping the same count (at threshold 0 every run keeps all 64 inputs) at
    accuracies more than 2 points apart: no mean of them is read, by hand."""
    assert "ambiguous" in matched.MARKS and "ambiguous" not in matched.USABLE
    # at x = 64: 0.97, 0.10 (a collapsed network) and 0.96; at x = 40: 0.95
    x, y = [40, 64, 64, 64], [0.95, 0.97, 0.10, 0.96]
    v, mark = matched.read_value(x, y, 64, 0.02)
    assert mark == "ambiguous" and math.isnan(v)  # not (0.97 + 0.10 + 0.96) / 3
    v, mark = matched.read_value(x, y, 52, 0.02)  # next to it: no line into a mean either
    assert mark == "ambiguous" and math.isnan(v)
    assert matched.read_value(x, y, 40, 0.02) == (pytest.approx(0.95), "measured")
    # equal x within 2 points: averaged, as before
    x2, y2 = [40, 64, 64], [0.95, 0.97, 0.96]
    assert matched.read_value(x2, y2, 64, 0.02) == (pytest.approx(0.965), "measured")
    v, mark = matched.read_value(x2, y2, 52, 0.02)
    assert mark == "interpolated" and v == pytest.approx(0.95 + 0.015 * 12 / 24)
    # the level: a network at 64 reaches 0.95, the front has no single curve there
    assert matched.read_level([40, 64, 64], [0.90, 0.97, 0.10], 0.95, 0.02) == (64.0, "≤")
    x3, y3 = [20, 40, 40, 64], [0.80, 0.10, 0.90, 0.97]
    assert matched.read_level(x3, y3, 0.85, 0.02) == (40.0, "≤")  # 0.90 at 40
    assert matched.read_level(x3, y3, 0.95, 0.02) == (64.0, "≤")  # the segment from 40
    assert matched.read_level(x3, y3, 0.99, 0.02)[1] == "not reached"
    assert matched.read_level(x3, y3, 0.5, 0.02) == (20.0, "≤")  # the grid ends at 20
    # without the gap rule (x_at_level), the mean as before: 0.5 at 40, then up to 0.97
    assert matched.x_at_level(x3, y3, 0.95) == pytest.approx(40 + 24 * 0.45 / 0.47)
    # a per-seed table: the seed is left out and its cell says why
    pts = pd.DataFrame({"method": "m", "seed": [0, 0, 0, 0], "x": x, "y": y})
    table = matched.per_seed(pts, "x", "y", [64], "value")
    assert table["mark"].tolist() == ["ambiguous"] and table["value"].isna().all()
    assert censored_cell(table, 100) == "ambiguous"


def test_input_only_methods_have_no_hidden_neurons_front():
    """GL or SGL on the input layer alone keep all 60 hidden neurons at every λ: no front on
    that axis ("–"), their inputs and parameters fronts kept."""
    rows = []
    for method in ("sgl", "sgl/input"):
        for lam, acc, kin, kh in ((1e-3, 0.97, 50, 40), (1e-2, 0.955, 40, 30)):
            hidden = 60 if method == "sgl/input" else kh
            rows.append((method, 0, lam, acc, acc, kin, hidden, 18 * kin + 20 * hidden))
    pts = pd.DataFrame(rows, columns=analysis.COLUMNS)
    m = Matched(pts, {"kept_input": [45.0], "params_kept": [1500.0]}, [0.96])
    assert m.cell("level", "kept_hidden", "sgl/input", 0.96) == "–"
    assert m.cell("level", "kept_hidden", "sgl", 0.96) == "33.3"  # 30 + 10 · 0.005 / 0.015
    assert m.cell("x", "kept_input", "sgl/input", 45.0, 100) == "96.25"  # (0.955 + 0.97) / 2
    assert m.cell("level", "kept_input", "sgl/input", 0.96) == "43.3"
    assert "params_kept" in analysis.BASELINE_AXES["sgl/input"]
    assert "kept_hidden" not in analysis.BASELINE_AXES["group_lasso/input"]


def test_threshold_table_reads_every_threshold_at_the_reports_targets(tiny_sweep, metrics):
    """Table 4b: the targets (SGL's parameters and inputs at the demo's λ, the accuracy level)
    are those of the report's threshold at every threshold, and the rows name them."""
    from regexp.reproduction import sensitivity, thresholds
    from regexp.reproduction.study import load_study

    s = load_study(tiny_sweep, LAM)
    pen = metrics[(metrics["mode"] == "penalty") & np.isclose(metrics["lambda"], LAM)]
    sgl = pen[pen["regularizer"] == "sgl"]
    params = sgl["params_kept"].mean()
    inputs = (64 * (1 - sgl["neuron_sparsity_input"])).mean()  # of digits' 64 pixels
    level = pen.loc[pen["regularizer"] == "none", "test_accuracy"].mean() - 0.01
    for t in thresholds.THRESHOLDS:
        st = s.at(t, hold=True)
        assert st.targets["params"] == pytest.approx(params)
        assert st.targets["inputs"] == pytest.approx(inputs)
        assert st.targets["level"] == pytest.approx(level)
        assert st.matched.x_targets["params_kept"][0] == pytest.approx(params)
        assert st.matched.levels[0] == pytest.approx(level)
    # not held: SGL's own counts at t = 0, from the saved raw weights
    st = s.at(0.0)
    own = s.runs.loc[s.at_lam & (s.runs["method"] == "sgl"), thresholds.column("params_kept", 0)]
    assert st.targets["params"] == pytest.approx(own.mean())
    lines, per = sensitivity.section(s)
    text = "\n".join(lines)
    assert f"at equal parameters kept ({params:.0f})" in text
    assert f"at equal inputs kept ({inputs:.1f})" in text
    assert f"held at their values at the report's threshold t = {s.threshold:g}" in text
    for checks in per.values():  # every column's rows read at the same targets
        assert [c.claim for c in checks] == [c.claim for c in next(iter(per.values()))]


def test_front_figures_fix_colours_and_dash_the_jumps(monkeypatch, tmp_path):
    """One colour per method in every front figure (by study.ORDER); a segment between two
    points more than 2 points of accuracy apart thin and dashed; reference markers on top."""
    from regexp.reproduction import figures, fronts
    from regexp.reproduction.study import ORDER

    assert "prune-inputs-std+ft" in fronts.FIGURE_BASELINES
    drawn = {*fronts.PENALTY_FIGURE, *fronts.PROXIMAL_FIGURE, *fronts.FIGURE_BASELINES}
    assert set(fronts.COLORS) == drawn
    assert list(fronts.COLORS) == [m for m in ORDER if m in drawn]
    assert len(set(fronts.COLORS.values())) == len(drawn)  # no two methods share one
    saved = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: saved.append(fig))
    front = pd.DataFrame(
        {  # accuracies 0.90 → 0.97 (7 points: a jump) → 0.975 (half a point)
            "method": "m",
            "test_accuracy_mean": [0.90, 0.97, 0.975],
            "test_accuracy_std": 0.0,
            "params_kept_mean": [500.0, 1000.0, 2000.0],
            "params_kept_std": 0.0,
        }
    )
    refs = pd.DataFrame(
        {
            "method": ["none"],
            "test_accuracy_mean": [0.97],
            "test_accuracy_std": [0.0],
            "params_kept_mean": [3630.0],
            "params_kept_std": [0.0],
        }
    )
    colors = {"m": "#123456"}
    figures.plot_front(
        front, refs, {"params_kept": "p"}, tmp_path / "f.png", "t", None, None, colors, 0.02
    )
    ax = saved[0].axes[0]
    segs = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2]
    assert [tuple(ln.get_xdata()) for ln in segs] == [(500.0, 1000.0), (1000.0, 2000.0)]
    jump, solid = segs
    assert jump.get_linestyle() == "--" and jump.get_linewidth() < solid.get_linewidth()
    assert solid.get_linestyle() == "-"
    assert all(ln.get_color() == "#123456" for ln in segs)
    (ref,) = [ln for ln in ax.get_lines() if ln.get_label() == "none"]
    assert ref.get_zorder() > max(ln.get_zorder() for ln in segs)
